/**
 * The homeserver, as the call lifecycle needs it. Implemented on matrix-js-sdk
 * by `@matrixrtc-effect/matrix-js-sdk` and in memory by `@matrixrtc-effect/core/testing`.
 *
 * The port hands back raw JSON (`unknown`) wherever the protocol decides what it
 * means (transports, .well-known, event contents): core decodes it with Schema,
 * so every adapter gets the same parsing.
 */
import type { Effect, Option, Redacted, Stream } from "effect"
import { Context, Schema } from "effect"
import type { DeviceId, RoomId, UserId } from "./Ids.ts"

export interface Session {
  readonly userId: UserId
  readonly deviceId: DeviceId
  /** Client-server API base URL, e.g. `http://127.0.0.1:8008`. */
  readonly homeserverUrl: string
}

/** The answer of `POST /_matrix/client/v3/user/{userId}/openid/request_token`. */
export interface OpenIdToken {
  readonly accessToken: Redacted.Redacted<string>
  readonly tokenType: string
  readonly matrixServerName: string
  readonly expiresIn: number
}

/** What `/versions` and `/capabilities` say about features the lifecycle uses. */
export interface ServerSupport {
  /** `org.matrix.msc4140` in `unstable_features`. */
  readonly delayedEvents: boolean
  /** `org.matrix.msc4140.delayed_events.max_delay_ms` from `/capabilities`, when advertised. */
  readonly maxDelayMs: Option.Option<number>
  /** `org.matrix.msc4354` (sticky events). */
  readonly stickyEvents: boolean
}

export type DelayedEventAction = "restart" | "send" | "cancel"

/** A call-membership event as the room delivers it (state or sticky timeline event). */
export interface RawCallEvent {
  readonly type: string
  /** Present for state events. */
  readonly stateKey: string | undefined
  readonly sender: string
  readonly eventId: string
  readonly originServerTs: number
  readonly content: unknown
  /**
   * For sticky events without `stickyExpiresAt`: how long from receipt it stays sticky (the server's unsigned
   * TTL; for an event just sent, its `msc4354_sticky.duration_ms`), if the server sent one.
   */
  readonly stickyDurationMs?: number | undefined
  /**
   * For sticky events: when (local ms) the event stops being sticky, as the client worked it out on receipt
   * (matrix-js-sdk's `unstableStickyExpiresAt`). Readers take it over `stickyDurationMs`: an event the client
   * has held for a while would otherwise get a fresh duration from whenever it is read. The same event id
   * delivered again with an earlier value (down to now) means it stopped being sticky early (redacted).
   */
  readonly stickyExpiresAt?: number | undefined
}

/**
 * A failed homeserver request. `status`/`errcode`/`error` come from the response;
 * `body` keeps the whole JSON body because some errcode variants (MSC4140 max
 * delay) carry extra keys; `retryAfterMs` merges the `Retry-After` header and
 * `retry_after_ms`.
 */
export class MatrixError extends Schema.TaggedError<MatrixError>()("MatrixError", {
  reason: Schema.Literal("Http", "Transport", "Unsupported", "Timeout"),
  status: Schema.optional(Schema.Number),
  errcode: Schema.optional(Schema.String),
  error: Schema.optional(Schema.String),
  body: Schema.optional(Schema.Unknown),
  retryAfterMs: Schema.optional(Schema.Number),
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    return [`Matrix request failed (${this.reason})`, this.status, this.errcode, this.error]
      .filter((x) => x !== undefined)
      .join(": ")
  }
}

export interface MatrixClientService {
  /** The logged-in session, or none. */
  readonly session: Effect.Effect<Option.Option<Session>>
  /** Confirms the access token still works (`/account/whoami`); fails with 401 M_UNKNOWN_TOKEN when it does not. */
  readonly whoami: Effect.Effect<{ readonly userId: string; readonly deviceId: string | undefined }, MatrixError>
  readonly requestOpenIdToken: Effect.Effect<OpenIdToken, MatrixError>
  readonly sendStateEvent: (
    roomId: RoomId,
    eventType: string,
    stateKey: string,
    content: Record<string, unknown>
  ) => Effect.Effect<{ readonly eventId: string }, MatrixError>
  /** MSC4140: schedule a state event `delayMs` from now (`?org.matrix.msc4140.delay=`). */
  readonly sendDelayedStateEvent: (
    roomId: RoomId,
    eventType: string,
    stateKey: string,
    content: Record<string, unknown>,
    delayMs: number
  ) => Effect.Effect<{ readonly delayId: string }, MatrixError>
  /** MSC4140: `POST …/delayed_events/{delayId}/{restart|send|cancel}`. */
  readonly updateDelayedEvent: (delayId: string, action: DelayedEventAction) => Effect.Effect<void, MatrixError>
  /** MSC4354 sticky timeline event, optionally delayed (MSC4140). */
  readonly sendStickyEvent: (
    roomId: RoomId,
    eventType: string,
    content: Record<string, unknown>,
    options: { readonly stickyDurationMs: number; readonly delayMs?: number | undefined }
  ) => Effect.Effect<{ readonly eventId?: string | undefined; readonly delayId?: string | undefined }, MatrixError>
  readonly serverSupport: Effect.Effect<ServerSupport, MatrixError>
  /** The room version; it decides whether call-member state keys carry a leading `_`. */
  readonly roomVersion: (roomId: RoomId) => Effect.Effect<string, MatrixError>
  /** Raw JSON of `GET /_matrix/client/unstable/org.matrix.msc4143/rtc/transports`. */
  readonly rtcTransports: Effect.Effect<unknown, MatrixError>
  /** Raw JSON of `GET /.well-known/matrix/client`. */
  readonly wellKnown: Effect.Effect<unknown, MatrixError>
  /**
   * The room's call-membership events: first every current one (state events of
   * `org.matrix.msc3401.call.member`, live sticky `org.matrix.msc4143.rtc.member`),
   * then each new one as it arrives. Ends when the client stops.
   * Also the current `m.room.member` state events of their senders, and every later
   * change of anyone's room membership, so that members who left the room drop out of
   * the call as JS-SDK drops them (an adapter that leaves them out only loses that filter).
   */
  readonly callMemberEvents: (roomId: RoomId) => Stream.Stream<RawCallEvent, MatrixError>
}

export class MatrixClient extends Context.Tag("@matrixrtc-effect/core/MatrixClient")<
  MatrixClient,
  MatrixClientService
>() {}
