/**
 * Steps 2–3 of a join (Grant.ts) against a homeserver that rate-limits hard, never answers, or fails: each
 * ends in bounded time with a typed error or a documented fallback, and leaves nothing running.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, HashMap, Layer, Logger, LogLevel, Option, TestClock } from "effect"
import type { LiveKitGrant } from "../src/AuthService.ts"
import { AuthService } from "../src/AuthService.ts"
import * as Call from "../src/Call.ts"
import * as JoinCache from "../src/JoinCache.ts"
import * as LiveKitNaming from "../src/LiveKitNaming.ts"
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

/** The AuthService of the context, with every grant's JWT `sub` replaced by `identity` (a stale or odd service). */
const mintingIdentity = (identity: string) =>
  Layer.effect(
    AuthService,
    Effect.map(AuthService, (real) => {
      const swap = (g: LiveKitGrant): LiveKitGrant => ({ ...g, claims: { ...g.claims, identity } })
      return AuthService.of({
        sfuGet: (url, request) => Effect.map(real.sfuGet(url, request), swap),
        getToken: (url, request) => Effect.map(real.getToken(url, request), swap)
      })
    })
  )

/** Collects the warnings logged while `self` runs, with their annotations. */
const warnings = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const lines: Array<{ readonly message: unknown; readonly annotations: Record<string, unknown> }> = []
    const logger = Logger.make(({ annotations, logLevel, message }) => {
      if (logLevel._tag === "Warning") {
        lines.push({ message, annotations: Object.fromEntries(HashMap.toEntries(annotations)) })
      }
    })
    return Effect.map(
      Effect.provide(self, Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(LogLevel.All))),
      (a) => [a, lines] as const
    )
  })

const alice = "@alice:example.org"
const aliceDevice = "ALICEDEVICE"
const sticky = Testing.layer({ homeserver: { stickyEvents: true } })

describe("Grant: the JWT's identity is the one peers derive from our membership", () => {
  it.effect("session dialect: the /sfu/get identity is <user>:<device>, and no warning", () =>
    Effect.gen(function*() {
      const [identity, logged] = yield* warnings(
        Effect.scoped(Effect.map(Call.join(roomId), (call) => call.connection.identity))
      )
      assert.strictEqual(identity, `${alice}:${aliceDevice}`)
      assert.isFalse(logged.some((l) => "expectedIdentity" in l.annotations))
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("session dialect: a JWT for another identity fails the join (BadResponse naming both); no membership", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(joinAndLeave.pipe(Effect.provide(mintingIdentity("@mallory:example.org:ALICEDEVICE"))))
      assert.strictEqual(e._tag, "JwtFetchFailed")
      if (e._tag !== "JwtFetchFailed") return
      assert.strictEqual(e.reason, "BadResponse")
      assert.strictEqual(e.endpoint, `${Testing.TestHomeserver.defaultAuthServiceUrl}/sfu/get`)
      assert.include(String(e.cause), "@mallory:example.org:ALICEDEVICE")
      assert.include(String(e.cause), `${alice}:${aliceDevice}`)
      // and the message a user sees says so
      assert.include(e.message, "@mallory:example.org:ALICEDEVICE")
      assert.notInclude(yield* ops, "homeserver:sendState")
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("sticky dialect: the hashed identity matches, and no warning", () =>
    Effect.gen(function*() {
      const [[identity, memberId], logged] = yield* warnings(
        Effect.scoped(
          Effect.flatMap(Call.join(roomId, { dialect: "sticky" }), (call) =>
            Effect.map(call.membership, (own) => [call.connection.identity, own.memberId] as const))
        )
      )
      assert.strictEqual(identity, yield* LiveKitNaming.liveKitIdentityHashed(alice, aliceDevice, memberId))
      assert.isFalse(logged.some((l) => "expectedIdentity" in l.annotations))
    }).pipe(Effect.provide(sticky)))

  it.effect("sticky dialect: another identity (an older service's recipe) is a warning naming both; the join goes on", () =>
    Effect.gen(function*() {
      const [{ memberId }, logged] = yield* warnings(
        Effect.scoped(Effect.flatMap(Call.join(roomId, { dialect: "sticky" }), (call) => call.membership)).pipe(
          Effect.provide(mintingIdentity("member-id-raw"))
        )
      )
      const expected = yield* LiveKitNaming.liveKitIdentityHashed(alice, aliceDevice, memberId)
      const mismatch = logged.filter((l) => "expectedIdentity" in l.annotations)
      assert.strictEqual(mismatch.length, 1)
      assert.deepInclude(mismatch[0]!.annotations, { identity: "member-id-raw", expectedIdentity: expected })
      assert.include(yield* ops, "sfu:connect")
    }).pipe(Effect.provide(sticky)))
})
