// The README's "Testing your app with the in-memory layers" example, kept as a
// real test so that the documentation cannot drift from the API. The part between the
// region markers is the README's code block, character for character (ReadmeSnippets.test.ts
// in packages/node checks that).
import { Fiber, TestClock } from "effect"
// #region readme
import { assert, it } from "@effect/vitest"
import { Call, Ids } from "@matrixrtc-effect/core"
import * as Testing from "@matrixrtc-effect/core/testing"
import { Effect } from "effect"

const room = "!room:example.org"

it.scoped("a membership the server refuses is MembershipFailed, and nothing is left behind", () =>
  Effect.gen(function*() {
    const hs = yield* Testing.TestHomeserver.TestHomeserver
    const sfu = yield* Testing.TestLiveKit.TestLiveKit
    const log = yield* Testing.TestCallLog.TestCallLog
    const roomId = yield* Ids.roomId(room)

    yield* hs.injectFault("sendState", Testing.TestCallLog.fail({ status: 403, errcode: "M_FORBIDDEN" }))
    const error = yield* Effect.flip(Effect.scoped(Call.join(roomId)))

    assert.strictEqual(error._tag, "MembershipFailed")
    assert.strictEqual(error.errcode, "M_FORBIDDEN")
    // nothing left behind: no membership, no delayed leave, no SFU participant
    assert.deepStrictEqual(yield* hs.activeMemberships(room), [])
    assert.deepStrictEqual(yield* hs.scheduledDelayedEvents, [])
    assert.deepStrictEqual(yield* sfu.participants(), [])
    // and in this order: the SFU disconnect before the delayed leave is sent to end the membership
    const ops = yield* log.ops
    assert.isBelow(ops.indexOf("sfu:disconnect"), ops.indexOf("homeserver:delayed.send"))
  }).pipe(Effect.provide(Testing.layer({ homeserver: { rooms: [{ roomId: room }] } }))))
// #endregion

it.scoped("a crash leaves no ghost (the delayed leave fires)", () =>
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
