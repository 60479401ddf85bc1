/**
 * `matrixrtc join`: join the room's call from Node, publish a tone or a WAV
 * file if asked, and show the call live (members, LiveKit participants, remote
 * audio levels) until Ctrl-C, SIGTERM, `--duration`, or the call ends without us (the SFU connection is
 * lost, the access token dies, our user is removed from the room, or the membership is refused).
 *
 * Leaving is core's: closing the join scope disconnects from the SFU first,
 * then ends the membership. `left` is printed only after that has finished.
 */
import { Call, ConnectFailed, Ids, MembershipFailed, NotAuthenticated } from "@matrixrtc-effect/core"
import type {
  CallMember,
  JwtFetchFailed,
  MatrixError,
  RemoteParticipant
} from "@matrixrtc-effect/core"
import { Chunk, Duration, Effect, Option, Ref, Schema, type Scope, Stream, SubscriptionRef } from "effect"
import type { AudioFailed } from "../Audio.ts"
import * as Audio from "../Audio.ts"
import * as NodeCall from "../NodeCall.ts"
import { setAbandonedOnForce } from "./Main.ts"
import { nodeConnection, type NodeConnection } from "../NodeLiveKit.ts"
import type { Credentials } from "./Cli.ts"
import type { UsageError } from "./Errors.ts"
import { type Output, printable } from "./Output.ts"
import * as Render from "./Render.ts"
import * as Session from "./Session.ts"

export type Media =
  | { readonly _tag: "None" }
  | { readonly _tag: "Tone"; readonly frequencyHz: number }
  /** Read (and checked) before joining, so that a bad file fails the command before others see us join. */
  | { readonly _tag: "Wav"; readonly path: string; readonly pcm: Audio.Pcm }

export interface JoinOptions {
  readonly homeserver: string
  readonly credentials: Credentials
  readonly roomId: string
  readonly media: Media
  /** Seconds; none = until interrupted. */
  readonly duration: Option.Option<number>
}

/** The call ended because our user is no longer joined to the room (kicked, banned, or left it elsewhere). */
export class RemovedFromRoom extends Schema.TaggedError<RemovedFromRoom>()("RemovedFromRoom", { roomId: Schema.String }) {
  override get message() {
    return `removed from the room ${this.roomId} (kicked, banned, or left from another device)`
  }
}

export type JoinError =
  | Ids.InvalidId
  | NotAuthenticated
  | JwtFetchFailed
  | ConnectFailed
  | MembershipFailed
  | RemovedFromRoom
  | MatrixError
  | AudioFailed
  | UsageError

/** How often remote audio levels are reported. */
const LEVEL_EVERY = Duration.seconds(1)

export const run = (options: JoinOptions, out: Output): Effect.Effect<void, JoinError> =>
  Effect.gen(function*() {
    const roomId = yield* Ids.roomId(options.roomId)
    const services = NodeCall.layer({ matrix: Session.loginOptions(options.homeserver, options.credentials) })
    yield* Session.afterLogin(options.credentials, out).pipe(Effect.zipRight(inCall(roomId, options, out)), Effect.provide(services))
  })

/**
 * Joins the call; gives it with its node SFU connection (for audio) and the own
 * membership. Leaving is the closing of the scope. Also used by the demo.
 */
export const joinCall = (roomId: Ids.RoomId) =>
  Effect.gen(function*() {
    const call = yield* Call.join(roomId)
    // This call's own handle (the service's most recent connection could be another call's).
    const conn = yield* Option.match(nodeConnection(call.connection), {
      onNone: () => Effect.dieMessage("the call's SFU connection was not opened by NodeLiveKit"),
      onSome: Effect.succeed
    })
    return { call, conn, own: yield* call.membership }
  })

