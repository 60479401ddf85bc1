/**
 * Call-membership codecs (matrixrtc-protocol.md §1): the contents we write for
 * the session dialect (default) and the sticky dialect (option), and the reader
 * that turns any membership event, including the legacy `memberships` array,
 * into a `CallMember` under matrix-js-sdk's acceptance rules.
 *
 * Everything here is pure and total: malformed input becomes a `Rejected`
 * result, never a throw. The one async step, hashing the sticky dialect's
 * LiveKit identity, is kept out of `decode` (see `toCallMember`).
 */
import { Data, Effect, Either, Option, ParseResult, Schema } from "effect"
import type { CallMember, Transport } from "./CallMember.ts"
import { UserId } from "./Ids.ts"
import { legacySlotId, liveKitIdentityHashed } from "./LiveKitNaming.ts"
import type { RawCallEvent } from "./MatrixClient.ts"

export const SessionEventType = "org.matrix.msc3401.call.member"
export const StickyEventType = "org.matrix.msc4143.rtc.member"
/** Room membership (`content.membership`): a call member whose user is not joined is not listed. */
export const RoomMemberEventType = "m.room.member"
/** JS-SDK `DEFAULT_EXPIRE_DURATION`: the session `expires` when none is given. */
export const DefaultExpiresMs = 14_400_000
/** What JS-SDK asks the server for, and the most it believes from one (`MAX_STICKY_DURATION_MS`). */
export const StickyDurationMs = 3_600_000
export const CallApplication = "m.call"
// One definition: the auth service hashes the same slot into the LiveKit room name of `/sfu/get`.
export const RoomSlotId = legacySlotId

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

export interface SessionMembershipInput {
  readonly userId: string
  readonly deviceId: string
  /** Goes into `livekit_alias` only for old readers; nobody routes on it any more. */
  readonly roomId: string
  readonly livekitServiceUrl: string
  /** Defaults to `<userId>:<deviceId>`, as JS-SDK sends since js-sdk #5105. */
  readonly memberId?: string | undefined
  readonly callIntent?: string | undefined
  readonly expiresMs?: number | undefined
  /** Only on refreshes: the `origin_server_ts` of our first join event, as seen via sync. */
  readonly createdTs?: number | undefined
}

/** Join/refresh content of `org.matrix.msc3401.call.member`, multi-SFU mode, keys in JS-SDK's order. */
export const sessionContent = (input: SessionMembershipInput): Record<string, unknown> => ({
  application: CallApplication,
  call_id: "",
  scope: "m.room",
  device_id: input.deviceId,
  membershipID: input.memberId ?? `${input.userId}:${input.deviceId}`,
  expires: input.expiresMs ?? DefaultExpiresMs,
  ...(input.callIntent !== undefined ? { "m.call.intent": input.callIntent } : {}),
  focus_active: { type: "livekit", focus_selection: "multi_sfu" },
  // Always an array: JS-SDK indexes foci_preferred[0] without a check.
  foci_preferred: [{ type: "livekit", livekit_service_url: input.livekitServiceUrl, livekit_alias: input.roomId }],
  ...(input.createdTs !== undefined ? { created_ts: input.createdTs } : {})
})

/** Left: `{}` on the same state key (also the content of the delayed leave). */
export const sessionLeaveContent = (): Record<string, unknown> => ({})

// Room versions whose auth rules let `@user…` state keys through for their owner (MSC3757/MSC3779).
const ownedStateKeyRoomVersion = /^org\.matrix\.msc(3757|3779)\b/

/**
 * `_@user:server_DEVICE_m.call`. The leading `_` dodges the "state keys starting
 * with `@` must equal the sender" rule of normal room versions. `callId` is
 * appended raw (JS-SDK puts no separator there), `""` for the room call.
 */
export const sessionStateKey = (
  userId: string,
  deviceId: string,
  roomVersion: string,
  callId: string = ""
): string => {
  const base = `${userId}_${deviceId}_${CallApplication}${callId}`
  return ownedStateKeyRoomVersion.test(roomVersion) ? base : `_${base}`
}

export interface StickyMembershipInput {
  readonly userId: string
  readonly deviceId: string
  /** Opaque per-participation id (EC: a fresh UUID per call view); also the sticky key. */
  readonly memberId: string
  readonly livekitServiceUrl: string
  readonly callIntent?: string | undefined
  readonly slotId?: string | undefined
}

