import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as fc from "fast-check"
import type { RawCallEvent } from "../src/MatrixClient.ts"
import * as Membership from "../src/Membership.ts"
import { liveKitIdentityHashed } from "../src/LiveKitNaming.ts"

const alice = "@alice:example.org"
const room = "!abc:example.org"
const jwtUrl = "https://rtc.example.org/livekit/jwt"

const stateEvent = (content: unknown, overrides: Partial<RawCallEvent> = {}): RawCallEvent => ({
  type: Membership.SessionEventType,
  stateKey: `_${alice}_DEVICEA_m.call`,
  sender: alice,
  eventId: "$state1",
  originServerTs: 1_760_000_000_000,
  content,
  ...overrides
})

const stickyEvent = (content: unknown, overrides: Partial<RawCallEvent> = {}): RawCallEvent => ({
  type: Membership.StickyEventType,
  stateKey: undefined,
  sender: alice,
  eventId: "$sticky1",
  originServerTs: 1_760_000_000_000,
  content,
  ...overrides
})

/** The join content of matrixrtc-protocol.md §1.3, as JS-SDK builds it. */
const jsSdkJoin = {
  application: "m.call",
  call_id: "",
  scope: "m.room",
  device_id: "DEVICEA",
  membershipID: "@alice:example.org:DEVICEA",
  expires: 14400000,
  "m.call.intent": "video",
  focus_active: { type: "livekit", focus_selection: "multi_sfu" },
  foci_preferred: [
    { livekit_alias: "!abc:example.org", type: "livekit", livekit_service_url: "https://rtc.example.org/livekit/jwt" }
  ]
}

/** The sticky join content of matrixrtc-protocol.md §1.4 as js-sdk 42 builds it (`rtc_transports`). */
const jsSdkSticky = {
  application: { type: "m.call", "m.call.intent": "video" },
  slot_id: "m.call#ROOM",
  rtc_transports: [{ type: "livekit", livekit_service_url: "https://rtc.example.org/livekit/jwt" }],
  member: { device_id: "DEVICEA", user_id: "@alice:example.org", id: "7c1e3f2a-5d0b-4b8e-9a61-0f2d3c4b5a69" },
  versions: [],
  msc4354_sticky_key: "7c1e3f2a-5d0b-4b8e-9a61-0f2d3c4b5a69"
}

/** The same as js-sdk 43's StickyEventMembershipManager sends it: `transports: {published, can_subscribe}`. */
const { rtc_transports: _rtcTransports, ...jsSdk43StickyBase } = jsSdkSticky
const jsSdk43Sticky = {
  ...jsSdk43StickyBase,
  transports: { published: jsSdkSticky.rtc_transports, can_subscribe: ["livekit"] }
}

const member = (d: Membership.Decoded): Membership.ParsedMember => {
  assert.strictEqual(d._tag, "Member", JSON.stringify(d))
  return (d as Extract<Membership.Decoded, { _tag: "Member" }>).member
}

const rejection = (d: Membership.Decoded): Membership.RejectionReason => {
  assert.strictEqual(d._tag, "Rejected", JSON.stringify(d))
  return (d as Extract<Membership.Decoded, { _tag: "Rejected" }>).reason
}

