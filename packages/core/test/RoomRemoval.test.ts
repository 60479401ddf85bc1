/**
 * A call ends once our user can no longer be a member: removed from the room (kicked, banned, left from another
 * device: `RemovedFromRoom`), or a mid-call membership write refused with 403 (`MembershipRejected`). SFU first, as
 * in every leave; the leave's own requests, most likely refused too, stay bounded.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Stream, TestClock } from "effect"
import * as Call from "../src/Call.ts"
import type { RoomId } from "../src/Ids.ts"
import { MatrixClient, type RawCallEvent } from "../src/MatrixClient.ts"
import * as Membership from "../src/Membership.ts"
import * as Testing from "../src/testing/index.ts"
import type { RoomMembership } from "../src/testing/TestHomeserver.ts"
import { entries, ops, roomId, settle, TestHomeserver, TestLiveKit } from "./utils.ts"

const { fail } = Testing.TestCallLog

const alice = "@alice:example.org"

/** Joins and watches for the end; the first heartbeat restart comes 5 s after the join. */
const joinWatched = (options?: Call.JoinOptions) =>
  Effect.gen(function*() {
    const call = yield* Call.join(roomId, options)
    const ended = yield* Effect.fork(call.ended)
    yield* settle
    return { call, ended }
  })

/** The log from the first entry matching `from` on, as `op detail` strings. */
const logFrom = (from: (e: Testing.TestCallLog.CallLogEntry) => boolean) =>
  Effect.map(entries, (es) => es.slice(es.findIndex(from)).map((e) => `${e.actor}:${e.op} ${e.detail ?? ""}`.trim()))

/**
 * The call has ended with `why` without the clock moving (its leave did not wait out a bound: every step was
 * answered), its SFU connection was closed before any request that ends the membership, and nothing of ours is
 * left on the SFU or scheduled on the homeserver.
 */
const assertEndedSfuFirst = (ended: Fiber.Fiber<Call.CallEnd>, why: Call.CallEnd, since: (e: Testing.TestCallLog.CallLogEntry) => boolean) =>
  Effect.gen(function*() {
    const hs = yield* TestHomeserver.TestHomeserver
    const sfu = yield* TestLiveKit.TestLiveKit
    const end = yield* Fiber.poll(ended)
    assert.isTrue(Option.isSome(end), `the call did not end: ${(yield* ops).join(", ")}`)
    assert.strictEqual(yield* Fiber.join(ended), why)
    // what came after the event that ended the call
    const after = (yield* logFrom(since)).slice(1)
    const disconnect = after.findIndex((e) => e.startsWith("sfu:disconnect"))
    const ending = after.findIndex((e) =>
      /^homeserver:(delayed\.(send|cancel)|sendState leave|sendSticky leave)/.test(e) ||
      (e.startsWith("homeserver:sendState") || e.startsWith("homeserver:sendSticky")) && e.includes("403")
    )
    assert.isAtLeast(disconnect, 0, after.join(", "))
    assert.isAtLeast(ending, 0, after.join(", "))
    assert.isBelow(disconnect, ending, after.join(", "))
    assert.deepStrictEqual((yield* sfu.participants()).filter((p) => p.local), [])
    assert.deepStrictEqual(yield* hs.scheduledDelayedEvents, [])
  })

const memberOp = (membership: string) => (e: Testing.TestCallLog.CallLogEntry) => e.op === "member" && e.detail === membership