/**
 * Join content of the sticky `org.matrix.msc4143.rtc.member` event (§1.4). The transport goes out in both
 * shapes: js-sdk 43 requires `transports: {published, can_subscribe}`, js-sdk 42 `rtc_transports`, and each
 * validator ignores the other's key, so both versions (and EC on either) list us.
 */
export const stickyContent = (input: StickyMembershipInput): Record<string, unknown> => {
  // No livekit_alias on sticky transports (js-sdk #5165).
  const transport = { type: "livekit", livekit_service_url: input.livekitServiceUrl }
  return {
    application: {
      type: CallApplication,
      ...(input.callIntent !== undefined ? { "m.call.intent": input.callIntent } : {})
    },
    slot_id: input.slotId ?? RoomSlotId,
    transports: { published: [transport], can_subscribe: ["livekit"] },
    rtc_transports: [transport],
    member: { device_id: input.deviceId, user_id: input.userId, id: input.memberId },
    versions: [],
    msc4354_sticky_key: input.memberId
  }
}

export const stickyLeaveContent = (memberId: string): Record<string, unknown> => ({ msc4354_sticky_key: memberId })

/**
 * A leave in either dialect: `{}`, or nothing but the sticky key and the slot (JS-SDK's
 * `isLeftMembershipContent`; js-sdk 43 sends `{slot_id, msc4354_sticky_key}`). Only says something about
 * JSON objects; `decode` rejects anything else.
 */
export const isLeaveContent = (content: Readonly<Record<string, unknown>>): boolean =>
  Object.keys(content).every((k) => k === "msc4354_sticky_key" || k === "slot_id")

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/** How the member's LiveKit identity is obtained; the hashed form needs crypto.subtle, hence an Effect later. */
export type BackendIdentity =
  | { readonly _tag: "Plain"; readonly identity: string }
  | { readonly _tag: "Hashed"; readonly userId: string; readonly deviceId: string; readonly memberId: string }

/** A decoded member whose `rtcBackendIdentity` may still need hashing. */
export interface ParsedMember extends Omit<CallMember, "rtcBackendIdentity"> {
  readonly identity: BackendIdentity
}

export type RejectionReason =
  /** The event type is neither membership type (or a state/sticky mix-up). */
  | "UnknownType"
  /** Content is not a JSON object. */
  | "NotAnObject"
  /** JS-SDK's quick filter: `application` plus at least one other key is required. */
  | "NoApplication"
  /** A field is missing or has the wrong type. */
  | "Malformed"
  | "InvalidSlot"
  /** Sticky `member.user_id` is not a user id or is not the sender. */
  | "SenderMismatch"
  | "InvalidStickyKey"

export type Decoded = Data.TaggedEnum<{
  /** A membership JS-SDK would accept (before the slot/expiry/joined checks of the fold). */
  Member: { readonly member: ParsedMember }
  /** The historic `{memberships: [...]}` array: recognised and flagged, invisible to JS-SDK and EC. */
  Legacy: { readonly members: ReadonlyArray<ParsedMember> }
  /** `{}` (session) or `{"msc4354_sticky_key": id}` (sticky): the device left. */
  Left: { readonly stickyKey: Option.Option<string> }
  Rejected: { readonly reason: RejectionReason; readonly detail: string }
}>
export const Decoded = Data.taggedEnum<Decoded>()

const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })
/** `{type: string, ...}`: the shape JS-SDK demands of foci and transports. */
const TypedObject = Schema.Struct({ type: Schema.String }, JsonObject)

const SessionContent = Schema.Struct({
  application: Schema.String,
  call_id: Schema.String,
  device_id: Schema.String,
  focus_active: TypedObject,
  foci_preferred: Schema.optional(Schema.Array(TypedObject)),
  created_ts: Schema.optional(Schema.Finite),
  // JS-SDK does not check these two: a wrong type reads as absent (`?? default`), it does not void the membership.
  expires: Schema.optional(Schema.Unknown),
  scope: Schema.optional(Schema.String),
  "m.call.intent": Schema.optional(Schema.String),
  membershipID: Schema.optional(Schema.Unknown)
})

