/**
 * What the platform LiveKit adapters (node on @livekit/rtc-node, browser on livekit-client) share:
 * the bounded connect and disconnect, the mapping of a room's participants onto the port's values,
 * the service's "most recent connection", the lookup from a portable connection to the adapter's
 * handle, and the layer that serves the adapter's tag and the core `LiveKit` tag from one service.
 *
 * Core knows no SDK and no platform API: SDK objects come in by shape (participants and their
 * publications), as enum objects (disconnect reasons, track kinds) or as callbacks (connect and
 * disconnect promises). What an adapter does differently on purpose stays in the adapter.
 */
import type { Scope } from "effect"
import { Context, Deferred, Duration, Effect, Equivalence, Layer, Option, Stream, SubscriptionRef } from "effect"
import { ConnectFailed } from "./CallError.ts"
import { disconnectReasonFromProtocolName, LiveKit } from "./LiveKit.ts"
import type { DisconnectReason, LiveKitConnection, LiveKitService, PlatformLiveKitService, RemoteParticipant } from "./LiveKit.ts"
import { safeCause } from "./ScrubSecrets.ts"

// ---------------------------------------------------------------------------------------
// SDK values → port values

/**
 * The disconnect-reason mapping for an SDK's own generated copy of LiveKit's `DisconnectReason`
 * enum (a numeric enum, so `names[value]` is the protocol name `disconnectReasonFromProtocolName` maps).
 */
export const disconnectReasonOf =
  (names: { readonly [value: number]: string }) => (reason: number | undefined): DisconnectReason =>
    disconnectReasonFromProtocolName(reason === undefined ? undefined : names[reason])

/**
 * The room events, by their name in both SDKs' `RoomEvent` enums, after which a room's connection
 * state or participants may have changed. An adapter listens to `RoomEvent[name]` for each, plus
 * whatever else its own state depends on.
 */
export const roomChangeEvents = [
  "ConnectionStateChanged",
  "ParticipantConnected",
  "ParticipantDisconnected",
  "TrackPublished",
  "TrackUnpublished",
  "TrackSubscribed",
  "TrackUnsubscribed",
  "Reconnected",
  "Disconnected"
] as const

/** A remote participant as both SDKs expose it: its publications carry the SDK's track kind `K`. */
export interface ParticipantLike<K> {
  readonly identity: string
  readonly trackPublications: { values(): Iterable<{ readonly kind?: K | undefined }> }
}

/** Which of the SDK's track kinds are audio and video; any other kind is "data". */
export interface TrackKinds<K> {
  readonly audio: K
  readonly video: K
}

export const participantsOf = <K>(
  participants: Iterable<ParticipantLike<K>>,
  kinds: TrackKinds<K>
): ReadonlyArray<RemoteParticipant> =>
  Array.from(participants, (p) => ({
    identity: p.identity,
    tracks: Array.from(p.trackPublications.values(), (t) =>
      t.kind === kinds.audio ? "audio" as const : t.kind === kinds.video ? "video" as const : "data" as const)
  }))

/** Same identities with the same track kinds, in the same order. */
export const sameParticipants: Equivalence.Equivalence<ReadonlyArray<RemoteParticipant>> = Equivalence.array(
  Equivalence.struct({ identity: Equivalence.string, tracks: Equivalence.array(Equivalence.string) })
)

/**
 * Sets `ref` to `next(previous)` unless that is `same` as what it holds. SDKs announce changes as
 * many kinds of events without saying what changed, so a re-read after each would otherwise make
 * the ref's `changes` repeat identical values.
 */
export const setIfChanged = <A>(
  ref: SubscriptionRef.SubscriptionRef<A>,
  same: Equivalence.Equivalence<A>,
  next: (previous: A) => A
): Effect.Effect<void> =>
  Effect.flatMap(SubscriptionRef.get(ref), (previous) => {
    const value = next(previous)
    return same(previous, value) ? Effect.void : SubscriptionRef.set(ref, value)
  })