describe("Membership: writing", () => {
  it("session join content is JS-SDK's multi-SFU content, key for key", () => {
    const content = Membership.sessionContent({
      userId: alice,
      deviceId: "DEVICEA",
      roomId: room,
      livekitServiceUrl: jwtUrl,
      callIntent: "video"
    })
    assert.deepStrictEqual(content, jsSdkJoin)
    assert.deepStrictEqual(Object.keys(content), [
      "application",
      "call_id",
      "scope",
      "device_id",
      "membershipID",
      "expires",
      "m.call.intent",
      "focus_active",
      "foci_preferred"
    ])
  })

  it("refresh content adds created_ts; no intent means no key", () => {
    const content = Membership.sessionContent({
      userId: alice,
      deviceId: "DEVICEA",
      roomId: room,
      livekitServiceUrl: jwtUrl,
      expiresMs: 28_800_000,
      createdTs: 1_760_000_000_123
    })
    assert.strictEqual(content["created_ts"], 1_760_000_000_123)
    assert.strictEqual(content["expires"], 28_800_000)
    assert.isFalse("m.call.intent" in content)
    assert.deepStrictEqual(Membership.sessionLeaveContent(), {})
  })

  it("state keys: leading _ except in msc3757/msc3779 room versions", () => {
    assert.strictEqual(Membership.sessionStateKey(alice, "DEVICEA", "10"), "_@alice:example.org_DEVICEA_m.call")
    assert.strictEqual(Membership.sessionStateKey(alice, "DEVICEA", "11"), "_@alice:example.org_DEVICEA_m.call")
    assert.strictEqual(
      Membership.sessionStateKey(alice, "DEVICEA", "org.matrix.msc3757.10"),
      "@alice:example.org_DEVICEA_m.call"
    )
    assert.strictEqual(
      Membership.sessionStateKey(alice, "DEVICEA", "org.matrix.msc3779"),
      "@alice:example.org_DEVICEA_m.call"
    )
    // `\b` after the number: a longer MSC number is not one of them.
    assert.strictEqual(
      Membership.sessionStateKey(alice, "DEVICEA", "org.matrix.msc37570"),
      "_@alice:example.org_DEVICEA_m.call"
    )
    assert.strictEqual(Membership.sessionStateKey(alice, "DEVICEA", "11", "custom"), "_@alice:example.org_DEVICEA_m.callcustom")
  })

  it("sticky content matches §1.4 and leaves with the sticky key only", () => {
    const content = Membership.stickyContent({
      userId: alice,
      deviceId: "DEVICEA",
      memberId: "7c1e3f2a-5d0b-4b8e-9a61-0f2d3c4b5a69",
      livekitServiceUrl: jwtUrl,
      callIntent: "video"
    })
    // Both transport shapes: js-sdk 43's and js-sdk 42's.
    assert.deepStrictEqual(content, { ...jsSdk43Sticky, rtc_transports: jsSdkSticky.rtc_transports })
    assert.deepStrictEqual(Membership.stickyLeaveContent("m1"), { msc4354_sticky_key: "m1" })
  })
})