/** Joins, shows the call until it should end, leaves; prints `left` once the leave is complete. */
const inCall = (roomId: Ids.RoomId, options: JoinOptions, out: Output) =>
  Effect.gen(function*() {
    const joined = yield* Ref.make(Option.none<Call.Call>())
    yield* Effect.scoped(
      Effect.gen(function*() {
        const { call, conn, own } = yield* joinCall(roomId)
        yield* Ref.set(joined, Option.some(call))
        yield* out.event(
          "joined",
          {
            roomId,
            userId: call.session.userId,
            deviceId: call.session.deviceId,
            livekitIdentity: call.connection.identity,
            livekitRoom: call.connection.roomName,
            membershipStateKey: own.stateKey ?? null,
            membershipEventType: own.eventType,
            authServiceUrl: call.authServiceUrl,
            delayedLeave: Option.isSome(own.delayId),
            delayMs: own.delayMs
          },
          // The identity and room come from the auth service's JWT.
          `joined the call in ${roomId} as ${printable(call.session.userId)} (${printable(call.session.deviceId)})\n` +
            `  LiveKit identity ${printable(call.connection.identity)} in room ${printable(call.connection.roomName)}\n` +
            `  membership state key ${printable(own.stateKey ?? "-")}; ${
              Option.isSome(own.delayId) ? `delayed leave after ${own.delayMs} ms if this process dies` : "no delayed leave (server lacks MSC4140)"
            }`
        )
        yield* setAbandonedOnForce(
          Option.isSome(own.delayId)
            ? `the membership ends by its delayed leave within ${Math.ceil(own.delayMs / 1000)} s`
            : "the membership stays until it expires (the server has no delayed leave)"
        )
        yield* publish(conn, options.media, out)
        yield* show(call, conn, out)
        yield* endCondition(roomId, options.duration, call)
        // Leave here (not only in the finalizer) so a duration end reports like Ctrl-C does.
        yield* call.leave
      })
    ).pipe(
      // Runs after the scope is closed, i.e. after the leave finished, also on Ctrl-C/SIGTERM.
      Effect.ensuring(
        Effect.flatMap(Ref.get(joined), Option.match({
          onNone: () => Effect.void,
          onSome: (call) =>
            Effect.flatMap(call.ended, (end) =>
              out.event("left", { roomId, end }, `left the call in ${roomId} (${leftHow[end]})`))
        }))
      )
    )
  })

/** What the `left` line says of each end: how the membership ended. */
const leftHow: Record<Call.CallEnd, string> = {
  Left: "SFU disconnected, membership ended",
  SfuDisconnected: "SFU disconnected, membership ended",
  TokenRejected: "SFU disconnected; with the access token gone, the membership ends by its delayed leave",
  RemovedFromRoom: "removed from the room; SFU disconnected, and others no longer list our membership",
  MembershipRejected: "the homeserver refused our membership; SFU disconnected, and the membership lapses when it expires"
}

/** Publishes the media as a track of the connection (until the scope closes) and says so. Also used by the demo. */
export const publish = (conn: NodeConnection, media: Media, out: Output): Effect.Effect<void, AudioFailed, Scope.Scope> => {
  switch (media._tag) {
    case "None":
      return Effect.void
    case "Tone":
      return conn.publishAudio({ _tag: "Tone", toneHz: media.frequencyHz }, { name: "tone" }).pipe(
        Effect.flatMap((p) =>
          out.event("publishing", { kind: "tone", frequencyHz: media.frequencyHz, trackSid: p.trackSid }, `publishing a ${media.frequencyHz} Hz tone`)
        )
      )
    case "Wav":
      return conn.publishAudio({ _tag: "Pcm", pcm: media.pcm, loop: true }, { name: "wav" }).pipe(
        Effect.flatMap((p) =>
          out.event("publishing", { kind: "wav", path: media.path, trackSid: p.trackSid }, `publishing ${printable(media.path)} (looped)`)
        )
      )
  }
}

/**
 * Background printers, living as long as the enclosing scope: member changes,
 * LiveKit participant changes, and once a second the level of each remote audio
 * track; in human mode a table whenever it changes. Also used by the demo.
 */
