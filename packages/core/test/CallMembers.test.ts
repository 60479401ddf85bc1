import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { vi } from "vitest"
import { Chunk, Effect, Fiber, HashMap, Option, Queue, Ref, Stream, TestClock } from "effect"
import * as CallMembers from "../src/CallMembers.ts"
import type { CallMember } from "../src/CallMember.ts"
import type { RoomId } from "../src/Ids.ts"
import type { RawCallEvent } from "../src/MatrixClient.ts"
import * as Membership from "../src/Membership.ts"
import * as Testing from "../src/testing/index.ts"

const url = "https://rtc.example.org/livekit/jwt"
const room = "!abc:example.org"

const join = (
  user: string,
  device: string,
  opts: { ts?: number; createdTs?: number | undefined; expiresMs?: number; id?: string; stateKey?: string } = {}
): RawCallEvent => ({
  type: Membership.SessionEventType,
  stateKey: opts.stateKey ?? Membership.sessionStateKey(user, device, "11"),
  sender: user,
  eventId: opts.id ?? `$${user}/${device}/${opts.ts ?? 0}`,
  originServerTs: opts.ts ?? 0,
  content: Membership.sessionContent({
    userId: user,
    deviceId: device,
    roomId: room,
    livekitServiceUrl: url,
    expiresMs: opts.expiresMs,
    createdTs: opts.createdTs
  })
})

const leave = (user: string, device: string, ts = 0): RawCallEvent => ({
  type: Membership.SessionEventType,
  stateKey: Membership.sessionStateKey(user, device, "11"),
  sender: user,
  eventId: `$leave/${user}/${device}/${ts}`,
  originServerTs: ts,
  content: {}
})

const sticky = (user: string, device: string, memberId: string, opts: { ts?: number; durationMs?: number; left?: boolean } = {}): RawCallEvent => ({
  type: Membership.StickyEventType,
  stateKey: undefined,
  sender: user,
  eventId: `$sticky/${memberId}/${opts.ts ?? 0}/${opts.left ? "left" : "join"}`,
  originServerTs: opts.ts ?? 0,
  stickyDurationMs: opts.durationMs,
  content: opts.left
    ? Membership.stickyLeaveContent(memberId)
    : Membership.stickyContent({ userId: user, deviceId: device, memberId, livekitServiceUrl: url })
})

const roomMember = (user: string, membership: string | undefined, ts = 0): RawCallEvent => ({
  type: Membership.RoomMemberEventType,
  stateKey: user,
  sender: user,
  eventId: `$member/${user}/${membership}/${ts}`,
  originServerTs: ts,
  content: membership === undefined ? {} : { membership }
})

const who = (list: ReadonlyArray<{ readonly userId: string; readonly deviceId: string }>) =>
  list.map((m) => `${m.userId}/${m.deviceId}`)

const alice = "@alice:example.org"
const bob = "@bob:example.org"
const carol = "@carol:example.org"

