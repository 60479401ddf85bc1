// The sticky (MSC4143 `org.matrix.msc4143.rtc.member`) dialect against matrix-js-sdk 43's own code: its
// validator and CallMembership read what we write, we read what its StickyEventMembershipManager sends, and
// the emitter bridge carries the SDK's sticky expiry and its removals (expiry, redaction) to the fold.
import { assert, describe, it } from "@effect/vitest"
import { type CallMember, CallMembers, type Ids, Membership, type RawCallEvent } from "@matrixrtc-effect/core"
import { Effect, Fiber, Option, Ref, Schedule, Stream } from "effect"
import { ClientEvent, createClient, MatrixEvent, Room } from "matrix-js-sdk"
import { CallMembership } from "matrix-js-sdk/lib/matrixrtc/CallMembership.js"
import { checkRtcMembershipData } from "matrix-js-sdk/lib/matrixrtc/membershipData/rtc.js"
import { StickyEventMembershipManager } from "matrix-js-sdk/lib/matrixrtc/MembershipManager.js"
import { callMemberEvents } from "../src/callMemberEvents.ts"

const roomId = "!room:localhost" as Ids.RoomId
const bob = "@bob:localhost"
const jwtUrl = "https://rtc.example.org/livekit/jwt"
const memberId = "7c1e3f2a-5d0b-4b8e-9a61-0f2d3c4b5a69"

const stickyMatrixEvent = (
  id: string,
  content: Record<string, unknown>,
  opts: { readonly ts: number; readonly durationMs?: number; readonly ttlMs?: number }
) =>
  new MatrixEvent({
    type: Membership.StickyEventType,
    sender: bob,
    event_id: id,
    room_id: roomId,
    origin_server_ts: opts.ts,
    content,
    msc4354_sticky: { duration_ms: opts.durationMs ?? 3_600_000 },
    ...(opts.ttlMs !== undefined ? { unsigned: { msc4354_sticky_duration_ttl_ms: opts.ttlMs } } : {})
  })

const ours = (url = jwtUrl) =>
  Membership.stickyContent({ userId: bob, deviceId: "BOBDEVICE", memberId, livekitServiceUrl: url, callIntent: "video" })

describe("sticky memberships: what we write, as matrix-js-sdk 43 reads it", () => {
  it.effect("its validator and CallMembership accept our content: transport and LiveKit identity as ours", () =>
    Effect.gen(function*() {
      const content = ours()
      assert.isTrue(checkRtcMembershipData(content, bob))
      const event = stickyMatrixEvent("$ours", content, { ts: Date.now() })
      const theirs = yield* Effect.promise(() => CallMembership.parseFromEvent(event))
      assert.strictEqual(theirs.memberId, memberId)
      assert.strictEqual(theirs.deviceId, "BOBDEVICE")
      assert.strictEqual(theirs.callIntent, "video")
      assert.deepStrictEqual(theirs.getTransport(theirs), { type: "livekit", livekit_service_url: jwtUrl })
      const decoded = Membership.decode({
        type: Membership.StickyEventType,
        stateKey: undefined,
        sender: bob,
        eventId: "$ours",
        originServerTs: event.getTs(),
        content
      })
      assert.strictEqual(decoded._tag, "Member")
      if (decoded._tag !== "Member") return
      const mine = yield* Membership.toCallMember(decoded.member)
      assert.strictEqual(theirs.rtcBackendIdentity, mine.rtcBackendIdentity)
    }))
})

/** A client for StickyEventMembershipManager that answers every request and hands over what it sends. */
const recordingClient = () => {
  const sent: Array<{ readonly kind: "sticky" | "delayed"; readonly content: Record<string, unknown> }> = []
  const client = {
    getUserId: () => bob,
    getDeviceId: () => "BOBDEVICE",
    _unstable_sendStickyEvent: (_r: string, _d: number, _t: unknown, _type: string, content: Record<string, unknown>) => {
      sent.push({ kind: "sticky", content })
      return Promise.resolve({ event_id: `$sent${sent.length}` })
    },
    _unstable_sendStickyDelayedEvent: (
      _r: string,
      _d: number,
      _delay: unknown,
      _t: unknown,
      _type: string,
      content: Record<string, unknown>
    ) => {
      sent.push({ kind: "delayed", content })
      return Promise.resolve({ delay_id: "delay1" })
    },
    _unstable_updateDelayedEvent: () => Promise.resolve({}),
    _unstable_cancelScheduledDelayedEvent: () => Promise.resolve({}),
    _unstable_restartScheduledDelayedEvent: () => Promise.resolve({}),
    _unstable_sendScheduledDelayedEvent: () => Promise.resolve({}),
    sendStateEvent: () => Promise.reject(new Error("a sticky manager sends no state")),
    _unstable_sendDelayedStateEvent: () => Promise.reject(new Error("a sticky manager sends no state"))
  }
  return { sent, client }
}