const StickyContent = Schema.Struct({
  slot_id: Schema.String,
  application: TypedObject,
  member: Schema.Struct({ user_id: Schema.String, device_id: Schema.String, id: Schema.String }),
  // Either shape will do (see `stickyTransports`), so neither key may fail the whole content here.
  transports: Schema.optional(Schema.Unknown),
  rtc_transports: Schema.optional(Schema.Unknown),
  versions: Schema.Array(Schema.String),
  msc4354_sticky_key: Schema.optional(Schema.String),
  sticky_key: Schema.optional(Schema.String),
  "m.relates_to": Schema.optional(Schema.Struct({ rel_type: Schema.Literal("m.reference"), event_id: Schema.String }))
})

const LegacyEntry = Schema.Struct({
  application: Schema.String,
  call_id: Schema.String,
  scope: Schema.String,
  device_id: Schema.String,
  membershipID: Schema.String,
  expires: Schema.optional(Schema.Finite),
  expires_ts: Schema.optional(Schema.Finite),
  created_ts: Schema.optional(Schema.Finite),
  foci_active: Schema.optional(Schema.Array(TypedObject))
})

/** js-sdk 43's `transports`. */
const PublishedTransports = Schema.Struct({ published: Schema.Array(TypedObject), can_subscribe: Schema.Array(Schema.String) })
/** js-sdk 42's `rtc_transports`. */
const RtcTransports = Schema.Array(TypedObject)

const FocusSelection = Schema.Struct({ focus_selection: Schema.String })
const CallIntent = Schema.Struct({ "m.call.intent": Schema.String })
const StickyKeyOnly = Schema.Struct({ msc4354_sticky_key: Schema.optional(Schema.String), sticky_key: Schema.optional(Schema.String) })
const LivekitServiceUrl = Schema.Struct({ livekit_service_url: Schema.String })

const decodeObject = Schema.decodeUnknownEither(JsonObject)
const decodeSession = Schema.decodeUnknownEither(SessionContent)
const decodeSticky = Schema.decodeUnknownEither(StickyContent)
const decodeLegacyEntry = Schema.decodeUnknownEither(LegacyEntry)
const decodeFocusSelection = Schema.decodeUnknownOption(FocusSelection)
const decodeCallIntent = Schema.decodeUnknownOption(CallIntent)
const decodeStickyKeys = Schema.decodeUnknownOption(StickyKeyOnly)
const decodeServiceUrl = Schema.decodeUnknownOption(LivekitServiceUrl)
const decodePublished = Schema.decodeUnknownOption(PublishedTransports)
const decodeRtcTransports = Schema.decodeUnknownOption(RtcTransports)
const isUserId = Schema.is(UserId)

const malformed = (e: ParseResult.ParseError) =>
  Decoded.Rejected({ reason: "Malformed", detail: ParseResult.TreeFormatter.formatErrorSync(e) })

const toTransport = (raw: typeof TypedObject.Type): Transport => {
  const { livekit_service_url: _, type, ...rest } = raw
  return {
    type,
    livekitServiceUrl: Option.getOrUndefined(Option.map(decodeServiceUrl(raw), (r) => r.livekit_service_url)),
    raw: rest
  }
}

/** JS-SDK's slot mapping: the room-wide call (`m.call` + `call_id: ""`) is slot `m.call#ROOM`. */
const sessionSlotId = (application: string, callId: string) =>
  `${application}#${application === CallApplication && callId === "" ? "ROOM" : callId}`

/**
 * Sticky liveness (§1.4): the expiry the client worked out on receipt (`stickyExpiresAt`, JS-SDK's
 * `unstableStickyExpiresAt`) as it is; else, with a TTL, `receivedAt + TTL` (capped at 1 h like JS-SDK's
 * `MAX_STICKY_DURATION_MS`); else `min(receivedAt, origin_server_ts) + 1 h`.
 */
export const stickyExpiresAt = (event: RawCallEvent, receivedAt: number): number =>
  event.stickyExpiresAt !== undefined && Number.isFinite(event.stickyExpiresAt)
    ? event.stickyExpiresAt
    : event.stickyDurationMs !== undefined && Number.isFinite(event.stickyDurationMs)
    ? receivedAt + Math.min(Math.max(event.stickyDurationMs, 0), StickyDurationMs)
    : Math.min(receivedAt, event.originServerTs) + StickyDurationMs

/** The sticky key under which the room keeps this sticky event, if its content names one. */
export const stickyKeyOf = (content: unknown): Option.Option<string> =>
  Option.flatMap(decodeStickyKeys(content), (c) => Option.fromNullable(c.msc4354_sticky_key ?? c.sticky_key))