describe("Membership: reading", () => {
  it("decodes JS-SDK's join content (§1.3)", () => {
    const m = member(Membership.decode(stateEvent(jsSdkJoin)))
    assert.strictEqual(m.dialect, "session")
    assert.strictEqual(m.userId, alice)
    assert.strictEqual(m.deviceId, "DEVICEA")
    assert.strictEqual(m.memberId, "@alice:example.org:DEVICEA")
    assert.strictEqual(m.slotId, "m.call#ROOM")
    assert.deepStrictEqual(m.scope, Option.some("m.room"))
    assert.deepStrictEqual(m.callIntent, Option.some("video"))
    assert.deepStrictEqual(m.focusSelection, Option.some("multi_sfu"))
    assert.strictEqual(m.transports.length, 1)
    assert.strictEqual(m.transports[0]!.type, "livekit")
    assert.strictEqual(m.transports[0]!.livekitServiceUrl, jwtUrl)
    assert.deepStrictEqual(m.transports[0]!.raw, { livekit_alias: room })
    assert.strictEqual(m.createdTs, 1_760_000_000_000)
    assert.deepStrictEqual(m.expiresAt, Option.some(1_760_000_000_000 + 14_400_000))
    assert.deepStrictEqual(m.identity, { _tag: "Plain", identity: "@alice:example.org:DEVICEA" })
    assert.strictEqual(m.stateKey, `_${alice}_DEVICEA_m.call`)
  })

  it.effect("session round trip: written content reads back as the member", () =>
    Effect.gen(function*() {
      const content = Membership.sessionContent({
        userId: alice,
        deviceId: "DEV2",
        roomId: room,
        livekitServiceUrl: jwtUrl,
        createdTs: 1_000,
        expiresMs: 5_000
      })
      const m = yield* Membership.toCallMember(member(Membership.decode(stateEvent(content, { originServerTs: 9_999 }))))
      assert.strictEqual(m.deviceId, "DEV2")
      assert.strictEqual(m.memberId, `${alice}:DEV2`)
      assert.strictEqual(m.createdTs, 1_000)
      assert.deepStrictEqual(m.expiresAt, Option.some(6_000))
      assert.deepStrictEqual(m.callIntent, Option.none())
      assert.strictEqual(m.rtcBackendIdentity, `${alice}:DEV2`)
      assert.isFalse("identity" in m)
    }))

  it.effect("sticky round trip, hashed identity, sender check", () =>
    Effect.gen(function*() {
      const content = Membership.stickyContent({
        userId: "@alice:example.com",
        deviceId: "DEVICE",
        memberId: "member-1",
        livekitServiceUrl: jwtUrl
      })
      const event = stickyEvent(content, { sender: "@alice:example.com", stickyDurationMs: 3_600_000 })
      const parsed = member(Membership.decode(event, 5_000))
      const m = yield* Membership.toCallMember(parsed)
      assert.strictEqual(m.dialect, "sticky")
      assert.strictEqual(m.memberId, "member-1")
      assert.strictEqual(m.slotId, "m.call#ROOM")
      assert.strictEqual(m.application, "m.call")
      assert.strictEqual(m.transports[0]!.livekitServiceUrl, jwtUrl)
      assert.deepStrictEqual(m.transports[0]!.raw, {})
      assert.strictEqual(m.createdTs, event.originServerTs)
      assert.deepStrictEqual(m.expiresAt, Option.some(5_000 + 3_600_000))
      // auth-service.md §2.3 vector.
      assert.strictEqual(m.rtcBackendIdentity, "vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU")
      assert.strictEqual(m.rtcBackendIdentity, yield* liveKitIdentityHashed("@alice:example.com", "DEVICE", "member-1"))
    }))

  it("decodes JS-SDK's sticky content (§1.4), ignoring the m.relation quirk", () => {
    const m = member(Membership.decode(stickyEvent({ ...jsSdkSticky, "m.relation": { rel_type: "m.reference" } })))
    assert.deepStrictEqual(m.callIntent, Option.some("video"))
    assert.strictEqual(m.userId, alice)
  })

  it("legacy memberships array is recognised and flagged", () => {
    const d = Membership.decode(stateEvent({
      memberships: [
        {
          application: "m.call",
          call_id: "",
          scope: "m.room",
          device_id: "DEVICEA",
          membershipID: "a1b2c3",
          expires: 3600000,
          created_ts: 1760000000000,
          foci_active: [{ type: "livekit", livekit_service_url: "https://jwt.example.org", livekit_alias: room }]
        },
        { application: "m.call" } // broken entries are skipped
      ]
    }, { stateKey: alice }))
    assert.strictEqual(d._tag, "Legacy")
    const members = (d as Extract<Membership.Decoded, { _tag: "Legacy" }>).members
    assert.strictEqual(members.length, 1)
    assert.strictEqual(members[0]!.dialect, "legacy")
    assert.strictEqual(members[0]!.memberId, "a1b2c3")
    assert.strictEqual(members[0]!.slotId, "m.call#ROOM")
    assert.deepStrictEqual(members[0]!.expiresAt, Option.some(1760000000000 + 3600000))
    assert.deepStrictEqual(Membership.decode(stateEvent({ memberships: [] }))._tag, "Legacy")
  })

  it("decodes js-sdk 43's sticky content (transports.published), and prefers it when both shapes are there", () => {
    const m = member(Membership.decode(stickyEvent(jsSdk43Sticky)))
    assert.strictEqual(m.memberId, jsSdk43Sticky.member.id)
    assert.deepStrictEqual(m.transports.map((t) => t.livekitServiceUrl), [jwtUrl])
    const other = "https://other.example.org/livekit/jwt"
    const both = member(Membership.decode(stickyEvent({
      ...jsSdk43Sticky,
      rtc_transports: [{ type: "livekit", livekit_service_url: other }]
    })))
    assert.deepStrictEqual(both.transports.map((t) => t.livekitServiceUrl), [jwtUrl])
    // One version's shape broken, the other's fine: that version lists the member, so do we.
    const broken43 = { ...jsSdk43Sticky, transports: { published: [] }, rtc_transports: [{ type: "livekit", livekit_service_url: other }] }
    assert.deepStrictEqual(member(Membership.decode(stickyEvent(broken43))).transports.map((t) => t.livekitServiceUrl), [other])
    assert.deepStrictEqual(member(Membership.decode(stickyEvent({ ...jsSdk43Sticky, rtc_transports: 5 }))).transports.length, 1)
  })

  it("left contents, also js-sdk 43's sticky leave with slot_id", () => {
    assert.strictEqual(Membership.decode(stateEvent({}))._tag, "Left")
    const left = Membership.decode(stickyEvent({ msc4354_sticky_key: "m1" }))
    assert.deepStrictEqual(left, Membership.Decoded.Left({ stickyKey: Option.some("m1") }))
    const left43 = Membership.decode(stickyEvent({ slot_id: "m.call#ROOM", msc4354_sticky_key: "m1" }))
    assert.deepStrictEqual(left43, Membership.Decoded.Left({ stickyKey: Option.some("m1") }))
    assert.isTrue(Membership.isLeaveContent({ slot_id: "m.call#ROOM" }))
  })

  it("expires and membershipID of a wrong type read as absent, as in JS-SDK (`?? default`)", () => {
    for (const expires of [null, "14400000", {}, [1]]) {
      const m = member(Membership.decode(stateEvent({ ...jsSdkJoin, created_ts: 1_000, expires })))
      assert.deepStrictEqual(m.expiresAt, Option.some(1_000 + Membership.DefaultExpiresMs), JSON.stringify(expires))
    }
    for (const membershipID of [null, 5, { id: "x" }]) {
      const m = member(Membership.decode(stateEvent({ ...jsSdkJoin, membershipID })))
      assert.strictEqual(m.memberId, `${alice}:DEVICEA`, JSON.stringify(membershipID))
    }
  })

  it("rejects malformed session events", () => {
    const without = (key: string) => Object.fromEntries(Object.entries(jsSdkJoin).filter(([k]) => k !== key))
    for (const key of ["call_id", "device_id", "focus_active"]) {
      assert.strictEqual(rejection(Membership.decode(stateEvent(without(key)))), "Malformed", key)
    }
    assert.strictEqual(rejection(Membership.decode(stateEvent(without("application")))), "NoApplication")
    assert.strictEqual(rejection(Membership.decode(stateEvent({ application: "m.call" }))), "NoApplication")
    assert.strictEqual(rejection(Membership.decode(stateEvent({ ...jsSdkJoin, device_id: 7 }))), "Malformed")
    assert.strictEqual(rejection(Membership.decode(stateEvent({ ...jsSdkJoin, focus_active: { type: 1 } }))), "Malformed")
    assert.strictEqual(rejection(Membership.decode(stateEvent({ ...jsSdkJoin, foci_preferred: [{}] }))), "Malformed")
    assert.strictEqual(rejection(Membership.decode(stateEvent({ ...jsSdkJoin, created_ts: null }))), "Malformed")
    assert.strictEqual(rejection(Membership.decode(stateEvent(null))), "NotAnObject")
    assert.strictEqual(rejection(Membership.decode(stateEvent([jsSdkJoin]))), "NotAnObject")
    assert.strictEqual(rejection(Membership.decode(stateEvent("x"))), "NotAnObject")
    assert.strictEqual(rejection(Membership.decode(stateEvent({ memberships: "nope" }))), "Malformed")
    assert.strictEqual(rejection(Membership.decode(stateEvent(jsSdkJoin, { type: "m.room.member" }))), "UnknownType")
    // Only `memberships` in a sticky event is not a membership.
    assert.strictEqual(rejection(Membership.decode(stickyEvent({ memberships: [] }))), "NoApplication")
  })

  it("rejects malformed sticky events", () => {
    const bad = (patch: Record<string, unknown>) => Membership.decode(stickyEvent({ ...jsSdkSticky, ...patch }))
    assert.strictEqual(rejection(bad({ member: { ...jsSdkSticky.member, user_id: "@mallory:example.org" } })), "SenderMismatch")
    assert.strictEqual(rejection(bad({ member: { ...jsSdkSticky.member, user_id: "alice" } })), "SenderMismatch")
    assert.strictEqual(rejection(Membership.decode(stickyEvent(jsSdkSticky, { sender: "@bob:example.org" }))), "SenderMismatch")
    assert.strictEqual(rejection(bad({ slot_id: "m.call" })), "InvalidSlot")
    assert.strictEqual(rejection(bad({ slot_id: "m.call#ROOM#2" })), "InvalidSlot")
    assert.strictEqual(rejection(bad({ slot_id: "m.other#ROOM" })), "InvalidSlot")
    assert.strictEqual(rejection(bad({ application: { type: "m.call#x" }, slot_id: "m.call#x#ROOM" })), "InvalidSlot")
    assert.strictEqual(rejection(bad({ msc4354_sticky_key: 5 })), "Malformed")
    const { msc4354_sticky_key: _, ...noKey } = jsSdkSticky
    assert.strictEqual(rejection(Membership.decode(stickyEvent(noKey))), "InvalidStickyKey")
    assert.strictEqual(rejection(bad({ sticky_key: "other" })), "InvalidStickyKey")
    assert.strictEqual(member(bad({ sticky_key: jsSdkSticky.msc4354_sticky_key })).memberId, jsSdkSticky.member.id)
    assert.strictEqual(member(Membership.decode(stickyEvent({ ...noKey, sticky_key: "k" }))).memberId, jsSdkSticky.member.id)
    assert.strictEqual(rejection(bad({ versions: [1] })), "Malformed")
    assert.strictEqual(rejection(bad({ rtc_transports: [{ livekit_service_url: jwtUrl }] })), "Malformed")
    assert.strictEqual(rejection(bad({ rtc_transports: {} })), "Malformed")
    const bad43 = (transports: unknown) => Membership.decode(stickyEvent({ ...jsSdk43Sticky, transports }))
    assert.strictEqual(rejection(bad43({ published: [{ type: "livekit" }] })), "Malformed")
    assert.strictEqual(rejection(bad43({ published: [{}], can_subscribe: [] })), "Malformed")
    assert.strictEqual(rejection(bad43({ published: [], can_subscribe: [1] })), "Malformed")
    assert.strictEqual(rejection(bad43([])), "Malformed")
    assert.strictEqual(rejection(bad({ member: { user_id: alice, id: "x" } })), "Malformed")
    assert.strictEqual(rejection(bad({ "m.relates_to": { rel_type: "m.thread", event_id: "$x" } })), "Malformed")
    assert.strictEqual(rejection(bad({ "m.relates_to": { rel_type: "m.reference" } })), "Malformed")
    assert.strictEqual(member(bad({ "m.relates_to": { rel_type: "m.reference", event_id: "$prev" } })).userId, alice)
  })
})

