/**
 * What a page renders of a livekit-client room — its connection state, the
 * remote participants, and the remote and local media tracks — as
 * SubscriptionRefs that change only when the room did.
 *
 * livekit-client announces changes as a dozen kinds of events without saying
 * what changed, and one user action often fires several of them. `sync`
 * re-reads the room after each and sets a ref only when its value differs from
 * the last one; a track that did not change keeps its `MediaTrack` object, so
 * subscribers see one emission per real change and can key on identity.
 */
import { Effect, Equivalence, Option, SubscriptionRef } from "effect"
import { LiveKitAdapter } from "@matrixrtc-effect/core"
import type { ConnectionState, RemoteParticipant } from "@matrixrtc-effect/core"
import { Track } from "livekit-client"
import type { ConnectionState as LkConnectionState } from "livekit-client"
import type { MediaSource, MediaTrack } from "../BrowserLiveKit.ts"
import { connectionStateOf } from "./livekitMapping.ts"

// The parts of livekit-client's Room that `sync` reads (a Room is one; tests pass plain objects).

export interface TrackLike {
  readonly kind: Track.Kind
  readonly isLocal: boolean
  readonly mediaStreamTrack: MediaStreamTrack
  attach(): HTMLMediaElement
  attach(element: HTMLMediaElement): HTMLMediaElement
  detach(element: HTMLMediaElement): unknown
  getRTCStatsReport(): Promise<RTCStatsReport | undefined>
}

export interface PublicationLike {
  readonly trackSid: string
  readonly kind: Track.Kind
  readonly source: Track.Source
  readonly isMuted: boolean
  readonly track?: TrackLike | undefined
}

export interface ParticipantLike {
  readonly identity: string
  readonly trackPublications: ReadonlyMap<string, PublicationLike>
}

export interface RoomLike {
  readonly state: LkConnectionState
  readonly remoteParticipants: ReadonlyMap<string, ParticipantLike>
  readonly localParticipant: ParticipantLike
}

export interface RoomView {
  readonly states: SubscriptionRef.SubscriptionRef<ConnectionState>
  readonly participants: SubscriptionRef.SubscriptionRef<ReadonlyArray<RemoteParticipant>>
  readonly remoteTracks: SubscriptionRef.SubscriptionRef<ReadonlyArray<MediaTrack>>
  readonly localTracks: SubscriptionRef.SubscriptionRef<ReadonlyArray<MediaTrack>>
  /** Re-reads the room; sets only the refs whose value changed. */
  readonly sync: Effect.Effect<void>
}

const sourceOf = (s: Track.Source): MediaSource =>
  s === Track.Source.Microphone
    ? "microphone"
    : s === Track.Source.Camera
      ? "camera"
      : s === Track.Source.ScreenShare || s === Track.Source.ScreenShareAudio
        ? "screen"
        : "other"

const { participantsOf, sameParticipants, setIfChanged } = LiveKitAdapter

const trackKinds: LiveKitAdapter.TrackKinds<Track.Kind> = { audio: Track.Kind.Audio, video: Track.Kind.Video }

/** The SDK track behind each `MediaTrack` we built, to tell whether it is still the same one. */
const sdkTrackOf = new WeakMap<MediaTrack, TrackLike>()

const mediaTrackOf = (participant: string, pub: PublicationLike, track: TrackLike): MediaTrack => {
  const media: MediaTrack = {
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
  sdkTrackOf.set(media, track)
  return media
}

/** The audio/video tracks of `participants`, re-using `previous` entries whose track did not change. */
const tracksOf = (
  previous: ReadonlyArray<MediaTrack>,
  participants: Iterable<ParticipantLike>
): ReadonlyArray<MediaTrack> => {
  const bySid = new Map(previous.map((t) => [t.sid, t]))
  const tracks: Array<MediaTrack> = []
  for (const p of participants) {
    for (const pub of p.trackPublications.values()) {
      const track = pub.track
      if (track === undefined || (track.kind !== Track.Kind.Audio && track.kind !== Track.Kind.Video)) continue
      const old = bySid.get(pub.trackSid)
      const unchanged = old !== undefined &&
        old.participant === p.identity &&
        old.muted === pub.isMuted &&
        // restartTrack swaps the MediaStreamTrack inside the same SDK track
        old.mediaStreamTrack === track.mediaStreamTrack &&
        sdkTrackOf.get(old) === track
      tracks.push(unchanged ? old : mediaTrackOf(p.identity, pub, track))
    }
  }
  return tracks
}

// Unchanged tracks are re-used, so element identity is the right comparison.
const sameTracks: Equivalence.Equivalence<ReadonlyArray<MediaTrack>> = Equivalence.array(Equivalence.strict())

export const make = (room: RoomLike): Effect.Effect<RoomView> =>
  Effect.gen(function*() {
    const states = yield* SubscriptionRef.make<ConnectionState>(connectionStateOf(room.state))
    const participants = yield* SubscriptionRef.make<ReadonlyArray<RemoteParticipant>>([])
    const remoteTracks = yield* SubscriptionRef.make<ReadonlyArray<MediaTrack>>([])
    const localTracks = yield* SubscriptionRef.make<ReadonlyArray<MediaTrack>>([])
    // One sync at a time, each reading the room when it runs: a sync that had to wait
    // publishes the room as it is then, never an older reading.
    const lock = yield* Effect.makeSemaphore(1)
    const sync = lock.withPermits(1)(
      Effect.all([
        setIfChanged(states, Equivalence.string, () => connectionStateOf(room.state)),
        setIfChanged(participants, sameParticipants, () => participantsOf(room.remoteParticipants.values(), trackKinds)),
        setIfChanged(remoteTracks, sameTracks, (previous) => tracksOf(previous, room.remoteParticipants.values())),
        setIfChanged(localTracks, sameTracks, (previous) => tracksOf(previous, [room.localParticipant]))
      ], { discard: true })
    )
    return { states, participants, remoteTracks, localTracks, sync }
  })
