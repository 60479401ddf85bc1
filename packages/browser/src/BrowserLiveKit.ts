/**
 * The core `LiveKit` port on livekit-client, plus a richer browser handle
 * (`BrowserLiveKit`): local microphone/camera publishing and remote tracks that
 * can be attached to media elements.
 *
 * Both tags are served by one service, so the connection `join` opens through
 * the portable `LiveKit` tag is the same one the UI reaches through
 * `BrowserLiveKit.connection` (the `Layer.succeedContext` pattern of
 * effect-style.md §1.3 b).
 *
 * ICE servers are never configured here: livekit-client then uses exactly the
 * ones the SFU sends in its join response, which the local stack limits to a
 * loopback dummy (local-stack.md §5.7). Handing public STUN servers to the
 * browser would make test runs reach the internet.
 */
import type { Scope } from "effect"
import { Context, Duration, Effect, Layer, Option, PubSub, Redacted, Runtime, Schema, Stream, SubscriptionRef } from "effect"
import { ConnectFailed, disconnectReasonFromProtocolName, LiveKit } from "@matrixrtc-effect/core"
import type {
  ConnectionState,
  ConnectOptions,
  DisconnectReason,
  LiveKitConnection,
  LiveKitService,
  RemoteParticipant
} from "@matrixrtc-effect/core"
import {
  ConnectionError,
  ConnectionErrorReason,
  ConnectionState as LkConnectionState,
  DisconnectReason as LkDisconnectReason,
  Room,
  RoomEvent,
  Track
} from "livekit-client"
import type { LocalTrackPublication, RemoteTrackPublication, RoomOptions } from "livekit-client"

/** Publishing or capturing local media failed. Not fatal for the call: the connection stays up. */
export class MediaFailed extends Schema.TaggedError<MediaFailed>()("MediaFailed", {
  source: Schema.Literal("microphone", "camera"),
  reason: Schema.Literal("PermissionDenied", "DeviceNotFound", "Publish"),
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    switch (this.reason) {
      case "PermissionDenied":
        return `the browser did not allow access to the ${this.source}`
      case "DeviceNotFound":
        return `no ${this.source} was found`
      case "Publish":
        return `publishing the ${this.source} to the SFU failed`
    }
  }
}

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

export interface BrowserLiveKitService extends LiveKitService {
  readonly connect: (
    url: string,
    jwt: Redacted.Redacted<string>,
    options?: ConnectOptions
  ) => Effect.Effect<BrowserConnection, ConnectFailed, Scope.Scope>
  /** The most recently opened connection while it is open. */
  readonly connection: Effect.Effect<Option.Option<BrowserConnection>>
  /** The current connection (or none), then every change. */
  readonly connectionChanges: Stream.Stream<Option.Option<BrowserConnection>>
}

const created = new WeakSet<LiveKitConnection>()

/**
 * The browser handle behind a connection the portable code holds, e.g. the
 * `connection` of a joined call, when this adapter opened it.
 */
export const browserConnection = (connection: LiveKitConnection): Option.Option<BrowserConnection> =>
  created.has(connection) ? Option.some(connection as BrowserConnection) : Option.none()

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
  /** Extra livekit-client room options (codecs, adaptive stream, …). */
  readonly roomOptions?: RoomOptions | undefined
}

// ---------------------------------------------------------------------------------------
// SDK → port mapping

export const connectionStateOf = (s: LkConnectionState): ConnectionState => {
  switch (s) {
    case LkConnectionState.Connected:
      return "connected"
    case LkConnectionState.Connecting:
      return "connecting"
    case LkConnectionState.Reconnecting:
    case LkConnectionState.SignalReconnecting:
      return "reconnecting"
    case LkConnectionState.Disconnected:
      return "disconnected"
  }
}

export const disconnectReasonOf = (r: LkDisconnectReason | undefined): DisconnectReason =>
  disconnectReasonFromProtocolName(r === undefined ? undefined : LkDisconnectReason[r])

/**
 * livekit-client reports a refused join as `NotAllowed` with the HTTP status of
 * its `/rtc/validate` probe: 404 is "requested room does not exist" (the room
 * was not created by the auth service and `auto_create` is off).
 */
