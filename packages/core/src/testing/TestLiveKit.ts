/**
 * An in-memory LiveKit SFU behind the `LiveKit` port: rooms with
 * participants, JWTs checked against the `TestAuthService` that issued them,
 * injectable connect failures/hangs, and test controls to drop a connection
 * mid-call or add fake remote participants. Connects and disconnects go to
 * the shared `TestCallLog`.
 */
import { Context, Effect, Layer, Option, PubSub, Redacted, Ref, Stream, SubscriptionRef } from "effect"
import { ConnectFailed } from "../CallError.ts"
import type {
  ConnectionState,
  DisconnectReason,
  LiveKitConnection,
  LiveKitService,
  RemoteParticipant
} from "../LiveKit.ts"
import { LiveKit } from "../LiveKit.ts"
import { TestAuthService } from "./TestAuthService.ts"
import type { Fault, FaultQueue } from "./TestCallLog.ts"
import { makeFaultQueue, TestCallLog } from "./TestCallLog.ts"

export type SfuOp = "connect"

export interface SfuParticipant extends RemoteParticipant {
  readonly room: string
  /** True for participants connected through this `LiveKit` service (not fakes added by a test). */
  readonly local: boolean
}

export interface TestLiveKitService {
  /** Fail status: 401/403 → Rejected, 404 → RoomNotFound, none → Transport. */
  readonly injectFault: (op: SfuOp, fault: Fault, times?: number) => Effect.Effect<void>
  readonly clearFaults: Effect.Effect<void>
  readonly participants: (room?: string) => Effect.Effect<ReadonlyArray<SfuParticipant>>
  readonly addRemoteParticipant: (
    room: string,
    identity: string,
    tracks?: ReadonlyArray<"audio" | "video" | "data">
  ) => Effect.Effect<void>
  readonly removeRemoteParticipant: (room: string, identity: string) => Effect.Effect<void>
  /** The server drops a connected participant (e.g. `ParticipantRemoved`, `ServerShutdown`), in every room or one. */
  readonly dropConnection: (identity: string, reason?: DisconnectReason, room?: string) => Effect.Effect<void>
}

export class TestLiveKit extends Context.Tag("@matrixrtc-effect/core/testing/TestLiveKit")<
  TestLiveKit,
  TestLiveKitService
>() {}

interface Live {
  readonly state: SubscriptionRef.SubscriptionRef<ConnectionState>
  readonly reasons: PubSub.PubSub<DisconnectReason>
}

