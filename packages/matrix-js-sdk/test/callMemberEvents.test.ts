// The emitter bridge on a real (never started) matrix-js-sdk client, driven by hand.
import { assert, describe, it } from "@effect/vitest"
import type { Ids, RawCallEvent } from "@matrixrtc-effect/core"
import { Chunk, Effect, Fiber, Schedule, Stream } from "effect"
import { ClientEvent, createClient, MatrixEvent, Room, RoomStateEvent, SyncState } from "matrix-js-sdk"
import { RoomStickyEventsEvent } from "matrix-js-sdk/lib/models/room-sticky-events.js"
import { callMemberEvents } from "../src/callMemberEvents.ts"

const roomId = "!room:localhost" as Ids.RoomId
const CALL_MEMBER = "org.matrix.msc3401.call.member"

const stateEvent = (id: string, stateKey: string, extra: Partial<{ type: string; room_id: string }> = {}) =>
  new MatrixEvent({
    type: CALL_MEMBER,
    state_key: stateKey,
    sender: "@bob:localhost",
    event_id: id,
    room_id: roomId,
    origin_server_ts: 1000,
    content: { application: "m.call" },
    ...extra
  })

const setup = () => {
  const client = createClient({ baseUrl: "http://127.0.0.1:1", userId: "@alice:localhost", deviceId: "DEV" })
  const room = new Room(roomId, client, "@alice:localhost")
  return { client, room }
}

/**
 * Waits until the stream's fiber has put its listeners on `client` (its Sync listener is the
 * last to go on): they go on in that fiber, after the fork returned.
 */
const listening = (client: ReturnType<typeof createClient>, before: number) =>
  Effect.suspend(() => client.listenerCount(ClientEvent.Sync) > before ? Effect.void : Effect.fail("not yet")).pipe(
    Effect.retry(Schedule.spaced("1 millis")),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the stream never put its listeners on") })
  )

/** Runs the stream until it has `n` events (or ends), after `act` drove the emitters. */
const collect = (
  client: ReturnType<typeof createClient>,
  stream: Stream.Stream<RawCallEvent>,
  n: number,
  act: Effect.Effect<void>
) =>
  Effect.gen(function* () {
    const before = client.listenerCount(ClientEvent.Sync)
    const fiber = yield* stream.pipe(Stream.take(n), Stream.runCollect, Effect.fork)
    yield* listening(client, before)
    yield* act
    return Chunk.toReadonlyArray(yield* Fiber.join(fiber))
  })

describe("callMemberEvents", () => {
  it.live("current state first, then live events; other rooms, other types, old state and repeats are dropped", () =>
    Effect.gen(function* () {
      const { client, room } = setup()
      room.currentState.setStateEvents([stateEvent("$current", "_@bob:localhost_B_m.call")])
      client.store.storeRoom(room)
      const events = yield* collect(
        client,
        callMemberEvents(client, roomId),
        2,
        Effect.sync(() => {
          const otherRoom = stateEvent("$other-room", "k", { room_id: "!other:localhost" })
          client.emit(RoomStateEvent.Events, otherRoom, room.currentState, null)
          client.emit(RoomStateEvent.Events, stateEvent("$other-type", "k", { type: "m.room.topic" }), room.currentState, null)
          client.emit(RoomStateEvent.Events, stateEvent("$old", "k"), room.oldState, null)
          client.emit(RoomStateEvent.Events, stateEvent("$current", "_@bob:localhost_B_m.call"), room.currentState, null)
          client.emit(RoomStateEvent.Events, stateEvent("$live", "_@carol:localhost_C_m.call"), room.currentState, null)
        })
      )
      assert.deepStrictEqual(events.map((e) => e.eventId), ["$current", "$live"])
      assert.deepStrictEqual(events[1], {
        type: CALL_MEMBER,
        stateKey: "_@carol:localhost_C_m.call",
        sender: "@bob:localhost",
        eventId: "$live",
        originServerTs: 1000,
        content: { application: "m.call" }
      })
    }))

  it.live("waits for a room the client does not know yet, and carries its sticky rtc.member events", () =>
    Effect.gen(function* () {
      const { client, room } = setup()
      const sticky = new MatrixEvent({
        type: "org.matrix.msc4143.rtc.member",
        sender: "@bob:localhost",
        event_id: "$sticky",
        room_id: roomId,
        origin_server_ts: 2000,
        content: { msc4354_sticky_key: "m1" },
        msc4354_sticky: { duration_ms: 60_000 }
      })
      const events = yield* collect(
        client,
        callMemberEvents(client, roomId),
        1,
        Effect.sync(() => {
          client.store.storeRoom(room)
          client.emit(ClientEvent.Room, room)
          room.emit(RoomStickyEventsEvent.Update, [sticky as never], [], [])
        })
      )
      assert.strictEqual(events[0]?.eventId, "$sticky")
      assert.strictEqual(events[0]?.stickyDurationMs, 60_000)
    }))

  it.live("ends when the client stops, and takes its listeners off", () =>
    Effect.gen(function* () {
      const { client, room } = setup()
      client.store.storeRoom(room)
      const before = client.listenerCount(RoomStateEvent.Events)
      const beforeSync = client.listenerCount(ClientEvent.Sync)
      const fiber = yield* callMemberEvents(client, roomId).pipe(Stream.runCollect, Effect.fork)
      yield* listening(client, beforeSync)
      assert.strictEqual(client.listenerCount(RoomStateEvent.Events), before + 1)
      client.emit(ClientEvent.Sync, SyncState.Stopped, SyncState.Syncing)
      assert.strictEqual(Chunk.size(yield* Fiber.join(fiber)), 0)
      assert.strictEqual(client.listenerCount(RoomStateEvent.Events), before)
      assert.strictEqual(room.listenerCount(RoomStickyEventsEvent.Update), 0)
    }))
})
