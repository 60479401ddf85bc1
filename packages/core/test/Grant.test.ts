/**
 * Steps 2–3 of a join (Grant.ts) against a homeserver that rate-limits hard, never answers, or fails: each
 * ends in bounded time with a typed error or a documented fallback, and leaves nothing running.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option, TestClock } from "effect"
import * as Call from "../src/Call.ts"
import * as JoinCache from "../src/JoinCache.ts"
import { MatrixClient } from "../src/MatrixClient.ts"
import * as MatrixRetry from "../src/MatrixRetry.ts"
import * as Testing from "../src/testing/index.ts"
import { assertNothingLeft, awaitLog, ops, roomId, settle, TestHomeserver } from "./utils.ts"

const { delay, fail, hang } = Testing.TestCallLog
const day = 24 * 3600 * 1000
const timeoutMs = MatrixRetry.DefaultRequestTimeoutMs

/** Moves the test clock on in steps of `stepMs` until `fiber` has ended, at most to `limitMs`. */
const runUntilDone = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, stepMs: number, limitMs: number) =>
  Effect.gen(function*() {
    for (let t = 0; t < limitMs && Option.isNone(yield* Fiber.poll(fiber)); t += stepMs) {
      yield* TestClock.adjust(stepMs)
      yield* settle
    }
    const exit = yield* Fiber.poll(fiber)
    return Option.isSome(exit) ? exit.value : assert.fail(`still running at ${limitMs} ms: ${(yield* ops).join(", ")}`)
  })

const joinAndLeave = Effect.scoped(Effect.asVoid(Call.join(roomId)))

describe("Grant: rate limits on the OpenID request", () => {
  it.effect("a 429 asking for 30 days fails the join at once: JwtFetchFailed(OpenIdFailed) with the 429; nothing left", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("openid", fail({ status: 429, errcode: "M_LIMIT_EXCEEDED", retryAfterMs: 30 * day }))
      // the test clock is not moved: a wait of any length would never end
      const e = yield* Effect.flip(joinAndLeave)
      assert.strictEqual(e._tag, "JwtFetchFailed")
      if (e._tag !== "JwtFetchFailed") return
      assert.strictEqual(e.reason, "OpenIdFailed")
      assert.strictEqual(e.status, 429)
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("a 429 asking for 2 s is waited for, and the join goes on", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("openid", fail({ status: 429, errcode: "M_LIMIT_EXCEEDED", retryAfterMs: 2_000 }))
      const fiber = yield* Effect.fork(joinAndLeave)
      yield* awaitLog((x) => x.op === "openid" && x.detail !== undefined)
      yield* TestClock.adjust(2_000)
      yield* Fiber.join(fiber)
      assert.include(yield* ops, "sfu:connect")
    }).pipe(Effect.provide(Testing.layer())))
})

describe("Grant: a homeserver that never answers", () => {
  it.effect("OpenID: the join fails with JwtFetchFailed(OpenIdFailed), a Timeout MatrixError as cause; nothing left", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("openid", hang, 20)
      const fiber = yield* Effect.fork(joinAndLeave)
      const exit = yield* runUntilDone(fiber, 1_000, MatrixRetry.DefaultBudgetMs + timeoutMs)
      const e = yield* Effect.flip(exit)
      assert.strictEqual(e._tag, "JwtFetchFailed")
      if (e._tag !== "JwtFetchFailed") return
      assert.strictEqual(e.reason, "OpenIdFailed")
      assert.deepInclude(e.cause, { _tag: "MatrixError", reason: "Timeout" })
      assert.notInclude(yield* ops, "homeserver:sendState")
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("/versions: after requestTimeoutMs the join goes on without delayed events, as for any failed read", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("serverSupport", hang)
      const fiber = yield* Effect.fork(joinAndLeave)
      yield* awaitLog((x) => x.op === "serverSupport" && x.detail === "fault hang")
      yield* TestClock.adjust(timeoutMs)
      yield* Fiber.join(fiber)
      const log = yield* ops
      assert.include(log, "homeserver:sendState")
      assert.notInclude(log, "homeserver:scheduleDelayed")
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("the room version: after requestTimeoutMs the join goes on", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("roomVersion", hang)
      const fiber = yield* Effect.fork(joinAndLeave)
      yield* awaitLog((x) => x.op === "roomVersion" && x.detail === "fault hang")
      yield* TestClock.adjust(timeoutMs)
      yield* Fiber.join(fiber)
      assert.include(yield* ops, "homeserver:sendState")
    }).pipe(Effect.provide(Testing.layer())))
})

describe("Grant: a failed step stops what runs beside it", () => {
  it.effect("a refused OpenID request: no /versions or /capabilities request afterwards, nothing kept", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      // the support read is under way when the OpenID request fails
      yield* hs.injectFault("serverSupport", delay(1_000))
      yield* hs.injectFault("openid", fail({ status: 403, errcode: "M_FORBIDDEN" }))
      const e = yield* Effect.flip(joinAndLeave)
      assert.strictEqual(e._tag, "JwtFetchFailed")
      yield* TestClock.adjust(1_000)
      yield* settle
      assert.notInclude(yield* ops, "homeserver:serverSupport")
      const session = Option.getOrThrow(yield* Effect.flatMap(MatrixClient, (mx) => mx.session))
      const cache = yield* JoinCache.JoinCache
      assert.isTrue(Option.isNone(yield* cache.serverSupport.get(JoinCache.sessionKey(session))))
    }).pipe(Effect.provide(Testing.layer({ joinCache: {} }))))
})
