import { assert, describe, it } from "@effect/vitest"
import { Chunk, Context, Deferred, Effect, Exit, Fiber, Option, Scope, Stream, SubscriptionRef, TestClock } from "effect"
import { LiveKit, LiveKitAdapter } from "../src/index.ts"
import type { LiveKitConnection, RemoteParticipant } from "../src/index.ts"
import { ConnectFailed } from "../src/CallError.ts"

// What an SDK's generated numeric enum holds besides its names: value → name.
const SdkReason = { 0: "UNKNOWN_REASON", 1: "CLIENT_INITIATED", 10: "ROOM_CLOSED" } as const

type Kind = "audio-kind" | "video-kind" | "other-kind"
const kinds: LiveKitAdapter.TrackKinds<Kind> = { audio: "audio-kind", video: "video-kind" }

const participant = (identity: string, ...trackKinds: Array<Kind | undefined>) => ({
  identity,
  trackPublications: new Map(trackKinds.map((kind, i) => [`TR_${i}`, { kind }]))
})

const fakeConnection = (identity: string): LiveKitConnection => ({
  identity,
  roomName: "room",
  connectionState: Effect.succeed("connected" as const),
  connectionStates: Stream.make("connected" as const),
  remoteParticipants: Effect.succeed([]),
  remoteParticipantsChanges: Stream.make([]),
  disconnectReasons: Stream.empty,
  disconnect: Effect.void
})

describe("LiveKitAdapter: SDK values", () => {
  it("maps an SDK's DisconnectReason enum by its protocol names", () => {
    const of = LiveKitAdapter.disconnectReasonOf(SdkReason)
    assert.strictEqual(of(1), "ClientInitiated")
    assert.strictEqual(of(10), "RoomDeleted")
    assert.strictEqual(of(0), "Unknown")
    assert.strictEqual(of(99), "Unknown")
    assert.strictEqual(of(undefined), "Unknown")
  })

  it("participants with their track kinds; kinds other than audio and video (or none) are data", () => {
    const ps = LiveKitAdapter.participantsOf(
      [participant("alice", "audio-kind", "video-kind"), participant("bob", "other-kind", undefined), participant("carol")],
      kinds
    )
    assert.deepStrictEqual(ps, [
      { identity: "alice", tracks: ["audio", "video"] },
      { identity: "bob", tracks: ["data", "data"] },
      { identity: "carol", tracks: [] }
    ])
  })

  it("participant lists are the same when identities and track kinds are, in order", () => {
    const same = LiveKitAdapter.sameParticipants
    const a: ReadonlyArray<RemoteParticipant> = [{ identity: "alice", tracks: ["audio"] }]
    assert.isTrue(same(a, [{ identity: "alice", tracks: ["audio"] }]))
    assert.isTrue(same([], []))
    assert.isFalse(same(a, [{ identity: "alice", tracks: ["audio", "video"] }]))
    assert.isFalse(same(a, [{ identity: "bob", tracks: ["audio"] }]))
    assert.isFalse(same(a, []))
  })

  it.effect("setIfChanged sets only a changed value (an equal one leaves the ref's value as it was)", () =>
    Effect.gen(function*() {
      const initial: ReadonlyArray<RemoteParticipant> = []
      const ref = yield* SubscriptionRef.make(initial)
      const set = (ps: ReadonlyArray<RemoteParticipant>) =>
        LiveKitAdapter.setIfChanged(ref, LiveKitAdapter.sameParticipants, () => ps)
      yield* set([])
      assert.strictEqual(yield* SubscriptionRef.get(ref), initial)
      const alice = [{ identity: "alice", tracks: ["audio" as const] }]
      yield* set(alice)
      assert.strictEqual(yield* SubscriptionRef.get(ref), alice)
    }))
})

describe("LiveKitAdapter.connect", () => {
  const attempt = (start: () => PromiseLike<unknown>, onInterrupt?: () => void): LiveKitAdapter.ConnectAttempt => ({
    url: "ws://sfu",
    timeoutMs: 1000,
    span: "Test.connect",
    start,
    failure: (url, e) => new ConnectFailed({ reason: "Rejected", url, error: String(e) }),
    onInterrupt
  })

  it.effect("succeeds when the SDK connects; an SDK failure, thrown or rejected, is the adapter's ConnectFailed", () =>
    Effect.gen(function*() {
      yield* LiveKitAdapter.connect(attempt(() => Promise.resolve()))
      const rejected = yield* Effect.flip(LiveKitAdapter.connect(attempt(() => Promise.reject(new Error("401")))))
      assert.strictEqual(rejected.reason, "Rejected")
      assert.strictEqual(rejected.error, "Error: 401")
      const thrown = yield* Effect.flip(LiveKitAdapter.connect(attempt(() => {
        throw new Error("sync")
      })))
      assert.strictEqual(thrown.error, "Error: sync")
    }))

  it.effect("past its bound: ConnectFailed(Timeout), and the SDK is told at once", () =>
    Effect.gen(function*() {
      let interrupted = 0
      const fiber = yield* Effect.fork(LiveKitAdapter.connect(attempt(() => new Promise(() => undefined), () => interrupted++)))
      yield* TestClock.adjust("1 second")
      const e = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(e.reason, "Timeout")
      assert.strictEqual(e.error, "no connection after 1000 ms")
      assert.strictEqual(interrupted, 1)
    }))

  it.effect("no bound given: 20 s", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        LiveKitAdapter.connect({ ...attempt(() => new Promise(() => undefined)), timeoutMs: undefined })
      )
      yield* TestClock.adjust("19 seconds")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Effect.flip(Fiber.join(fiber))).reason, "Timeout")
    }))
})

