import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option, Scope, TestClock } from "effect"
import * as Call from "../src/Call.ts"
import * as CallService from "../src/CallService.ts"
import * as JoinCache from "../src/JoinCache.ts"
import * as Testing from "../src/testing/index.ts"
import { assertNothingLeft, ops, roomId, settle, TestAuthService, TestHomeserver } from "./utils.ts"

const { fail } = Testing.TestCallLog
const withCache = (options: Testing.TestLayerOptions = {}, cache: JoinCache.JoinCacheOptions = {}) =>
  Layer.merge(Testing.layer(options), JoinCache.layer(cache))

/** Joins, leaves, and returns the ops the join made (until it returned). */
const joinAndLeave = (options?: Call.JoinOptions) =>
  Effect.gen(function*() {
    const before = (yield* ops).length
    const scope = yield* Scope.make()
    yield* Call.join(roomId, options).pipe(Scope.extend(scope))
    const during = (yield* ops).slice(before)
    yield* Scope.close(scope, Exit.void)
    return during
  })

const asksHomeserver = (log: ReadonlyArray<string>) =>
  log.filter((o) => /homeserver:(openid|transports|wellKnown|serverSupport|whoami)/.test(o))

describe("JoinCache", () => {
  it.effect("a second join asks the homeserver for nothing before the JWT: same OpenID token, service, support", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const first = yield* joinAndLeave()
      assert.deepStrictEqual(asksHomeserver(first).sort(), ["homeserver:openid", "homeserver:serverSupport", "homeserver:transports"])
      const second = yield* joinAndLeave()
      assert.deepStrictEqual(asksHomeserver(second), [])
      // its first requests are the JWT and the delayed leave, and it still publishes and connects
      // (the room version is local in a synced client; the test homeserver logs it)
      assert.deepStrictEqual(second.filter((o) => o !== "homeserver:roomVersion").slice(0, 2).sort(), [
        "auth:sfuGet",
        "homeserver:scheduleDelayed"
      ])
      assert.include(second, "homeserver:sendState")
      assert.include(second, "sfu:connect")
      // the auth service verified the one token the homeserver issued, twice
      assert.strictEqual((yield* hs.issuedOpenIdTokens).length, 1)
      assert.strictEqual((yield* ops).filter((o) => o === "auth:sfuGet").length, 2)
      yield* assertNothingLeft
    }).pipe(Effect.provide(withCache())))

  it.effect("without a JoinCache every join asks again", () =>
    Effect.gen(function*() {
      yield* joinAndLeave()
      const second = yield* joinAndLeave()
      assert.deepStrictEqual(asksHomeserver(second).sort(), ["homeserver:openid", "homeserver:serverSupport", "homeserver:transports"])
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("facts expire after factsTtlMs; discovery is then asked again, beside a new OpenID token", () =>
    Effect.gen(function*() {
      yield* joinAndLeave()
      yield* TestClock.adjust(59_000)
      assert.deepStrictEqual(asksHomeserver(yield* joinAndLeave()), [])
      yield* TestClock.adjust(1_001)
      // the token is kept per auth service, so until discovery answers there is no token to look up
      assert.deepStrictEqual(asksHomeserver(yield* joinAndLeave()).sort(), [
        "homeserver:openid",
        "homeserver:serverSupport",
        "homeserver:transports"
      ])
      yield* assertNothingLeft
    }).pipe(Effect.provide(withCache({}, { factsTtlMs: 60_000 }))))

  it.effect("the OpenID token is reused until openIdMarginMs before its expires_in (3600 s)", () =>
    Effect.gen(function*() {
      yield* joinAndLeave()
      yield* TestClock.adjust(3_000_000 - 1_000)
      assert.notInclude(yield* joinAndLeave(), "homeserver:openid")
      yield* TestClock.adjust(1_001)
      assert.include(yield* joinAndLeave(), "homeserver:openid")
      yield* assertNothingLeft
    }).pipe(Effect.provide(withCache({}, { factsTtlMs: 7_200_000, openIdMarginMs: 600_000 }))))

  it.effect("a cached OpenID token the auth service refuses (401) is replaced once, and the join goes on", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const auth = yield* TestAuthService.TestAuthService
      yield* joinAndLeave()
      yield* auth.injectFault("sfuGet", fail({ status: 401, errcode: "M_UNAUTHORIZED" }))
      const second = yield* joinAndLeave()
      assert.deepStrictEqual(second.filter((o) => /openid|sfuGet|sfu:connect$/.test(o)), [
        "auth:sfuGet",
        "homeserver:openid",
        "auth:sfuGet",
        "sfu:connect"
      ])
      assert.strictEqual((yield* hs.issuedOpenIdTokens).length, 2)
      // the new token is the one kept
      assert.notInclude(yield* joinAndLeave(), "homeserver:openid")
      yield* assertNothingLeft
    }).pipe(Effect.provide(withCache())))

  it.effect("a fresh OpenID token the auth service refuses is not retried", () =>
    Effect.gen(function*() {
      const auth = yield* TestAuthService.TestAuthService
      yield* auth.injectFault("sfuGet", fail({ status: 401, errcode: "M_UNAUTHORIZED" }))
      const error = yield* Effect.flip(Effect.scoped(Call.join(roomId)))
      assert.strictEqual(error._tag, "JwtFetchFailed")
      assert.strictEqual(error._tag === "JwtFetchFailed" && error.status, 401)
      assert.strictEqual((yield* ops).filter((o) => o === "auth:sfuGet").length, 1)
      yield* assertNothingLeft
    }).pipe(Effect.provide(withCache())))

  it.effect("a failed read is not kept: the next join asks again", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("serverSupport", fail({ status: 502 }))
      yield* joinAndLeave()
      assert.include(yield* joinAndLeave(), "homeserver:serverSupport")
      assert.notInclude(yield* joinAndLeave(), "homeserver:serverSupport")
    }).pipe(Effect.provide(withCache())))

  it.effect("tokens are kept per auth service: another service gets a token of its own, and does not replace ours", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const auth = yield* TestAuthService.TestAuthService
      yield* joinAndLeave({ authServiceUrl: auth.url })
      const other = yield* Effect.flip(Effect.scoped(Call.join(roomId, { authServiceUrl: "https://other.example.org/jwt" })))
      assert.strictEqual(other._tag, "JwtFetchFailed")
      assert.strictEqual((yield* hs.issuedOpenIdTokens).length, 2)
      assert.notInclude(yield* joinAndLeave({ authServiceUrl: auth.url }), "homeserver:openid")
      yield* assertNothingLeft
    }).pipe(Effect.provide(withCache({ homeserver: { transports: null, wellKnown: null } }))))

  it.effect("two reachable auth services: each only ever sees the token issued for it, and reuses its own", () =>
    Effect.gen(function*() {
      const auth = yield* TestAuthService.TestAuthService
      const second = "https://second.example.org/jwt"
      for (const url of [auth.url, second, auth.url, second]) yield* joinAndLeave({ authServiceUrl: url })
      const received = yield* auth.received
      assert.deepStrictEqual(received.map((r) => r.url), [auth.url, second, auth.url, second])
      const tokenOf = (url: string) => [...new Set(received.filter((r) => r.url === url).map((r) => r.openIdToken))]
      assert.lengthOf(tokenOf(auth.url), 1)
      assert.lengthOf(tokenOf(second), 1)
      assert.notStrictEqual(tokenOf(auth.url)[0], tokenOf(second)[0])
      yield* assertNothingLeft
    }).pipe(
      Effect.provide(withCache({
        homeserver: { transports: null, wellKnown: null },
        authService: { alsoAt: ["https://second.example.org/jwt"] }
      }))
    ))

  it.effect("a dead access token on a warm join is NotAuthenticated(TokenRejected) from the delayed leave; nothing left", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* joinAndLeave()
      yield* hs.injectFault("scheduleDelayed", fail({ status: 401, errcode: "M_UNKNOWN_TOKEN" }))
      const error = yield* Effect.flip(Effect.scoped(Call.join(roomId)))
      assert.strictEqual(error._tag, "NotAuthenticated")
      assert.strictEqual(error._tag === "NotAuthenticated" && error.reason, "TokenRejected")
      const log = yield* ops
      assert.strictEqual(log.filter((o) => o === "sfu:connect").length, 1)
      yield* assertNothingLeft
    }).pipe(Effect.provide(withCache())))

  it.effect("CallService serves its joins from a JoinCache provided beside it", () =>
    Effect.gen(function*() {
      const calls = yield* CallService.CallService
      yield* calls.connect(roomId)
      yield* calls.disconnect
      const before = (yield* ops).length
      yield* calls.connect(roomId)
      assert.deepStrictEqual(asksHomeserver((yield* ops).slice(before)), [])
      yield* calls.disconnect
      assert.isTrue(Option.isNone(yield* calls.activeCall))
      yield* assertNothingLeft
    }).pipe(Effect.provide(CallService.layer.pipe(Layer.provideMerge(withCache())))))

  it.effect("a service that a fallback found and that could not be reached is not kept: the next join discovers again", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      // the transports endpoint fails once; .well-known has nothing; the configured fallback is not there
      yield* hs.injectFault("transports", fail({ status: 502 }), 1)
      const options = { authServiceUrl: "https://gone.example.org/jwt" }
      const first = yield* Effect.flip(Effect.scoped(Call.join(roomId, options)))
      assert.strictEqual(first._tag === "JwtFetchFailed" && first.reason, "Unreachable")
      const second = yield* joinAndLeave(options)
      assert.include(second, "homeserver:transports")
      assert.include(second, "sfu:connect")
      yield* assertNothingLeft
    }).pipe(Effect.provide(withCache({ homeserver: { wellKnown: null } }))))

  it.effect("a kept service that stops answering is forgotten: the next join discovers again", () =>
    Effect.gen(function*() {
      const auth = yield* TestAuthService.TestAuthService
      yield* joinAndLeave()
      yield* auth.injectFault("sfuGet", fail())
      const error = yield* Effect.flip(Effect.scoped(Call.join(roomId)))
      assert.strictEqual(error._tag === "JwtFetchFailed" && error.reason, "Unreachable")
      const third = yield* joinAndLeave()
      assert.include(third, "homeserver:transports")
      assert.include(third, "sfu:connect")
      yield* assertNothingLeft
    }).pipe(Effect.provide(withCache())))

  it.effect("a new token the auth service refused is not kept", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const auth = yield* TestAuthService.TestAuthService
      yield* auth.injectFault("sfuGet", fail({ status: 401, errcode: "M_UNAUTHORIZED" }))
      yield* Effect.flip(Effect.scoped(Call.join(roomId)))
      assert.include(yield* joinAndLeave(), "homeserver:openid")
      assert.strictEqual((yield* hs.issuedOpenIdTokens).length, 2)
    }).pipe(Effect.provide(withCache())))

  it.effect("a kept token's expiry counts from when the homeserver issued it, not from when it was kept", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      // issued at 0 and good for 3600 s − 3595 s margin = 5 s; discovery takes 8 s (within its request timeout),
      // so it is kept at 8 s
      yield* hs.injectFault("transports", Testing.TestCallLog.delay(8_000), 1)
      const first = yield* Effect.fork(joinAndLeave())
      yield* settle
      yield* TestClock.adjust(8_000)
      yield* Fiber.join(first)
      assert.include(yield* joinAndLeave(), "homeserver:openid")
    }).pipe(Effect.provide(withCache({}, { openIdMarginMs: 3_595_000 }))))

  it.effect("with a kept token: a prepare asks /whoami, and finds a dead access token", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* joinAndLeave()
      yield* hs.injectFault("whoami", fail({ status: 401, errcode: "M_UNKNOWN_TOKEN" }))
      const error = yield* Effect.flip(Call.prepare(roomId))
      assert.strictEqual(error._tag === "NotAuthenticated" && error.reason, "TokenRejected")
    }).pipe(Effect.provide(withCache())))

  it.effect("with a kept token and no delayed leave (no MSC4140), a dead access token fails the join before the SFU", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* joinAndLeave()
      const before = (yield* ops).length
      yield* hs.injectFault("whoami", fail({ status: 401, errcode: "M_UNKNOWN_TOKEN" }))
      const error = yield* Effect.flip(Effect.scoped(Call.join(roomId)))
      assert.strictEqual(error._tag === "NotAuthenticated" && error.reason, "TokenRejected")
      assert.notInclude((yield* ops).slice(before), "sfu:connect")
      yield* assertNothingLeft
    }).pipe(Effect.provide(withCache({ homeserver: { delayedEvents: false } }))))

  it.effect("first join with a dead token and no auth service anywhere: NotAuthenticated, not NoAuthService", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("openid", fail({ status: 401, errcode: "M_UNKNOWN_TOKEN" }))
      const error = yield* Effect.flip(Effect.scoped(Call.join(roomId)))
      assert.strictEqual(error._tag === "NotAuthenticated" && error.reason, "TokenRejected")
    }).pipe(Effect.provide(withCache({ homeserver: { transports: null, wellKnown: null } }))))
})
