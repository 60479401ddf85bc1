import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Layer, Option, Stream, TestClock, TestServices } from "effect"
import * as Call from "../src/Call.ts"
import * as CallService from "../src/CallService.ts"
import type { RoomId } from "../src/Ids.ts"
import { MatrixClient } from "../src/MatrixClient.ts"
import * as Testing from "../src/testing/index.ts"
import { assertBefore, assertNothingLeft, awaitLog, ops, roomId, settle, TestHomeserver, TestLiveKit } from "./utils.ts"

const otherRoom = "!other:example.org" as RoomId

const withService = Layer.provideMerge(CallService.layer, Testing.layer())

describe("CallService", () => {
  it.effect("connect / activeCall / disconnect", () =>
    Effect.gen(function*() {
      const service = yield* CallService.CallService
      const hs = yield* TestHomeserver.TestHomeserver
      assert.isTrue(Option.isNone(yield* service.activeCall))
      const call = yield* service.connect(roomId)
      const active = yield* service.activeCall
      assert.strictEqual(Option.getOrThrow(active), call)
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      yield* service.disconnect
      assert.isTrue(Option.isNone(yield* service.activeCall))
      yield* assertNothingLeft
      yield* service.disconnect // nothing active: no-op
    }).pipe(Effect.provide(withService)))

  it.effect("connecting again leaves the previous call first; activeCalls follows", () =>
    Effect.gen(function*() {
      const service = yield* CallService.CallService
      const hs = yield* TestHomeserver.TestHomeserver
      const seen = yield* service.activeCalls.pipe(
        Stream.map(Option.map((c) => c.roomId)),
        Stream.take(5),
        Stream.runCollect,
        Effect.fork
      )
      yield* settle
      yield* service.connect(roomId)
      yield* service.connect(otherRoom)
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 0)
      assert.strictEqual((yield* hs.activeMemberships(otherRoom)).length, 1)
      const log = yield* ops
      assertBefore(log, "homeserver:delayed.send", "auth:sfuGet")
      yield* service.disconnect
      const rooms = Chunk.toReadonlyArray(yield* Fiber.join(seen))
      // none while the first call is left and the second joined
      assert.deepStrictEqual(rooms, [Option.none(), Option.some(roomId), Option.none(), Option.some(otherRoom), Option.none()])
    }).pipe(Effect.provide(withService)))

  it.effect("a failed connect leaves no active call", () =>
    Effect.gen(function*() {
      const service = yield* CallService.CallService
      const e = yield* Effect.flip(service.connect(roomId))
      assert.strictEqual(e._tag, "MembershipFailed")
      assert.isTrue(Option.isNone(yield* service.activeCall))
      yield* assertNothingLeft
    }).pipe(Effect.provide(Layer.provideMerge(
      CallService.layer,
      Testing.layer({ homeserver: { rooms: [{ roomId, callMemberPowerLevel: 50 }] } })
    ))))

  it.effect("a call dropped by the SFU is no longer active", () =>
    Effect.gen(function*() {
      const service = yield* CallService.CallService
      const sfu = yield* TestLiveKit.TestLiveKit
      const call = yield* service.connect(roomId)
      yield* sfu.dropConnection(call.connection.identity, "ParticipantRemoved")
      yield* call.ended
      const after = yield* service.activeCalls.pipe(Stream.takeUntil(Option.isNone), Stream.runLast)
      assert.isTrue(Option.isNone(Option.flatten(after)))
      yield* assertNothingLeft
    }).pipe(Effect.provide(withService)))

  /**
   * Hangs up while the join waits on `stuck`, once `reached` are in the log: the connect is interrupted, the
   * hang-up returns, nothing is left.
   */
  const hangUpDuring = <R extends Testing.TestServices>(
    stuck: Effect.Effect<void, never, R>,
    reached: ReadonlyArray<string>
  ) =>
    Effect.gen(function*() {
      const service = yield* CallService.CallService
      yield* stuck
      const connecting = yield* Effect.fork(service.connect(roomId))
      for (const op of reached) yield* awaitLog((e) => `${e.actor}:${e.op}` === op)
      const hangUp = yield* Effect.fork(service.disconnect)
      const done = yield* TestServices.provideLive(Effect.timeout(Fiber.await(hangUp), "2 seconds")).pipe(Effect.option)
      assert.isTrue(Option.isSome(done), `disconnect waited for the connect: ${(yield* ops).join(", ")}`)
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(connecting)))
      assert.isTrue(Option.isNone(yield* service.activeCall))
      yield* assertNothingLeft
      // the service still connects afterwards
      yield* service.connect(roomId)
      yield* service.disconnect
      yield* assertNothingLeft
    }).pipe(Effect.provide(withService))

  it.effect("disconnect during a join stuck before the membership interrupts it", () =>
    hangUpDuring(Effect.flatMap(TestHomeserver.TestHomeserver, (hs) => hs.injectFault("openid", Testing.TestCallLog.hang)), [
      "homeserver:openid"
    ]))

  it.effect("disconnect during a join stuck at the SFU connect interrupts it and takes the membership down", () =>
    hangUpDuring(Effect.flatMap(TestLiveKit.TestLiveKit, (sfu) => sfu.injectFault("connect", Testing.TestCallLog.hang)), [
      "sfu:connect",
      "homeserver:sendState"
    ]))

  it.effect("tearing the layer down leaves the active call", () =>
    Effect.gen(function*() {
      yield* Effect.gen(function*() {
        const service = yield* CallService.CallService
        yield* service.connect(roomId)
      }).pipe(Effect.provide(CallService.layer))
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("tearing the layer down during a connect interrupts it: no call is left behind", () =>
    Effect.gen(function*() {
      const sfu = yield* TestLiveKit.TestLiveKit
      yield* sfu.injectFault("connect", Testing.TestCallLog.delay(1_000))
      // A daemon, as a connect run from outside (e.g. an app's runtime) is: the layer's teardown must stop it.
      const connect = yield* Effect.scoped(Effect.gen(function*() {
        const service = yield* CallService.CallService
        const connecting = yield* Effect.forkDaemon(service.connect(roomId))
        yield* awaitLog((e) => `${e.actor}:${e.op}` === "sfu:connect")
        return connecting
      }).pipe(Effect.provide(CallService.layer)))
      yield* TestClock.adjust(1_000)
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(connect)))
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))
})