describe("CallMembers fold", () => {
  it("sorts oldest first by createdTs, whatever the arrival order", () => {
    const s = CallMembers.applyAll(CallMembers.empty, [
      join(alice, "A", { ts: 3_000 }),
      join(bob, "B", { ts: 9_000, createdTs: 1_000 }),
      join(carol, "C", { ts: 2_000 })
    ], 10_000)
    assert.deepStrictEqual(who(CallMembers.members(s, 10_000)), [`${bob}/B`, `${carol}/C`, `${alice}/A`])
    assert.deepStrictEqual(Option.map(CallMembers.oldest(CallMembers.members(s, 10_000)), (m) => m.userId), Option.some(bob))
  })

  it("equal createdTs: deterministic order by user, device", () => {
    const events = [join(carol, "C", { ts: 7 }), join(alice, "B", { ts: 7 }), join(alice, "A", { ts: 7 })]
    for (const order of [events, [...events].reverse()]) {
      const s = CallMembers.applyAll(CallMembers.empty, order, 10)
      assert.deepStrictEqual(who(CallMembers.members(s, 10)), [`${alice}/A`, `${alice}/B`, `${carol}/C`])
    }
  })

  it("a newer state event replaces the older one; {} and invalid contents remove it", () => {
    let s = CallMembers.applyAll(CallMembers.empty, [join(alice, "A", { ts: 1 }), join(bob, "B", { ts: 2 })], 10)
    s = CallMembers.apply(s, join(alice, "A", { ts: 5, createdTs: 1, expiresMs: 99_999 }), 10)
    const members = CallMembers.members(s, 10)
    assert.strictEqual(members.length, 2)
    assert.strictEqual(members[0]!.eventId, `$${alice}/A/5`)
    assert.deepStrictEqual(members[0]!.expiresAt, Option.some(100_000))

    s = CallMembers.apply(s, leave(alice, "A", 6), 10)
    assert.deepStrictEqual(who(CallMembers.members(s, 10)), [`${bob}/B`])
    s = CallMembers.apply(s, { ...join(bob, "B", { ts: 7 }), content: { application: "m.call", device_id: 1 } }, 10)
    assert.deepStrictEqual(CallMembers.members(s, 10), [])
  })

  it("drops expired memberships at exactly createdTs + expires", () => {
    const s = CallMembers.applyAll(CallMembers.empty, [
      join(alice, "A", { ts: 1_000, expiresMs: 500 }),
      join(bob, "B", { ts: 1_000, expiresMs: 800 })
    ], 1_000)
    assert.strictEqual(CallMembers.members(s, 1_499).length, 2)
    assert.deepStrictEqual(who(CallMembers.members(s, 1_500)), [`${bob}/B`])
    assert.deepStrictEqual(CallMembers.nextExpiry(s, 1_000), Option.some(1_500))
    assert.deepStrictEqual(CallMembers.nextExpiry(s, 1_500), Option.some(1_800))
    assert.deepStrictEqual(CallMembers.nextExpiry(s, 1_800), Option.none())
  })

  it("filters by slot; legacy members only on request", () => {
    const other: RawCallEvent = {
      ...join(carol, "C"),
      content: { ...(join(carol, "C").content as object), call_id: "side" }
    }
    const legacy: RawCallEvent = {
      type: Membership.SessionEventType,
      stateKey: bob,
      sender: bob,
      eventId: "$legacy",
      originServerTs: 0,
      content: {
        memberships: [
          { application: "m.call", call_id: "", scope: "m.room", device_id: "OLD", membershipID: "x", expires: 10_000 }
        ]
      }
    }
    const s = CallMembers.applyAll(CallMembers.empty, [join(alice, "A"), other, legacy], 0)
    assert.deepStrictEqual(who(CallMembers.members(s, 1)), [`${alice}/A`])
    assert.deepStrictEqual(who(CallMembers.members(s, 1, { slotId: "m.call#side" })), [`${carol}/C`])
    assert.deepStrictEqual(who(CallMembers.members(s, 1, { includeLegacy: true })).sort(), [`${alice}/A`, `${bob}/OLD`])
  })

  it("sticky members: keyed by (sender, sticky key), the one expiring last wins, leave removes", () => {
    let s = CallMembers.apply(CallMembers.empty, sticky(alice, "A", "m1", { ts: 100, durationMs: 3_600_000 }), 100)
    assert.deepStrictEqual(who(CallMembers.members(s, 200)), [`${alice}/A`])
    // An older copy that expires sooner does not replace it.
    s = CallMembers.apply(s, { ...sticky(alice, "A", "m1", { ts: 50, durationMs: 10 }), eventId: "$old" }, 200)
    assert.notStrictEqual(CallMembers.members(s, 300)[0]!.eventId, "$old")
    // The same key from another sender is a different entry.
    s = CallMembers.apply(s, sticky(bob, "B", "m1", { ts: 150, durationMs: 3_600_000 }), 300)
    assert.strictEqual(CallMembers.members(s, 400).length, 2)
    s = CallMembers.apply(s, sticky(alice, "A", "m1", { ts: 500, durationMs: 3_600_000, left: true }), 500)
    assert.deepStrictEqual(who(CallMembers.members(s, 600)), [`${bob}/B`])
  })

  it("the same sticky event again with an earlier expiry (the client dropped it: redacted) replaces itself", () => {
    const event = { ...sticky(alice, "A", "m1", { ts: 100 }), stickyExpiresAt: 3_600_100 }
    let s = CallMembers.apply(CallMembers.empty, event, 100)
    assert.deepStrictEqual(who(CallMembers.members(s, 200)), [`${alice}/A`])
    s = CallMembers.apply(s, { ...event, stickyExpiresAt: 200 }, 200)
    assert.deepStrictEqual(CallMembers.members(s, 200), [])
    assert.deepStrictEqual(CallMembers.nextExpiry(s, 200), Option.none())
  })

  it("when the current sticky event of a key ends early, the one it had replaced is current again", () => {
    const older = { ...sticky(alice, "A", "m1", { ts: 100 }), eventId: "$older", stickyExpiresAt: 3_600_100 }
    const newer = { ...sticky(alice, "A2", "m1", { ts: 200 }), eventId: "$newer", stickyExpiresAt: 3_600_200 }
    let s = CallMembers.applyAll(CallMembers.empty, [older, newer], 200)
    assert.deepStrictEqual(who(CallMembers.members(s, 300)), [`${alice}/A2`])
    s = CallMembers.apply(s, { ...newer, stickyExpiresAt: 300 }, 300)
    assert.deepStrictEqual(who(CallMembers.members(s, 300)), [`${alice}/A`])
    assert.deepStrictEqual(CallMembers.nextExpiry(s, 300), Option.some(3_600_100))
  })

  it("sticky members vanish when their sticky TTL runs out", () => {
    const s = CallMembers.apply(CallMembers.empty, sticky(alice, "A", "m1", { ts: 0, durationMs: 1_000 }), 0)
    assert.strictEqual(CallMembers.members(s, 999).length, 1)
    assert.strictEqual(CallMembers.members(s, 1_000).length, 0)
  })

  it("a state event is skipped while a live sticky event's key equals its state key", () => {
    const stateKey = "shared-key"
    let s = CallMembers.apply(CallMembers.empty, join(alice, "A", { stateKey }), 0)
    s = CallMembers.apply(s, sticky(alice, "S", stateKey, { ts: 0, durationMs: 1_000, left: true }), 0)
    assert.deepStrictEqual(CallMembers.members(s, 10), [])
    // Once the sticky event expires, the state membership shows again.
    assert.deepStrictEqual(who(CallMembers.members(s, 1_000)), [`${alice}/A`])
  })

  it("a member whose user is not joined to the room is not listed (JS-SDK's check); unknown counts as joined", () => {
    let s = CallMembers.applyAll(CallMembers.empty, [join(alice, "A"), join(bob, "B")], 0)
    assert.deepStrictEqual(who(CallMembers.members(s, 1)), [`${alice}/A`, `${bob}/B`])
    s = CallMembers.applyAll(s, [roomMember(alice, "join"), roomMember(bob, "leave")], 1)
    assert.deepStrictEqual(who(CallMembers.members(s, 2)), [`${alice}/A`])
    for (const membership of ["ban", "invite", "knock"]) {
      assert.deepStrictEqual(who(CallMembers.members(CallMembers.apply(s, roomMember(bob, membership), 2), 3)), [`${alice}/A`])
    }
    // joined again: listed again, in its place (its call membership never changed)
    s = CallMembers.apply(s, roomMember(bob, "join", 2), 2)
    assert.deepStrictEqual(who(CallMembers.members(s, 3)), [`${alice}/A`, `${bob}/B`])
    // a room-member event before the call membership works the same; a content without membership is "unknown"
    s = CallMembers.applyAll(CallMembers.empty, [roomMember(carol, "leave"), join(carol, "C")], 0)
    assert.deepStrictEqual(CallMembers.members(s, 1), [])
    s = CallMembers.apply(s, roomMember(carol, undefined), 1)
    assert.deepStrictEqual(who(CallMembers.members(s, 2)), [`${carol}/C`])
  })

  it("myMembership finds our (user, device)", () => {
    const s = CallMembers.applyAll(CallMembers.empty, [join(alice, "A"), join(alice, "B"), join(bob, "A")], 0)
    const mine = CallMembers.myMembership(CallMembers.members(s, 1), alice, "B")
    assert.deepStrictEqual(Option.map(mine, (m) => m.stateKey), Option.some(Membership.sessionStateKey(alice, "B", "11")))
    assert.isTrue(Option.isNone(CallMembers.myMembership(CallMembers.members(s, 1), bob, "B")))
  })
})