describe("LiveKitAdapter.disconnect", () => {
  it.effect("a rejecting disconnect is not a failure", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(LiveKitAdapter.disconnect({ start: () => Promise.reject(new Error("x")), timeout: "1 second" }))
      assert.isTrue(Exit.isSuccess(exit))
    }))

  it.effect("a hanging disconnect is waited for up to its bound, also as a finalizer", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Scope.addFinalizer(
        scope,
        LiveKitAdapter.disconnect({ start: () => new Promise(() => undefined), timeout: "1 second" })
      )
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* Effect.yieldNow()
      assert.isNull(closing.unsafePoll())
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
    }))

  it.effect("`until` ends the wait, whether it completes before the disconnect starts or while it waits; the SDK's disconnect is started either way", () =>
    Effect.gen(function*() {
      let started = 0
      const start = () => {
        started++
        return new Promise<void>(() => undefined)
      }
      const done = yield* Deferred.make<void>()
      yield* Deferred.succeed(done, undefined)
      yield* LiveKitAdapter.disconnect({ start, timeout: "1 minute", until: Deferred.await(done) })
      assert.strictEqual(started, 1)

      const later = yield* Deferred.make<void>()
      const waiting = yield* Effect.fork(LiveKitAdapter.disconnect({ start, timeout: "1 minute", until: Deferred.await(later) }))
      yield* Effect.yieldNow()
      assert.isNull(waiting.unsafePoll())
      yield* Deferred.succeed(later, undefined)
      yield* Fiber.join(waiting)
      assert.strictEqual(started, 2)
    }))
})

describe("LiveKitAdapter: handles, the most recent connection, the layer", () => {
  it.effect("each open connection finds its own handle; an object the adapter did not open finds none", () =>
    Effect.gen(function*() {
      const handles = LiveKitAdapter.handles<LiveKitConnection>()
      const current = yield* LiveKitAdapter.connections(handles)
      const a = fakeConnection("a")
      const b = fakeConnection("b")
      yield* current.opened(a)
      yield* current.opened(b)
      assert.strictEqual(Option.getOrThrow(handles.of(a)), a)
      assert.strictEqual(Option.getOrThrow(handles.of(b)), b)
      assert.isTrue(Option.isNone(handles.of(fakeConnection("a"))))
      // The most recent one is only one of them.
      assert.isTrue(Option.contains(yield* current.connection, b))
    }).pipe(Effect.scoped))

  it.effect("a view of a connection (a call's) finds the connection's handle, also a view of a view", () =>
    Effect.gen(function*() {
      const handles = LiveKitAdapter.handles<LiveKitConnection>()
      const a = fakeConnection("a")
      handles.register(a)
      const view = LiveKitAdapter.viewOf(a, { ...a })
      assert.strictEqual(Option.getOrThrow(handles.of(view)), a)
      assert.strictEqual(Option.getOrThrow(handles.of(LiveKitAdapter.viewOf(view, { ...view }))), a)
      assert.isTrue(Option.isNone(handles.of({ ...a })))
    }))

  it.effect("the most recent connection while it is open; an older one closing leaves a newer one", () =>
    Effect.gen(function*() {
      const current = yield* LiveKitAdapter.connections(LiveKitAdapter.handles<LiveKitConnection>())
      const a = fakeConnection("a")
      const b = fakeConnection("b")
      const scopeA = yield* Scope.make()
      const scopeB = yield* Scope.make()
      yield* current.opened(a).pipe(Scope.extend(scopeA))
      assert.isTrue(Option.contains(yield* current.connection, a))
      yield* current.opened(b).pipe(Scope.extend(scopeB))
      yield* Scope.close(scopeA, Exit.void)
      assert.isTrue(Option.contains(yield* current.connection, b))
      yield* Scope.close(scopeB, Exit.void)
      assert.isTrue(Option.isNone(yield* current.connection))
    }))

  it.effect("the layer serves the adapter's tag and LiveKit from one service", () =>
    Effect.gen(function*() {
      class Adapter extends Context.Tag("test/Adapter")<Adapter, { readonly connect: LiveKit["Type"]["connect"] }>() {}
      const service = { connect: () => Effect.die("not here") }
      const both = yield* Effect.all([Adapter, LiveKit]).pipe(Effect.provide(LiveKitAdapter.layer(Adapter, Effect.succeed(service))))
      assert.strictEqual(both[0], service)
      assert.strictEqual(both[1], service)
    }))
})

describe("LiveKitAdapter.endOnClose", () => {
  it.live("a reader ends when the scope closes, after what its finalizers published; one started later ends at once", () =>
    Effect.gen(function*() {
      const within = <A, E>(what: string, effect: Effect.Effect<A, E>) =>
        Effect.timeoutFail(effect, { duration: "4 seconds", onTimeout: () => new Error(`${what} did not end`) })
      const scope = yield* Scope.make()
      const state = yield* SubscriptionRef.make("connected")
      const untilClosed = yield* Scope.extend(LiveKitAdapter.endOnClose, scope)
      // Added after endOnClose, so run before it: as an adapter's disconnect.
      yield* Scope.addFinalizer(scope, SubscriptionRef.set(state, "disconnected"))
      const started = yield* Deferred.make<void>()
      const reader = yield* Effect.fork(
        Stream.runCollect(Stream.tap(untilClosed(state.changes), () => Deferred.succeed(started, undefined)))
      )
      yield* within("the reader's start", Deferred.await(started))
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* within("the reader", Fiber.join(reader))), ["connected", "disconnected"])
      yield* within("a later reader", Stream.runDrain(untilClosed(state.changes)))
    }))
})
