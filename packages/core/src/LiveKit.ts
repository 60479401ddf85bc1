/**
 * The LiveKit SFU, as the lifecycle needs it. Implemented on livekit-client
 * (browser), @livekit/rtc-node (node) and in memory (testing).
 * Platform adapters may offer richer handles (tracks, audio frames) through
 * their own tags; the lifecycle only needs what is here.
 */
import type { Effect, Option, Redacted, Scope, Stream } from "effect"
import { Context } from "effect"
import type { ConnectFailed } from "./CallError.ts"

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "disconnected"

export interface RemoteParticipant {
  readonly identity: string
  /** Kinds of tracks this participant publishes, e.g. `["audio"]`. */
  readonly tracks: ReadonlyArray<"audio" | "video" | "data">
}

/** Why the SFU connection ended; adapters map their SDK's reason names onto these. */
export type DisconnectReason =
  | "ClientInitiated"
  | "DuplicateIdentity"
  | "ServerShutdown"
  | "ParticipantRemoved"
  | "RoomDeleted"
  | "StateMismatch"
  | "JoinFailure"
  | "SignalClosed"
  | "Unknown"

export interface ConnectOptions {
  /** Upper bound for the whole connect; the lifecycle fails with ConnectFailed(Timeout) after it. */
  readonly timeoutMs?: number | undefined
}

export interface LiveKitConnection {
  /** Our identity as the SFU knows it (the JWT `sub`). */
  readonly identity: string
  /** The LiveKit room name (the JWT `video.room`). */
  readonly roomName: string
  readonly connectionState: Effect.Effect<ConnectionState>
  /** The current state, then every change. */
  readonly connectionStates: Stream.Stream<ConnectionState>
  readonly remoteParticipants: Effect.Effect<ReadonlyArray<RemoteParticipant>>
  /** The current remote participants, then the list after every change. */
  readonly remoteParticipantsChanges: Stream.Stream<ReadonlyArray<RemoteParticipant>>
  /** Every disconnect the SDK reports, including ones it recovered from by reconnecting. */
  readonly disconnectReasons: Stream.Stream<DisconnectReason>
  /** Leaves the room now; closing the connect scope does the same. Idempotent. */
  readonly disconnect: Effect.Effect<void>
}

export interface LiveKitService {
  /** Connects; the connection is closed when the scope closes. */
  readonly connect: (
    url: string,
    jwt: Redacted.Redacted<string>,
    options?: ConnectOptions
  ) => Effect.Effect<LiveKitConnection, ConnectFailed, Scope.Scope>
}

/**
 * A platform adapter's own service: the port, with its richer connection handle `C`, and the connection the
 * adapter opened last (so an app can reach the handle of the call `join` connected).
 */
export interface PlatformLiveKitService<C extends LiveKitConnection> extends LiveKitService {
  readonly connect: (
    url: string,
    jwt: Redacted.Redacted<string>,
    options?: ConnectOptions
  ) => Effect.Effect<C, ConnectFailed, Scope.Scope>
  /** The most recently opened connection while it is open. */
  readonly connection: Effect.Effect<Option.Option<C>>
  /** The current connection (or none), then every change. */
  readonly connectionChanges: Stream.Stream<Option.Option<C>>
}

export class LiveKit extends Context.Tag("@matrixrtc-effect/core/LiveKit")<LiveKit, LiveKitService>() {}

const disconnectReasonByProtocolName: Readonly<Record<string, DisconnectReason>> = {
  CLIENT_INITIATED: "ClientInitiated",
  DUPLICATE_IDENTITY: "DuplicateIdentity",
  SERVER_SHUTDOWN: "ServerShutdown",
  PARTICIPANT_REMOVED: "ParticipantRemoved",
  ROOM_DELETED: "RoomDeleted",
  ROOM_CLOSED: "RoomDeleted",
  STATE_MISMATCH: "StateMismatch",
  JOIN_FAILURE: "JoinFailure",
  SIGNAL_CLOSE: "SignalClosed"
}

/**
 * Maps a LiveKit protocol `DisconnectReason` by its enum *name*. livekit-client
 * and @livekit/rtc-node each ship their own generated copy of that enum, but
 * both keep the protocol's names, so adapters pass `Enum[value]` here and
 * share one mapping.
 */
export const disconnectReasonFromProtocolName = (name: string | undefined): DisconnectReason =>
  (name !== undefined ? disconnectReasonByProtocolName[name] : undefined) ?? "Unknown"