describe("CallMembers.changes", () => {
  const collect = (events: Stream.Stream<RawCallEvent>) =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<ReadonlyArray<CallMember>>>([])
      const fiber = yield* CallMembers.changes(events).pipe(
        Stream.runForEach((list) => Ref.update(seen, (all) => [...all, list])),
        Effect.fork
      )
      return { seen, fiber }
    })

  it.effect("emits on change only, and again when a membership expires (TestClock)", () =>
    Effect.gen(function*() {
      const queue = yield* Queue.unbounded<RawCallEvent>()
      const { fiber, seen } = yield* collect(Stream.fromQueue(queue))
      yield* Queue.offerAll(queue, [join(alice, "A", { expiresMs: 10_000 }), join(bob, "B", { ts: 5, expiresMs: 60_000 })])
      yield* TestClock.adjust(0)
      // The same event again changes nothing.
      yield* Queue.offer(queue, join(alice, "A", { expiresMs: 10_000 }))
      yield* TestClock.adjust(0)
      assert.deepStrictEqual((yield* Ref.get(seen)).map(who), [[`${alice}/A`], [`${alice}/A`, `${bob}/B`]])

      yield* TestClock.adjust(9_999)
      assert.strictEqual((yield* Ref.get(seen)).length, 2)
      yield* TestClock.adjust(1)
      assert.deepStrictEqual((yield* Ref.get(seen)).map(who).at(-1), [`${bob}/B`])
      yield* TestClock.adjust(50_005)
      assert.deepStrictEqual((yield* Ref.get(seen)).map(who).at(-1), [])
      assert.strictEqual((yield* Ref.get(seen)).length, 4)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a new event re-arms the expiry timer; the stream ends after the last expiry", () =>
    Effect.gen(function*() {
      const events = Stream.make(join(alice, "A", { expiresMs: 1_000 }), join(alice, "A", { ts: 1, createdTs: 0, expiresMs: 5_000 }))
      const { fiber, seen } = yield* collect(events)
      yield* TestClock.adjust(1_000)
      // The refresh superseded the 1 s expiry.
      assert.deepStrictEqual((yield* Ref.get(seen)).map(who).at(-1), [`${alice}/A`])
      yield* TestClock.adjust(4_000)
      yield* Fiber.join(fiber)
      const all = yield* Ref.get(seen)
      assert.deepStrictEqual(all.map(who).at(-1), [])
    }))

  it.effect("a sticky member read long after the client got it keeps the client's expiry (TestClock)", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust(1_800_000)
      // The client got it at 0 with an hour to live; the fold only sees it half an hour later.
      const event = { ...sticky(alice, "A", "m1", { durationMs: 3_600_000 }), stickyExpiresAt: 3_600_000 }
      const { fiber, seen } = yield* collect(Stream.concat(Stream.make(event), Stream.never))
      yield* TestClock.adjust(0)
      assert.deepStrictEqual((yield* Ref.get(seen)).map(who), [[`${alice}/A`]])
      yield* TestClock.adjust(1_800_000)
      assert.deepStrictEqual((yield* Ref.get(seen)).map(who), [[`${alice}/A`], []])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("TestHomeserver: a sticky membership in the room before we subscribe ends when the server says", () =>
    Effect.gen(function*() {
      const hs = yield* Testing.TestHomeserver.TestHomeserver
      const bobClient = hs.clientFor(bob, "B")
      yield* bobClient.sendStickyEvent(
        room as RoomId,
        Membership.StickyEventType,
        Membership.stickyContent({ userId: bob, deviceId: "B", memberId: "m1", livekitServiceUrl: url }),
        { stickyDurationMs: 3_600_000 }
      )
      yield* TestClock.adjust(1_800_000)
      const { fiber, seen } = yield* collect(bobClient.callMemberEvents(room as RoomId).pipe(Stream.orDie))
      yield* TestClock.adjust(0)
      assert.deepStrictEqual((yield* Ref.get(seen)).map(who), [[`${bob}/B`]])
      yield* TestClock.adjust(1_800_000)
      assert.deepStrictEqual((yield* Ref.get(seen)).map(who), [[`${bob}/B`], []])
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(Testing.layer({ homeserver: { stickyEvents: true, rooms: [{ roomId: room }] } }))))

  it.effect("sticky members come out with their hashed LiveKit identity", () =>
    Effect.gen(function*() {
      const out = yield* CallMembers.changes(
        Stream.make(sticky("@alice:example.com", "DEVICE", "member-1", { durationMs: 3_600_000 }), join(bob, "B", { ts: 1 }))
      ).pipe(Stream.take(2), Stream.runCollect)
      const last = Chunk.unsafeLast(out)
      assert.deepStrictEqual(
        last.map((m) => m.rtcBackendIdentity),
        ["vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU", `${bob}:B`]
      )
    }))
})

// ---------------------------------------------------------------------------
// The fold keeps its member list sorted as events come in; this checks it against the plain definition
// (keep the latest entry per key, then filter and sort everything on every read) over random histories.
// ---------------------------------------------------------------------------

type Ref = { readonly decoded: Membership.Decoded; readonly stateKey?: string | undefined }
type StickyRef = Ref & { readonly eventId: string; readonly stickyKey: Option.Option<string>; readonly expiresAt: number }

const reference = () => {
  const state = new Map<string, Ref>()
  // Per sticky key, every live event by id, in the order they last came (a Map keeps insertion order).
  const stickies = new Map<string, Map<string, StickyRef>>()
  /** The one that expires last, of equals the last to come. */
  const currentOf = (byId: Map<string, StickyRef>) =>
    [...byId.values()].reduce((a, b) => (b.expiresAt >= a.expiresAt ? b : a))
  const currents = () => [...stickies.values()].map(currentOf)
  const roomMembership = new Map<string, unknown>()
  const parsed = (r: Ref, legacy: boolean) =>
    r.decoded._tag === "Member" ? [r.decoded.member] : r.decoded._tag === "Legacy" && legacy ? r.decoded.members : []
  return {
    apply: (event: RawCallEvent, receivedAt: number) => {
      for (const [k, byId] of stickies) {
        for (const [id, e] of byId) if (e.expiresAt <= receivedAt) byId.delete(id)
        if (byId.size === 0) stickies.delete(k)
      }
      const decoded = Membership.decode(event, receivedAt)
      if (event.stateKey !== undefined) {
        if (event.type === Membership.RoomMemberEventType) {
          roomMembership.set(event.stateKey, (event.content as { membership?: unknown }).membership)
          return
        }
        if (event.type !== Membership.SessionEventType) return
        const k = `${event.type}|${event.stateKey}`
        if (decoded._tag === "Member" || decoded._tag === "Legacy") state.set(k, { decoded, stateKey: event.stateKey })
        else state.delete(k)
        return
      }
      if (event.type !== Membership.StickyEventType) return
      const stickyKey = Membership.stickyKeyOf(event.content)
      const k = Option.isSome(stickyKey) ? `${event.sender}|${stickyKey.value}` : `event|${event.eventId}`
      const entry = { decoded, eventId: event.eventId, stickyKey, expiresAt: Membership.stickyExpiresAt(event, receivedAt) }
      const byId = stickies.get(k) ?? new Map<string, StickyRef>()
      byId.delete(event.eventId)
      stickies.set(k, byId.set(event.eventId, entry))
    },
    members: (now: number, includeLegacy: boolean) => {
      const live = currents().filter((e) => e.expiresAt > now)
      const masked = new Set(live.flatMap((e) => Option.toArray(e.stickyKey)))
      return [
        ...[...state.values()].filter((e) => !masked.has(e.stateKey!)).flatMap((e) => parsed(e, includeLegacy)),
        ...live.flatMap((e) => parsed(e, false))
      ]
        .filter((m) => m.slotId === Membership.RoomSlotId && !Membership.isExpired(m, now))
        .filter((m) => (roomMembership.get(m.userId) ?? "join") === "join")
        .sort((a, b) =>
          a.createdTs - b.createdTs || byCodeUnits(a.userId, b.userId) || byCodeUnits(a.deviceId, b.deviceId) ||
          byCodeUnits(a.eventId, b.eventId)
        )
    },
    nextExpiry: (now: number) => {
      const times = [
        ...[...state.values()].flatMap((e) => parsed(e, true)).flatMap((m) => Option.toArray(m.expiresAt)),
        ...currents().map((e) => e.expiresAt)
      ].filter((t) => t > now)
      return times.length === 0 ? Option.none() : Option.some(Math.min(...times))
    }
  }
}

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

const anyEvent = (n: number): fc.Arbitrary<RawCallEvent> => {
  const user = fc.constantFrom(alice, bob)
  const device = fc.constantFrom("A", "B")
  const ts = fc.integer({ min: 0, max: 20_000 })
  // State keys may equal a sticky key ("m1"), so that sticky events mask state ones.
  const stateKey = fc.constantFrom("m1", "k2", "k3")
  return fc.oneof(
    fc.record({ u: user, d: device, ts, sk: stateKey, exp: fc.integer({ min: 1, max: 30_000 }), created: fc.option(ts, { nil: undefined }) })
      .map(({ created, d, exp, sk, ts, u }) => join(u, d, { ts, stateKey: sk, expiresMs: exp, createdTs: created, id: `$j${n}/${ts}` })),
    fc.record({ u: user, sk: stateKey, ts }).map(({ sk, ts, u }): RawCallEvent => ({ ...leave(u, "A", ts), stateKey: sk, eventId: `$l${n}/${ts}` })),
    fc.record({ u: user, sk: stateKey, ts, devices: fc.uniqueArray(fc.constantFrom("L1", "L2", "L3"), { maxLength: 3 }) })
      .map(({ devices, sk, ts, u }): RawCallEvent => ({
        type: Membership.SessionEventType,
        stateKey: sk,
        sender: u,
        eventId: `$legacy${n}/${ts}`,
        originServerTs: ts,
        content: {
          memberships: devices.map((d) => ({ application: "m.call", call_id: "", scope: "m.room", device_id: d, membershipID: d, expires: 10_000 }))
        }
      })),
    fc.record({ u: user, d: device, m: fc.constantFrom("m1", "m2"), ts, dur: fc.integer({ min: 1, max: 20_000 }), left: fc.boolean() })
      .map(({ d, dur, left, m, ts, u }) => ({ ...sticky(u, d, m, { ts, durationMs: dur, left }), eventId: `$s${n}/${ts}/${left}` })),
    // From a small pool of event ids, with an absolute expiry: the same event again, as an adapter passes on
    // one the client dropped early, replaces itself even when it now expires sooner.
    fc.record({ u: user, d: device, m: fc.constantFrom("m1", "m2"), id: fc.nat({ max: 2 }), at: fc.integer({ min: 0, max: 100_000 }) })
      .map(({ at, d, id, m, u }) => ({ ...sticky(u, d, m, {}), eventId: `$again${id}`, stickyExpiresAt: at })),
    fc.record({ u: user, ts, m: fc.constantFrom("join", "leave", "ban", undefined) })
      .map(({ m, ts, u }) => ({ ...roomMember(u, m, ts), eventId: `$m${n}/${ts}` }))
  )
}

describe("CallMembers fold against the plain definition", () => {
  it("same members, in the same order, and the same next expiry after every event of random histories", () => {
    const history = fc.array(fc.tuple(fc.nat({ max: 5_000 }), fc.nat({ max: 3 })), { minLength: 1, maxLength: 40 })
      .chain((steps) =>
        fc.tuple(...steps.map(([gap], i) => anyEvent(i).map((event) => ({ gap, event })))).map((events) => events)
      )
    fc.assert(
      fc.property(history, (steps) => {
        const ref = reference()
        let s = CallMembers.empty
        let now = 0
        for (const { event, gap } of steps) {
          now += gap
          s = CallMembers.apply(s, event, now)
          ref.apply(event, now)
          // Expired sticky events are not kept around (only the one just added may end right now).
          for (const slot of HashMap.values(s.sticky)) {
            for (const e of slot.entries) assert.isTrue(e.expiresAt > now || e.event === event)
          }
          for (const at of [now, now + 3_000, now + 15_000]) {
            for (const includeLegacy of [false, true]) {
              const got = CallMembers.members(s, at, { includeLegacy }).map((m) => `${m.eventId} ${m.userId} ${m.deviceId}`)
              const want = ref.members(at, includeLegacy).map((m) => `${m.eventId} ${m.userId} ${m.deviceId}`)
              assert.deepStrictEqual(got, want, `at ${at} after ${JSON.stringify(event)}`)
            }
            assert.deepStrictEqual(CallMembers.nextExpiry(s, at), ref.nextExpiry(at))
          }
        }
      }),
      { numRuns: 400 }
    )
  })
})

describe("CallMembers.changes: work per event", () => {
  it.effect("a sticky member's identity is hashed once, however many lists it is in", () =>
    Effect.gen(function*() {
      const digest = vi.spyOn(globalThis.crypto.subtle, "digest")
      try {
        const events = [sticky(alice, "A", "m1", { durationMs: 3_600_000 }), ...["B", "C", "D", "E"].map((d, i) => join(bob, d, { ts: i + 1 }))]
        const lists = yield* CallMembers.changes(Stream.fromIterable(events)).pipe(Stream.take(5), Stream.runCollect)
        assert.deepStrictEqual(Chunk.toReadonlyArray(lists).map((l) => l.length), [1, 2, 3, 4, 5])
        assert.strictEqual(digest.mock.calls.length, 1)
      } finally {
        digest.mockRestore()
      }
    }))
})
