/**
 * What a call tells about its members: `members` / `currentMembers` and the re-publish watch when the
 * client's view of the room lags behind our own send, as matrix-js-sdk's does (it learns of the membership
 * we just wrote only through the next sync, so the room it shows first is the one from before our join,
 * possibly with the `{}` an earlier session of this device left on our state key); and the change streams
 * ending with the call.
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Fiber, Layer, Option, Stream } from "effect"
import * as Call from "../src/Call.ts"
import type { RawCallEvent } from "../src/MatrixClient.ts"
import { MatrixClient } from "../src/MatrixClient.ts"
import * as Membership from "../src/Membership.ts"
import * as Testing from "../src/testing/index.ts"
import { aliceKey, entries, roomId, settle } from "./utils.ts"

const bob = "@bob:example.org"
const staleRoom: ReadonlyArray<RawCallEvent> = [
  // what an earlier session of this device left behind
  { type: Membership.SessionEventType, stateKey: aliceKey, sender: "@alice:example.org", eventId: "$old-leave", originServerTs: 0, content: {} },
  {
    type: Membership.SessionEventType,
    stateKey: `_${bob}_BOBDEVICE_m.call`,
    sender: bob,
    eventId: "$bob",
    originServerTs: 0,
    content: Membership.sessionContent({
      userId: bob,
      deviceId: "BOBDEVICE",
      roomId,
      livekitServiceUrl: Testing.TestHomeserver.defaultAuthServiceUrl
    })
  }
]

/** The test homeserver's client, except that its room view starts stale and catches up when `synced` is done. */
const lagging = (synced: Deferred.Deferred<void>) =>
  Layer.effect(
    MatrixClient,
    Effect.map(MatrixClient, (mx) => ({
      ...mx,
      callMemberEvents: (id: typeof roomId) =>
        Stream.concat(Stream.fromIterable(staleRoom), Stream.unwrap(Effect.as(Deferred.await(synced), mx.callMemberEvents(id))))
    }))
  ).pipe(Layer.provideMerge(Testing.layer()))

describe("Call.members with a room view that lags behind our send", () => {
  it.effect("the first list already has our membership; a stale {} on our state key is not taken for a removal", () =>
    Effect.gen(function*() {
      const synced = yield* Deferred.make<void>()
      yield* Effect.gen(function*() {
        const call = yield* Call.join(roomId)
        const first = yield* call.members.pipe(Stream.runHead, Effect.fork)
        const current = yield* Effect.fork(call.currentMembers)
        yield* settle
        // Only the stale view so far: neither has anything to tell yet.
        assert.isTrue(Option.isNone(yield* Fiber.poll(first)))
        assert.isTrue(Option.isNone(yield* Fiber.poll(current)))

        yield* Deferred.succeed(synced, undefined)
        const firstList = Option.getOrThrow(yield* Fiber.join(first)).map((m) => m.userId)
        assert.deepStrictEqual([...firstList].sort(), ["@alice:example.org", bob])
        assert.deepStrictEqual([...(yield* Fiber.join(current)).map((m) => m.userId)].sort(), ["@alice:example.org", bob])

        // The old {} was not read as someone deleting the membership we had just written: one send, no re-publish.
        yield* settle
        const ours = (yield* entries).filter((e) => e.stateKey === aliceKey && e.actor === "homeserver")
        assert.deepStrictEqual(ours.map((e) => `${e.op} ${e.detail}`), [
          "scheduleDelayed leave delay=8000",
          "sendState join expires=14400000"
        ])
      }).pipe(Effect.scoped, Effect.provide(lagging(synced)))
    }))
})

describe("Call.members and membershipChanges after the call", () => {
  // Each reader is forked while the call runs; without an end they would wait for a change that never comes.
  const readers = (call: Call.Call) =>
    Effect.all([
      Effect.fork(Stream.runCollect(call.members)),
      Effect.fork(Stream.runCollect(call.membershipChanges))
    ])

  it.scoped("end once the call has been left, after the last list", () =>
    Effect.gen(function*() {
      const call = yield* Call.join(roomId)
      const [members, changes] = yield* readers(call)
      yield* settle
      yield* call.leave
      const lists = Chunk.toReadonlyArray(yield* Fiber.join(members))
      assert.deepStrictEqual(lists.map((l) => l.map((m) => m.userId)).at(0), ["@alice:example.org"])
      assert.isAbove(Chunk.size(yield* Fiber.join(changes)), 0)
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("end when the SFU drops us", () =>
    Effect.gen(function*() {
      const sfu = yield* Testing.TestLiveKit.TestLiveKit
      const call = yield* Call.join(roomId)
      const [members, changes] = yield* readers(call)
      yield* settle
      yield* sfu.dropConnection(call.connection.identity, "ParticipantRemoved")
      assert.strictEqual(yield* call.ended, "SfuDisconnected")
      yield* Fiber.join(members)
      yield* Fiber.join(changes)
    }).pipe(Effect.provide(Testing.layer())))
})

describe("Call.members and the room's own membership", () => {
  it.scoped("a member whose user leaves the Matrix room drops out of the list, and comes back on re-joining", () =>
    Effect.gen(function*() {
      const hs = yield* Testing.TestHomeserver.TestHomeserver
      const bobKey = `_${bob}_BOBDEVICE_m.call`
      yield* hs.setState(roomId, Membership.SessionEventType, bobKey, staleRoom[1]!.content as Record<string, unknown>, bob)
      const call = yield* Call.join(roomId)
      const lists = yield* call.members.pipe(
        Stream.map((list) => list.map((m) => m.userId)),
        Stream.take(3),
        Stream.runCollect,
        Effect.fork
      )
      yield* settle
      // bob's call membership stays in the room state; only his room membership changes
      yield* hs.setState(roomId, Membership.RoomMemberEventType, bob, { membership: "leave" }, bob)
      yield* settle
      yield* hs.setState(roomId, Membership.RoomMemberEventType, bob, { membership: "join" }, bob)
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Fiber.join(lists)), [
        ["@alice:example.org", bob],
        ["@alice:example.org"],
        ["@alice:example.org", bob]
      ])
    }).pipe(Effect.provide(Testing.layer())))
})