export const show = (call: Call.Call, conn: NodeConnection, out: Output): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const members = yield* SubscriptionRef.make<ReadonlyArray<CallMember>>([])
    const levels = yield* Ref.make<ReadonlyMap<string, number>>(new Map())
    // The table is printed when it looks different from the last one printed.
    const lastTable = yield* Ref.make("")
    const printTable = Effect.all([SubscriptionRef.get(members), conn.remoteParticipants, Ref.get(levels)]).pipe(
      Effect.map(([ms, ps, ls]) => Render.table({ members: ms, participants: ps, selfIdentity: call.connection.identity, levels: ls })),
      Effect.flatMap((text) =>
        Effect.flatMap(Ref.getAndSet(lastTable, text), (last) => (last === text ? Effect.void : out.info(text)))
      )
    )

    yield* call.members.pipe(
      Stream.runForEach((list) =>
        Effect.gen(function*() {
          const change = Render.memberChange(yield* SubscriptionRef.getAndSet(members, list), list)
          yield* out.event("member", change.fields, change.lines.join("\n") || undefined)
          yield* printTable
        })
      ),
      Effect.forkScoped
    )

    // A join returns live: only a change from that is news (also a lapse during a slow join).
    yield* Stream.concat(Stream.succeed<Call.MembershipHealth>("Live"), call.membershipHealth).pipe(
      Stream.changes,
      Stream.drop(1),
      Stream.runForEach((health) =>
        out.event(
          "health",
          { health },
          health === "ProbablyLeft"
            ? "our membership has probably lapsed: others may not see us in the call"
            : "our membership is live again"
        )
      ),
      Effect.forkScoped
    )

    // One level reader per remote participant that publishes audio, started as they appear.
    const reading = new Set<string>()
    const startLevelReaders = (list: ReadonlyArray<RemoteParticipant>) =>
      Effect.forEach(
        list.filter((p) => p.tracks.includes("audio") && !reading.has(p.identity)),
        (p) => {
          reading.add(p.identity)
          return conn.remoteAudio({ participant: p.identity }).pipe(
            Stream.groupedWithin(Number.MAX_SAFE_INTEGER, LEVEL_EVERY),
            Stream.runForEach((frames) => {
              // Silent means every frame was: the loudest one is below the threshold.
              const level = Math.max(0, ...Chunk.toReadonlyArray(frames).map((f) => Audio.rms(f.samples)))
              const silent = level < Audio.silenceRms
              return Ref.update(levels, (m) => new Map(m).set(p.identity, level)).pipe(
                Effect.zipRight(out.event("audio", { identity: p.identity, rms: level, silent }))
              )
            }),
            // A track that goes away ends its reader; a new one starts when the participant returns.
            Effect.catchAll((e) => Effect.logDebug("remote audio ended", p.identity, e.message)),
            Effect.ensuring(Effect.sync(() => reading.delete(p.identity))),
            Effect.forkScoped
          )
        },
        { discard: true }
      )

    yield* conn.remoteParticipantsChanges.pipe(
      Stream.runForEach((list) =>
        out.event("participants", { participants: list.map(Render.participantJson) }).pipe(
          Effect.zipRight(printTable),
          Effect.zipRight(startLevelReaders(list))
        )
      ),
      Effect.forkScoped
    )
  })

export type EndFailure = ConnectFailed | NotAuthenticated | MembershipFailed | RemovedFromRoom

/**
 * Core ends the call by itself (SFU, then the membership) when the SFU drops it, the homeserver stops accepting the
 * access token or our membership, or our user leaves the room: each is this command's failure, with its exit code.
 */
export const endFailure = (roomId: string, end: Call.CallEnd): Option.Option<EndFailure> => {
  switch (end) {
    case "Left":
      return Option.none()
    case "SfuDisconnected":
      return Option.some(new ConnectFailed({ reason: "Disconnected", error: "lost the connection to the SFU" }))
    case "TokenRejected":
      return Option.some(new NotAuthenticated({ reason: "TokenRejected", error: "the access token stopped working mid-call" }))
    case "RemovedFromRoom":
      return Option.some(new RemovedFromRoom({ roomId }))
    case "MembershipRejected":
      return Option.some(new MembershipFailed({ reason: "Forbidden", error: "the homeserver refused our membership mid-call" }))
  }
}

/** `--duration` elapsed, or the call ended without us (then `endFailure`). Ctrl-C interrupts this. */
const endCondition = (
  roomId: Ids.RoomId,
  duration: Option.Option<number>,
  call: Call.Call
): Effect.Effect<void, EndFailure> => {
  const lost = Effect.flatMap(call.ended, (end) =>
    Option.match(endFailure(roomId, end), { onNone: () => Effect.void, onSome: Effect.fail }))
  return Option.match(duration, {
    onNone: () => lost,
    onSome: (s) => Effect.race(Effect.sleep(Duration.seconds(s)), lost)
  })
}
