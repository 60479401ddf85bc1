/**
 * Who is in the call (matrixrtc-protocol.md §1.6): fold the room's membership
 * events into the current, valid, unexpired members of one slot, oldest first.
 *
 * The fold itself is pure (`empty` / `apply` / `members`); `changes` drives it
 * from `MatrixClient.callMemberEvents` and re-evaluates when the soonest expiry
 * passes, reading time only through `Clock` so TestClock controls it.
 *
 * Not modelled here: JS-SDK's "sender is currently joined to the room" check;
 * the event stream does not carry room membership.
 */
import type { Stream as StreamT } from "effect"
import { Array as Arr, Clock, Duration, Effect, HashMap, Option, Stream } from "effect"
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

export interface State {
  /** Current state events, keyed by (type, state_key). */
  readonly state: HashMap.HashMap<string, Entry>
  /** Live sticky events, keyed by (type, sender, sticky key); unkeyed ones by event id. */
  readonly sticky: HashMap.HashMap<string, StickyEntry>
}

export interface MembersOptions {
  /** Defaults to the room call, `m.call#ROOM`. */
  readonly slotId?: string | undefined
  /** Also list members announced only in the legacy `memberships` array (JS-SDK and EC ignore them). */
  readonly includeLegacy?: boolean | undefined
}

export const empty: State = { state: HashMap.empty(), sticky: HashMap.empty() }

const key = (parts: ReadonlyArray<string>) => JSON.stringify(parts)

/**
 * Add one event received at local time `receivedAt`. State events replace the
 * previous content of their key (`{}` or an invalid content removes it); for
 * sticky events the one that expires last wins, as in JS-SDK's sticky map.
 */
export const apply = (s: State, event: RawCallEvent, receivedAt: number): State => {
  const sticky = HashMap.filter(s.sticky, (e) => e.expiresAt > receivedAt)
  if (event.stateKey !== undefined) {
    if (event.type !== Membership.SessionEventType) return { ...s, sticky }
    const decoded = Membership.decode(event, receivedAt)
    const k = key([event.type, event.stateKey])
    const state = decoded._tag === "Member" || decoded._tag === "Legacy"
      ? HashMap.set(s.state, k, { event, decoded })
      : HashMap.remove(s.state, k)
    return { state, sticky }
  }
  if (event.type !== Membership.StickyEventType) return { ...s, sticky }
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
  const current = HashMap.get(sticky, k)
  if (Option.isSome(current) && current.value.expiresAt > entry.expiresAt) return { ...s, sticky }
  return { ...s, sticky: HashMap.set(sticky, k, entry) }
}

/** Fold a batch of events all received at `receivedAt`. */
export const applyAll = (s: State, events: Iterable<RawCallEvent>, receivedAt: number): State =>
  Arr.reduce(Arr.fromIterable(events), s, (acc, e) => apply(acc, e, receivedAt))

const liveSticky = (s: State, now: number) => Arr.filter(Arr.fromIterable(HashMap.values(s.sticky)), (e) => e.expiresAt - now > 0)

const membersOf = (decoded: Membership.Decoded, includeLegacy: boolean): ReadonlyArray<Membership.ParsedMember> =>
  decoded._tag === "Member" ? [decoded.member] : decoded._tag === "Legacy" && includeLegacy ? decoded.members : []

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
  const sticky = liveSticky(s, now)
  const masked = new Set(Arr.getSomes(sticky.map((e) => e.stickyKey)))
  const fromState = Arr.fromIterable(HashMap.values(s.state))
    .filter((e) => e.event.stateKey === undefined || !masked.has(e.event.stateKey))
    .flatMap((e) => membersOf(e.decoded, includeLegacy))
  const fromSticky = sticky.flatMap((e) => membersOf(e.decoded, false))
  return [...fromState, ...fromSticky]
    .filter((m) => m.slotId === slotId && !Membership.isExpired(m, now))
    .sort(oldestFirst)
}

// Ties are broken by ids so every reader of the same events picks the same "oldest" member.
const oldestFirst = (a: Membership.ParsedMember, b: Membership.ParsedMember): number =>
  a.createdTs - b.createdTs || compare(a.userId, b.userId) || compare(a.deviceId, b.deviceId) ||
  compare(a.eventId, b.eventId)

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** The soonest instant after `now` at which `members` can change without a new event. */
export const nextExpiry = (s: State, now: number): Option.Option<number> => {
  const times = [
    ...Arr.fromIterable(HashMap.values(s.sticky)).map((e) => e.expiresAt),
    ...Arr.fromIterable(HashMap.values(s.state)).flatMap((e) =>
      membersOf(e.decoded, true).flatMap((m) => Option.toArray(m.expiresAt))
    )
  ].filter((t) => t > now)
  return Arr.isNonEmptyReadonlyArray(times) ? Option.some(Math.min(...times)) : Option.none()
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
  events.pipe(
    Stream.mapEffect((event) => Effect.map(Clock.currentTimeMillis, (now) => [event, now] as const)),
    Stream.mapAccum(empty, (s, [event, now]) => {
      const next = apply(s, event, now)
      return [next, next] as const
    }),
    // A newer state supersedes the pending expiry timer of the older one.
    Stream.flatMap((s) => evaluations(s, options), { switch: true }),
    Stream.changesWith(sameMembers),
    Stream.mapEffect((list) => Effect.forEach(list, Membership.toCallMember))
  )
