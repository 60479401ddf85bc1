/**
 * Who is in the call (matrixrtc-protocol.md §1.6): fold the room's membership
 * events into the current, valid, unexpired members of one slot, oldest first.
 *
 * The fold itself is pure (`empty` / `apply` / `members`); `changes` drives it
 * from `MatrixClient.callMemberEvents` and re-evaluates when the soonest expiry
 * passes, reading time only through `Clock` so TestClock controls it. An event
 * is decoded once, when it arrives, and each member's identity is resolved once.
 *
 * Like JS-SDK, a member whose user is not joined to the room is not listed: the
 * stream also carries `m.room.member` state events. A user the room has said
 * nothing about counts as joined (an adapter that does not pass room membership
 * on loses only this filter); JS-SDK, whose room state may lack members it has
 * not loaded, drops those.
 */
import type { Stream as StreamT } from "effect"
import { Array as Arr, Clock, Duration, Effect, HashMap, Option, Predicate, Stream } from "effect"
import type { CallMember } from "./CallMember.ts"
import type { RawCallEvent } from "./MatrixClient.ts"
import * as Membership from "./Membership.ts"

interface Entry {
  readonly event: RawCallEvent
  readonly decoded: Membership.Decoded
}

interface StickyEntry extends Entry {
  readonly stickyKey: Option.Option<string>
  readonly expiresAt: number
}

/**
 * The live sticky events under one key, like JS-SDK's sticky map keeps them: when the current one ends early
 * (redacted), the one it had replaced is current again.
 */
interface StickySlot {
  /** In the order they came; an event delivered again moves to the end. */
  readonly entries: ReadonlyArray<StickyEntry>
  /** The one that expires last (of equals, the last to come): the one the members come from. */
  readonly current: StickyEntry
}

/** One member an entry announces, with what `members` filters it by. */
interface Candidate {
  readonly member: Membership.ParsedMember
  /** From the legacy `memberships` array. */
  readonly legacy: boolean
  /** The state key of a state entry: a live sticky event with that sticky key hides it. */
  readonly stateKey: string | undefined
}

export interface State {
  /** Current state events, keyed by (type, state_key). */
  readonly state: HashMap.HashMap<string, Entry>
  /** Live sticky events, keyed by (type, sender, sticky key); unkeyed ones by event id. */
  readonly sticky: HashMap.HashMap<string, StickySlot>
  /**
   * Every member the entries announce, oldest first, kept sorted as events come in: an event costs a
   * binary search and an array copy, and reading `members` is one filtering pass, never a sort.
   */
  readonly sorted: ReadonlyArray<Candidate>
  /** The soonest expiry among `sticky`: expired sticky entries are dropped once it has passed, not on every event. */
  readonly stickyPruneAt: number
  /** `m.room.member` → `membership` by user, for users the stream last said are not joined. */
  readonly roomMembership: HashMap.HashMap<string, string>
}

export interface MembersOptions {
  /** Defaults to the room call, `m.call#ROOM`. */
  readonly slotId?: string | undefined
  /** Also list members announced only in the legacy `memberships` array (JS-SDK and EC ignore them). */
  readonly includeLegacy?: boolean | undefined
}

export const empty: State = {
  state: HashMap.empty(),
  sticky: HashMap.empty(),
  sorted: [],
  stickyPruneAt: Infinity,
  roomMembership: HashMap.empty()
}

const key = (parts: ReadonlyArray<string>) => JSON.stringify(parts)

