/**
 * The core `LiveKit` port on @livekit/rtc-node, plus a richer node handle
 * (`NodeLiveKit`): publish PCM audio (a tone or a WAV file) and read remote
 * audio frames as a Stream, so tests can check that sound arrives.
 *
 * Both tags are served by one service (effect-style.md §1.3 b), so the
 * connection `join` opens through `LiveKit` is the one reached through
 * `NodeLiveKit.connection`, or, with several calls open, through
 * `nodeConnection(call.connection)`.
 *
 * rtc-node runs a native (Rust, FFI) runtime that keeps the process alive until
 * `dispose()` is called. The layer owns that: it is scoped and disposes the
 * runtime when the last layer using it closes (`ffiRuntime` below).
 *
 * ICE servers are never configured here: rtc-node then uses the ones the SFU
 * sends in its join response, which the local stack limits to a loopback dummy.
 */
import { ConnectFailed, EventListeners, LiveKitAdapter, safeCause } from "@matrixrtc-effect/core"
import type {
  ConnectionState,
  ConnectOptions,
  DisconnectReason,
  LiveKit,
  LiveKitConnection,
  PlatformLiveKitService,
  RemoteParticipant
} from "@matrixrtc-effect/core"
import {
  AudioFrame,
  AudioSource,
  AudioStream,
  ConnectionState as LkConnectionState,
  DisconnectReason as LkDisconnectReason,
  dispose as disposeFfi,
  LocalAudioTrack,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource
} from "@livekit/rtc-node"
import type { RemoteTrack, RemoteTrackPublication, RemoteParticipant as LkRemoteParticipant } from "@livekit/rtc-node"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import type { Scope } from "effect"
import type { Layer } from "effect"
import { Context, Deferred, Duration, Effect, Equivalence, Option, PubSub, Queue, Redacted, Ref, Runtime, Stream, SubscriptionRef } from "effect"
import { AudioFailed, readWav, toneFrame } from "./Audio.ts"
import type { Pcm } from "./Audio.ts"

// ---------------------------------------------------------------------------------------
// Public shapes

/** What to publish as the local audio track. All audio is 16-bit PCM, sent in 10 ms frames. */
export type AudioInput =
  | {
      readonly _tag: "Tone"
      readonly toneHz: number
      /** 0..1 of full scale; default 0.3. */
      readonly amplitude?: number | undefined
      /** Default 48000. */
      readonly sampleRate?: number | undefined
      /** Default 1. */
      readonly channels?: number | undefined
    }
  | {
      readonly _tag: "Wav"
      readonly path: string
      /** Start again at the end; default true (a call participant should not fall silent). */
      readonly loop?: boolean | undefined
    }
  | { readonly _tag: "Pcm"; readonly pcm: Pcm; readonly loop?: boolean | undefined }

export interface PublishedAudio {
  readonly trackSid: string
  readonly trackName: string
  /** 10 ms frames handed to the SFU so far. */
  readonly framesSent: Effect.Effect<number>
  /** Completes when a non-looping input has been played out; never for tones and loops. */
  readonly done: Effect.Effect<void, AudioFailed>
}

/** A chunk of a remote participant's audio, as decoded by the SFU client. */
export interface RemoteAudioFrame {
  readonly participant: string
  readonly trackSid: string
  /** Interleaved signed 16-bit samples. */
  readonly samples: Int16Array
  readonly sampleRate: number
  readonly channels: number
}

export interface RemoteAudioOptions {
  /** Only this participant's audio; default the first remote audio track. */
  readonly participant?: string | undefined
  /** Resample to this rate; default 48000. */
  readonly sampleRate?: number | undefined
  /** Default 1. */
  readonly channels?: number | undefined
}

/** The node view of one SFU connection: the portable part plus audio. */
export interface NodeConnection extends LiveKitConnection {
  /** Publishes `input` as a microphone track until the scope closes (then unpublishes it). */
  readonly publishAudio: (
    input: AudioInput,
    options?: { readonly name?: string | undefined }
  ) => Effect.Effect<PublishedAudio, AudioFailed, Scope.Scope>
  /**
   * The frames of a remote audio track: waits for a matching subscribed track,
   * then emits its frames until the track goes away or the stream is closed.
   */
  readonly remoteAudio: (options?: RemoteAudioOptions) => Stream.Stream<RemoteAudioFrame, AudioFailed>
}

export type NodeLiveKitService = PlatformLiveKitService<NodeConnection>