describe("sticky memberships: what matrix-js-sdk 43 sends, as we read it", () => {
  it.live("its StickyEventMembershipManager's join reads as the member, its delayed leave as a leave", () =>
    Effect.gen(function*() {
      const { client, sent } = recordingClient()
      const room = { roomId, getVersion: () => "11", getLiveTimeline: () => undefined }
      const manager = new StickyEventMembershipManager(
        { callIntent: "audio" },
        room as never,
        client as never,
        { application: "m.call", id: "ROOM" },
        memberId
      )
      const transport = { type: "livekit", livekit_service_url: jwtUrl, livekit_alias: roomId }
      manager.join([transport], transport)
      yield* Effect.suspend(() => sent.some((s) => s.kind === "sticky") ? Effect.void : Effect.fail("not yet")).pipe(
        Effect.retry(Schedule.spaced("5 millis")),
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the manager never sent its membership") })
      )
      yield* Effect.promise(() => manager.leave(1_000)).pipe(Effect.timeout("5 seconds"), Effect.ignore)

      const raw = (content: Record<string, unknown>): RawCallEvent => ({
        type: Membership.StickyEventType,
        stateKey: undefined,
        sender: bob,
        eventId: "$theirs",
        originServerTs: 1_000,
        content
      })
      const join = sent.find((s) => s.kind === "sticky")!.content
      // Their shape, not ours: without it this test would prove nothing about reading js-sdk 43.
      assert.property(join, "transports")
      assert.notProperty(join, "rtc_transports")
      const decoded = Membership.decode(raw(join))
      assert.strictEqual(decoded._tag, "Member", JSON.stringify(decoded))
      if (decoded._tag !== "Member") return
      assert.strictEqual(decoded.member.memberId, memberId)
      assert.strictEqual(decoded.member.deviceId, "BOBDEVICE")
      assert.strictEqual(decoded.member.slotId, Membership.RoomSlotId)
      assert.deepStrictEqual(decoded.member.callIntent, Option.some("audio"))
      assert.deepStrictEqual(decoded.member.transports.map((t) => t.livekitServiceUrl), [jwtUrl])

      const leave = sent.find((s) => s.kind === "delayed")!.content
      assert.deepStrictEqual(Membership.decode(raw(leave)), Membership.Decoded.Left({ stickyKey: Option.some(memberId) }))
    }))
})

// ---------------------------------------------------------------------------
// The emitter bridge and the fold, on a real (never started) client and room
// ---------------------------------------------------------------------------

const setup = () => {
  const client = createClient({ baseUrl: "http://127.0.0.1:1", userId: "@alice:localhost", deviceId: "DEV" })
  const room = new Room(roomId, client, "@alice:localhost")
  client.store.storeRoom(room)
  return { client, room }
}

type List = ReadonlyArray<CallMember>

/**
 * Member lists of the fold over the bridge, until one satisfies `until`. `act` runs once the listeners are
 * on, and may wait for a list the fold has put out so far (`listed`).
 */
const lists = (
  client: ReturnType<typeof createClient>,
  until: (list: List) => boolean,
  act: (listed: (ok: (list: List) => boolean) => Effect.Effect<void, Error>) => Effect.Effect<void, Error>
) =>
  Effect.gen(function*() {
    const before = client.listenerCount(ClientEvent.Sync)
    const seen = yield* Ref.make<ReadonlyArray<List>>([])
    const fiber = yield* CallMembers.changes(callMemberEvents(client, roomId)).pipe(
      Stream.tap((list) => Ref.update(seen, (all) => [...all, list])),
      Stream.takeUntil(until),
      Stream.runDrain,
      Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the member list never got there") }),
      Effect.fork
    )
    // With the events already in the room the stream may be over (and its listeners off) before we look.
    yield* waitFor(() => client.listenerCount(ClientEvent.Sync) > before || fiber.unsafePoll() !== null)
    yield* act((ok) =>
      Effect.flatMap(Ref.get(seen), (all) => all.some(ok) ? Effect.void : Effect.fail(new Error("not yet"))).pipe(
        Effect.retry(Schedule.spaced("1 millis")),
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the fold never listed that") })
      )
    )
    yield* Fiber.join(fiber)
    return yield* Ref.get(seen)
  })