describe("several calls side by side", () => {
  it.scoped("two joins in two rooms, left independently", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const sfu = yield* TestLiveKit.TestLiveKit
      const [a, b] = yield* Effect.all([
        Call.join(roomId),
        Call.join(otherRoom)
      ], { concurrency: "unbounded" })
      assert.notStrictEqual(a.connection.roomName, b.connection.roomName)
      assert.strictEqual((yield* sfu.participants()).length, 2)
      yield* a.leave
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 0)
      assert.strictEqual((yield* hs.activeMemberships(otherRoom)).length, 1)
      assert.deepStrictEqual((yield* sfu.participants()).map((p) => p.room), [b.connection.roomName])
      yield* b.leave
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("two users in one room see each other as members and as LiveKit participants", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const alice = yield* Call.join(roomId)
      const bob = yield* Call.join(roomId).pipe(
        Effect.provideService(MatrixClient, hs.clientFor("@bob:example.org", "BOBDEVICE"))
      )
      const members = yield* alice.members.pipe(Stream.takeUntil((ms) => ms.length === 2), Stream.runLast)
      assert.deepStrictEqual(
        Option.getOrThrow(members).map((m) => m.rtcBackendIdentity),
        ["@alice:example.org:ALICEDEVICE", "@bob:example.org:BOBDEVICE"]
      )
      const remote = yield* alice.connection.remoteParticipants
      assert.deepStrictEqual(remote.map((p) => p.identity), ["@bob:example.org:BOBDEVICE"])
      yield* bob.leave
      const after = yield* alice.members.pipe(Stream.takeUntil((ms) => ms.length === 1), Stream.runLast)
      assert.deepStrictEqual(Option.getOrThrow(after).map((m) => m.userId), ["@alice:example.org"])
      assert.deepStrictEqual(yield* alice.connection.remoteParticipants, [])
    }).pipe(Effect.provide(Testing.layer())))
})
