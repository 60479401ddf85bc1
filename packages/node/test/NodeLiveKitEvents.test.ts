// NodeLiveKit's glue between rtc-node's Room (events, disconnect) and Effect state, on a
// fake Room: what the native side does at awkward moments, made to happen on purpose.
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Option, Queue, Redacted, Scope, Stream } from "effect"
import type { LiveKitConnection, RemoteParticipant } from "@matrixrtc-effect/core"
import type { Scheduler } from "effect"
import { vi } from "vitest"

const fake = vi.hoisted(() => ({ disconnect: (): Promise<void> => Promise.resolve(), rooms: [] as Array<any> }))

vi.mock("@livekit/rtc-node", async (importOriginal) => {
  const original = await importOriginal<typeof import("@livekit/rtc-node")>()
  const { EventEmitter } = await import("node:events")
  class FakeRoom extends EventEmitter {
    connectionState = original.ConnectionState.CONN_DISCONNECTED
    name = "fake-room"
    localParticipant = { identity: "@me:x:DEV" }
    remoteParticipants = new Map()
    get isConnected() {
      return this.connectionState === original.ConnectionState.CONN_CONNECTED
    }
    constructor() {
      super()
      fake.rooms.push(this)
    }
    connect() {
      this.connectionState = original.ConnectionState.CONN_CONNECTED
      return Promise.resolve()
    }
    disconnect() {
      this.connectionState = original.ConnectionState.CONN_DISCONNECTED
      return fake.disconnect()
    }
  }
  return { ...original, Room: FakeRoom }
})

const { ConnectionState, DisconnectReason, RoomEvent, TrackKind } = await import("@livekit/rtc-node")
const NodeLiveKit = await import("../src/NodeLiveKit.ts")

const connect = Effect.flatMap(NodeLiveKit.make(), (lk) => lk.connect("ws://127.0.0.1:9", Redacted.make("a.b.c")))

/** A scheduler the test steps by hand, yielding every few operations (a resume itself takes some). */
const manualScheduler = () => {
  const tasks: Array<() => void> = []
  const scheduler: Scheduler.Scheduler = {
    scheduleTask: (task) => void tasks.push(task),
    shouldYield: (fiber) => (fiber.currentOpCount > 10 ? 0 : false)
  }
  return { scheduler, step: () => tasks.shift()?.(), pending: () => tasks.length }
}

/** A remote participant as NodeLiveKit reads it from the room. */
const remote = (identity: string, ...kinds: Array<number>) => ({
  identity,
  trackPublications: new Map(kinds.map((kind, i) => [`TR_${identity}_${i}`, { kind }]))
})

