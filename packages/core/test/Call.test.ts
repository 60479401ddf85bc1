import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option, Scope } from "effect"
import * as Call from "../src/Call.ts"
import * as Testing from "../src/testing/index.ts"
import { aliceKey, assertBefore, assertNothingLeft, ops, roomId, TestHomeserver, TestLiveKit } from "./utils.ts"

describe("join", () => {
  it.scoped("happy path: whoami, OpenID, JWT, delayed leave + membership ∥ connect; leave disconnects first", () =>
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
      assert.deepStrictEqual(log.slice(0, 4), ["homeserver:whoami", "homeserver:openid", "auth:sfuGet", "sfu:connect"])
      assertBefore(log, "homeserver:scheduleDelayed", "homeserver:sendState")
      assertBefore(log, "auth:sfuGet", "homeserver:scheduleDelayed")

      const members = yield* call.currentMembers
      assert.deepStrictEqual(members.map((m) => m.rtcBackendIdentity), ["@alice:example.org:ALICEDEVICE"])

      yield* Scope.close(scope, Exit.void)
      const after = yield* ops
      assertBefore(after, "sfu:disconnect", "homeserver:delayed.send")
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))
})