describe("Membership: validity (§1.7)", () => {
  const at = (content: Record<string, unknown>, ots = 1_000) => member(Membership.decode(stateEvent(content, { originServerTs: ots })))

  it("expiry counts from created_ts, else origin_server_ts; boundary is expired", () => {
    const withCreated = at({ ...jsSdkJoin, created_ts: 500, expires: 1_000 })
    assert.deepStrictEqual(withCreated.expiresAt, Option.some(1_500))
    assert.isFalse(Membership.isExpired(withCreated, 1_499))
    assert.isTrue(Membership.isExpired(withCreated, 1_500))
    assert.isTrue(Membership.isExpired(withCreated, 1_501))

    const fromOrigin = at({ ...jsSdkJoin, expires: 1_000 }, 2_000)
    assert.strictEqual(fromOrigin.createdTs, 2_000)
    assert.isFalse(Membership.isExpired(fromOrigin, 2_999))
    assert.isTrue(Membership.isExpired(fromOrigin, 3_000))

    const { expires: _, ...noExpires } = jsSdkJoin
    const defaulted = at(noExpires, 0)
    assert.deepStrictEqual(defaulted.expiresAt, Option.some(14_400_000))
    assert.isFalse(Membership.isExpired(defaulted, 14_399_999))
    assert.isTrue(Membership.isExpired(defaulted, 14_400_000))
  })

  it("sticky liveness: receipt + duration (capped at 1 h), else min(receipt, origin) + 1 h", () => {
    const e = (over: Partial<RawCallEvent>) => stickyEvent(jsSdkSticky, { originServerTs: 10_000, ...over })
    assert.strictEqual(Membership.stickyExpiresAt(e({ stickyDurationMs: 60_000 }), 20_000), 80_000)
    assert.strictEqual(Membership.stickyExpiresAt(e({ stickyDurationMs: 99_999_999 }), 20_000), 20_000 + 3_600_000)
    assert.strictEqual(Membership.stickyExpiresAt(e({}), 20_000), 10_000 + 3_600_000)
    // A server clock ahead of ours does not extend liveness.
    assert.strictEqual(Membership.stickyExpiresAt(e({ originServerTs: 50_000 }), 20_000), 20_000 + 3_600_000)
    const m = member(Membership.decode(e({ stickyDurationMs: 60_000 }), 20_000))
    assert.isFalse(Membership.isExpired(m, 79_999))
    assert.isTrue(Membership.isExpired(m, 80_000))
  })

  it("sticky liveness: the client's own expiry (unstableStickyExpiresAt) is taken as is, whenever the event is read", () => {
    const e = stickyEvent(jsSdkSticky, { originServerTs: 10_000, stickyDurationMs: 3_600_000, stickyExpiresAt: 70_000 })
    // Read half an hour after the client got it: still the expiry the client worked out then.
    assert.strictEqual(Membership.stickyExpiresAt(e, 1_800_000), 70_000)
    const m = member(Membership.decode(e, 1_800_000))
    assert.deepStrictEqual(m.expiresAt, Option.some(70_000))
    assert.isTrue(Membership.isExpired(m, 70_000))
  })
})

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

