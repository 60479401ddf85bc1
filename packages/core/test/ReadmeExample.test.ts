// The README's "Testing your app with the in-memory layers" example, kept as a
// real test so that the documentation cannot drift from the API.
import { assert, it } from "@effect/vitest"
import { Call, Ids } from "@matrixrtc-effect/core"
import * as Testing from "@matrixrtc-effect/core/testing"
import { Effect, Fiber, TestClock } from "effect"

const room = "!room:example.org"

it.scoped("README: a membership the server refuses is MembershipFailed, and nothing is left behind", () =>
  Effect.gen(function*() {
    const hs = yield* Testing.TestHomeserver.TestHomeserver
    const sfu = yield* Testing.TestLiveKit.TestLiveKit
    const log = yield* Testing.TestCallLog.TestCallLog
    const roomId = yield* Ids.roomId(room)

    yield* hs.injectFault("sendState", Testing.TestCallLog.fail({ status: 403, errcode: "M_FORBIDDEN" }))
    const error = yield* Effect.flip(Effect.scoped(Call.join(roomId)))

    assert.strictEqual(error._tag, "MembershipFailed")
    assert.strictEqual(error.errcode, "M_FORBIDDEN")
    assert.deepStrictEqual(yield* hs.activeMemberships(room), [])
    assert.deepStrictEqual(yield* sfu.participants(), [])
    const ops = yield* log.ops // e.g. ["homeserver:openid", "homeserver:transports", …, "sfu:disconnect", …]
    assert.isTrue(ops.includes("sfu:connect"))
  }).pipe(Effect.provide(Testing.layer({ homeserver: { rooms: [{ roomId: room }] } }))))

it.scoped("README: a crash leaves no ghost (the delayed leave fires)", () =>
  Effect.gen(function*() {
    const hs = yield* Testing.TestHomeserver.TestHomeserver
    const roomId = yield* Ids.roomId(room)

    // The heartbeat stops for good: every restart of the delayed leave hangs.
    const fiber = yield* Effect.fork(Effect.scoped(Effect.zipRight(Call.join(roomId), Effect.never)))
    yield* TestClock.adjust("1 second")
    assert.strictEqual((yield* hs.activeMemberships(room)).length, 1)
    yield* hs.injectFault("delayed.restart", Testing.TestCallLog.hang, 1_000)
    yield* TestClock.adjust("20 seconds")
    assert.deepStrictEqual(yield* hs.activeMemberships(room), [])
    yield* Fiber.interrupt(fiber)
  }).pipe(Effect.provide(Testing.layer({ homeserver: { rooms: [{ roomId: room }] } }))))