// ---------------------------------------------------------------------------------------
// Connect and disconnect

/** When neither the caller nor the adapter's options bound a connect. */
export const defaultConnectTimeoutMs = 20_000

export interface ConnectAttempt {
  readonly url: string
  /** The bound for the whole connect; `defaultConnectTimeoutMs` when undefined. */
  readonly timeoutMs: number | undefined
  /** The span the connect runs in, e.g. "NodeLiveKit.connect". */
  readonly span: string
  /** Starts the SDK's connect. */
  readonly start: () => PromiseLike<unknown>
  /** The adapter's reading of the SDK's connect error. */
  readonly failure: (url: string, error: unknown) => ConnectFailed
  /** Called at once when the connect is interrupted (its timeout included), for an SDK that can abort it. */
  readonly onInterrupt?: (() => void) | undefined
}

/** The SDK's connect, failing with ConnectFailed(Timeout) once its bound has passed. */
export const connect = (attempt: ConnectAttempt): Effect.Effect<void, ConnectFailed> => {
  const { url } = attempt
  const timeoutMs = attempt.timeoutMs ?? defaultConnectTimeoutMs
  return Effect.async<void, ConnectFailed>((resume) => {
    try {
      attempt.start().then(
        () => resume(Effect.void),
        (e) => resume(Effect.fail(attempt.failure(url, e)))
      )
    } catch (e) {
      resume(Effect.fail(attempt.failure(url, e)))
    }
    const { onInterrupt } = attempt
    return onInterrupt === undefined ? undefined : Effect.sync(onInterrupt)
  }).pipe(
    Effect.timeoutFail({
      duration: Duration.millis(timeoutMs),
      onTimeout: () => new ConnectFailed({ reason: "Timeout", url, error: `no connection after ${timeoutMs} ms` })
    }),
    Effect.withSpan(attempt.span, { attributes: { url } })
  )
}

export interface DisconnectAttempt {
  /** Starts the SDK's disconnect. */
  readonly start: () => PromiseLike<unknown>
  /** How long to wait for it; after that the wait ends with a warning (the disconnect itself goes on). */
  readonly timeout: Duration.DurationInput
  /** Ends the wait early when it completes first (the disconnect itself goes on). */
  readonly until?: Effect.Effect<void> | undefined
}

/**
 * The SDK's disconnect, bounded: one that rejects or outlives its bound is logged, never a failure,
 * so the cleanup queued behind it still runs. Interruptible, so it can be cut short even as a
 * finalizer (which runs uninterruptibly): without that neither the timeout nor `until` could end
 * the wait for a disconnect that hangs.
 */
export const disconnect = (attempt: DisconnectAttempt): Effect.Effect<void> =>
  Effect.suspend(() => {
    // Started here, before any wait: a wait cut short must not skip the disconnect (its first step
    // tells the SFU we leave).
    const done = Promise.resolve(attempt.start())
    // Observed even when nobody waits for it any more.
    done.catch(() => undefined)
    const bounded = Effect.tryPromise(() => done).pipe(
      Effect.timeout(attempt.timeout),
      Effect.catchAll((e) =>
        e._tag === "TimeoutException"
          ? Effect.logWarning("LiveKit disconnect did not finish in time")
          : Effect.logWarning("LiveKit disconnect failed", safeCause(e.error))
      )
    )
    return (attempt.until === undefined ? bounded : Effect.race(bounded, attempt.until)).pipe(Effect.interruptible)
  })

/**
 * Makes a handle's change streams end once the connect scope has closed: without it a reader not
 * scoped to the connection (e.g. one holding a joined call's handle) would wait forever after the
 * close. A reader that starts after the close ends at once.
 *
 * Add it to the connect scope before the disconnect's finalizer: finalizers run in reverse, so the
 * streams end only after the disconnect, and the final state it publishes (e.g. "disconnected")
 * still reaches a reader that was reading.
 */
