/**
 * The core `LiveKit` port on livekit-client, plus a richer browser handle
 * (`BrowserLiveKit`): local microphone/camera publishing and remote tracks that
 * can be attached to media elements.
 *
 * Both tags are served by one service, so the connection `join` opens through
 * the portable `LiveKit` tag is the same one the UI reaches through
 * `BrowserLiveKit.connection` (the `Layer.succeedContext` pattern of
 * effect-style.md §1.3 b), or, with several calls open, through
 * `browserConnection(call.connection)`.
 *
 * ICE servers are never configured here: livekit-client then uses exactly the
 * ones the SFU sends in its join response, which the local stack limits to a
 * loopback dummy (local-stack.md §5.7). Handing public STUN servers to the
 * browser would make test runs reach the internet.
 */
import type { Scope } from "effect"
import type { Layer, Option } from "effect"
import { Context, Deferred, Duration, Effect, Exit, PubSub, Redacted, Runtime, Stream, SubscriptionRef } from "effect"
import { EventListeners, LiveKitAdapter } from "@matrixrtc-effect/core"
import type { ConnectOptions, DisconnectReason, LiveKit, LiveKitConnection, PlatformLiveKitService } from "@matrixrtc-effect/core"
import { Room, RoomEvent, TrackEvent } from "livekit-client"
import type { DisconnectReason as LkDisconnectReason, LocalTrackPublication, RoomOptions } from "livekit-client"
import { connectFailedOf, disconnectReasonOf } from "./internal/livekitMapping.ts"
import * as RoomView from "./internal/RoomView.ts"
import { MediaFailed, mediaFailedOf } from "./MediaFailed.ts"

export { MediaFailed }

export type MediaKind = "audio" | "video"
export type MediaSource = "microphone" | "camera" | "screen" | "other"

/** A media track of this connection, local or remote, that the page can render. */
export interface MediaTrack {
  /** LiveKit track sid; stable for the life of the publication, a good render key. */
  readonly sid: string
  /** The publishing participant's LiveKit identity (ours for local tracks). */
  readonly participant: string
  readonly kind: MediaKind
  readonly source: MediaSource
  readonly local: boolean
  readonly muted: boolean
  readonly mediaStreamTrack: MediaStreamTrack
  /**
   * Attaches the track to `element` (or a new `<audio>`/`<video>` element) and
   * returns the element. Detach with `detach` when the element goes away.
   */
  readonly attach: (element?: HTMLMediaElement) => Effect.Effect<HTMLMediaElement>
  readonly detach: (element: HTMLMediaElement) => Effect.Effect<void>
  /** RTCStatsReport of the track's sender/receiver (inbound-rtp for remote tracks), if there is one yet. */
  readonly stats: Effect.Effect<Option.Option<RTCStatsReport>>
}

/** The browser view of one SFU connection: the portable part plus media. */
export interface BrowserConnection extends LiveKitConnection {
  readonly remoteTracks: Effect.Effect<ReadonlyArray<MediaTrack>>
  /** The current subscribed remote tracks, then the list after every change. */
  readonly remoteTracksChanges: Stream.Stream<ReadonlyArray<MediaTrack>>
  readonly localTracks: Effect.Effect<ReadonlyArray<MediaTrack>>
  readonly localTracksChanges: Stream.Stream<ReadonlyArray<MediaTrack>>
  /** Captures and publishes the microphone (true) or unpublishes it (false). */
  readonly setMicrophoneEnabled: (enabled: boolean) => Effect.Effect<void, MediaFailed>
  readonly setCameraEnabled: (enabled: boolean) => Effect.Effect<void, MediaFailed>
  /** Media failures that happened without a caller to report to (publish-on-connect). */
  readonly mediaErrors: Stream.Stream<MediaFailed>
  /**
   * Resumes audio playback after a user gesture, for browsers that blocked
   * autoplay (`canPlaybackAudio` false).
   */
  readonly startAudio: Effect.Effect<void>
  readonly canPlaybackAudio: Effect.Effect<boolean>
}

export type BrowserLiveKitService = PlatformLiveKitService<BrowserConnection>

const handles = LiveKitAdapter.handles<BrowserConnection>()

/**
 * The browser handle behind a connection the portable code holds, e.g. the
 * `connection` of a joined call, when this adapter opened it. Unlike
 * `BrowserLiveKit.connection` (the most recent connection) it finds the right
 * one while several calls are open.
 */
export const browserConnection: (connection: LiveKitConnection) => Option.Option<BrowserConnection> = handles.of