const plainIdentity = (sender: string, deviceId: string): BackendIdentity => ({
  _tag: "Plain",
  identity: `${sender}:${deviceId}`
})

const readSession = (event: RawCallEvent, content: typeof SessionContent.Type): ParsedMember => {
  const createdTs = content.created_ts ?? event.originServerTs
  const expires = typeof content.expires === "number" && Number.isFinite(content.expires) ? content.expires : DefaultExpiresMs
  return {
    dialect: "session",
    userId: event.sender,
    deviceId: content.device_id,
    memberId: typeof content.membershipID === "string" ? content.membershipID : `${event.sender}:${content.device_id}`,
    slotId: sessionSlotId(content.application, content.call_id),
    application: content.application,
    scope: Option.fromNullable(content.scope),
    callIntent: Option.fromNullable(content["m.call.intent"]),
    focusSelection: Option.map(decodeFocusSelection(content.focus_active), (f) => f.focus_selection),
    transports: (content.foci_preferred ?? []).map(toTransport),
    createdTs,
    expiresAt: Option.some(createdTs + expires),
    // JS-SDK ignores membershipID here: peers look for `<sender>:<device_id>`.
    identity: plainIdentity(event.sender, content.device_id),
    eventId: event.eventId,
    stateKey: event.stateKey
  }
}

/**
 * The published transports: js-sdk 43's `transports.published` when that shape is valid, else js-sdk 42's
 * `rtc_transports`. A content that only one of the two versions accepts is still a member (to that version).
 */
const stickyTransports = (content: typeof StickyContent.Type): Option.Option<ReadonlyArray<typeof TypedObject.Type>> =>
  Option.orElse(
    Option.map(decodePublished(content.transports), (t) => t.published),
    () => decodeRtcTransports(content.rtc_transports)
  )

const readSticky = (event: RawCallEvent, content: typeof StickyContent.Type, receivedAt: number): Decoded => {
  const transports = stickyTransports(content)
  if (Option.isNone(transports)) {
    return Decoded.Rejected({
      reason: "Malformed",
      detail: "neither transports {published, can_subscribe} (js-sdk 43) nor rtc_transports (js-sdk 42) is valid"
    })
  }
  const application = content.application.type
  if (application.includes("#")) {
    return Decoded.Rejected({ reason: "InvalidSlot", detail: `application.type contains '#': ${application}` })
  }
  const slot = content.slot_id
  if (!slot.startsWith(`${application}#`) || slot.indexOf("#") !== slot.lastIndexOf("#")) {
    return Decoded.Rejected({ reason: "InvalidSlot", detail: `slot_id ${slot} is not "${application}#<id>"` })
  }
  const member = content.member
  if (!isUserId(member.user_id) || member.user_id !== event.sender) {
    return Decoded.Rejected({
      reason: "SenderMismatch",
      detail: `member.user_id ${member.user_id} is not the sender ${event.sender}`
    })
  }
  const a = content.msc4354_sticky_key
  const b = content.sticky_key
  if ((a === undefined && b === undefined) || (a !== undefined && b !== undefined && a !== b)) {
    return Decoded.Rejected({ reason: "InvalidStickyKey", detail: "msc4354_sticky_key/sticky_key missing or different" })
  }
  return Decoded.Member({
    member: {
      dialect: "sticky",
      userId: member.user_id,
      deviceId: member.device_id,
      memberId: member.id,
      slotId: slot,
      application,
      scope: Option.none(),
      callIntent: Option.map(decodeCallIntent(content.application), (c) => c["m.call.intent"]),
      focusSelection: Option.none(),
      transports: transports.value.map(toTransport),
      // JS-SDK uses the current event's timestamp (it changes on every resend).
      createdTs: event.originServerTs,
      expiresAt: Option.some(stickyExpiresAt(event, receivedAt)),
      identity: { _tag: "Hashed", userId: member.user_id, deviceId: member.device_id, memberId: member.id },
      eventId: event.eventId,
      stateKey: undefined
    }
  })
}