describe("NodeLiveKit over a fake Room", () => {
  it.scoped("nodeConnection: each open connection finds its own handle; an object NodeLiveKit did not open finds none", () =>
    Effect.gen(function*() {
      const lk = yield* NodeLiveKit.make()
      const a = yield* lk.connect("ws://127.0.0.1:9", Redacted.make("a.b.c"))
      const b = yield* lk.connect("ws://127.0.0.1:9", Redacted.make("a.b.c"))
      assert.notStrictEqual(a, b)
      // The portable view of each, as a joined call holds it.
      const portable: ReadonlyArray<LiveKitConnection> = [a, b]
      assert.strictEqual(Option.getOrThrow(NodeLiveKit.nodeConnection(portable[0]!)), a)
      assert.strictEqual(Option.getOrThrow(NodeLiveKit.nodeConnection(portable[1]!)), b)
      assert.isTrue(Option.isNone(NodeLiveKit.nodeConnection({ ...a })))
    }))

  it.live("remote participants: events that leave the list as it was emit nothing; a change emits once", () =>
    Effect.gen(function*() {
      const conn = yield* connect
      const room = fake.rooms.at(-1)!
      const seen = yield* Queue.unbounded<ReadonlyArray<RemoteParticipant>>()
      yield* Effect.forkScoped(Stream.runForEach(conn.remoteParticipantsChanges, (ps) => Queue.offer(seen, ps)))
      const next = Queue.take(seen).pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("no participants emission") })
      )
      // The current list: from here on every change reaches `seen`.
      assert.deepStrictEqual(yield* next, [])
      const events = () => {
        for (const e of [RoomEvent.ConnectionStateChanged, RoomEvent.TrackPublished, RoomEvent.TrackSubscribed, RoomEvent.Reconnected]) {
          room.emit(e)
        }
      }
      events()
      room.remoteParticipants.set("alice", remote("alice", TrackKind.KIND_AUDIO))
      room.emit(RoomEvent.ParticipantConnected)
      events()
      assert.deepStrictEqual(yield* next, [{ identity: "alice", tracks: ["audio"] }])
      // A last change marks the end: whatever came before it is in `seen` by then.
      room.remoteParticipants.set("bob", remote("bob", TrackKind.KIND_AUDIO, TrackKind.KIND_VIDEO))
      room.emit(RoomEvent.ParticipantConnected)
      assert.deepStrictEqual(yield* next, [
        { identity: "alice", tracks: ["audio"] },
        { identity: "bob", tracks: ["audio", "video"] }
      ])
      assert.strictEqual(yield* Queue.size(seen), 0)
    }).pipe(Effect.scoped))

  it.live("connection state: events that leave it as it was emit nothing; a change emits once", () =>
    Effect.gen(function*() {
      const conn = yield* connect
      const room = fake.rooms.at(-1)!
      const seen = yield* Queue.unbounded<string>()
      yield* Effect.forkScoped(Stream.runForEach(conn.connectionStates, (s) => Queue.offer(seen, s)))
      const next = Queue.take(seen).pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("no state emission") })
      )
      assert.strictEqual(yield* next, "connected")
      for (const e of [RoomEvent.ParticipantConnected, RoomEvent.TrackPublished, RoomEvent.ConnectionStateChanged]) room.emit(e)
      // A last change marks the end: whatever came before it is in `seen` by then.
      room.connectionState = ConnectionState.CONN_RECONNECTING
      room.emit(RoomEvent.ConnectionStateChanged)
      assert.strictEqual(yield* next, "reconnecting")
      assert.strictEqual(yield* Queue.size(seen), 0)
    }).pipe(Effect.scoped))

  it.live("a disconnect that rejects is logged; the scope still closes cleanly and the state ends disconnected", () =>
    Effect.gen(function*() {
      fake.disconnect = () => Promise.reject(new Error("native disconnect failed"))
      const exit = yield* Effect.exit(Effect.scoped(Effect.tap(connect, (conn) => conn.disconnect)))
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      if (Exit.isSuccess(exit)) assert.strictEqual(yield* exit.value.connectionState, "disconnected")
    }).pipe(Effect.ensuring(Effect.sync(() => (fake.disconnect = () => Promise.resolve())))))

  it.live("events while a subscriber is inside a state ref's lock: the callback does not throw, the update lands later", () =>
    Effect.gen(function*() {
      const conn = yield* connect
      const room = fake.rooms.at(-1)!
      // A subscriber whose fiber runs one operation per step of our scheduler, so it stops
      // inside SubscriptionRef's lock (`changes` subscribes under it) with a step still to go.
      const manual = manualScheduler()
      const subscriber = yield* Effect.fork(
        Stream.runHead(conn.connectionStates).pipe(Effect.withScheduler(manual.scheduler))
      )
      const thrown: Array<unknown> = []
      // Bounded: the subscriber needs a few hundred steps at most.
      for (let i = 0; i < 10_000 && subscriber.unsafePoll() === null; i++) {
        // Until the fiber has started (on the default scheduler) there is nothing to step.
        if (manual.pending() === 0) {
          yield* Effect.yieldNow()
          continue
        }
        manual.step()
        room.connectionState = i % 2 === 0 ? ConnectionState.CONN_RECONNECTING : ConnectionState.CONN_CONNECTED
        try {
          room.emit(RoomEvent.ConnectionStateChanged, room.connectionState)
        } catch (e) {
          thrown.push(e)
        }
      }
      assert.deepStrictEqual(thrown, [])
      assert.isNotNull(subscriber.unsafePoll(), "the subscriber finished")
      yield* Fiber.join(subscriber)
      room.connectionState = ConnectionState.CONN_RECONNECTING
      room.emit(RoomEvent.ConnectionStateChanged, room.connectionState)
      // The forked updates finish in order of the lock; the last one read the room last.
      const last = yield* conn.connectionStates.pipe(Stream.filter((s) => s === "reconnecting"), Stream.runHead)
      assert.strictEqual(last._tag, "Some")
    }).pipe(Effect.scoped))
  it.live("the handle's change streams end once its scope has closed, after the final state; a reader started later ends at once", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const conn = yield* Scope.extend(connect, scope)
      const room = fake.rooms.at(-1)!
      const within = <A, E>(what: string, effect: Effect.Effect<A, E>) =>
        Effect.timeoutFail(effect, { duration: "4 seconds", onTimeout: () => new Error(`${what} did not end`) })
      // Readers not scoped to the connection, as one holding the handle of a joined call. Each has
      // seen an element before the close, so each was reading by then.
      const started = yield* Queue.unbounded<void>()
      const read = <A>(changes: Stream.Stream<A>) =>
        Effect.fork(Stream.runCollect(Stream.tap(changes, () => Queue.offer(started, undefined))))
      const states = yield* read(conn.connectionStates)
      const participants = yield* read(conn.remoteParticipantsChanges)
      const reasons = yield* read(conn.disconnectReasons)
      yield* within("the first two readers' start", Queue.takeN(started, 2))
      room.emit(RoomEvent.Disconnected, DisconnectReason.ROOM_DELETED)
      yield* within("the reasons reader's start", Queue.take(started))

      yield* Scope.close(scope, Exit.void)
      const statesSeen = Chunk.toReadonlyArray(yield* within("connectionStates", Fiber.join(states)))
      assert.deepStrictEqual(statesSeen, ["connected", "disconnected"], "the disconnect's final state reached the reader")
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* within("remoteParticipantsChanges", Fiber.join(participants))), [[]])
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* within("disconnectReasons", Fiber.join(reasons))), ["RoomDeleted"])

      yield* within("a later connectionStates", Stream.runDrain(conn.connectionStates))
      yield* within("a later remoteParticipantsChanges", Stream.runDrain(conn.remoteParticipantsChanges))
      yield* within("a later disconnectReasons", Stream.runDrain(conn.disconnectReasons))
    }))
})