export const endOnClose: Effect.Effect<<A, E, R>(changes: Stream.Stream<A, E, R>) => Stream.Stream<A, E, R>, never, Scope.Scope> =
  Effect.gen(function*() {
    const closed = yield* Deferred.make<void>()
    yield* Effect.addFinalizer(() => Deferred.succeed(closed, undefined))
    return (changes) => Stream.interruptWhen(changes, Deferred.await(closed))
  })

// ---------------------------------------------------------------------------------------
// Handles and the service

/**
 * The adapter's handles (its richer connections) by the portable connection they implement, so
 * code holding a `LiveKitConnection` (a joined call's `connection`) finds its own handle however
 * many connections are open, and an object this adapter did not open finds none.
 */
export interface Handles<C extends LiveKitConnection> {
  readonly register: (handle: C) => void
  readonly of: (connection: LiveKitConnection) => Option.Option<C>
}

export const handles = <C extends LiveKitConnection>(): Handles<C> => {
  // Weak: a handle is kept as long as its connection is, not for the life of the program.
  const byConnection = new WeakMap<LiveKitConnection, C>()
  return {
    register: (handle) => void byConnection.set(handle, handle),
    of: (connection) => Option.fromNullable(byConnection.get(views.get(connection) ?? connection))
  }
}

// The connection each view was made from (weak, as the handles).
const views = new WeakMap<LiveKitConnection, LiveKitConnection>()

/**
 * Marks `view` as another face of `connection` (e.g. a joined call's, whose streams end with the call), so
 * that looking up a handle by the view finds the connection's.
 */
export const viewOf = <V extends LiveKitConnection>(connection: LiveKitConnection, view: V): V => {
  views.set(view, views.get(connection) ?? connection)
  return view
}

/** A service's connections: the most recently opened one, and its handles. */
export interface Connections<C extends LiveKitConnection> {
  /**
   * Registers `handle` with the adapter's handles and makes it the most recent connection until
   * the scope closes (unless a newer one replaced it by then).
   */
  readonly opened: (handle: C) => Effect.Effect<void, never, Scope.Scope>
  readonly connection: Effect.Effect<Option.Option<C>>
  readonly connectionChanges: Stream.Stream<Option.Option<C>>
}

export const connections = <C extends LiveKitConnection>(registry: Handles<C>): Effect.Effect<Connections<C>> =>
  Effect.map(SubscriptionRef.make(Option.none<C>()), (current) => ({
    opened: (handle) =>
      Effect.sync(() => registry.register(handle)).pipe(
        Effect.zipRight(
          Effect.acquireRelease(SubscriptionRef.set(current, Option.some(handle)), () =>
            SubscriptionRef.update(current, (c) => (Option.contains(c, handle) ? Option.none() : c)))
        )
      ),
    connection: SubscriptionRef.get(current),
    connectionChanges: current.changes
  }))

/** The adapter's service: its connect, and the most recent connection from `current`. */
export const service = <C extends LiveKitConnection>(
  current: Connections<C>,
  connect: PlatformLiveKitService<C>["connect"]
): PlatformLiveKitService<C> => ({
  connect,
  connection: current.connection,
  connectionChanges: current.connectionChanges
})

/**
 * Serves the adapter's own tag and the core `LiveKit` tag from the one service `make` builds, so
 * the connection `join` opens through `LiveKit` is the one the app reaches through the adapter's
 * tag (effect-style.md §1.3 b). Scoped: what `make` acquires is released with the layer.
 */
export const layer = <I, S extends LiveKitService, E, R>(
  tag: Context.Tag<I, S>,
  make: Effect.Effect<S, E, R>
): Layer.Layer<I | LiveKit, E, Exclude<R, Scope.Scope>> =>
  Layer.scopedContext(Effect.map(make, (s) => Context.make(tag, s).pipe(Context.add(LiveKit, s))))
