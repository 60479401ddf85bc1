import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Scope, Stream, TestClock, TestServices } from "effect"
import * as Call from "../src/Call.ts"
import * as Testing from "../src/testing/index.ts"
import { aliceKey, assertBefore, assertNothingLeft, awaitLog, entries, ops, roomId, TestHomeserver, TestLiveKit } from "./utils.ts"

describe("join", () => {
  it.scoped("happy path: OpenID ∥ discovery, JWT ∥ delayed leave, membership ∥ connect; leave disconnects first", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const sfu = yield* TestLiveKit.TestLiveKit
      const scope = yield* Scope.make()
      const call = yield* Call.join(roomId, { callIntent: "audio" }).pipe(Scope.extend(scope))
      assert.strictEqual(call.connection.identity, "@alice:example.org:ALICEDEVICE")
      assert.strictEqual(call.authServiceUrl, "https://rtc.example.org/livekit/jwt")
      const own = yield* call.membership
      assert.strictEqual(own.stateKey, aliceKey)
      assert.strictEqual(own.delayMs, 8000)
      assert.isTrue(Option.isSome(own.delayId))
      const [membership] = yield* hs.activeMemberships(roomId)
      assert.strictEqual(membership?.content["m.call.intent"], "audio")
      assert.strictEqual(membership?.content["expires"], 14_400_000)
      assert.deepStrictEqual((yield* sfu.participants()).map((p) => p.identity), ["@alice:example.org:ALICEDEVICE"])
      const log = yield* ops
      // the facts read in parallel with the OpenID request
      for (const op of ["transports", "serverSupport", "roomVersion"]) assertBefore(log, `homeserver:${op}`, "auth:sfuGet")
      // the critical path: OpenID → JWT → SFU connect; the delayed leave is scheduled beside the JWT fetch
      assert.deepStrictEqual(
        log.filter((o) => !/transports|serverSupport|roomVersion|scheduleDelayed|delayed.restart/.test(o)).slice(0, 3),
        ["homeserver:openid", "auth:sfuGet", "sfu:connect"]
      )
      // no separate token check: the OpenID request is it
      assert.notInclude(log, "homeserver:whoami")
      assertBefore(log, "homeserver:roomVersion", "homeserver:scheduleDelayed")
      assertBefore(log, "homeserver:scheduleDelayed", "homeserver:sendState")
      // the membership is only advertised once the JWT is in hand (as Element Call does)
      assertBefore(log, "auth:sfuGet", "homeserver:sendState")

      const members = yield* call.currentMembers
      assert.deepStrictEqual(members.map((m) => m.rtcBackendIdentity), ["@alice:example.org:ALICEDEVICE"])

      yield* Scope.close(scope, Exit.void)
      const after = yield* ops
      assertBefore(after, "sfu:disconnect", "homeserver:delayed.send")
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  const fails = (layer: Testing.TestLayerOptions, setup: Effect.Effect<void, never, Testing.TestServices>, options?: Call.JoinOptions) =>
    Effect.gen(function*() {
      yield* setup
      const error = yield* Effect.flip(Effect.scoped(Call.join(roomId, options)))
      yield* assertNothingLeft
      return error
    }).pipe(Effect.provide(Testing.layer(layer)))

  it.scoped("the connection's change streams end with the call, as its own streams do", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const call = yield* Call.join(roomId).pipe(Scope.extend(scope))
      const readers = yield* Effect.all([
        Effect.fork(Stream.runDrain(call.connection.connectionStates)),
        Effect.fork(Stream.runDrain(call.connection.remoteParticipantsChanges)),
        Effect.fork(Stream.runDrain(call.connection.disconnectReasons)),
        Effect.fork(Stream.runDrain(call.members))
      ])
      yield* Scope.close(scope, Exit.void)
      for (const reader of readers) {
        const done = yield* TestServices.provideLive(Effect.timeout(Fiber.await(reader), "2 seconds")).pipe(Effect.option)
        assert.isTrue(Option.isSome(done), "a reader of the call's streams still waits after the call ended")
      }
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("NotAuthenticated NoSession", () =>
    Effect.gen(function*() {
      const e = yield* fails({ homeserver: { session: null } }, Effect.void)
      assert.strictEqual(e._tag, "NotAuthenticated")
      assert.strictEqual(e._tag === "NotAuthenticated" && e.reason, "NoSession")
    }))

  it.effect("NotAuthenticated TokenRejected keeps the errcode", () =>
    Effect.gen(function*() {
      const e = yield* fails(
        {},
        Effect.flatMap(TestHomeserver.TestHomeserver, (hs) =>
          hs.injectFault("openid", Testing.TestCallLog.fail({ status: 401, errcode: "M_UNKNOWN_TOKEN" })))
      )
      assert.strictEqual(e._tag, "NotAuthenticated")
      if (e._tag !== "NotAuthenticated") return
      assert.strictEqual(e.reason, "TokenRejected")
      assert.strictEqual(e.errcode, "M_UNKNOWN_TOKEN")
      assert.strictEqual(e.status, 401)
    }))

  it.effect("JwtFetchFailed NoAuthService when no transports, no .well-known, nothing configured", () =>
    Effect.gen(function*() {
      const e = yield* fails({ homeserver: { transports: null } }, Effect.void)
      assert.strictEqual(e._tag === "JwtFetchFailed" && e.reason, "NoAuthService")
    }))

  it.effect("discovery falls back to .well-known, then to the configured URL", () =>
    Effect.gen(function*() {
      const url = "https://rtc.example.org/livekit/jwt"
      const viaWellKnown = yield* Effect.scoped(Call.join(roomId)).pipe(
        Effect.provide(Testing.layer({
          homeserver: {
            transports: null,
            wellKnown: { "org.matrix.msc4143.rtc_foci": [{ type: "livekit", livekit_service_url: url }] }
          }
        }))
      )
      assert.strictEqual(viaWellKnown.authServiceUrl, url)
      const viaConfig = yield* Effect.scoped(Call.join(roomId, { authServiceUrl: url })).pipe(
        Effect.provide(Testing.layer({ homeserver: { transports: [] } }))
      )
      assert.strictEqual(viaConfig.authServiceUrl, url)
    }))

  it.effect("JwtFetchFailed OpenIdFailed keeps status and errcode", () =>
    Effect.gen(function*() {
      const e = yield* fails(
        {},
        Effect.flatMap(TestHomeserver.TestHomeserver, (hs) =>
          hs.injectFault("openid", Testing.TestCallLog.fail({ status: 403, errcode: "M_FORBIDDEN" })))
      )
      assert.strictEqual(e._tag, "JwtFetchFailed")
      if (e._tag !== "JwtFetchFailed") return
      assert.strictEqual(e.reason, "OpenIdFailed")
      assert.strictEqual(e.errcode, "M_FORBIDDEN")
    }))

  it.effect("JwtFetchFailed Rejected from the auth service; Unreachable for an unknown service", () =>
    Effect.gen(function*() {
      const e = yield* fails(
        {},
        Effect.flatMap(Testing.TestAuthService.TestAuthService, (a) =>
          a.injectFault("sfuGet", Testing.TestCallLog.fail({ status: 500, errcode: "M_UNKNOWN" })))
      )
      assert.strictEqual(e._tag === "JwtFetchFailed" && e.reason, "Rejected")
      assert.strictEqual(e._tag === "JwtFetchFailed" && e.status, 500)
      const u = yield* fails({
        homeserver: { transports: [{ type: "livekit", livekit_service_url: "https://elsewhere.example.org" }] }
      }, Effect.void)
      assert.strictEqual(u._tag === "JwtFetchFailed" && u.reason, "Unreachable")
    }))

  it.effect("MembershipFailed Forbidden below the call.member power level; the SFU connection is cleaned up", () =>
    Effect.gen(function*() {
      const e = yield* fails({ homeserver: { rooms: [{ roomId, callMemberPowerLevel: 50 }] } }, Effect.void)
      assert.strictEqual(e._tag, "MembershipFailed")
      if (e._tag !== "MembershipFailed") return
      assert.strictEqual(e.reason, "Forbidden")
      assert.strictEqual(e.errcode, "M_FORBIDDEN")
      assert.strictEqual(e.status, 403)
    }))

  it.effect("ConnectFailed Rejected; no membership left behind", () =>
    Effect.gen(function*() {
      const e = yield* fails(
        {},
        Effect.flatMap(TestLiveKit.TestLiveKit, (sfu) => sfu.injectFault("connect", Testing.TestCallLog.fail({ status: 401 })))
      )
      assert.strictEqual(e._tag === "ConnectFailed" && e.reason, "Rejected")
    }))

  it.effect("ConnectFailed Timeout after connectTimeoutMs; no membership left behind", () =>
    Effect.gen(function*() {
      const sfu = yield* TestLiveKit.TestLiveKit
      yield* sfu.injectFault("connect", Testing.TestCallLog.hang)
      const fiber = yield* Effect.fork(Effect.scoped(Call.join(roomId, { connectTimeoutMs: 4000 })))
      yield* TestClock.adjust(3999)
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      yield* TestClock.adjust(1)
      const e = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(e._tag === "ConnectFailed" && e.reason, "Timeout")
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("server without MSC4140: no delayed leave, no heartbeat, leave puts {}", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        const call = yield* Call.join(roomId)
        assert.isTrue(Option.isNone((yield* call.membership).delayId))
        yield* TestClock.adjust(20_000)
      }))
      const log = yield* ops
      assert.isFalse(log.some((o) => o.startsWith("homeserver:delayed")))
      assertBefore(log, "sfu:disconnect", "homeserver:sendState")
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer({ homeserver: { delayedEvents: false } }))))

  it.effect("sticky dialect: /get_token, hashed identity, sticky membership and leave", () =>
    Effect.gen(function*() {
      const call = yield* Effect.scoped(Effect.gen(function*() {
        const call = yield* Call.join(roomId, { dialect: "sticky" })
        const own = yield* call.membership
        assert.strictEqual(own.dialect, "sticky")
        assert.strictEqual(call.connection.identity.length, 43)
        const members = yield* call.currentMembers
        assert.deepStrictEqual(members.map((m) => m.dialect), ["sticky"])
        return call
      }))
      const log = yield* ops
      assert.isTrue(log.includes("auth:getToken"))
      assertBefore(log, "sfu:disconnect", "homeserver:delayed.send")
      assert.isTrue(call.connection.roomName.length === 43)
    }).pipe(Effect.provide(Testing.layer({ homeserver: { stickyEvents: true } }))))

  it.effect("429 on the membership send at join waits retry_after, then joins", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("sendState", Testing.TestCallLog.fail({ status: 429, errcode: "M_LIMIT_EXCEEDED", retryAfterMs: 1500 }))
      const fiber = yield* Effect.fork(Effect.scoped(Effect.zipRight(Call.join(roomId), Effect.never)))
      yield* awaitLog((e) => e.op === "sendState")
      yield* TestClock.adjust(1499)
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 0)
      yield* TestClock.adjust(1)
      yield* awaitLog((e) => e.op === "sendState" && e.detail?.startsWith("join") === true)
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      yield* Fiber.interrupt(fiber)
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("network errors on the membership send: bounded retries, then MembershipFailed Unreachable", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("sendState", Testing.TestCallLog.fail({}), 100)
      const fiber = yield* Effect.fork(Effect.scoped(Call.join(roomId)))
      yield* awaitLog((e) => e.op === "sendState")
      yield* TestClock.adjust(60_000)
      const e = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(e._tag === "MembershipFailed" && e.reason, "Unreachable")
      // 1 try + 5 retries (backoff 0.5, 1, 2, 4, 5 s)
      const log = yield* entries
      const tries = log.filter((x) => x.op === "sendState" && x.detail === "fault network")
      assert.deepStrictEqual(tries.map((x) => x.at), [0, 500, 1500, 3500, 7500, 12500])
      // The retrying send does not hold the heartbeat back: the delayed leave is restarted meanwhile and never
      // fires mid-join; the cleanup sends it.
      assert.deepStrictEqual(log.filter((x) => x.op === "delayed.restart").map((x) => x.at), [5000, 10000])
      assert.isFalse(log.some((x) => x.op === "delayed.fire"))
      assert.isTrue(log.some((x) => x.op === "delayed.send" && x.at === 12500))
      yield* hs.clearFaults
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))
})
