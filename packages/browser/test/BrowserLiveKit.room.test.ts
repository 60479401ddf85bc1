/**
 * The real `BrowserLiveKit.make` on a livekit-client Room whose network parts are stubbed:
 * `connect` succeeds at once, `disconnect` never settles (as in a page being torn down, where
 * the websocket close handshake and livekit's timers never come). The page is an EventTarget
 * on `globalThis` whose dispatcher, like a browser's for its own events, runs the microtask
 * checkpoint after each listener.
 *
 * The test clock is used (but where a test says otherwise): no timer fires unless a test moves it, so
 * "finished" here means finished without waiting for any timer.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Exit, Fiber, Option, Queue, Redacted, Scope, Stream, TestClock } from "effect"
import type { LiveKitConnection } from "@matrixrtc-effect/core"
import { ConnectionState, DisconnectReason, Room, RoomEvent, Track, TrackEvent } from "livekit-client"
import type { LocalTrackPublication } from "livekit-client"
import { EventEmitter } from "node:events"
import * as BrowserLiveKit from "../src/BrowserLiveKit.ts"
import { leaveOnPageHide } from "../src/PageLifecycle.ts"

type Listener = (event: Event) => void
const listeners = new Map<string, Array<Listener>>()
const page = {
  addEventListener: (type: string, l: Listener) => void listeners.set(type, [...(listeners.get(type) ?? []), l]),
  removeEventListener: (type: string, l: Listener) =>
    void listeners.set(type, (listeners.get(type) ?? []).filter((x) => x !== l))
}
/** Dispatches as a browser does: each listener in registration order, microtasks drained after each. */
const dispatch = (type: string) =>
  Effect.promise(async () => {
    for (const l of [...(listeners.get(type) ?? [])]) {
      l(new Event(type))
      await new Promise((r) => setImmediate(r))
    }
  })
/** Lets the event loop turn a few times: what a page being torn down still gets after pagehide. */
const drain = Effect.promise(async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r))
})

let rooms: Array<Room> = []
let disconnects = 0
/** What a test's disconnect does instead of never settling. */
let disconnectWith: ((room: Room) => Promise<void>) | undefined
const stubs = {
  connect: async function(this: Room) {
    rooms.push(this)
  },
  disconnect: function(this: Room) {
    disconnects++
    return disconnectWith?.(this) ?? new Promise<void>(() => undefined)
  }
}
const saved = { addEventListener: globalThis.addEventListener, removeEventListener: globalThis.removeEventListener }

beforeAll(() => {
  Object.assign(globalThis, page)
  // Room assigns connect/disconnect in its constructor: accessors on the prototype take them over.
  for (const [name, stub] of Object.entries(stubs)) {
    Object.defineProperty(Room.prototype, name, { configurable: true, get: () => stub, set: () => undefined })
  }
})
afterAll(() => {
  Object.assign(globalThis, saved)
  for (const name of Object.keys(stubs)) Reflect.deleteProperty(Room.prototype, name)
})

const setup = Effect.gen(function*() {
  rooms = []
  disconnects = 0
  disconnectWith = undefined
  listeners.clear()
  const lk = yield* BrowserLiveKit.make()
  const callScope = yield* Scope.make()
  const left = yield* Deferred.make<void>()
  // What Call.join's leave does: the SFU first, then (here: `left`) the membership.
  const leave = Scope.close(callScope, Exit.void).pipe(Effect.zipRight(Deferred.succeed(left, undefined)))
  const connect = lk.connect("ws://127.0.0.1:1", Redacted.make("jwt")).pipe(Scope.extend(callScope))
  return { connect, leave, left, lk }
})

