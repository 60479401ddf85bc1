import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Stream, SubscriptionRef } from "effect"
import { ConnectionState, Track } from "livekit-client"
import * as RoomView from "../src/internal/RoomView.ts"
import type { ParticipantLike, PublicationLike, RoomLike, TrackLike } from "../src/internal/RoomView.ts"

// Plain stand-ins for livekit-client's room objects: RoomView only reads these fields.
const sdkTrack = (kind: Track.Kind, isLocal: boolean): TrackLike => {
  const element = {} as HTMLMediaElement
  return {
    kind,
    isLocal,
    mediaStreamTrack: { id: `${kind}-${Math.random()}` } as unknown as MediaStreamTrack,
    attach: () => element,
    detach: () => undefined,
    getRTCStatsReport: () => Promise.resolve(undefined)
  }
}

const publication = (trackSid: string, kind: Track.Kind, source: Track.Source, isLocal = false) => ({
  trackSid,
  kind,
  source,
  isMuted: false,
  track: sdkTrack(kind, isLocal) as TrackLike | undefined
})

const participant = (identity: string, pubs: ReadonlyArray<PublicationLike>) => ({
  identity,
  trackPublications: new Map(pubs.map((p) => [p.trackSid, p]))
})

/** A pull on `ref.changes`: its first pull is the current value, each next one what was published since. */
const changesOf = <A>(ref: SubscriptionRef.SubscriptionRef<A>) =>
  Effect.map(Stream.toPull(ref.changes), (pull) => pull.pipe(Effect.map(Chunk.toReadonlyArray), Effect.orDie))

describe("RoomView", () => {
  it.scoped("a sync after which nothing changed publishes nothing; a real change is the next emission", () =>
    Effect.gen(function*() {
      const mic = publication("TR_mic", Track.Kind.Audio, Track.Source.Microphone)
      const cam = publication("TR_cam", Track.Kind.Video, Track.Source.Camera)
      const alice = participant("alice", [mic, cam])
      const ownMic = publication("TR_own", Track.Kind.Audio, Track.Source.Microphone, true)
      const local = participant("me", [ownMic])
      const remotes = new Map<string, ParticipantLike>([["alice", alice]])
      const room = {
        state: ConnectionState.Connected,
        remoteParticipants: remotes,
        localParticipant: local
      }

      const view = yield* RoomView.make(room)
      yield* view.sync
      const states = yield* changesOf(view.states)
      const participants = yield* changesOf(view.participants)
      const remoteTracks = yield* changesOf(view.remoteTracks)
      const localTracks = yield* changesOf(view.localTracks)
      assert.deepStrictEqual(yield* states, ["connected"])
      assert.deepStrictEqual(yield* participants, [[{ identity: "alice", tracks: ["audio", "video"] }]])
      const [firstRemote] = yield* remoteTracks
      assert.deepStrictEqual(firstRemote?.map((t) => [t.sid, t.participant, t.kind, t.source, t.muted]), [
        ["TR_mic", "alice", "audio", "microphone", false],
        ["TR_cam", "alice", "video", "camera", false]
      ])
      const [firstLocal] = yield* localTracks
      assert.deepStrictEqual(firstLocal?.map((t) => [t.sid, t.local]), [["TR_own", true]])

      // The SDK fires several events for one change; nothing changed for any of them.
      yield* view.sync
      yield* view.sync

      // One real change: alice mutes her microphone.
      mic.isMuted = true
      yield* view.sync
      const [mutedList, ...more] = yield* remoteTracks
      assert.lengthOf(more, 0, "one emission for one change")
      assert.deepStrictEqual(mutedList?.map((t) => [t.sid, t.muted]), [["TR_mic", true], ["TR_cam", false]])
      // The unchanged camera keeps its MediaTrack; the muted microphone gets a new one.
      assert.strictEqual(mutedList?.[1], firstRemote?.[1])
      assert.notStrictEqual(mutedList?.[0], firstRemote?.[0])

      // Neither the participants (same track kinds), our tracks nor the state changed so far:
      // the next emission of each is the next real change.
      local.trackPublications.set("TR_owncam", publication("TR_owncam", Track.Kind.Video, Track.Source.Camera, true))
      remotes.delete("alice")
      room.state = ConnectionState.Reconnecting
      yield* view.sync
      assert.deepStrictEqual(yield* states, ["reconnecting"])
      assert.deepStrictEqual(yield* participants, [[]])
      assert.deepStrictEqual(yield* remoteTracks, [[]])
      const [nextLocal, ...moreLocal] = yield* localTracks
      assert.lengthOf(moreLocal, 0)
      assert.deepStrictEqual(nextLocal?.map((t) => t.sid), ["TR_own", "TR_owncam"])
      assert.strictEqual(nextLocal?.[0], firstLocal?.[0], "our unchanged microphone keeps its MediaTrack")
    }))

  it.scoped("a replaced MediaStreamTrack (restartTrack) is a change", () =>
    Effect.gen(function*() {
      const cam = publication("TR_cam", Track.Kind.Video, Track.Source.Camera, true)
      const room: RoomLike = {
        state: ConnectionState.Connected,
        remoteParticipants: new Map(),
        localParticipant: participant("me", [cam])
      }
      const view = yield* RoomView.make(room)
      yield* view.sync
      const localTracks = yield* changesOf(view.localTracks)
      const [before] = yield* localTracks
      // restartTrack keeps the SDK track object and swaps the MediaStreamTrack inside it.
      const restarted = { id: "restarted" } as unknown as MediaStreamTrack
      Object.assign(cam.track!, { mediaStreamTrack: restarted })
      yield* view.sync
      // Read first: without a change the pull below would wait for ever.
      assert.strictEqual((yield* SubscriptionRef.get(view.localTracks))[0]?.mediaStreamTrack, restarted)
      const [after, ...more] = yield* localTracks
      assert.lengthOf(more, 0)
      assert.notStrictEqual(after?.[0]?.mediaStreamTrack, before?.[0]?.mediaStreamTrack)
      assert.strictEqual(after?.[0]?.mediaStreamTrack, restarted)
    }))
})