export const make = Effect.gen(function*() {
  const auth = yield* TestAuthService
  const log = yield* TestCallLog
  const faults: FaultQueue<SfuOp> = yield* makeFaultQueue<SfuOp>(log, "sfu")
  const everyone = yield* SubscriptionRef.make<ReadonlyArray<SfuParticipant>>([])
  const live = yield* Ref.make<ReadonlyMap<string, Live>>(new Map())

  const remove = (room: string, identity: string) =>
    SubscriptionRef.update(everyone, (ps) => ps.filter((p) => !(p.room === room && p.identity === identity)))

  // Identities are unique per room, as on a real SFU.
  const key = (room: string, identity: string) => `${room}\u0000${identity}`

  const endConnection = (room: string, identity: string, reason: DisconnectReason, op: string) =>
    Effect.gen(function*() {
      const l = yield* Ref.modify(live, (m) => {
        const found = m.get(key(room, identity))
        if (!found) return [undefined, m]
        const rest = new Map(m)
        rest.delete(key(room, identity))
        return [found, rest]
      })
      if (!l) return
      yield* remove(room, identity)
      yield* SubscriptionRef.set(l.state, "disconnected")
      yield* PubSub.publish(l.reasons, reason)
      yield* log.append({ actor: "sfu", op, roomId: room, who: identity, detail: reason })
    })

  const connect: LiveKitService["connect"] = (url, jwt) =>
    Effect.gen(function*() {
      const claims = yield* auth.claimsFor(Redacted.value(jwt))
      const who = Option.getOrUndefined(Option.map(claims, (c) => c.identity))
      const room = Option.getOrUndefined(Option.map(claims, (c) => c.room))
      yield* log.append({ actor: "sfu", op: "connect", roomId: room, who })
      yield* faults.play("connect", { roomId: room, who }, (fault) =>
        new ConnectFailed({
          reason: fault.status === undefined ? "Transport" : fault.status === 404 ? "RoomNotFound" : "Rejected",
          url,
          status: fault.status,
          error: fault.error
        }))
      if (url !== auth.sfuUrl) return yield* Effect.fail(new ConnectFailed({ reason: "Transport", url }))
      if (Option.isNone(claims)) {
        return yield* Effect.fail(new ConnectFailed({ reason: "Rejected", url, status: 401, error: "invalid token" }))
      }
      const { identity, room: roomName } = claims.value
      const state = yield* SubscriptionRef.make<ConnectionState>("connecting")
      const reasons = yield* PubSub.unbounded<DisconnectReason>()
      // Register the leave before joining, so an interruption right after the join cannot leak the participant.
      yield* Effect.addFinalizer(() => endConnection(roomName, identity, "ClientInitiated", "disconnect"))
      // A second connection with the same identity kicks the first one, as on a real SFU.
      yield* endConnection(roomName, identity, "DuplicateIdentity", "drop")
      yield* Ref.update(live, (m) => new Map(m).set(key(roomName, identity), { state, reasons }))
      yield* SubscriptionRef.update(everyone, (ps) => [...ps, { room: roomName, identity, tracks: [], local: true }])
      yield* SubscriptionRef.set(state, "connected")
      yield* log.append({ actor: "sfu", op: "connected", roomId: roomName, who: identity })

      const others = (ps: ReadonlyArray<SfuParticipant>): ReadonlyArray<RemoteParticipant> =>
        ps.filter((p) => p.room === roomName && p.identity !== identity).map((p) => ({
          identity: p.identity,
          tracks: p.tracks
        }))
      const connection: LiveKitConnection = {
        identity,
        roomName,
        connectionState: SubscriptionRef.get(state),
        connectionStates: state.changes,
        remoteParticipants: Effect.map(SubscriptionRef.get(everyone), others),
        remoteParticipantsChanges: everyone.changes.pipe(
          Stream.map(others),
          Stream.changesWith((a, b) => JSON.stringify(a) === JSON.stringify(b))
        ),
        disconnectReasons: Stream.fromPubSub(reasons),
        disconnect: endConnection(roomName, identity, "ClientInitiated", "disconnect")
      }
      return connection
    })

  const service = LiveKit.of({ connect })
  const control = TestLiveKit.of({
    injectFault: faults.inject,
    clearFaults: faults.clear,
    participants: (room) => Effect.map(SubscriptionRef.get(everyone), (ps) => ps.filter((p) => room === undefined || p.room === room)),
    addRemoteParticipant: (room, identity, tracks = ["audio"]) =>
      Effect.zipRight(
        SubscriptionRef.update(everyone, (ps) => [...ps, { room, identity, tracks, local: false }]),
        log.append({ actor: "sfu", op: "remoteJoined", roomId: room, who: identity })
      ),
    removeRemoteParticipant: (room, identity) =>
      Effect.zipRight(remove(room, identity), log.append({ actor: "sfu", op: "remoteLeft", roomId: room, who: identity })),
    dropConnection: (identity, reason = "ParticipantRemoved", room) =>
      Effect.flatMap(
        SubscriptionRef.get(everyone),
        (ps) =>
          Effect.forEach(
            ps.filter((x) => x.identity === identity && x.local && (room === undefined || x.room === room)),
            (p) => endConnection(p.room, identity, reason, "drop"),
            { discard: true }
          )
      )
  })
  return [service, control] as const
})

/** `LiveKit` plus the `TestLiveKit` control. */
export const layer: Layer.Layer<LiveKit | TestLiveKit, never, TestAuthService | TestCallLog> = Layer.effectContext(
  Effect.map(make, ([service, control]) => Context.make(LiveKit, service).pipe(Context.add(TestLiveKit, control)))
)