describe("BrowserLiveKit on pagehide: the disconnect does not hold back the leave behind it", () => {
  for (const order of ["after", "before"] as const) {
    it.scoped(`leaveOnPageHide registered ${order} the connection`, () =>
      Effect.gen(function*() {
        const { connect, leave, left } = yield* setup
        if (order === "before") yield* leaveOnPageHide(leave, page)
        yield* connect
        if (order === "after") yield* leaveOnPageHide(leave, page)

        yield* dispatch("pagehide")
        yield* drain
        assert.isTrue(yield* Deferred.isDone(left), "the leave finished without waiting for the disconnect")
        assert.strictEqual(disconnects, 1, "the disconnect (and its SFU leave) was started")
      }))
  }

  it.scoped("a leave already waiting for the disconnect when the page is hidden stops waiting", () =>
    Effect.gen(function*() {
      const { connect, leave, left } = yield* setup
      yield* connect
      yield* Effect.fork(leave)
      yield* drain
      assert.strictEqual(disconnects, 1)
      assert.isFalse(yield* Deferred.isDone(left), "waits for the disconnect while the page lives")

      yield* dispatch("pagehide")
      yield* drain
      assert.isTrue(yield* Deferred.isDone(left))
    }))

  it.scoped("while the page lives, the disconnect is waited for up to its bound", () =>
    Effect.gen(function*() {
      const { connect, leave, left } = yield* setup
      yield* connect
      const leaving = yield* Effect.fork(leave)
      yield* drain
      assert.isFalse(yield* Deferred.isDone(left))
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.join(leaving)
      assert.isTrue(yield* Deferred.isDone(left))
    }))
})

describe("BrowserLiveKit.browserConnection", () => {
  it.scoped("each open connection finds its own handle; an object BrowserLiveKit did not open finds none", () =>
    Effect.gen(function*() {
      const { connect } = yield* setup
      const a = yield* connect
      const b = yield* connect
      assert.notStrictEqual(a, b)
      // The portable view of each, as a joined call holds it.
      const portable: ReadonlyArray<LiveKitConnection> = [a, b]
      assert.strictEqual(Option.getOrThrow(BrowserLiveKit.browserConnection(portable[0]!)), a)
      assert.strictEqual(Option.getOrThrow(BrowserLiveKit.browserConnection(portable[1]!)), b)
      assert.isTrue(Option.isNone(BrowserLiveKit.browserConnection({ ...a })))
    }))
})

describe("BrowserLiveKit: livekit-client's own page-leave handling", () => {
  it.scoped("is off, so a beforeunload the app cancels does not end the call; the app's room options still win", () =>
    Effect.gen(function*() {
      const { connect } = yield* setup
      yield* connect
      assert.isFalse(rooms[0]?.options.disconnectOnPageLeave)
      const lk = yield* BrowserLiveKit.make({ roomOptions: { disconnectOnPageLeave: true } })
      // Its own scope, never closed: the stub disconnect never settles.
      yield* lk.connect("ws://127.0.0.1:1", Redacted.make("jwt")).pipe(Scope.extend(yield* Scope.make()))
      assert.isTrue(rooms[1]?.options.disconnectOnPageLeave)
    }))
})

/** A local track published in `room` as RoomView reads it; restartTrack swaps its MediaStreamTrack in place. */
const publishLocal = (room: Room, sid: string, kind: Track.Kind, source: Track.Source) => {
  const track = Object.assign(new EventEmitter(), {
    kind,
    isLocal: true,
    mediaStreamTrack: { id: "before" } as unknown as MediaStreamTrack,
    attach: () => ({}) as HTMLMediaElement,
    detach: () => undefined,
    getRTCStatsReport: () => Promise.resolve(undefined)
  })
  const pub = { trackSid: sid, kind, source, isMuted: false, track } as unknown as LocalTrackPublication
  room.localParticipant.trackPublications.set(sid, pub)
  room.emit(RoomEvent.LocalTrackPublished, pub, room.localParticipant)
  return track
}

const localTrackIds = (connection: BrowserLiveKit.BrowserConnection) =>
  Effect.map(connection.localTracks, (ts) => ts.map((t) => t.mediaStreamTrack.id))