export class NodeLiveKit extends Context.Tag("@matrixrtc-effect/node/NodeLiveKit")<NodeLiveKit, NodeLiveKitService>() {}

const handles = LiveKitAdapter.handles<NodeConnection>()

/**
 * The node handle behind a connection the portable code holds, e.g. the `connection` of a
 * joined call, when this adapter opened it. Unlike `NodeLiveKit.connection` (the most recent
 * connection) it finds the right one while several calls are open.
 */
export const nodeConnection: (connection: LiveKitConnection) => Option.Option<NodeConnection> = handles.of

export interface NodeLiveKitOptions {
  /** Default connect bound when the caller passes none. Default 20 s. */
  readonly connectTimeoutMs?: number | undefined
  /** Bound for the disconnect on scope close. Default 5 s. */
  readonly disconnectTimeoutMs?: number | undefined
  /** Subscribe to remote tracks automatically (needed for `remoteAudio`). Default true. */
  readonly autoSubscribe?: boolean | undefined
  /**
   * Level of rtc-node's own logger (pino, JSON lines on **stdout**). rtc-node sets it to
   * `debug` unless NODE_ENV=production, which would mix JSON log lines into a CLI's
   * stdout. Process-wide, like the native runtime. Default "warn"; "keep" leaves it alone.
   */
  readonly rtcLogLevel?: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent" | "keep" | undefined
}

// ---------------------------------------------------------------------------------------
// SDK → port mapping

const disconnectReasonOf = LiveKitAdapter.disconnectReasonOf(LkDisconnectReason)

const trackKinds: LiveKitAdapter.TrackKinds<TrackKind> = { audio: TrackKind.KIND_AUDIO, video: TrackKind.KIND_VIDEO }

/**
 * rtc-node rejects a failed join with a `ConnectError` whose message is the
 * Rust SDK's error text, which includes the signal server's HTTP answer
 * (`/rtc/validate`): 401 for a bad or expired token, 404 when the room does
 * not exist (auto_create off and the auth service did not create it).
 */
export const connectFailedOf = (url: string, e: unknown): ConnectFailed => {
  // The Rust SDK echoes the signal URL, whose `access_token` query parameter is the JWT.
  const cause = safeCause(e)
  const error = cause.message
  const status = /\b(4\d\d|5\d\d)\b/.exec(error)?.[1]
  const detail = { url, error, cause, ...(status !== undefined ? { status: Number(status) } : {}) }
  if (/not.?found|404|does not exist/i.test(error)) return new ConnectFailed({ reason: "RoomNotFound", ...detail })
  if (/unauthori[sz]ed|forbidden|permission|invalid token|token is expired|401|403/i.test(error)) {
    return new ConnectFailed({ reason: "Rejected", ...detail })
  }
  if (/timed? ?out/i.test(error)) return new ConnectFailed({ reason: "Timeout", ...detail })
  return new ConnectFailed({ reason: "Transport", ...detail })
}

// Events after which the derived state is recomputed from the room.
const refreshEvents = [...LiveKitAdapter.roomChangeEvents.map((name) => RoomEvent[name]), RoomEvent.Reconnecting]

// ---------------------------------------------------------------------------------------
// The native runtime

/**
 * rtc-node's FFI runtime is process-wide and keeps Node's event loop alive
 * until `dispose()`. Layers count their users and the last one out disposes
 * it. rtc-node cannot start it again: after a dispose, a connect never hears
 * back from the native side (measured: it hangs until our timeout). So once it
 * is disposed, connects fail at once with a message that says why; a program
 * that needs LiveKit again later keeps one layer open for its whole life.
 */
let ffiUsers = 0
let ffiDisposed = false

const ffiRuntime = (disposeTimeout: Duration.DurationInput) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      ffiUsers++
    }),
    () =>
      Effect.suspend(() => {
        ffiUsers--
        if (ffiUsers > 0) return Effect.void
        ffiDisposed = true
        return Effect.tryPromise(() => disposeFfi()).pipe(
          Effect.interruptible,
          Effect.timeout(disposeTimeout),
          Effect.catchAll((e) => Effect.logWarning("rtc-node dispose did not finish", e))
        )
      })
  )

/**
 * rtc-node does not export its logger, and its ESM entry re-exports the CJS build,
 * so the logger module is reached through `require` by file name (the same cached
 * instance rtc-node uses).
 */
