import { assert, describe, it } from "@effect/vitest"
import { type Duration, Effect, Exit, Scope, TestClock } from "effect"
import * as Call from "../src/Call.ts"
import type { RoomId } from "../src/Ids.ts"
import * as Testing from "../src/testing/index.ts"
import { assertBefore, assertNothingLeft, ops, roomId, TestHomeserver, TestLiveKit } from "./utils.ts"

/** What the join sent after `prepare` returned. */
const opsSince = (n: number) => Effect.map(ops, (log) => log.slice(n))

const preparedSteps = ["homeserver:openid", "homeserver:transports", "auth:sfuGet", "homeserver:serverSupport", "homeserver:roomVersion"]

describe("prepare", () => {
  it.scoped("publishes nothing; the join it feeds starts at the delayed leave, the membership and the SFU connect", () =>
    Effect.gen(function*() {
      const prepared = yield* Call.prepare(roomId)
      const afterPrepare = yield* ops
      for (const op of preparedSteps) assert.include(afterPrepare, op)
      assert.notInclude(afterPrepare, "homeserver:scheduleDelayed")
      assert.notInclude(afterPrepare, "homeserver:sendState")
      assert.notInclude(afterPrepare, "sfu:connect")

      // a lobby minute later
      yield* TestClock.adjust("1 minute")
      const scope = yield* Scope.make()
      const call = yield* Call.join(roomId, { prepared }).pipe(Scope.extend(scope))
      const joinOps = yield* opsSince(afterPrepare.length)
      for (const op of preparedSteps) assert.notInclude(joinOps, op)
      assertBefore(joinOps, "homeserver:scheduleDelayed", "homeserver:sendState")
      assert.include(joinOps, "sfu:connect")
      assert.strictEqual(call.connection.identity, prepared.grant.claims.identity)
      assert.strictEqual(call.authServiceUrl, prepared.authServiceUrl)
      assert.deepStrictEqual((yield* call.currentMembers).map((m) => m.rtcBackendIdentity), [prepared.grant.claims.identity])

      yield* Scope.close(scope, Exit.void)
      assertBefore(yield* ops, "sfu:disconnect", "homeserver:delayed.send")
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  const joinsFromTheStart = (change: (p: Call.PreparedJoin) => Call.PreparedJoin, wait: Duration.DurationInput) =>
    Effect.gen(function*() {
      const prepared = change(yield* Call.prepare(roomId))
      yield* TestClock.adjust(wait)
      const n = (yield* ops).length
      const call = yield* Call.join(roomId, { prepared })
      const joinOps = yield* opsSince(n)
      for (const op of ["homeserver:openid", "auth:sfuGet", "sfu:connect", "homeserver:sendState"]) assert.include(joinOps, op)
      assertBefore(joinOps, "auth:sfuGet", "homeserver:sendState")
      assert.strictEqual(call.connection.identity, "@alice:example.org:ALICEDEVICE")
    }).pipe(Effect.scoped, Effect.zipRight(assertNothingLeft), Effect.provide(Testing.layer()))

  it.effect("older than 4 minutes (the SFU may have closed the room): not used", () =>
    joinsFromTheStart((p) => p, "241 seconds"))

  it.effect("for another room: not used", () =>
    joinsFromTheStart((p) => ({ ...p, roomId: "!elsewhere:example.org" as RoomId }), "0 millis"))

  it.effect("for another device: not used", () =>
    joinsFromTheStart((p) => ({ ...p, session: { ...p.session, deviceId: p.session.deviceId + "X" as typeof p.session.deviceId } }), "0 millis"))

  it.effect("its JWT about to expire: not used", () =>
    joinsFromTheStart(
      (p) => ({ ...p, grant: { ...p.grant, claims: { ...p.grant.claims, expiresAt: p.preparedAt + 10_000 } } }),
      "0 millis"
    ))

  it.scoped("the SFU refuses the prepared grant: one fresh JWT, then connected", () =>
    Effect.gen(function*() {
      const prepared = yield* Call.prepare(roomId)
      const sfu = yield* TestLiveKit.TestLiveKit
      yield* sfu.injectFault("connect", Testing.TestCallLog.fail({ status: 404, error: "requested room does not exist" }), 1)
      const n = (yield* ops).length
      const scope = yield* Scope.make()
      const call = yield* Call.join(roomId, { prepared }).pipe(Scope.extend(scope))
      const joinOps = yield* opsSince(n)
      assert.strictEqual(joinOps.filter((o) => o === "sfu:connect").length, 3) // refused (+ its detail line), then the retry
      assertBefore(joinOps, "auth:sfuGet", "sfu:connected")
      assert.include(joinOps, "homeserver:openid")
      assert.deepStrictEqual((yield* sfu.participants()).map((p) => p.identity), [call.connection.identity])
      yield* Scope.close(scope, Exit.void)
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("refused again with the fresh JWT: ConnectFailed, nothing left", () =>
    Effect.gen(function*() {
      const prepared = yield* Call.prepare(roomId)
      const sfu = yield* TestLiveKit.TestLiveKit
      yield* sfu.injectFault("connect", Testing.TestCallLog.fail({ status: 404 }), 2)
      const e = yield* Effect.flip(Effect.scoped(Call.join(roomId, { prepared })))
      assert.strictEqual(e._tag === "ConnectFailed" && e.reason, "RoomNotFound")
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("an SFU that cannot be reached is not retried with a new JWT", () =>
    Effect.gen(function*() {
      const prepared = yield* Call.prepare(roomId)
      const sfu = yield* TestLiveKit.TestLiveKit
      yield* sfu.injectFault("connect", Testing.TestCallLog.fail({}), 1)
      const n = (yield* ops).length
      const e = yield* Effect.flip(Effect.scoped(Call.join(roomId, { prepared })))
      assert.strictEqual(e._tag === "ConnectFailed" && e.reason, "Transport")
      assert.notInclude(yield* opsSince(n), "auth:sfuGet")
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("the access token died after prepare: NotAuthenticated at the first homeserver write, nothing left", () =>
    Effect.gen(function*() {
      const prepared = yield* Call.prepare(roomId)
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("scheduleDelayed", Testing.TestCallLog.fail({ status: 401, errcode: "M_UNKNOWN_TOKEN" }))
      const e = yield* Effect.flip(Effect.scoped(Call.join(roomId, { prepared })))
      assert.strictEqual(e._tag, "NotAuthenticated")
      assert.strictEqual(e._tag === "NotAuthenticated" && e.reason, "TokenRejected")
      assert.notInclude(yield* ops, "homeserver:sendState")
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("a membership write refused for a dead token is NotAuthenticated, not MembershipFailed", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("sendState", Testing.TestCallLog.fail({ status: 401, errcode: "M_UNKNOWN_TOKEN" }))
      const e = yield* Effect.flip(Effect.scoped(Call.join(roomId)))
      assert.strictEqual(e._tag === "NotAuthenticated" && e.reason, "TokenRejected")
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("fails typed like join, with nothing published", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Call.prepare(roomId))
      assert.strictEqual(e._tag === "NotAuthenticated" && e.reason, "NoSession")
      assert.deepStrictEqual(yield* ops, [])
    }).pipe(Effect.provide(Testing.layer({ homeserver: { session: null } }))))
})
