/**
 * A defect in the call's background work (a bug in an adapter, say) is logged as an error, and the heartbeat and
 * the refresh go on with their next round; a defect used to end their fiber silently (Effect logs it at Debug).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Logger, Scope, Stream, TestClock } from "effect"
import * as Call from "../src/Call.ts"
import { LiveKit } from "../src/LiveKit.ts"
import { MatrixClient } from "../src/MatrixClient.ts"
import * as Testing from "../src/testing/index.ts"
import { ops, roomId, settle } from "./utils.ts"

const errors = (lines: Array<string>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Error") lines.push(String(Array.isArray(message) ? message[0] : message))
    })
  )

/** The test layers, with the MatrixClient's `which` dying on its `nth` call (1-based) only. */
const dyingOn = (which: "restart" | "sendStateEvent" | "callMemberEvents", nth: number) =>
  Layer.provideMerge(
    Layer.effect(
      MatrixClient,
      Effect.map(MatrixClient, (mx) => {
        let calls = 0
        const dies = () => ++calls === nth
        return MatrixClient.of({
          ...mx,
          updateDelayedEvent: (id, action) =>
            which === "restart" && action === "restart"
              ? Effect.suspend(() => dies() ? Effect.die(new Error("adapter bug")) : mx.updateDelayedEvent(id, action))
              : mx.updateDelayedEvent(id, action),
          sendStateEvent: (...args) =>
            which === "sendStateEvent"
              ? Effect.suspend(() => dies() ? Effect.die(new Error("adapter bug")) : mx.sendStateEvent(...args))
              : mx.sendStateEvent(...args),
          callMemberEvents: (r) =>
            which === "callMemberEvents"
              ? Stream.concat(mx.callMemberEvents(r).pipe(Stream.take(1)), Stream.die(new Error("adapter bug")))
              : mx.callMemberEvents(r)
        })
      })
    ),
    Testing.layer()
  )

/** The test layers, with the SFU connection's state stream dying after its first state. */
const dyingStates = Layer.provideMerge(
  Layer.effect(
    LiveKit,
    Effect.map(LiveKit, (lk) =>
      LiveKit.of({
        connect: (url, jwt, options) =>
          Effect.map(lk.connect(url, jwt, options), (c) => ({
            ...c,
            connectionStates: Stream.concat(c.connectionStates.pipe(Stream.take(1)), Stream.die(new Error("adapter bug")))
          }))
      }))
  ),
  Testing.layer()
)

const count = (op: string) => Effect.map(ops, (xs) => xs.filter((o) => o === op).length)

describe("background defects", () => {
  it.effect("a heartbeat round that dies is logged as an error, and the next round restarts the delayed leave", () => {
    const lines: Array<string> = []
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const call = yield* Call.join(roomId).pipe(Scope.extend(scope))
      yield* TestClock.adjust(5_000)
      yield* settle
      assert.deepStrictEqual(lines, ["the heartbeat went wrong; going on"])
      assert.strictEqual(yield* count("homeserver:delayed.restart"), 0)
      yield* TestClock.adjust(5_000)
      yield* settle
      assert.strictEqual(yield* count("homeserver:delayed.restart"), 1)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* call.ended, "Left")
    }).pipe(Effect.provide(Layer.merge(dyingOn("restart", 1), errors(lines))))
  })

  it.effect("a refresh that dies is logged as an error, and the next one refreshes", () => {
    const lines: Array<string> = []
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      // Refreshed every 55 s; the join's membership is the first send, the first refresh the second.
      yield* Call.join(roomId, { membershipExpiryMs: 60_000 }).pipe(Scope.extend(scope))
      yield* TestClock.adjust(55_000)
      yield* settle
      assert.deepStrictEqual(lines, ["the membership refresh went wrong; going on"])
      assert.strictEqual(yield* count("homeserver:sendState"), 1)
      yield* TestClock.adjust(55_000)
      yield* settle
      assert.strictEqual(yield* count("homeserver:sendState"), 2)
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(Layer.merge(dyingOn("sendStateEvent", 2), errors(lines))))
  })

  it.effect("a member stream that dies is logged as an error", () => {
    const lines: Array<string> = []
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Call.join(roomId).pipe(Scope.extend(scope))
      yield* settle
      assert.deepStrictEqual(lines, ["the member watch went wrong; it has stopped"])
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(Layer.merge(dyingOn("callMemberEvents", 1), errors(lines))))
  })

  it.effect("an SFU state stream that dies is logged as an error", () => {
    const lines: Array<string> = []
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Call.join(roomId).pipe(Scope.extend(scope))
      yield* settle
      assert.deepStrictEqual(lines, ["the SFU connection's state went wrong; its end will go unnoticed"])
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(Layer.merge(dyingStates, errors(lines))))
  })
})
