/**
 * The heartbeat never spins: a server maximum of 0 or below is ignored, one below 1 s means no delayed leave, and JoinOptions durations that are not finite and above 0 are refused before any request. A loop that
 * spins would never give the worker back (not even to the test timeout), so every test caps the requests: past
 * `cap` of one kind, the homeserver refuses them with 403, which ends the call, and the count fails the test.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Scope, TestClock } from "effect"
import * as Call from "../src/Call.ts"
import * as Testing from "../src/testing/index.ts"
import { ops, roomId, settle, TestHomeserver } from "./utils.ts"

const { delay, fail } = Testing.TestCallLog

/** The first `cap` requests of each heartbeat or membership kind go through; every later one is refused. */
const capped = (cap: number) =>
  Effect.gen(function*() {
    const hs = yield* TestHomeserver.TestHomeserver
    for (const op of ["scheduleDelayed", "delayed.restart", "sendState"] as const) {
      yield* hs.injectFault(op, delay(0), cap)
      yield* hs.injectFault(op, fail({ status: 403, errcode: "M_FORBIDDEN" }), 10 * cap)
    }
  })

const homeserverWrites = Effect.map(
  ops,
  (xs) => xs.filter((o) => o === "homeserver:delayed.restart" || o === "homeserver:scheduleDelayed").length
)

/** Joins in a scope of its own, lets `ms` pass on the test clock, and counts the heartbeat's requests (the join's too). */
const requestsOver = (ms: number, cap: number, options?: Call.JoinOptions) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    return yield* Effect.gen(function*() {
      yield* capped(cap)
      yield* Call.join(roomId, options).pipe(Scope.extend(scope))
      yield* TestClock.adjust(ms)
      yield* settle
      return yield* homeserverWrites
    }).pipe(Effect.ensuring(Scope.close(scope, Exit.void)))
  })

describe("heartbeat bounds", () => {
  it.effect("a server maximum delay of 0 is ignored: the heartbeat keeps its period", () =>
    Effect.gen(function*() {
      // The server refuses every delay above its 0 maximum, so the join and each round (every 5 s) try to schedule one.
      const n = yield* requestsOver(20_000, 50)
      assert.isAtMost(n, 6)
    }).pipe(Effect.provide(Testing.layer({ homeserver: { maxDelayMs: 0 } }))), { timeout: 20_000 })

  for (const maxDelayMs of [1, 50, 999]) {
    it.effect(`an advertised maximum of ${maxDelayMs} ms (too short to keep up): joined without a delayed leave, no heartbeat`, () =>
      Effect.gen(function*() {
        const hs = yield* TestHomeserver.TestHomeserver
        // Kept, a delayed leave this short fires between restarts and the room re-publishes each time: a flood.
        const n = yield* requestsOver(10_000, 600)
        assert.strictEqual(n, 0)
        assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 0, "left at scope close")
      }).pipe(Effect.provide(Testing.layer({ homeserver: { maxDelayMs } }))), { timeout: 20_000 })
  }

  it.effect("a maximum of 50 ms only learned from the refusal is not taken: no delayed leave, one try per round", () =>
    Effect.gen(function*() {
      // Lowered to 50 ms, the delayed leave would fire between restarts and the room re-publish each time.
      const n = yield* requestsOver(10_000, 600)
      assert.isAtMost(n, 1 + 2)
    }).pipe(Effect.provide(Testing.layer({ homeserver: { maxDelayMs: 50, advertiseMaxDelay: false } }))), { timeout: 20_000 })

  for (
    const [key, value] of [
      ["heartbeatMs", 0],
      ["heartbeatMs", -5],
      ["delayMs", 0],
      ["delayMs", Number.NaN],
      ["membershipExpiryMs", Number.POSITIVE_INFINITY],
      ["requestTimeoutMs", 0],
      ["leaveStepTimeoutMs", -1],
      ["connectTimeoutMs", Number.NaN]
    ] as const
  ) {
    it.effect(`JoinOptions.${key} = ${value} is a defect, before any request`, () =>
      Effect.gen(function*() {
        yield* capped(50)
        const exit = yield* Effect.exit(Effect.scoped(Call.join(roomId, { [key]: value })))
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), String(exit))
        if (Exit.isFailure(exit)) {
          const defect = Cause.squash(exit.cause)
          assert.isTrue(Cause.isIllegalArgumentException(defect), String(defect))
          assert.include(String((defect as Error).message), key)
        }
        assert.deepStrictEqual((yield* ops).filter((o) => !o.startsWith("homeserver:fault")), [])
      }).pipe(Effect.provide(Testing.layer())), { timeout: 20_000 })
  }

  it.effect("valid durations join as before", () =>
    Effect.gen(function*() {
      const n = yield* requestsOver(10_000, 50, { heartbeatMs: 2_000, delayMs: 6_000, requestTimeoutMs: 1_000 })
      assert.strictEqual(n, 1 + 5)
    }).pipe(Effect.provide(Testing.layer())), { timeout: 20_000 })
})
