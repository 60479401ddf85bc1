// The README's "Testing your app with the in-memory layers" example, kept as a
// real test so that the documentation cannot drift from the API. The part between the
// region markers is the README's code block, character for character (ReadmeSnippets.test.ts
// in packages/node checks that).
import { Fiber, TestClock } from "effect"
import { settle } from "./utils.ts"
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

    // The process is gone as far as the server can tell: none of its requests arrive any more.
    const fiber = yield* Effect.fork(Effect.scoped(Effect.zipRight(Call.join(roomId), Effect.never)))
    // Waits first: the adjust begins once the join is parked on the clock (the test layers answer on the fiber
    // runtime only; they used to hash with Web Crypto, and the clock could move while a hash was still on its way).
    yield* TestClock.adjust("1 second")
    assert.strictEqual((yield* hs.activeMemberships(room)).length, 1)
    for (const op of ["delayed.restart", "scheduleDelayed", "sendState", "delayed.cancel", "delayed.send"] as const) {
      yield* hs.injectFault(op, Testing.TestCallLog.hang, 1_000)
    }
    yield* TestClock.adjust("20 seconds")
    assert.deepStrictEqual(yield* hs.activeMemberships(room), [])
    // Its leave requests hang too, so stopping the program waits out the bounded leave steps.
    const stopping = yield* Effect.fork(Fiber.interrupt(fiber))
    yield* settle
    yield* TestClock.adjust("30 seconds")
    yield* Fiber.join(stopping)
    assert.deepStrictEqual(yield* hs.activeMemberships(room), [])
  }).pipe(Effect.provide(Testing.layer({ homeserver: { rooms: [{ roomId: room }] } }))))
