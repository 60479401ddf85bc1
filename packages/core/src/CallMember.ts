/**
 * One participant of a MatrixRTC call, whatever dialect announced it.
 * The codecs in `Membership.ts` read events into this and write it back out.
 */
import type { Option } from "effect"

export type MembershipDialect =
  /** `org.matrix.msc3401.call.member` per-device state event (the default we write). */
  | "session"
  /** Sticky `org.matrix.msc4143.rtc.member` (MSC4143/MSC4354). */
  | "sticky"
  /** Legacy `{memberships: [...]}` array (read-only, flagged). */
  | "legacy"

/** A transport entry; `livekit` ones carry the auth-service base URL. */
export interface Transport {
  readonly type: string
  readonly livekitServiceUrl?: string | undefined
  /** Every other key, kept so that nothing is lost on a round trip. */
  readonly raw: Readonly<Record<string, unknown>>
}

export interface CallMember {
  readonly dialect: MembershipDialect
  readonly userId: string
  readonly deviceId: string
  /** `membershipID` (session) or `member.id` (sticky). */
  readonly memberId: string
  /** Slot, e.g. `m.call#ROOM`. */
  readonly slotId: string
  readonly application: string
  readonly scope: Option.Option<string>
  readonly callIntent: Option.Option<string>
  /** `focus_active.focus_selection` for session events. */
  readonly focusSelection: Option.Option<string>
  readonly transports: ReadonlyArray<Transport>
  /** ms: `created_ts`, else the event's `origin_server_ts`. */
  readonly createdTs: number
  /**
   * Absolute ms at which the membership counts as expired (`expiresAt - now <= 0`).
   * Session/legacy: from `created_ts`/`expires`. Sticky: the sticky TTL (≤ 1 h after receipt),
   * since sticky contents carry no `expires`.
   */
  readonly expiresAt: Option.Option<number>
  /** The LiveKit identity peers expect for this member (JS-SDK `rtcBackendIdentity`). */
  readonly rtcBackendIdentity: string
  readonly eventId: string
  readonly stateKey: string | undefined
}