const ids = (l: ReadonlyArray<{ readonly eventId: string }>) => l.map((m) => m.eventId)

describe("sticky memberships through the bridge", () => {
  it.live("an event the room already held keeps the SDK's expiry, not a fresh hour from when we subscribe", () =>
    Effect.gen(function*() {
      const { client, room } = setup()
      // Sent 40 min ago with an hour to live: 20 min left.
      const event = stickyMatrixEvent("$held", ours(), { ts: Date.now() - 2_400_000 })
      room._unstable_addStickyEvents([event])
      const expiresAt = event.unstableStickyExpiresAt!
      const seen = yield* lists(client, (l) => l.length === 1, () => Effect.void)
      assert.deepStrictEqual(seen.at(-1)![0]!.expiresAt, Option.some(expiresAt))
      // The SDK's own timer would otherwise keep the test process waiting for 20 minutes.
      room.tryApplyRedaction(redaction("$held"))
    }))

  it.live("the server's TTL: the SDK's expiry from it is the one we use", () =>
    Effect.gen(function*() {
      const { client, room } = setup()
      const event = stickyMatrixEvent("$ttl", ours(), { ts: Date.now() - 600_000, ttlMs: 120_000 })
      const seen = yield* lists(client, (l) => l.length === 1, () => Effect.sync(() => room._unstable_addStickyEvents([event])))
      assert.deepStrictEqual(seen.at(-1)![0]!.expiresAt, Option.some(event.unstableStickyExpiresAt!))
      room.tryApplyRedaction(redaction("$ttl"))
    }))

  it.live("a redacted sticky membership leaves the list (the SDK's `removed`)", () =>
    Effect.gen(function*() {
      const { client, room } = setup()
      const seen = yield* lists(
        client,
        (l) => l.length === 0,
        (listed) =>
          Effect.gen(function*() {
            room._unstable_addStickyEvents([stickyMatrixEvent("$gone", ours(), { ts: Date.now() })])
            yield* listed((l) => l.length === 1)
            room.tryApplyRedaction(redaction("$gone"))
          })
      )
      assert.deepStrictEqual(seen.map(ids), [["$gone"], []])
    }))

  it.live("redacting the newer of two events under one sticky key puts the older one back", () =>
    Effect.gen(function*() {
      const { client, room } = setup()
      const older = stickyMatrixEvent("$older", ours("https://older.example.org"), { ts: Date.now() - 60_000 })
      const newer = stickyMatrixEvent("$newer", ours(), { ts: Date.now() })
      // The older one is listed twice: before the newer one replaces it and once the newer one is redacted.
      let olderListed = 0
      const seen = yield* lists(
        client,
        (l) => ids(l).join() === "$older" && ++olderListed === 2,
        (listed) =>
          Effect.gen(function*() {
            room._unstable_addStickyEvents([older])
            yield* listed((l) => ids(l).includes("$older"))
            room._unstable_addStickyEvents([newer])
            yield* listed((l) => ids(l).includes("$newer"))
            room.tryApplyRedaction(redaction("$newer"))
          })
      )
      assert.deepStrictEqual(seen.map(ids), [["$older"], ["$newer"], ["$older"]])
      room.tryApplyRedaction(redaction("$older"))
    }))
})

const redaction = (redacts: string) =>
  new MatrixEvent({
    type: "m.room.redaction",
    sender: bob,
    event_id: `$redacts-${redacts}`,
    room_id: roomId,
    origin_server_ts: Date.now(),
    redacts,
    content: {}
  })

const waitFor = (ok: () => boolean) =>
  Effect.suspend(() => ok() ? Effect.void : Effect.fail(new Error("not yet"))).pipe(
    Effect.retry(Schedule.spaced("1 millis")),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("never happened") })
  )