const readLegacy = (event: RawCallEvent, entries: ReadonlyArray<unknown>): Decoded =>
  Decoded.Legacy({
    members: entries.flatMap((raw) => {
      const decoded = decodeLegacyEntry(raw)
      if (Either.isLeft(decoded)) return []
      const e = decoded.right
      const createdTs = e.created_ts ?? event.originServerTs
      const expiresAt = e.expires_ts ?? (e.expires !== undefined ? createdTs + e.expires : undefined)
      if (expiresAt === undefined) return []
      const member: ParsedMember = {
        dialect: "legacy",
        userId: event.sender,
        deviceId: e.device_id,
        memberId: e.membershipID,
        slotId: sessionSlotId(e.application, e.call_id),
        application: e.application,
        scope: Option.some(e.scope),
        callIntent: Option.none(),
        focusSelection: Option.none(),
        transports: (e.foci_active ?? []).map(toTransport),
        createdTs,
        expiresAt: Option.some(expiresAt),
        identity: plainIdentity(event.sender, e.device_id),
        eventId: event.eventId,
        stateKey: event.stateKey
      }
      return [member]
    })
  })

/**
 * Read one membership event. `receivedAt` (local ms) only matters for sticky
 * events, whose liveness counts from when we saw them.
 */
export const decode = (event: RawCallEvent, receivedAt: number = event.originServerTs): Decoded => {
  try {
    return decodeContent(event, receivedAt)
  } catch (e) {
    // Contents that JSON.parse cannot build can still reach us from an adapter: Schema's union decoder calls
    // String() on field values, which throws for an object without a prototype (effect 3.22), and a getter
    // may throw. Such a content is no membership, so it is rejected like any other malformed one.
    return Decoded.Rejected({
      reason: "Malformed",
      detail: `content could not be read (${e instanceof Error ? e.name : typeof e})`
    })
  }
}

const decodeContent = (event: RawCallEvent, receivedAt: number): Decoded => {
  const isState = event.stateKey !== undefined
  if (!(isState ? event.type === SessionEventType : event.type === StickyEventType)) {
    return Decoded.Rejected({ reason: "UnknownType", detail: `${isState ? "state" : "sticky"} event ${event.type}` })
  }
  if (Either.isLeft(decodeObject(event.content))) {
    return Decoded.Rejected({ reason: "NotAnObject", detail: "content is not a JSON object" })
  }
  // The keys are read off the content itself: the decoded copy turns an own `__proto__` key (JSON.parse
  // makes one) into a prototype, and `{"__proto__": {}}` would then look like `{}`, a leave.
  const content = event.content as Readonly<Record<string, unknown>>
  // JS-SDK quick filter (MatrixRTCSession quickFilterNonRelevantContents).
  if (isLeaveContent(content)) return Decoded.Left({ stickyKey: stickyKeyOf(content) })
  const keys = Object.keys(content).filter((k) => k !== "msc4354_sticky_key")
  if (keys.length === 1 && keys[0] === "memberships") {
    if (!isState) return Decoded.Rejected({ reason: "NoApplication", detail: "memberships array in a sticky event" })
    const memberships = content["memberships"]
    if (!Array.isArray(memberships)) return Decoded.Rejected({ reason: "Malformed", detail: "memberships is not an array" })
    return readLegacy(event, memberships)
  }
  if (!("application" in content) || keys.length < 2) {
    return Decoded.Rejected({ reason: "NoApplication", detail: "content needs `application` and at least one more key" })
  }
  if (isState) {
    const session = decodeSession(content)
    return Either.isLeft(session) ? malformed(session.left) : Decoded.Member({ member: readSession(event, session.right) })
  }
  const sticky = decodeSticky(content)
  return Either.isLeft(sticky) ? malformed(sticky.left) : readSticky(event, sticky.right, receivedAt)
}

/** JS-SDK `isExpired`: expired iff `expiresAt - now <= 0`. */
export const isExpired = (member: Pick<CallMember, "expiresAt">, now: number): boolean =>
  Option.match(member.expiresAt, { onNone: () => false, onSome: (at) => at - now <= 0 })

/** JS-SDK `rtcBackendIdentity`: `<sender>:<device_id>` for state events, the hash for sticky ones. */
export const rtcBackendIdentity = (identity: BackendIdentity): Effect.Effect<string> =>
  identity._tag === "Plain"
    ? Effect.succeed(identity.identity)
    : liveKitIdentityHashed(identity.userId, identity.deviceId, identity.memberId)

export const toCallMember = (parsed: ParsedMember): Effect.Effect<CallMember> =>
  Effect.map(rtcBackendIdentity(parsed.identity), (rtcBackendIdentity) => {
    const { identity: _, ...member } = parsed
    return { ...member, rtcBackendIdentity }
  })