export const connectFailedOf = (url: string, e: unknown): ConnectFailed => {
  if (e instanceof ConnectionError) {
    const status = typeof e.status === "number" ? e.status : undefined
    const detail = { url, error: e.message, cause: e, ...(status !== undefined ? { status } : {}) }
    switch (e.reason) {
      case ConnectionErrorReason.NotAllowed:
        return new ConnectFailed({ reason: status === 404 ? "RoomNotFound" : "Rejected", ...detail })
      case ConnectionErrorReason.Timeout:
        return new ConnectFailed({ reason: "Timeout", ...detail })
      case ConnectionErrorReason.Cancelled:
      case ConnectionErrorReason.LeaveRequest:
        return new ConnectFailed({ reason: "Disconnected", ...detail })
      default:
        return new ConnectFailed({ reason: "Transport", ...detail })
    }
  }
  return new ConnectFailed({ reason: "Transport", url, error: e instanceof Error ? e.message : String(e), cause: e })
}

export const mediaFailedOf = (source: "microphone" | "camera", e: unknown): MediaFailed => {
  const name = e instanceof Error ? e.name : ""
  const reason = name === "NotAllowedError" ? "PermissionDenied" : name === "NotFoundError" ? "DeviceNotFound" : "Publish"
  return new MediaFailed({ source, reason, cause: e })
}

const sourceOf = (s: Track.Source): MediaSource =>
  s === Track.Source.Microphone
    ? "microphone"
    : s === Track.Source.Camera
      ? "camera"
      : s === Track.Source.ScreenShare || s === Track.Source.ScreenShareAudio
        ? "screen"
        : "other"

const mediaTrackOf = (
  participant: string,
  pub: LocalTrackPublication | RemoteTrackPublication
): MediaTrack | undefined => {
  const track = pub.track
  if (track === undefined || (track.kind !== Track.Kind.Audio && track.kind !== Track.Kind.Video)) return undefined
  return {
    sid: pub.trackSid,
    participant,
    kind: track.kind === Track.Kind.Audio ? "audio" : "video",
    source: sourceOf(pub.source),
    local: track.isLocal,
    muted: pub.isMuted,
    mediaStreamTrack: track.mediaStreamTrack,
    attach: (element) => Effect.sync(() => (element === undefined ? track.attach() : track.attach(element))),
    detach: (element) => Effect.sync(() => void track.detach(element)),
    stats: Effect.promise(() => track.getRTCStatsReport().catch(() => undefined)).pipe(Effect.map(Option.fromNullable))
  }
}

const trackKindOf = (k: Track.Kind): "audio" | "video" | "data" =>
  k === Track.Kind.Audio ? "audio" : k === Track.Kind.Video ? "video" : "data"

// Events after which the derived lists are recomputed from the room.
const refreshEvents = [
  RoomEvent.ConnectionStateChanged,
  RoomEvent.ParticipantConnected,
  RoomEvent.ParticipantDisconnected,
  RoomEvent.TrackPublished,
  RoomEvent.TrackUnpublished,
  RoomEvent.TrackSubscribed,
  RoomEvent.TrackUnsubscribed,
  RoomEvent.TrackMuted,
  RoomEvent.TrackUnmuted,
  RoomEvent.LocalTrackPublished,
  RoomEvent.LocalTrackUnpublished,
  RoomEvent.Reconnected,
  RoomEvent.Disconnected
] as const

// ---------------------------------------------------------------------------------------