const setRtcLogLevel = (level: string) =>
  Effect.try(() => {
    const require = createRequire(import.meta.url)
    const logModule = join(dirname(require.resolve("@livekit/rtc-node")), "log.cjs")
    const { log } = require(logModule) as { log?: { level: string } }
    if (log !== undefined) log.level = level
  }).pipe(Effect.catchAll((e) => Effect.logDebug("could not set rtc-node's log level", e)))

// ---------------------------------------------------------------------------------------
// Audio

const FRAME_MS = 10

/**
 * The 10 ms frames of an input. `fill` writes the next frame into the feed
 * loop's one buffer; false at the end of a non-looping input.
 */
interface FrameSource {
  readonly sampleRate: number
  readonly channels: number
  readonly samplesPerChannel: number
  readonly fill: (into: Int16Array) => boolean
}

const frameSourceOf = (input: AudioInput): Effect.Effect<FrameSource, AudioFailed> => {
  switch (input._tag) {
    case "Tone": {
      const sampleRate = input.sampleRate ?? 48_000
      const channels = input.channels ?? 1
      // The tone's phase starts over every whole second, so one second of it, computed once, loops.
      const second = toneFrame({
        toneHz: input.toneHz,
        sampleRate,
        channels,
        samplesPerChannel: sampleRate,
        offset: 0,
        amplitude: input.amplitude ?? 0.3
      })
      return Effect.succeed(pcmFrames({ samples: second, sampleRate, channels }, true))
    }
    case "Wav":
      return readWav(input.path).pipe(Effect.map((pcm) => pcmFrames(pcm, input.loop ?? true)))
    case "Pcm":
      return Effect.succeed(pcmFrames(input.pcm, input.loop ?? true))
  }
}

const pcmFrames = (pcm: Pcm, loop: boolean): FrameSource => {
  const samplesPerChannel = Math.max(1, Math.floor((pcm.sampleRate * FRAME_MS) / 1000))
  const frameLength = samplesPerChannel * pcm.channels
  let at = 0
  return {
    sampleRate: pcm.sampleRate,
    channels: pcm.channels,
    samplesPerChannel,
    fill: (into) => {
      if (pcm.samples.length === 0) return false
      if (at >= pcm.samples.length) {
        if (!loop) return false
        at = 0
      }
      const chunk = pcm.samples.subarray(at, at + frameLength)
      into.set(chunk)
      into.fill(0, chunk.length) // the last frame is padded with silence
      at += frameLength
      return true
    }
  }
}

// ---------------------------------------------------------------------------------------