export class BrowserLiveKit extends Context.Tag("@matrixrtc-effect/browser/BrowserLiveKit")<
  BrowserLiveKit,
  BrowserLiveKitService
>() {}

export interface BrowserLiveKitOptions {
  /** Publish these as soon as the connection is up; failures go to `mediaErrors`. Default: both false. */
  readonly publishOnConnect?: { readonly microphone?: boolean; readonly camera?: boolean } | undefined
  /** Default connect bound when the caller passes none. Default 20 s. */
  readonly connectTimeoutMs?: number | undefined
  /** Bound for the disconnect on scope close. Default 3 s. */
  readonly disconnectTimeoutMs?: number | undefined
  /**
   * Extra livekit-client room options (codecs, adaptive stream, …). `disconnectOnPageLeave`
   * defaults to false here: use `leaveOnPageHide` to leave when the page goes away.
   */
  readonly roomOptions?: RoomOptions | undefined
}

// Events after which the room is re-read (RoomView.sync publishes only what changed).
const refreshEvents = [
  ...LiveKitAdapter.roomChangeEvents.map((name) => RoomEvent[name]),
  RoomEvent.TrackMuted,
  RoomEvent.TrackUnmuted,
  RoomEvent.LocalTrackPublished,
  RoomEvent.LocalTrackUnpublished,
  // A camera/microphone switch (restartTrack) replaces the MediaStreamTrack inside the same
  // publication; livekit-client says so only with these two (the room one only when the device changed).
  RoomEvent.ActiveDeviceChanged
] as const

/**
 * Completes when the page fires `pagehide` after this scope opened (never outside a page).
 * A signal, not a flag read once: the leave that waits on it may have started before our
 * listener ran (an app's `leaveOnPageHide` registered before the connection exists runs
 * first) or before the page was hidden at all.
 */
const pageHidden: Effect.Effect<Deferred.Deferred<void>, never, Scope.Scope> = Effect.gen(function*() {
  const hidden = yield* Deferred.make<void>()
  const onPageHide = () => {
    Deferred.unsafeDone(hidden, Exit.void)
  }
  const page = typeof globalThis.addEventListener === "function" ? globalThis : undefined
  if (page !== undefined) {
    yield* Effect.acquireRelease(
      Effect.sync(() => page.addEventListener("pagehide", onPageHide)),
      () => Effect.sync(() => page.removeEventListener("pagehide", onPageHide))
    )
  }
  return hidden
})

// ---------------------------------------------------------------------------------------