describe("BrowserLiveKit: local tracks after a camera/microphone switch", () => {
  it.scoped("the track's Restarted re-reads them: a new MediaTrack with the new MediaStreamTrack", () =>
    Effect.gen(function*() {
      const { connect } = yield* setup
      const connection = yield* connect
      const track = publishLocal(rooms[0]!, "TR_cam", Track.Kind.Video, Track.Source.Camera)
      yield* drain
      assert.deepStrictEqual(yield* localTrackIds(connection), ["before"])

      track.mediaStreamTrack = { id: "after" } as unknown as MediaStreamTrack
      track.emit(TrackEvent.Restarted, track)
      yield* drain
      assert.deepStrictEqual(yield* localTrackIds(connection), ["after"])
    }))

  it.scoped("so does the room's ActiveDeviceChanged", () =>
    Effect.gen(function*() {
      const { connect } = yield* setup
      const connection = yield* connect
      const room = rooms[0]!
      const track = publishLocal(room, "TR_mic", Track.Kind.Audio, Track.Source.Microphone)
      yield* drain
      track.mediaStreamTrack = { id: "after" } as unknown as MediaStreamTrack
      room.emit(RoomEvent.ActiveDeviceChanged, "audioinput", "other-mic")
      yield* drain
      assert.deepStrictEqual(yield* localTrackIds(connection), ["after"])
    }))
})

describe("BrowserLiveKit: the handle's change streams", () => {
  // Live clock: the waits below are bounded by real timeouts (the disconnect here settles at once).
  it.live("end once its scope has closed, after the disconnect's final state; a reader started later ends at once", () =>
    Effect.gen(function*() {
      const { connect, leave } = yield* setup
      // As livekit-client's disconnect: the room says so (state, then Disconnected) before it resolves.
      disconnectWith = (room) => {
        room.state = ConnectionState.Disconnected
        room.emit(RoomEvent.ConnectionStateChanged, room.state)
        room.emit(RoomEvent.Disconnected, DisconnectReason.CLIENT_INITIATED)
        return Promise.resolve()
      }
      const connection = yield* connect
      const room = rooms[0]!
      room.state = ConnectionState.Connected
      room.emit(RoomEvent.ConnectionStateChanged, room.state)
      const within = <A, E>(what: string, effect: Effect.Effect<A, E>) =>
        Effect.timeoutFail(effect, { duration: "4 seconds", onTimeout: () => new Error(`${what} did not end`) })
      // Readers not scoped to the connection, as one holding the handle of a joined call; those that
      // can show it have seen an element before the close, so they were reading by then.
      const started = yield* Queue.unbounded<void>()
      const read = <A>(changes: Stream.Stream<A>) =>
        Effect.fork(Stream.runCollect(Stream.tap(changes, () => Queue.offer(started, undefined))))
      const states = yield* read(connection.connectionStates)
      const readers: ReadonlyArray<Fiber.Fiber<Chunk.Chunk<unknown>>> = [
        yield* read(connection.remoteParticipantsChanges),
        yield* read(connection.remoteTracksChanges),
        yield* read(connection.localTracksChanges)
      ]
      const reasons = yield* read(connection.disconnectReasons)
      yield* within("the first four readers' start", Queue.takeN(started, 4))
      room.emit(RoomEvent.Disconnected, DisconnectReason.DUPLICATE_IDENTITY)
      yield* within("the reasons reader's start", Queue.take(started))
      const mediaErrors = yield* Effect.fork(Stream.runCollect(connection.mediaErrors))

      yield* leave
      assert.strictEqual(disconnects, 1)
      assert.deepStrictEqual(
        Chunk.toReadonlyArray(yield* within("connectionStates", Fiber.join(states))),
        ["connected", "disconnected"],
        "the disconnect's final state reached the reader"
      )
      for (const reader of readers) assert.strictEqual(Chunk.size(yield* within("a ref's changes", Fiber.join(reader))), 1)
      assert.deepStrictEqual(
        Chunk.toReadonlyArray(yield* within("disconnectReasons", Fiber.join(reasons))),
        ["DuplicateIdentity", "ClientInitiated"],
        "the disconnect's own reason reached the reader"
      )
      yield* within("mediaErrors", Fiber.join(mediaErrors))

      yield* within("a later connectionStates", Stream.runDrain(connection.connectionStates))
      yield* within("a later remoteParticipantsChanges", Stream.runDrain(connection.remoteParticipantsChanges))
      yield* within("a later disconnectReasons", Stream.runDrain(connection.disconnectReasons))
      yield* within("a later remoteTracksChanges", Stream.runDrain(connection.remoteTracksChanges))
      yield* within("a later localTracksChanges", Stream.runDrain(connection.localTracksChanges))
      yield* within("a later mediaErrors", Stream.runDrain(connection.mediaErrors))
    }))
})