export const make = (options: BrowserLiveKitOptions = {}): Effect.Effect<BrowserLiveKitService> =>
  Effect.gen(function*() {
    const current = yield* SubscriptionRef.make(Option.none<BrowserConnection>())

    const connect = (url: string, jwt: Redacted.Redacted<string>, connectOptions?: ConnectOptions) =>
      Effect.gen(function*() {
        // Listeners are plain callbacks; they feed Effect state through the caller's runtime
        // (effect-style.md §9.1) rather than a nested Effect.run*. runFork, not runSync: it
        // runs synchronously as far as it can and never throws if an update has to wait.
        const run = Runtime.runFork(yield* Effect.runtime<never>())
        const room = new Room({ adaptiveStream: true, dynacast: true, ...options.roomOptions })

        const states = yield* SubscriptionRef.make<ConnectionState>(connectionStateOf(room.state))
        const participants = yield* SubscriptionRef.make<ReadonlyArray<RemoteParticipant>>([])
        const remoteTracks = yield* SubscriptionRef.make<ReadonlyArray<MediaTrack>>([])
        const localTracks = yield* SubscriptionRef.make<ReadonlyArray<MediaTrack>>([])
        const reasons = yield* PubSub.sliding<DisconnectReason>(64)
        const mediaErrors = yield* PubSub.sliding<MediaFailed>(16)

        const refresh = () => {
          const remote = [...room.remoteParticipants.values()]
          run(
            Effect.all([
              SubscriptionRef.set(states, connectionStateOf(room.state)),
              SubscriptionRef.set(
                participants,
                remote.map((p) => ({
                  identity: p.identity,
                  tracks: [...p.trackPublications.values()].map((t) => trackKindOf(t.kind))
                }))
              ),
              SubscriptionRef.set(
                remoteTracks,
                remote.flatMap((p) =>
                  [...p.trackPublications.values()].flatMap((pub) => mediaTrackOf(p.identity, pub) ?? [])
                )
              ),
              SubscriptionRef.set(
                localTracks,
                [...room.localParticipant.trackPublications.values()].flatMap(
                  (pub) => mediaTrackOf(room.localParticipant.identity, pub) ?? []
                )
              )
            ], { discard: true })
          )
        }
        const onDisconnected = (reason?: LkDisconnectReason) => {
          run(PubSub.publish(reasons, disconnectReasonOf(reason)))
        }

        // Finalizers run in reverse: the disconnect (registered second) runs while the
        // listeners are still attached, so the final "disconnected" state is observed.
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            for (const e of refreshEvents) room.on(e, refresh)
            room.on(RoomEvent.Disconnected, onDisconnected)
          }),
          () =>
            Effect.sync(() => {
              for (const e of refreshEvents) room.off(e, refresh)
              room.off(RoomEvent.Disconnected, onDisconnected)
            })
        )
        // Also runs as a finalizer, which is uninterruptible: without `interruptible` the
        // timeout could not cut a hanging disconnect short.
        const disconnect = Effect.tryPromise(() => room.disconnect()).pipe(
          Effect.interruptible,
          Effect.timeout(Duration.millis(options.disconnectTimeoutMs ?? 3000)),
          Effect.catchAll((e) => Effect.logWarning("LiveKit disconnect did not finish cleanly", e)),
          Effect.zipRight(Effect.sync(refresh))
        )
        // Cleanup first, then the connect as an ordinary interruptible step (effect-style.md §3).
        yield* Effect.addFinalizer(() => disconnect)

        const timeoutMs = connectOptions?.timeoutMs ?? options.connectTimeoutMs ?? 20_000
        yield* Effect.tryPromise({
          try: (signal) => {
            // Interruption (including the timeout below) aborts the SDK's own connect attempt.
            signal.addEventListener("abort", () => void room.disconnect())
            return room.connect(url, Redacted.value(jwt))
          },
          catch: (e) => connectFailedOf(url, e)
        }).pipe(
          Effect.timeoutFail({
            duration: Duration.millis(timeoutMs),
            onTimeout: () => new ConnectFailed({ reason: "Timeout", url, error: `no connection after ${timeoutMs} ms` })
          }),
          Effect.withSpan("BrowserLiveKit.connect", { attributes: { url } })
        )
        refresh()
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
          }).pipe(Effect.asVoid, Effect.tap(() => Effect.sync(refresh)))

        const connection: BrowserConnection = {
          identity: room.localParticipant.identity,
          roomName: room.name,
          connectionState: SubscriptionRef.get(states),
          // `refresh` runs on many events; report a state once, not once per event.
          connectionStates: Stream.changes(states.changes),
          remoteParticipants: SubscriptionRef.get(participants),
          remoteParticipantsChanges: participants.changes,
          disconnectReasons: Stream.fromPubSub(reasons),
          disconnect,
          remoteTracks: SubscriptionRef.get(remoteTracks),
          remoteTracksChanges: remoteTracks.changes,
          localTracks: SubscriptionRef.get(localTracks),
          localTracksChanges: localTracks.changes,
          setMicrophoneEnabled: (enabled) => setEnabled("microphone", enabled),
          setCameraEnabled: (enabled) => setEnabled("camera", enabled),
          mediaErrors: Stream.fromPubSub(mediaErrors),
          startAudio: Effect.promise(() => room.startAudio().catch(() => undefined)),
          canPlaybackAudio: Effect.sync(() => room.canPlaybackAudio)
        }

        created.add(connection)
        yield* Effect.acquireRelease(SubscriptionRef.set(current, Option.some(connection)), () =>
          SubscriptionRef.update(current, (c) => (Option.contains(c, connection) ? Option.none() : c))
        )

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

    return {
      connect,
      connection: SubscriptionRef.get(current),
      connectionChanges: current.changes
    } satisfies BrowserLiveKitService
  })

/** Provides both `BrowserLiveKit` and the portable core `LiveKit` from one service. */
export const layer = (options: BrowserLiveKitOptions = {}): Layer.Layer<BrowserLiveKit | LiveKit> =>
  Layer.effectContext(
    Effect.map(make(options), (service) => Context.make(BrowserLiveKit, service).pipe(Context.add(LiveKit, service)))
  )