// Ties are broken by ids so every reader of the same events picks the same "oldest" member.
const oldestFirst = (a: Membership.ParsedMember, b: Membership.ParsedMember): number =>
  a.createdTs - b.createdTs || compare(a.userId, b.userId) || compare(a.deviceId, b.deviceId) ||
  compare(a.eventId, b.eventId)

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** The first index whose member does not sort before `m`. */
const lowerBound = (sorted: ReadonlyArray<Candidate>, m: Membership.ParsedMember): number => {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (oldestFirst(sorted[mid]!.member, m) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

const candidatesOf = (entry: Entry): ReadonlyArray<Candidate> => {
  const { decoded, event } = entry
  const stateKey = event.stateKey
  return decoded._tag === "Member"
    ? [{ member: decoded.member, legacy: false, stateKey }]
    : decoded._tag === "Legacy"
    ? decoded.members.map((member) => ({ member, legacy: true, stateKey }))
    : []
}

const insert = (sorted: ReadonlyArray<Candidate>, entry: Entry): ReadonlyArray<Candidate> =>
  candidatesOf(entry).reduce((acc, c) => {
    const i = lowerBound(acc, c.member)
    return [...acc.slice(0, i), c, ...acc.slice(i)]
  }, sorted)

/** Takes out the very candidates `insert` put in for `entry` (members that sort equal are told apart by identity). */
const remove = (sorted: ReadonlyArray<Candidate>, entry: Entry): ReadonlyArray<Candidate> =>
  candidatesOf(entry).reduce((acc, c) => {
    for (let i = lowerBound(acc, c.member); i < acc.length && oldestFirst(acc[i]!.member, c.member) === 0; i++) {
      if (acc[i]!.member === c.member) return [...acc.slice(0, i), ...acc.slice(i + 1)]
    }
    return acc
  }, sorted)

const replace = (sorted: ReadonlyArray<Candidate>, old: Option.Option<Entry>, next: Entry | undefined) => {
  const without = Option.match(old, { onNone: () => sorted, onSome: (e) => remove(sorted, e) })
  return next === undefined ? without : insert(without, next)
}

const currentOf = (entries: ReadonlyArray<StickyEntry>): StickyEntry =>
  entries.reduce((a, b) => (b.expiresAt >= a.expiresAt ? b : a))

/** Drops sticky entries that have expired by `now`, once the soonest expiry has passed. */
const pruneSticky = (s: State, now: number): State => {
  if (now < s.stickyPruneAt) return s
  let sorted = s.sorted
  let sticky = s.sticky
  let stickyPruneAt = Infinity
  for (const [k, slot] of s.sticky) {
    const entries = slot.entries.filter((e) => e.expiresAt > now)
    for (const e of entries) stickyPruneAt = Math.min(stickyPruneAt, e.expiresAt)
    if (entries.length === slot.entries.length) continue
    if (entries.length === 0) {
      sticky = HashMap.remove(sticky, k)
      sorted = remove(sorted, slot.current)
      continue
    }
    const current = currentOf(entries)
    sticky = HashMap.set(sticky, k, { entries, current })
    if (current !== slot.current) sorted = insert(remove(sorted, slot.current), current)
  }
  return { ...s, sticky, sorted, stickyPruneAt }
}

/**
 * Add one event received at local time `receivedAt`. State events replace the
 * previous content of their key (`{}` or an invalid content removes it); for
 * sticky events the one that expires last wins, as in JS-SDK's sticky map, and
 * an event delivered again replaces itself (`RawCallEvent.stickyExpiresAt`): if
 * it now ends sooner, the one it had won over may be current again.
 */
export const apply = (before: State, event: RawCallEvent, receivedAt: number): State => {
  const s = pruneSticky(before, receivedAt)
  if (event.stateKey !== undefined) {
    if (event.type === Membership.RoomMemberEventType) {
      const membership = Predicate.isRecord(event.content) ? event.content["membership"] : undefined
      // Only the exceptions are kept: a big room's joined users cost nothing.
      return {
        ...s,
        roomMembership: typeof membership === "string" && membership !== "join"
          ? HashMap.set(s.roomMembership, event.stateKey, membership)
          : HashMap.remove(s.roomMembership, event.stateKey)
      }
    }
    if (event.type !== Membership.SessionEventType) return s
    const decoded = Membership.decode(event, receivedAt)
    const k = key([event.type, event.stateKey])
    const entry = decoded._tag === "Member" || decoded._tag === "Legacy" ? { event, decoded } : undefined
    return {
      ...s,
      state: entry === undefined ? HashMap.remove(s.state, k) : HashMap.set(s.state, k, entry),
      sorted: replace(s.sorted, HashMap.get(s.state, k), entry)
    }
  }
  if (event.type !== Membership.StickyEventType) return s
  const stickyKey = Membership.stickyKeyOf(event.content)
  const k = Option.match(stickyKey, {
    onNone: () => key(["event", event.eventId]),
    onSome: (sk) => key([event.type, event.sender, sk])
  })
  const entry: StickyEntry = {
    event,
    decoded: Membership.decode(event, receivedAt),
    stickyKey,
    expiresAt: Membership.stickyExpiresAt(event, receivedAt)
  }
  const slot = HashMap.get(s.sticky, k)
  // The same event again is news about that event (an earlier expiry: it was redacted), not a rival.
  const entries = [
    ...Option.match(slot, { onNone: () => [], onSome: (sl) => sl.entries.filter((e) => e.event.eventId !== event.eventId) }),
    entry
  ]
  const current = currentOf(entries)
  const previous = Option.map(slot, (sl) => sl.current)
  return {
    ...s,
    sticky: HashMap.set(s.sticky, k, { entries, current }),
    sorted: Option.exists(previous, (p) => p === current) ? s.sorted : replace(s.sorted, previous, current),
    stickyPruneAt: Math.min(s.stickyPruneAt, entry.expiresAt)
  }
}

/** Fold a batch of events all received at `receivedAt`. */
export const applyAll = (s: State, events: Iterable<RawCallEvent>, receivedAt: number): State =>
  Arr.reduce(Arr.fromIterable(events), s, (acc, e) => apply(acc, e, receivedAt))

/**
 * The call's members at `now`: the slot matches and the membership has not
 * expired, sorted by `createdTs` ascending (index 0 is JS-SDK's "oldest
 * membership"). A state event is skipped when a live sticky event's key equals
 * its state key (sticky wins on a clash).
 */
export const members = (
  s: State,
  now: number,
  options?: MembersOptions | undefined
): ReadonlyArray<Membership.ParsedMember> => {
  const slotId = options?.slotId ?? Membership.RoomSlotId
  const includeLegacy = options?.includeLegacy ?? false
  const masked = new Set<string>()
  for (const { current: e } of HashMap.values(s.sticky)) {
    if (e.expiresAt - now > 0 && Option.isSome(e.stickyKey)) masked.add(e.stickyKey.value)
  }
  const out: Array<Membership.ParsedMember> = []
  for (const c of s.sorted) {
    if (c.legacy && !includeLegacy) continue
    if (c.stateKey !== undefined && masked.has(c.stateKey)) continue
    if (!joined(s, c.member.userId)) continue
    // A sticky member's expiry is its entry's sticky TTL, so this also drops expired sticky events.
    if (c.member.slotId === slotId && !Membership.isExpired(c.member, now)) out.push(c.member)
  }
  return out
}

/** Joined, or not known to be anything else. */
const joined = (s: State, userId: string): boolean =>
  Option.match(HashMap.get(s.roomMembership, userId), { onNone: () => true, onSome: (m) => m === "join" })

/** The soonest instant after `now` at which `members` can change without a new event. */
export const nextExpiry = (s: State, now: number): Option.Option<number> => {
  let soonest = Infinity
  for (const c of s.sorted) {
    const at = Option.getOrElse(c.member.expiresAt, () => Infinity)
    if (at > now && at < soonest) soonest = at
  }
  // A sticky leave announces no member, but its expiry ends the mask it puts on a state key.
  for (const { current: e } of HashMap.values(s.sticky)) if (e.expiresAt > now && e.expiresAt < soonest) soonest = e.expiresAt
  return soonest === Infinity ? Option.none() : Option.some(soonest)
}

/** Our own membership among `members`, by (user, device). */
export const myMembership = <M extends { readonly userId: string; readonly deviceId: string }>(
  list: ReadonlyArray<M>,
  userId: string,
  deviceId: string
): Option.Option<M> => Arr.findFirst(list, (m) => m.userId === userId && m.deviceId === deviceId)

/** The oldest membership: whose transport `oldest_membership` members publish on. */
export const oldest = <M>(list: ReadonlyArray<M>): Option.Option<M> => Arr.head(list)

const identityOf = (m: Membership.ParsedMember) => `${m.eventId}\u0000${m.userId}\u0000${m.deviceId}\u0000${m.memberId}`

const sameMembers = (a: ReadonlyArray<Membership.ParsedMember>, b: ReadonlyArray<Membership.ParsedMember>) =>
  a.length === b.length && a.every((m, i) => identityOf(m) === identityOf(b[i]!))

/** `members` now, then again at every expiry instant, until nothing is left to expire. */
const evaluations = (s: State, options: MembersOptions | undefined) =>
  Stream.paginateEffect(Number.NEGATIVE_INFINITY, (wakeAt: number) =>
    Effect.gen(function*() {
      const before = yield* Clock.currentTimeMillis
      if (wakeAt > before) yield* Effect.sleep(Duration.millis(wakeAt - before))
      const now = yield* Clock.currentTimeMillis
      return [members(s, now, options), nextExpiry(s, now)] as const
    }))

/**
 * The member list of one slot, emitted whenever it changes: on every event
 * that changes it and when a membership expires. Sticky members get their
 * hashed LiveKit identity here. Emits nothing before the first event.
 */
export const changes = <E, R>(
  events: StreamT.Stream<RawCallEvent, E, R>,
  options?: MembersOptions | undefined
): StreamT.Stream<ReadonlyArray<CallMember>, E, R> =>
  Stream.suspend(() => {
    // A member's LiveKit identity is worked out (hashed, for sticky ones) once, not again in every list it is in.
    const resolved = new WeakMap<Membership.ParsedMember, CallMember>()
    const toCallMember = (parsed: Membership.ParsedMember) => {
      const known = resolved.get(parsed)
      return known !== undefined
        ? Effect.succeed(known)
        : Effect.tap(Membership.toCallMember(parsed), (m) => Effect.sync(() => resolved.set(parsed, m)))
    }
    return events.pipe(
      Stream.mapEffect((event) => Effect.map(Clock.currentTimeMillis, (now) => [event, now] as const)),
      Stream.mapAccum(empty, (s, [event, now]) => {
        const next = apply(s, event, now)
        return [next, next] as const
      }),
      // A newer state supersedes the pending expiry timer of the older one.
      Stream.flatMap((s) => evaluations(s, options), { switch: true }),
      Stream.changesWith(sameMembers),
      Stream.mapEffect((list) => Effect.forEach(list, toCallMember))
    )
  })
