/** Join details: parallel steps, spans, state keys, SFU drops, leave under interruption. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Scope, Stream, TestClock, Tracer } from "effect"
import * as Call from "../src/Call.ts"
import type { ConnectOptions } from "../src/LiveKit.ts"
import { LiveKit } from "../src/LiveKit.ts"
import * as Testing from "../src/testing/index.ts"
import { assertNothingLeft, awaitLog, entries, ops, roomId, settle, TestHomeserver, TestLiveKit } from "./utils.ts"

const { hang } = Testing.TestCallLog

describe("join details", () => {
  it.effect("the OpenID token and discovery are requested in parallel", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("openid", hang)
      const fiber = yield* Effect.fork(Effect.scoped(Call.join(roomId)))
      yield* awaitLog((e) => e.op === "openid")
      yield* awaitLog((e) => e.op === "transports")
      yield* Fiber.interrupt(fiber)
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer({ homeserver: { transports: [] } }))))

  it.effect("spans on each step", () => {
    const names: Array<string> = []
    return Effect.gen(function*() {
      const native = yield* Effect.tracer
      const tracer = Tracer.make({
        span: (name, ...rest) => {
          names.push(name)
          return native.span(name, ...rest)
        },
        context: (f, fiber) => native.context(f, fiber)
      })
      yield* Effect.scoped(Call.join(roomId)).pipe(Effect.withTracer(tracer))
      for (
        const span of [
          "MatrixRTC.join",
          "MatrixRTC.openId",
          "MatrixRTC.discover",
          "MatrixRTC.jwt",
          "MatrixRTC.membership",
          "MatrixRTC.connect",
          "MatrixRTC.leave"
        ]
      ) assert.include(names, span)
    }).pipe(Effect.provide(Testing.layer()))
  })

  it.effect("MSC3757 room versions take the state key without the leading underscore", () =>
    Effect.gen(function*() {
      const own = yield* Effect.scoped(Effect.flatMap(Call.join(roomId), (c) => c.membership))
      assert.strictEqual(own.stateKey, "@alice:example.org_ALICEDEVICE_m.call")
    }).pipe(Effect.provide(Testing.layer({ homeserver: { rooms: [{ roomId, version: "org.matrix.msc3757.11" }] } }))))

  it.scoped("remote participants are observable; an SFU drop ends the membership and the call", () =>
    Effect.gen(function*() {
      const sfu = yield* TestLiveKit.TestLiveKit
      const hs = yield* TestHomeserver.TestHomeserver
      const scope = yield* Scope.make()
      const call = yield* Call.join(roomId).pipe(Scope.extend(scope))
      const room = call.connection.roomName
      yield* sfu.addRemoteParticipant(room, "@carol:example.org:CAROL", ["audio"])
      const remotes = yield* call.connection.remoteParticipantsChanges.pipe(
        Stream.takeUntil((ps) => ps.length === 1),
        Stream.runLast
      )
      assert.deepStrictEqual(Option.getOrThrow(remotes).map((p) => p.identity), ["@carol:example.org:CAROL"])
      const reasons = yield* Effect.fork(Stream.runHead(call.connection.disconnectReasons))
      yield* settle
      yield* sfu.dropConnection(call.connection.identity, "ServerShutdown")
      assert.strictEqual(yield* call.connection.connectionState, "disconnected")
      assert.deepStrictEqual(yield* Fiber.join(reasons), Option.some("ServerShutdown" as const))
      assert.strictEqual(yield* call.ended, "SfuDisconnected")
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 0)
      yield* Scope.close(scope, Exit.void)
      yield* assertNothingLeft
      // the SFU had already dropped us: no disconnect of ours, one membership end
      const log = yield* ops
      assert.deepStrictEqual(log.filter((o) => o.startsWith("sfu:d")), ["sfu:drop"])
      assert.strictEqual(log.filter((o) => o === "homeserver:delayed.send").length, 1)
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("joined inside an uninterruptible acquire, the call still stops its heartbeat on leave", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Effect.acquireRelease(Call.join(roomId), () => Effect.void))
      const before = (yield* ops).length
      yield* TestClock.adjust(30_000)
      assert.strictEqual((yield* ops).length, before)
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("members: other people's memberships, oldest first, expired ones dropped when they expire", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* TestClock.adjust(1000)
      const call = yield* Call.join(roomId)
      const bob = {
        application: "m.call",
        call_id: "",
        scope: "m.room",
        device_id: "BOBDEVICE",
        expires: 10_000,
        created_ts: 500,
        focus_active: { type: "livekit", focus_selection: "multi_sfu" },
        foci_preferred: [{ type: "livekit", livekit_service_url: "https://rtc.example.org/livekit/jwt" }]
      }
      yield* hs.setState(roomId, "org.matrix.msc3401.call.member", "_@bob:example.org_BOBDEVICE_m.call", bob, "@bob:example.org")
      const both = yield* call.members.pipe(Stream.takeUntil((ms) => ms.length === 2), Stream.runLast)
      assert.deepStrictEqual(Option.getOrThrow(both).map((m) => m.userId), ["@bob:example.org", "@alice:example.org"])
      yield* TestClock.adjust(9499)
      assert.strictEqual((yield* call.currentMembers).length, 2)
      yield* TestClock.adjust(1)
      yield* settle
      assert.deepStrictEqual((yield* call.currentMembers).map((m) => m.userId), ["@alice:example.org"])
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("the SFU connect bound: the LiveKit layer's own unless JoinOptions.connectTimeoutMs is set", () => {
    const seen: Array<ConnectOptions | undefined> = []
    return Effect.gen(function*() {
      yield* Effect.scoped(Call.join(roomId))
      yield* Effect.scoped(Call.join(roomId, { connectTimeoutMs: 4000 }))
      assert.deepStrictEqual(seen, [undefined, { timeoutMs: 4000 }])
    }).pipe(
      Effect.updateService(LiveKit, (lk) => ({
        connect: (url, jwt, options) => Effect.suspend(() => (seen.push(options), lk.connect(url, jwt, options)))
      })),
      Effect.provide(Testing.layer())
    )
  })

  it.effect("ended is Left after a leave", () =>
    Effect.gen(function*() {
      const call = yield* Effect.scoped(Call.join(roomId))
      assert.strictEqual(yield* call.ended, "Left")
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("interrupting a running call.leave does not cut the cleanup short", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const scope = yield* Scope.make()
      const call = yield* Call.join(roomId, { leaveStepTimeoutMs: 1000 }).pipe(Scope.extend(scope))
      yield* hs.injectFault("delayed.send", hang)
      const leaving = yield* Effect.fork(call.leave)
      yield* awaitLog((e) => e.op === "delayed.send")
      const interrupting = yield* Effect.fork(Fiber.interrupt(leaving))
      yield* settle
      yield* TestClock.adjust(1000)
      yield* Fiber.join(interrupting)
      yield* Scope.close(scope, Exit.void)
      const put = (yield* entries).filter((e) => e.op === "sendState" && e.detail === "leave")
      assert.strictEqual(put.length, 1)
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 0)
    }).pipe(Effect.provide(Testing.layer())))
})