export const make = (options: NodeLiveKitOptions = {}): Effect.Effect<NodeLiveKitService> =>
  Effect.gen(function* () {
    const current = yield* LiveKitAdapter.connections(handles)
    const disconnectTimeout = Duration.millis(options.disconnectTimeoutMs ?? 5000)

    const connect = (url: string, jwt: Redacted.Redacted<string>, connectOptions?: ConnectOptions) =>
      Effect.gen(function* () {
        if (ffiDisposed) {
          return yield* new ConnectFailed({
            reason: "Transport",
            url,
            error:
              "rtc-node's native runtime was disposed when the last NodeLiveKit layer closed, and it cannot be started again in this process; keep one NodeLiveKit (or NodeCall) layer open for as long as the program connects"
          })
        }
        // Listeners are plain callbacks; they feed Effect state through the caller's runtime.
        // runFork, not runSync: an update that has to wait for a ref's lock (a subscriber
        // that yielded inside it) would make runSync throw into rtc-node's event dispatch.
        const run = Runtime.runFork(yield* Effect.runtime<never>())
        const room = new Room()
        let connected = false

        const stateOf = (): ConnectionState => {
          if (!connected) return "connecting"
          switch (room.connectionState) {
            case LkConnectionState.CONN_CONNECTED:
              return "connected"
            case LkConnectionState.CONN_RECONNECTING:
              return "reconnecting"
            default:
              return "disconnected"
          }
        }

        const states = yield* SubscriptionRef.make<ConnectionState>("connecting")
        const participants = yield* SubscriptionRef.make<ReadonlyArray<RemoteParticipant>>([])
        const reasons = yield* PubSub.sliding<DisconnectReason>(64)
        // Remote audio waiters re-check on every subscription change.
        const trackChanges = yield* PubSub.sliding<void>(16)

        // One refresh at a time, each reading the room when it runs: one that had to wait
        // still writes what is current, so forked refreshes cannot leave a stale state.
        const lock = yield* Effect.makeSemaphore(1)
        const refreshed = lock.withPermits(1)(
          Effect.suspend(() =>
            Effect.all(
              [
                // Most events leave the state and the participants as they were; only a change is news.
                LiveKitAdapter.setIfChanged(states, Equivalence.string, stateOf),
                LiveKitAdapter.setIfChanged(participants, LiveKitAdapter.sameParticipants, () =>
                  LiveKitAdapter.participantsOf(room.remoteParticipants.values(), trackKinds)
                ),
                PubSub.publish(trackChanges, undefined)
              ],
              { discard: true }
            )
          )
        )
        const refresh = () => void run(refreshed)
        // Publishing to a sliding PubSub never waits, so reasons keep the order of the events.
        const onDisconnected = (reason: LkDisconnectReason) => void run(PubSub.publish(reasons, disconnectReasonOf(reason)))

        yield* EventListeners.scoped(room, [
          ...refreshEvents.map((e) => [e, refresh] as const),
          [RoomEvent.Disconnected, onDisconnected]
        ])

        // rtc-node cannot abort a pending connect, so the disconnect first lets it settle;
        // if it outlives the bound, the disconnect still follows it in the background.
        let connecting: Promise<void> = Promise.resolve()
        // Not cached, unlike the browser's: rtc-node's own disconnect returns at once for a room that
        // is already disconnected, and each call re-reads the room after it.
        const disconnect = LiveKitAdapter.disconnect({
          start: () =>
            connecting.then(
              () => room.disconnect(),
              () => undefined
            ),
          timeout: disconnectTimeout
        }).pipe(Effect.zipRight(refreshed), Effect.withSpan("NodeLiveKit.disconnect"))
        // Before the disconnect's finalizer, so the streams end after it (with its "disconnected").
        const untilClosed = yield* LiveKitAdapter.endOnClose
        // Cleanup first, then the connect as an ordinary interruptible step (effect-style.md §3).
        yield* Effect.addFinalizer(() => disconnect)

        yield* LiveKitAdapter.connect({
          url,
          timeoutMs: connectOptions?.timeoutMs ?? options.connectTimeoutMs,
          span: "NodeLiveKit.connect",
          start: () => {
            connecting = room.connect(url, Redacted.value(jwt), {
              autoSubscribe: options.autoSubscribe ?? true,
              dynacast: false
            })
            return connecting
          },
          failure: connectFailedOf
        })
        connected = true
        yield* refreshed
        const local = room.localParticipant!
        yield* Effect.logDebug("connected to LiveKit").pipe(
          Effect.annotateLogs({ url, room: room.name, identity: local.identity })
        )

        const publishAudio = (input: AudioInput, publishOptions?: { readonly name?: string | undefined }) =>
          Effect.gen(function* () {
            const frames = yield* frameSourceOf(input)
            const name = publishOptions?.name ?? "audio"
            // Released in reverse: stop feeding, unpublish, close the track, close the source.
            const source = yield* Effect.acquireRelease(
              Effect.sync(() => new AudioSource(frames.sampleRate, frames.channels)),
              (s) => Effect.promise(() => s.close())
            )
            const track = yield* Effect.acquireRelease(
              Effect.sync(() => LocalAudioTrack.createAudioTrack(name, source)),
              (t) => Effect.promise(() => t.close(false))
            )
            const publication = yield* Effect.acquireRelease(
              Effect.tryPromise({
                try: () =>
                  local.publishTrack(track, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE })),
                catch: (cause) =>
                  new AudioFailed({ reason: "Publish", detail: cause instanceof Error ? cause.message : String(cause), cause })
              }),
              (pub) =>
                Effect.tryPromise(() => local.unpublishTrack(pub.sid!)).pipe(
                  Effect.interruptible,
                  Effect.timeout(disconnectTimeout),
                  // After a disconnect there is nothing left to unpublish.
                  Effect.ignore
                )
            )
            const sent = yield* Ref.make(0)
            const done = yield* Deferred.make<void, AudioFailed>()
            // One frame object over one buffer for the whole track, refilled every 10 ms: captureFrame
            // resolves only after the native side has taken the samples. The buffer must be an
            // array of its own, not a view: rtc-node hands `data.buffer` from its start to the FFI.
            const buffer = new Int16Array(frames.samplesPerChannel * frames.channels)
            const frame = new AudioFrame(buffer, frames.sampleRate, frames.channels, frames.samplesPerChannel)
            const capture = Effect.tryPromise({
              try: () => source.captureFrame(frame),
              catch: (cause) => new AudioFailed({ reason: "Publish", detail: "captureFrame failed", cause })
            })
            const count = Ref.update(sent, (n) => n + 1)
            // captureFrame resolves once the source's queue has room, which paces the loop in real time.
            const feed = Effect.gen(function* () {
              while (frames.fill(buffer)) {
                yield* capture
                yield* count
              }
              yield* Effect.promise(() => source.waitForPlayout())
            }).pipe(Effect.exit, Effect.flatMap((exit) => Deferred.done(done, exit)))
            yield* Effect.forkScoped(feed)
            return {
              trackSid: publication.sid ?? "",
              trackName: name,
              framesSent: Ref.get(sent),
              done: Deferred.await(done)
            } satisfies PublishedAudio
          }).pipe(Effect.withSpan("NodeLiveKit.publishAudio", { attributes: { input: input._tag } }))

        /** The first subscribed remote audio track matching `participant`, waiting for one if needed. */
        const findAudioTrack = (participant: string | undefined) => {
          const lookup = (): Option.Option<{ track: RemoteTrack; publication: RemoteTrackPublication; from: LkRemoteParticipant }> => {
            for (const p of room.remoteParticipants.values()) {
              if (participant !== undefined && p.identity !== participant) continue
              for (const pub of p.trackPublications.values()) {
                if (pub.kind === TrackKind.KIND_AUDIO && pub.track !== undefined) {
                  return Option.some({ track: pub.track, publication: pub, from: p })
                }
              }
            }
            return Option.none()
          }
          // Subscribe before looking, so a track arriving in between still wakes us.
          return Effect.scoped(
            Effect.gen(function* () {
              const changes = yield* PubSub.subscribe(trackChanges)
              while (true) {
                const found = lookup()
                if (Option.isSome(found)) return found.value
                if (connected && !room.isConnected) {
                  return yield* new AudioFailed({ reason: "Subscribe", detail: "the connection closed" })
                }
                yield* Queue.take(changes)
              }
            })
          )
        }

        const remoteAudio = (audioOptions: RemoteAudioOptions = {}): Stream.Stream<RemoteAudioFrame, AudioFailed> =>
          Stream.unwrapScoped(
            Effect.gen(function* () {
              const found = yield* findAudioTrack(audioOptions.participant)
              const sampleRate = audioOptions.sampleRate ?? 48_000
              const channels = audioOptions.channels ?? 1
              const participant = found.from.identity
              const trackSid = found.publication.sid ?? ""
              return Stream.fromReadableStream({
                // Cancelling the reader (stream scope closing) disposes the native audio stream.
                evaluate: () => new AudioStream(found.track, { sampleRate, numChannels: channels }),
                onError: (cause) =>
                  new AudioFailed({ reason: "Subscribe", detail: cause instanceof Error ? cause.message : String(cause), cause })
              }).pipe(
                Stream.map(
                  (frame): RemoteAudioFrame => ({
                    participant,
                    trackSid,
                    samples: frame.data,
                    sampleRate: frame.sampleRate,
                    channels: frame.channels
                  })
                )
              )
            })
          )

        const connection: NodeConnection = {
          identity: local.identity,
          roomName: room.name ?? "",
          connectionState: SubscriptionRef.get(states),
          connectionStates: untilClosed(states.changes),
          remoteParticipants: SubscriptionRef.get(participants),
          remoteParticipantsChanges: untilClosed(participants.changes),
          disconnectReasons: untilClosed(Stream.fromPubSub(reasons)),
          disconnect,
          publishAudio,
          remoteAudio
        }

        yield* current.opened(connection)
        return connection
      })

    return LiveKitAdapter.service(current, connect)
  })

/**
 * Provides `NodeLiveKit` and the portable core `LiveKit` from one service.
 * Scoped: closing it disposes rtc-node's native runtime (when no other layer
 * uses it), which lets the process exit.
 */
export const layer = (options: NodeLiveKitOptions = {}): Layer.Layer<NodeLiveKit | LiveKit> =>
  LiveKitAdapter.layer(
    NodeLiveKit,
    Effect.gen(function* () {
      if (options.rtcLogLevel !== "keep") yield* setRtcLogLevel(options.rtcLogLevel ?? "warn")
      yield* ffiRuntime(Duration.millis(options.disconnectTimeoutMs ?? 5000))
      return yield* make(options)
    })
  )