// Acceptance over arbitrary and mutated events is fuzzed against an independent oracle in
// fuzzMembership.test.ts; here only the writers' round trips.
describe("Membership: properties", () => {
  it("session round trip for arbitrary inputs", () => {
    fc.assert(
      fc.property(
        fc.record({
          deviceId: fc.string({ minLength: 1 }),
          livekitServiceUrl: fc.webUrl(),
          callIntent: fc.option(fc.string(), { nil: undefined }),
          createdTs: fc.option(fc.integer({ min: 0, max: 2 ** 42 }), { nil: undefined }),
          expiresMs: fc.option(fc.integer({ min: 0, max: 2 ** 32 }), { nil: undefined })
        }),
        (input) => {
          const m = member(Membership.decode(stateEvent(Membership.sessionContent({ ...input, userId: alice, roomId: room }))))
          const createdTs = input.createdTs ?? 1_760_000_000_000
          return m.deviceId === input.deviceId && m.memberId === `${alice}:${input.deviceId}` &&
            m.transports[0]?.livekitServiceUrl === input.livekitServiceUrl &&
            Option.getOrUndefined(m.callIntent) === input.callIntent && m.createdTs === createdTs &&
            Option.getOrUndefined(m.expiresAt) === createdTs + (input.expiresMs ?? Membership.DefaultExpiresMs)
        }
      ),
      { numRuns: 1_000 }
    )
  })

  it("sticky round trip for arbitrary inputs", () => {
    fc.assert(
      fc.property(
        fc.record({
          deviceId: fc.string(),
          memberId: fc.string(),
          livekitServiceUrl: fc.webUrl(),
          callIntent: fc.option(fc.string(), { nil: undefined })
        }),
        (input) => {
          const m = member(Membership.decode(stickyEvent(Membership.stickyContent({ ...input, userId: alice }))))
          return m.deviceId === input.deviceId && m.memberId === input.memberId && m.userId === alice &&
            Option.getOrUndefined(m.callIntent) === input.callIntent &&
            m.transports[0]?.livekitServiceUrl === input.livekitServiceUrl
        }
      ),
      { numRuns: 1_000 }
    )
  })
})
