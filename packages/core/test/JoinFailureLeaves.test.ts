/**
 * A join that fails or is interrupted leaves at once (SFU first, then the membership: the same leave as on scope
 * close), not when the caller's scope closes: a join retried, or failing inside a long-lived scope, must not keep a
 * membership and its heartbeat alive meanwhile.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope, TestClock } from "effect"
import * as Call from "../src/Call.ts"
import * as Testing from "../src/testing/index.ts"
import { assertNothingLeft, ops, roomId, settle, TestHomeserver, TestLiveKit } from "./utils.ts"

const { fail, hang } = Testing.TestCallLog

const restarts = Effect.map(ops, (xs) => xs.filter((o) => o === "homeserver:delayed.restart").length)

describe("a failed or interrupted join leaves at once", () => {
  it.effect("the SFU refuses the connect: nothing is left while the caller's scope stays open", () =>
    Effect.gen(function*() {
      const sfu = yield* TestLiveKit.TestLiveKit
      yield* sfu.injectFault("connect", fail({ status: 403 }))
      const scope = yield* Scope.make()
      const error = yield* Effect.flip(Call.join(roomId).pipe(Scope.extend(scope)))
      assert.strictEqual(error._tag, "ConnectFailed")
      yield* assertNothingLeft
      // The delayed leave was sent to end the membership, and nothing restarts it any more.
      assert.include(yield* ops, "homeserver:delayed.send")
      yield* TestClock.adjust(60_000)
      yield* settle
      assert.strictEqual(yield* restarts, 0)
      yield* assertNothingLeft
      yield* Scope.close(scope, Exit.void)
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("interrupted while connecting: SFU, then the membership, before the scope closes", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const sfu = yield* TestLiveKit.TestLiveKit
      yield* sfu.injectFault("connect", hang)
      const scope = yield* Scope.make()
      const joining = yield* Effect.fork(Call.join(roomId).pipe(Scope.extend(scope)))
      yield* settle
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      yield* Fiber.interrupt(joining)
      yield* assertNothingLeft
      yield* TestClock.adjust(60_000)
      yield* settle
      assert.strictEqual(yield* restarts, 0)
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("retried in one scope: one live call, one heartbeat", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const sfu = yield* TestLiveKit.TestLiveKit
      yield* sfu.injectFault("connect", fail({ status: 403 }), 3)
      const scope = yield* Scope.make()
      const call = yield* Call.join(roomId).pipe(Effect.retry({ times: 3 }), Scope.extend(scope))
      yield* settle
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      assert.strictEqual((yield* hs.scheduledDelayedEvents).length, 1)
      const before = yield* restarts
      yield* TestClock.adjust(5_000)
      yield* settle
      assert.strictEqual((yield* restarts) - before, 1)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* call.ended, "Left")
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))
})