describe("removed from the room", () => {
  const removals: ReadonlyArray<readonly [string, RoomMembership, string]> = [
    ["kicked", "leave", "@mod:example.org"],
    ["banned", "ban", "@mod:example.org"],
    ["left from another device", "leave", alice]
  ]
  for (const [what, membership, sender] of removals) {
    it.scoped(`${what} mid-call: ends RemovedFromRoom, SFU first, nothing left scheduled`, () =>
      Effect.gen(function*() {
        const hs = yield* TestHomeserver.TestHomeserver
        const { ended } = yield* joinWatched()
        yield* TestClock.adjust(12_000)
        yield* hs.setMembership(roomId, alice, membership, sender)
        yield* settle
        yield* assertEndedSfuFirst(ended, "RemovedFromRoom", memberOp(membership))
        // the leave's requests were refused as Synapse refuses them, each once (a 403 is not retried)
        assert.deepStrictEqual(
          (yield* logFrom(memberOp(membership))).filter((e) => e.startsWith("homeserver:")).slice(1),
          ["homeserver:delayed.send 403 M_FORBIDDEN", "homeserver:sendState 403 M_FORBIDDEN", "homeserver:delayed.cancel 404 M_NOT_FOUND"]
        )
      }).pipe(Effect.provide(Testing.layer())))
  }

  it.scoped("kicked while the delayed leave's send never answers: the leave goes on after its bound and cancels it", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const { ended } = yield* joinWatched()
      yield* TestClock.adjust(12_000)
      yield* hs.injectFault("delayed.send", Testing.TestCallLog.hang)
      yield* hs.setMembership(roomId, alice, "leave", "@mod:example.org")
      yield* settle
      assert.isTrue(Option.isNone(yield* Fiber.poll(ended)), "the leave did not wait for the send")
      // one leave step (3 s, the default bound)
      yield* TestClock.adjust(3000)
      yield* settle
      yield* assertEndedSfuFirst(ended, "RemovedFromRoom", memberOp("leave"))
      assert.deepStrictEqual(
        (yield* logFrom(memberOp("leave"))).filter((e) => e.startsWith("homeserver:")).slice(1),
        ["homeserver:delayed.send fault hang", "homeserver:sendState 403 M_FORBIDDEN", "homeserver:delayed.cancel"]
      )
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("sticky dialect: kicked mid-call ends RemovedFromRoom, SFU first", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const { ended } = yield* joinWatched({ dialect: "sticky" })
      yield* TestClock.adjust(12_000)
      yield* hs.setMembership(roomId, alice, "leave", "@mod:example.org")
      yield* settle
      yield* assertEndedSfuFirst(ended, "RemovedFromRoom", memberOp("leave"))
    }).pipe(Effect.provide(Testing.layer({ homeserver: { stickyEvents: true } }))))

  it.scoped("without delayed events: kicked mid-call ends RemovedFromRoom; the refused {} does not hold up the leave", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const { ended } = yield* joinWatched()
      yield* TestClock.adjust(12_000)
      yield* hs.setMembership(roomId, alice, "ban", "@mod:example.org")
      yield* settle
      yield* assertEndedSfuFirst(ended, "RemovedFromRoom", memberOp("ban"))
    }).pipe(Effect.provide(Testing.layer({ homeserver: { delayedEvents: false } }))))

  it.scoped("someone else kicked, banned or leaving changes nothing for us", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const { call, ended } = yield* joinWatched()
      yield* hs.setMembership(roomId, "@bob:example.org", "leave", "@mod:example.org")
      yield* hs.setMembership(roomId, "@carol:example.org", "ban", "@mod:example.org")
      yield* hs.setMembership(roomId, "@dave:example.org", "leave", "@dave:example.org")
      yield* settle
      yield* TestClock.adjust(30_000)
      assert.isTrue(Option.isNone(yield* Fiber.poll(ended)), "the call ended")
      assert.deepStrictEqual((yield* call.currentMembers).map((m) => m.userId), [alice])
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("an old leave of ours that the room delivers before it catches up with our join does not end the call", () =>
    Effect.gen(function*() {
      // A client whose view of the room predates our join: our earlier leave first, then (as its sync catches up)
      // our join, and only then our membership.
      const stale = (membership: string, n: number): RawCallEvent => ({
        type: Membership.RoomMemberEventType,
        stateKey: alice,
        sender: alice,
        eventId: `$stale${n}`,
        originServerTs: 0,
        content: { membership }
      })
      const { call, ended } = yield* joinWatched().pipe(
        Effect.provide(Layer.effect(
          MatrixClient,
          Effect.map(MatrixClient, (mx) => ({
            ...mx,
            callMemberEvents: (room: RoomId) =>
              Stream.concat(Stream.make(stale("leave", 1), stale("join", 2)), mx.callMemberEvents(room))
          }))
        ))
      )
      yield* TestClock.adjust(30_000)
      assert.isTrue(Option.isNone(yield* Fiber.poll(ended)), "the call ended")
      assert.deepStrictEqual((yield* call.currentMembers).map((m) => m.userId), [alice])
    }).pipe(Effect.provide(Testing.layer())))
})