export const make = (options: BrowserLiveKitOptions = {}): Effect.Effect<BrowserLiveKitService> =>
  Effect.gen(function*() {
    const current = yield* LiveKitAdapter.connections(handles)

    const connect = (url: string, jwt: Redacted.Redacted<string>, connectOptions?: ConnectOptions) =>
      Effect.gen(function*() {
        // Listeners are plain callbacks; they feed Effect state through the caller's runtime
        // (effect-style.md §9.1) rather than a nested Effect.run*. runFork, not runSync: it
        // runs synchronously as far as it can and never throws if an update has to wait.
        const run = Runtime.runFork(yield* Effect.runtime<never>())
        // disconnectOnPageLeave off: livekit-client would disconnect on `beforeunload` too, which
        // the app may still cancel ("Leave the call?" → Stay), and the call would end as
        // SfuDisconnected. `leaveOnPageHide` is what leaves when the page really goes.
        const room = new Room({ adaptiveStream: true, dynacast: true, disconnectOnPageLeave: false, ...options.roomOptions })

        const view = yield* RoomView.make(room)
        const reasons = yield* PubSub.sliding<DisconnectReason>(64)
        const mediaErrors = yield* PubSub.sliding<MediaFailed>(16)

        const refresh = () => void run(view.sync)
        const onLocalTrackPublished = (pub: LocalTrackPublication) => void pub.track?.on(TrackEvent.Restarted, refresh)
        const onLocalTrackUnpublished = (pub: LocalTrackPublication) => void pub.track?.off(TrackEvent.Restarted, refresh)
        const onDisconnected = (reason?: LkDisconnectReason) => {
          run(PubSub.publish(reasons, disconnectReasonOf(reason)))
        }

        // Finalizers run in reverse: the disconnect (registered second) runs while the
        // listeners are still attached, so the final "disconnected" state is observed.
        yield* EventListeners.scoped(room, [
          ...refreshEvents.map((e) => [e, refresh] as const),
          [RoomEvent.Disconnected, onDisconnected],
          [RoomEvent.LocalTrackPublished, onLocalTrackPublished],
          [RoomEvent.LocalTrackUnpublished, onLocalTrackUnpublished]
        ])
        // Once the page has fired pagehide it is being torn down: its timers and network
        // events may never run again, so a disconnect that waits for them would hold back
        // the membership leave queued behind it (Call.join leaves the SFU first). So the wait
        // ends at pagehide, whether the disconnect started before or after it; the disconnect
        // itself (its first step sends the SFU leave) carries on as far as the page lives.
        const hidden = yield* pageHidden
        const timeout = Duration.millis(options.disconnectTimeoutMs ?? 3000)
        // One disconnect however many ask for it (the caller, the scope, an aborted connect);
        // later callers wait for the first. Its final state reaches the refs through the
        // Disconnected event.
        const disconnect = yield* Effect.cached(
          LiveKitAdapter.disconnect({ start: () => room.disconnect(), timeout, until: Deferred.await(hidden) }).pipe(
            Effect.withSpan("BrowserLiveKit.disconnect")
          )
        )
        // Before the disconnect's finalizer, so the streams end after it (with the state its Disconnected event set).
        const untilClosed = yield* LiveKitAdapter.endOnClose
        // Cleanup first, then the connect as an ordinary interruptible step (effect-style.md §3).
        yield* Effect.addFinalizer(() => disconnect)

        yield* LiveKitAdapter.connect({
          url,
          timeoutMs: connectOptions?.timeoutMs ?? options.connectTimeoutMs,
          span: "BrowserLiveKit.connect",
          start: () => room.connect(url, Redacted.value(jwt)),
          // Interruption (including the timeout) aborts the SDK's own connect attempt at once,
          // through the same disconnect the scope's finalizer then waits for.
          onInterrupt: () => void run(disconnect),
          failure: connectFailedOf
        })
        yield* Effect.logDebug("connected to LiveKit").pipe(
          Effect.annotateLogs({ url, room: room.name, identity: room.localParticipant.identity })
        )

        const setEnabled = (source: "microphone" | "camera", enabled: boolean) =>
          Effect.tryPromise({
            try: () =>
              source === "microphone"
                ? room.localParticipant.setMicrophoneEnabled(enabled)
                : room.localParticipant.setCameraEnabled(enabled),
            catch: (e) => mediaFailedOf(source, e)
          }).pipe(Effect.asVoid)

        const connection: BrowserConnection = {
          identity: room.localParticipant.identity,
          roomName: room.name,
          connectionState: SubscriptionRef.get(view.states),
          connectionStates: untilClosed(view.states.changes),
          remoteParticipants: SubscriptionRef.get(view.participants),
          remoteParticipantsChanges: untilClosed(view.participants.changes),
          disconnectReasons: untilClosed(Stream.fromPubSub(reasons)),
          disconnect,
          remoteTracks: SubscriptionRef.get(view.remoteTracks),
          remoteTracksChanges: untilClosed(view.remoteTracks.changes),
          localTracks: SubscriptionRef.get(view.localTracks),
          localTracksChanges: untilClosed(view.localTracks.changes),
          setMicrophoneEnabled: (enabled) => setEnabled("microphone", enabled),
          setCameraEnabled: (enabled) => setEnabled("camera", enabled),
          mediaErrors: untilClosed(Stream.fromPubSub(mediaErrors)),
          startAudio: Effect.promise(() => room.startAudio().catch(() => undefined)),
          canPlaybackAudio: Effect.sync(() => room.canPlaybackAudio)
        }

        yield* current.opened(connection)

        // Publishing is not part of connecting: a missing camera must not fail the call (EC does the same).
        const publish = options.publishOnConnect
        for (const source of ["microphone", "camera"] as const) {
          if (publish?.[source] === true) {
            yield* setEnabled(source, true).pipe(
              Effect.tapError((e) => Effect.logWarning(e.message)),
              Effect.catchTag("MediaFailed", (e) => PubSub.publish(mediaErrors, e)),
              Effect.forkScoped
            )
          }
        }
        return connection
      })

    return LiveKitAdapter.service(current, connect)
  })

/** Provides both `BrowserLiveKit` and the portable core `LiveKit` from one service. */
export const layer = (options: BrowserLiveKitOptions = {}): Layer.Layer<BrowserLiveKit | LiveKit> =>
  LiveKitAdapter.layer(BrowserLiveKit, make(options))