describe("membership refused mid-call (403 M_FORBIDDEN)", () => {
  const refresh = (e: Testing.TestCallLog.CallLogEntry) => e.op === "sendState" && e.detail === "fault 403 M_FORBIDDEN"

  it.scoped("on the expiry refresh: ends MembershipRejected, SFU first", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const { ended } = yield* joinWatched({ membershipExpiryMs: 60_000 })
      yield* hs.injectFault("sendState", fail({ status: 403, errcode: "M_FORBIDDEN" }))
      // the refresh is due 5 s before the expiry
      yield* TestClock.adjust(55_000)
      yield* settle
      yield* assertEndedSfuFirst(ended, "MembershipRejected", refresh)
      assert.strictEqual((yield* entries).filter(refresh).length, 1, "a 403 is not retried")
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("on the re-publish after someone removed our membership: ends MembershipRejected, SFU first", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const { ended } = yield* joinWatched()
      yield* TestClock.adjust(2000)
      yield* hs.injectFault("sendState", fail({ status: 403, errcode: "M_FORBIDDEN" }))
      yield* hs.setState(roomId, Membership.SessionEventType, (yield* hs.activeMemberships(roomId))[0]!.stateKey, {})
      yield* settle
      yield* assertEndedSfuFirst(ended, "MembershipRejected", refresh)
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("sticky dialect, on the heartbeat's re-send after the delayed leave fired: ends MembershipRejected", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const { ended } = yield* joinWatched({ dialect: "sticky" })
      yield* TestClock.adjust(1000)
      // an outage of the restarts: the delayed leave fires at 8 s; the re-publish's new delayed leave goes through,
      // its membership is refused
      yield* hs.injectFault("delayed.restart", fail({ status: 503 }), 1000)
      yield* hs.injectFault("sendSticky", Testing.TestCallLog.delay(0))
      yield* hs.injectFault("sendSticky", fail({ status: 403, errcode: "M_FORBIDDEN" }))
      yield* TestClock.adjust(7000)
      yield* settle
      yield* hs.clearFaults
      yield* assertEndedSfuFirst(ended, "MembershipRejected", (e) => e.op === "sendSticky" && e.detail === "fault 403 M_FORBIDDEN")
    }).pipe(Effect.provide(Testing.layer({ homeserver: { stickyEvents: true } }))))

  for (const [what, fault] of [["a 500", fail({ status: 500 })], ["a transport failure", fail()]] as const) {
    it.scoped(`${what} on the same refresh is retried, and the call goes on`, () =>
      Effect.gen(function*() {
        const hs = yield* TestHomeserver.TestHomeserver
        const { ended } = yield* joinWatched({ membershipExpiryMs: 60_000 })
        yield* hs.injectFault("sendState", fault)
        yield* TestClock.adjust(55_000)
        yield* settle
        yield* TestClock.adjust(1000)
        yield* settle
        assert.isTrue(Option.isNone(yield* Fiber.poll(ended)), "the call ended")
        const writes = (yield* entries).filter((e) => e.op === "sendState" && e.at >= 55_000).map((e) => e.detail ?? "")
        assert.strictEqual(writes.length, 2, writes.join(", "))
        assert.match(writes[0]!, /^fault/)
        assert.match(writes[1]!, /^join .*created_ts/)
      }).pipe(Effect.provide(Testing.layer())))
  }

  it.scoped("a 500 on the re-publish is retried, and the membership is back", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const { call, ended } = yield* joinWatched()
      yield* TestClock.adjust(2000)
      yield* hs.injectFault("sendState", fail({ status: 500 }))
      yield* hs.setState(roomId, Membership.SessionEventType, (yield* hs.activeMemberships(roomId))[0]!.stateKey, {})
      yield* settle
      yield* TestClock.adjust(1000)
      yield* settle
      assert.isTrue(Option.isNone(yield* Fiber.poll(ended)), "the call ended")
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      assert.deepStrictEqual((yield* call.currentMembers).map((m) => m.userId), [alice])
    }).pipe(Effect.provide(Testing.layer())))
})
