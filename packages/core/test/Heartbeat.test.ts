/** The membership's upkeep under TestClock: delayed-leave restarts, re-arming, expiry refresh, re-publish. */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Clock, Effect, Exit, Fiber, Layer, Option, PubSub, Scope, Stream, TestClock } from "effect"
import * as Call from "../src/Call.ts"
import type { RoomId } from "../src/Ids.ts"
import { MatrixClient, type RawCallEvent } from "../src/MatrixClient.ts"
import * as Membership from "../src/Membership.ts"
import * as Testing from "../src/testing/index.ts"
import type { MaxDelayErrorVariant } from "../src/testing/TestHomeserver.ts"
import { aliceKey, awaitLog, entries, memberContent, roomId, settle, TestHomeserver, TestLiveKit } from "./utils.ts"

const { fail, hang } = Testing.TestCallLog

const restartTimes = Effect.map(entries, (es) => es.filter((e) => e.op === "delayed.restart").map((e) => e.at))

/** The server loses our delayed leave (as if it had fired or expired), so the next restart gets a 404. */
const serverForgetsDelayedLeave = Effect.gen(function*() {
  const hs = yield* TestHomeserver.TestHomeserver
  for (const d of yield* hs.scheduledDelayedEvents) {
    yield* hs.clientFor(d.sender, "ALICEDEVICE").updateDelayedEvent(d.delayId, "cancel")
  }
})

/** Joins; the first restart comes one period later, so faults injected next hit the 5 s one. */
const joined = (options?: Call.JoinOptions) => Call.join(roomId, options)

describe("heartbeat", () => {
  it.scoped("restarts the delayed leave every 5 s from when it is scheduled; the leave never fires", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* Call.join(roomId)
      yield* TestClock.adjust(20_000)
      assert.deepStrictEqual(yield* restartTimes, [5000, 10000, 15000, 20000])
      yield* TestClock.adjust(60_000)
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      assert.strictEqual((yield* hs.scheduledDelayedEvents)[0]?.dueAt, 80_000 + 8000)
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("an SFU connect slower than the delay: the heartbeat already runs, the membership never drops", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const sfu = yield* TestLiveKit.TestLiveKit
      yield* sfu.injectFault("connect", Testing.TestCallLog.delay(12_000))
      const fiber = yield* Effect.fork(Call.join(roomId))
      yield* awaitLog((e) => e.op === "sendState" && e.detail?.startsWith("join") === true)
      // The membership is written while the connect is still going; the 8 s delayed leave must not fire.
      for (let t = 1_000; t <= 11_000; t += 1_000) {
        yield* TestClock.adjust(1_000)
        assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1, `membership gone at ${t} ms, mid-join`)
      }
      assert.isTrue((yield* restartTimes).some((at) => at > 0 && at < 12_000))
      yield* TestClock.adjust(2_000)
      yield* Fiber.join(fiber)
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("404 on restart → a new delayed leave is scheduled", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const call = yield* Call.join(roomId)
      const before = (yield* call.membership).delayId
      yield* TestClock.adjust(2000)
      yield* serverForgetsDelayedLeave
      yield* TestClock.adjust(3000)
      const after = (yield* call.membership).delayId
      assert.isTrue(Option.isSome(after))
      assert.notDeepEqual(after, before)
      const log = yield* entries
      assert.deepStrictEqual(
        log.filter((e) => e.at === 5000).map((e) => `${e.op} ${e.detail ?? ""}`.trim()),
        ["delayed.restart 404 M_NOT_FOUND", "scheduleDelayed leave delay=8000"]
      )
      yield* TestClock.adjust(30_000)
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
    }).pipe(Effect.provide(Testing.layer())))

  const variants: ReadonlyArray<MaxDelayErrorVariant> = ["js-sdk", "msc-unstable", "stable"]
  for (const variant of variants) {
    it.scoped(`max-delay error (${variant}) at join → delay lowered to the server maximum`, () =>
      Effect.gen(function*() {
        const hs = yield* TestHomeserver.TestHomeserver
        const call = yield* Call.join(roomId)
        assert.strictEqual((yield* call.membership).delayMs, 4000)
        assert.deepStrictEqual((yield* hs.scheduledDelayedEvents).map((d) => d.delayMs), [4000])
        // Restarts come well inside the lowered delay, and the leave never fires.
        yield* TestClock.adjust(30_000)
        assert.deepStrictEqual(yield* restartTimes, [3000, 6000, 9000, 12000, 15000, 18000, 21000, 24000, 27000, 30000])
        assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      }).pipe(Effect.provide(Testing.layer({
        homeserver: { maxDelayMs: 4000, advertiseMaxDelay: false, maxDelayErrorVariant: variant }
      }))))

    it.scoped(`max-delay error (${variant}) when re-arming during the call → lowered`, () =>
      Effect.gen(function*() {
        const hs = yield* TestHomeserver.TestHomeserver
        const call = yield* Call.join(roomId)
        assert.strictEqual((yield* call.membership).delayMs, 8000)
        yield* hs.setMaxDelay(2500, variant)
        yield* serverForgetsDelayedLeave
        yield* TestClock.adjust(5000)
        assert.strictEqual((yield* call.membership).delayMs, 2500)
        assert.deepStrictEqual((yield* hs.scheduledDelayedEvents).map((d) => d.delayMs), [2500])
        yield* TestClock.adjust(20_000)
        assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      }).pipe(Effect.provide(Testing.layer())))
  }

  it.scoped("the advertised max delay is used from the start", () =>
    Effect.gen(function*() {
      const call = yield* Call.join(roomId)
      assert.strictEqual((yield* call.membership).delayMs, 6000)
    }).pipe(Effect.provide(Testing.layer({ homeserver: { maxDelayMs: 6000 } }))))

  it.scoped("429 M_LIMIT_EXCEEDED on restart waits retry_after, then restarts", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* joined()
      yield* hs.injectFault("delayed.restart", fail({ status: 429, errcode: "M_LIMIT_EXCEEDED", retryAfterMs: 2000 }))
      yield* TestClock.adjust(6999)
      const log = yield* entries
      assert.deepStrictEqual(log.filter((e) => e.op === "delayed.restart").map((e) => [e.at, e.detail]), [
        [5000, "fault 429 M_LIMIT_EXCEEDED"]
      ])
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(yield* restartTimes, [5000, 7000])
      yield* TestClock.adjust(5000)
      assert.deepStrictEqual(yield* restartTimes, [5000, 7000, 12000])
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("network errors on restart are retried with backoff", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* joined()
      yield* hs.injectFault("delayed.restart", fail({}), 2)
      yield* TestClock.adjust(7000)
      assert.deepStrictEqual(yield* restartTimes, [5000, 5500, 6500])
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("a hanging restart is given up after a quarter of the delay and retried in time", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* joined()
      yield* hs.injectFault("delayed.restart", hang)
      yield* TestClock.adjust(9000)
      // 5000 hangs, given up at 7000, retried 500 ms later: before the leave would fire at 8000
      assert.deepStrictEqual(yield* restartTimes, [5000, 7500])
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("re-publishes our membership when someone else deletes it", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const call = yield* Call.join(roomId)
      const firstDelay = (yield* call.membership).delayId
      yield* TestClock.adjust(1000)
      yield* hs.setState(roomId, "org.matrix.msc3401.call.member", aliceKey, {})
      // As on Synapse, that write also cancelled our delayed leave; the re-publish schedules a new one.
      assert.isTrue((yield* entries).some((e) => e.op === "delayed.superseded" && e.who === "@alice:example.org"))
      yield* awaitLog((e) => e.op === "sendState" && e.who === "@alice:example.org" && e.at === 1000)
      yield* settle
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      const own = yield* call.membership
      assert.notDeepEqual(own.delayId, firstDelay)
      assert.deepStrictEqual((yield* hs.scheduledDelayedEvents).map((d) => Option.some(d.delayId)), [own.delayId])
      const members = yield* call.currentMembers
      assert.deepStrictEqual(members.map((m) => m.userId), ["@alice:example.org"])
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("a heartbeat outage longer than the delay: the leave fires, then the membership is re-published", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* joined()
      yield* hs.injectFault("delayed.restart", fail({ status: 503 }), 1000)
      yield* TestClock.adjust(8000)
      assert.isTrue((yield* entries).some((e) => e.op === "delayed.fire"))
      yield* hs.clearFaults
      yield* TestClock.adjust(15_000)
      yield* settle
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      assert.strictEqual((yield* hs.scheduledDelayedEvents).length, 1)
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("a dead access token (401 M_UNKNOWN_TOKEN) on restart ends the call: SFU first, ended is TokenRejected", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const sfu = yield* TestLiveKit.TestLiveKit
      const call = yield* joined()
      yield* hs.injectFault("delayed.restart", fail({ status: 401, errcode: "M_UNKNOWN_TOKEN" }), 100)
      const ended = yield* Effect.fork(call.ended)
      yield* TestClock.adjust(5000)
      yield* settle
      assert.isTrue(Option.isSome(yield* Fiber.poll(ended)), "the call did not end")
      assert.strictEqual(yield* Fiber.join(ended), "TokenRejected")
      const log = yield* entries
      // not retried: nothing we send can succeed with that token
      assert.deepStrictEqual(log.filter((e) => e.op === "delayed.restart").map((e) => e.at), [5000])
      const disconnect = log.findIndex((e) => e.op === "disconnect")
      assert.isAbove(log.findIndex((e) => e.op === "delayed.send"), disconnect)
      assert.isAtLeast(disconnect, 0)
      assert.deepStrictEqual((yield* sfu.participants()).filter((p) => p.local), [])
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("a dead access token on the hourly refresh (no MSC4140) ends the call too", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const call = yield* joined()
      yield* hs.injectFault("sendState", fail({ status: 401, errcode: "M_UNKNOWN_TOKEN" }))
      const ended = yield* Effect.fork(call.ended)
      yield* TestClock.adjust(3_600_000)
      yield* settle
      assert.isTrue(Option.isSome(yield* Fiber.poll(ended)), "the call did not end")
      assert.strictEqual(yield* Fiber.join(ended), "TokenRejected")
    }).pipe(Effect.provide(Testing.layer({ homeserver: { delayedEvents: false } }))))

  it.scoped("sticky dialect: a stray sticky leave for our key (e.g. a duplicated delayed leave) is followed by the membership again", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const call = yield* joined({ dialect: "sticky" })
      assert.strictEqual((yield* call.currentMembers).length, 1)
      const own = yield* call.membership
      yield* TestClock.adjust(1000)
      yield* hs.clientFor("@alice:example.org", "ALICEDEVICE").sendStickyEvent(
        roomId,
        own.eventType,
        Membership.stickyLeaveContent(own.memberId),
        { stickyDurationMs: Membership.StickyDurationMs }
      )
      yield* settle
      assert.deepStrictEqual((yield* call.currentMembers).map((m) => m.userId), ["@alice:example.org"])
      assert.strictEqual((yield* entries).filter((e) => e.op === "sendSticky" && e.detail === "join").length, 2)
    }).pipe(Effect.provide(Testing.layer({ homeserver: { stickyEvents: true } }))))

  it.scoped("sticky dialect: our own membership dropped by the client (redacted, expired) is published again", () =>
    Effect.gen(function*() {
      const removals = yield* PubSub.unbounded<RawCallEvent>()
      const seen: Array<RawCallEvent> = []
      const call = yield* joined({ dialect: "sticky" }).pipe(
        Effect.provide(Layer.effect(
          MatrixClient,
          // The room's events as the client passes them on, plus the removals this test hands it.
          Effect.map(MatrixClient, (mx) => ({
            ...mx,
            callMemberEvents: (room: RoomId) =>
              Stream.merge(
                mx.callMemberEvents(room).pipe(Stream.tap((e) => Effect.sync(() => seen.push(e)))),
                Stream.fromPubSub(removals)
              )
          }))
        ))
      )
      assert.strictEqual((yield* call.currentMembers).length, 1)
      yield* TestClock.adjust(1000)
      const ours = seen.filter((e) => e.sender === "@alice:example.org").at(-1)!
      yield* PubSub.publish(removals, { ...ours, stickyExpiresAt: yield* Clock.currentTimeMillis })
      yield* settle
      assert.strictEqual((yield* entries).filter((e) => e.op === "sendSticky" && e.detail === "join").length, 2)
      // an earlier event of ours dropped later changes nothing
      yield* PubSub.publish(removals, { ...ours, stickyExpiresAt: yield* Clock.currentTimeMillis })
      yield* settle
      assert.strictEqual((yield* entries).filter((e) => e.op === "sendSticky" && e.detail === "join").length, 2)
    }).pipe(Effect.provide(Testing.layer({ homeserver: { stickyEvents: true } }))))

  it.effect("crash (no more requests reach the server): the delayed leave removes the membership within the delay", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const scope = yield* Scope.make()
      yield* joined().pipe(Scope.extend(scope))
      yield* TestClock.adjust(10_000) // last restart that reaches the server: t = 10 000
      for (const op of ["delayed.restart", "scheduleDelayed", "sendState", "delayed.cancel", "delayed.send"] as const) {
        yield* hs.injectFault(op, hang, 100)
      }
      yield* TestClock.adjust(7999)
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 0)
      assert.isTrue((yield* entries).some((e) => e.op === "delayed.fire" && e.at === 18_000 && e.detail === "leave"))
      // Closing afterwards is still bounded even though every leave request hangs.
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      yield* TestClock.adjust(10_000)
      yield* Fiber.join(closing)
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 0)
    }).pipe(Effect.provide(Testing.layer())))
})

describe("expiry refresh", () => {
  it.scoped("refreshes before expiry; validity stays ≈ expires (no n× growth)", () =>
    Effect.gen(function*() {
      yield* Call.join(roomId, { membershipExpiryMs: 60_000 })
      let refreshes = 0
      let last: unknown = undefined
      for (let t = 5000; t <= 300_000; t += 5000) {
        yield* TestClock.adjust(5000)
        const content = Option.getOrThrow(yield* memberContent())
        const created = (content["created_ts"] as number | undefined) ?? 0
        const validUntil = created + (content["expires"] as number)
        assert.isAbove(validUntil, t, `expired at ${t}`)
        assert.isAtMost(validUntil - t, 60_000, `validity grew at ${t}`)
        if (content !== last) refreshes++
        last = content
      }
      // the join, then one refresh every 55 s over 5 min
      assert.strictEqual(refreshes, 1 + Math.floor(300_000 / 55_000))
    }).pipe(Effect.provide(Testing.layer())), 30_000)

  it.scoped("never seeing our own membership come back, every refresh still carries the same created_ts", () =>
    Effect.gen(function*() {
      yield* Call.join(roomId, { membershipExpiryMs: 60_000 })
      const createdTss = new Set<unknown>()
      for (let t = 5000; t <= 200_000; t += 5000) {
        yield* TestClock.adjust(5000)
        const content = Option.getOrThrow(yield* memberContent())
        if (content["created_ts"] !== undefined) createdTss.add(content["created_ts"])
      }
      // three refreshes (55 s, 110 s, 165 s), all dated to the join's send at t = 0
      assert.strictEqual((yield* entries).filter((e) => e.op === "sendState" && e.detail?.includes("created_ts")).length, 3)
      assert.deepStrictEqual([...createdTss], [0])
    }).pipe(
      Effect.provide(Layer.effect(
        MatrixClient,
        // The member stream ends at once, as a failed sync would end it: our own event is never seen.
        Effect.map(MatrixClient, (mx) => ({ ...mx, callMemberEvents: () => Stream.empty }))
      ).pipe(Layer.provideMerge(Testing.layer())))
    ), 30_000)

  it.scoped("a re-publish after refreshes is a new participation: validity counts from it again", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* Call.join(roomId, { membershipExpiryMs: 60_000 })
      // two refreshes (55 s, 110 s): each sends expires = elapsed + 60 s counted from the first join
      yield* TestClock.adjust(115_000)
      assert.strictEqual(Option.getOrThrow(yield* memberContent())["expires"], 110_000 + 60_000)
      yield* hs.setState(roomId, "org.matrix.msc3401.call.member", aliceKey, {})
      yield* awaitLog((e) => e.op === "sendState" && e.who === "@alice:example.org" && e.at === 115_000)
      const content = Option.getOrThrow(yield* memberContent())
      // The server stamps the re-published event now, so it is valid for 60 s from now, not 60 s + 110 s.
      assert.isUndefined(content["created_ts"])
      assert.strictEqual(content["expires"], 60_000)
    }).pipe(Effect.provide(Testing.layer())))

  // Without MSC4140 expiry is the only cleanup of a crashed client (protocol §4), so this is where growth hurts.
  it.scoped("default 4 h expiry, server without MSC4140: hourly refresh, validity never beyond 4 h from now", () =>
    Effect.gen(function*() {
      yield* Call.join(roomId)
      for (let t = 300_000; t <= 5 * 3_600_000; t += 300_000) {
        yield* TestClock.adjust(300_000)
        const content = Option.getOrThrow(yield* memberContent())
        const validUntil = ((content["created_ts"] as number | undefined) ?? 0) + (content["expires"] as number)
        assert.isAbove(validUntil - t, 3 * 3_600_000 - 300_000)
        assert.isAtMost(validUntil - t, 4 * 3_600_000)
      }
      const refreshes = (yield* entries).filter((e) => e.op === "sendState" && e.detail?.includes("created_ts"))
      assert.deepStrictEqual(refreshes.map((e) => e.at), [1, 2, 3, 4, 5].map((h) => h * (3_600_000 - 5000)))
    }).pipe(Effect.provide(Testing.layer({ homeserver: { delayedEvents: false } }))), 30_000)
})

describe("membershipHealth", () => {
  /** Every health the call reports, with the clock time it was reported at. */
  const recordHealth = (call: Call.Call) =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      yield* call.membershipHealth.pipe(
        Stream.runForEach((h) => Effect.map(Clock.currentTimeMillis, (at) => void seen.push(`${h}@${at}`))),
        Effect.forkScoped
      )
      yield* settle
      return seen
    })

  it.scoped("stays Live while the delayed leave is restarted", () =>
    Effect.gen(function*() {
      const seen = yield* recordHealth(yield* joined())
      yield* TestClock.adjust(60_000)
      assert.deepStrictEqual(seen, ["Live@0"])
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("a heartbeat outage: ProbablyLeft when the unrestarted leave comes due, Live once re-published", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const call = yield* joined()
      const seen = yield* recordHealth(call)
      yield* TestClock.adjust(1000)
      yield* hs.injectFault("delayed.restart", fail({ status: 503 }), 1000)
      // scheduled at 0 with an 8 s delay, never restarted since
      yield* TestClock.adjust(6999)
      assert.deepStrictEqual(seen, ["Live@0"])
      yield* TestClock.adjust(1)
      yield* settle
      // the room shows the leave: re-published at once (only the restarts fail), not after the outage
      assert.deepStrictEqual(seen, ["Live@0", "ProbablyLeft@8000", "Live@8000"])
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      yield* hs.clearFaults
      yield* TestClock.adjust(15_000)
      yield* settle
      assert.strictEqual(seen.at(-1)?.split("@")[0], "Live")
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("someone removes our membership: ProbablyLeft until the re-publish has landed", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const call = yield* joined()
      const seen = yield* recordHealth(call)
      yield* TestClock.adjust(1000)
      yield* hs.injectFault("sendState", hang, 1)
      yield* hs.setState(roomId, "org.matrix.msc3401.call.member", aliceKey, {})
      yield* awaitLog((e) => e.op === "sendState" && e.who === "@alice:example.org" && e.at === 1000)
      yield* settle
      assert.deepStrictEqual(seen, ["Live@0", "ProbablyLeft@1000"])
      // the held send times out (10 s) and is retried
      yield* TestClock.adjust(12_000)
      yield* settle
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      assert.deepStrictEqual(seen.map((h) => h.split("@")[0]), ["Live", "ProbablyLeft", "Live"])
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("a delayed leave the server lost before its time (404, nothing fired): stays Live", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const seen = yield* recordHealth(yield* joined())
      yield* TestClock.adjust(2000)
      yield* serverForgetsDelayedLeave
      // the restart at 5 s gets a 404 and schedules a new one; the membership never left the room
      yield* TestClock.adjust(30_000)
      assert.deepStrictEqual(seen, ["Live@0"])
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
      assert.strictEqual((yield* hs.scheduledDelayedEvents).length, 1)
    }).pipe(Effect.provide(Testing.layer())))

  /**
   * A sticky call whose restarts fail from 1 s on (faults left in place), past its delayed leave firing at 8 s;
   * `beforeFire` sets up more faults first.
   */
  const stickyCallPastOutage = (beforeFire: Effect.Effect<void, never, Testing.TestServices> = Effect.void) =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const call = yield* joined({ dialect: "sticky" })
      const seen = yield* recordHealth(call)
      yield* TestClock.adjust(1000)
      yield* hs.injectFault("delayed.restart", fail({ status: 503 }), 1000)
      yield* beforeFire
      yield* TestClock.adjust(7000)
      yield* settle
      assert.deepStrictEqual(seen.slice(0, 2), ["Live@0", "ProbablyLeft@8000"])
      return { hs, call, seen }
    })

  /** Our membership is listed again, and the call says so. */
  const assertBack = (call: Call.Call, seen: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      assert.deepStrictEqual((yield* call.currentMembers).map((m) => m.userId), ["@alice:example.org"])
      assert.strictEqual(seen.at(-1)?.split("@")[0], "Live")
    })

  it.scoped("sticky dialect: a delayed leave that fired in an outage is followed by the membership again", () =>
    Effect.gen(function*() {
      const { call, hs, seen } = yield* stickyCallPastOutage()
      // the room shows our sticky leave: re-published at once (only the restarts fail)
      assert.deepStrictEqual(seen, ["Live@0", "ProbablyLeft@8000", "Live@8000"])
      yield* assertBack(call, seen)
      yield* hs.clearFaults
      yield* TestClock.adjust(15_000)
      yield* settle
      yield* assertBack(call, seen)
    }).pipe(Effect.provide(Testing.layer({ homeserver: { stickyEvents: true } }))))

  it.scoped("sticky dialect: a re-send that fails after the fire is tried again on the next heartbeat", () =>
    Effect.gen(function*() {
      // at the fire, the re-publish's new delayed leave goes through, its membership send fails (a 500: not fatal)
      const { call, hs, seen } = yield* stickyCallPastOutage(Effect.gen(function*() {
        const hs = yield* TestHomeserver.TestHomeserver
        yield* hs.injectFault("sendSticky", Testing.TestCallLog.delay(0))
        yield* hs.injectFault("sendSticky", fail({ status: 500 }))
      }))
      assert.deepStrictEqual(seen, ["Live@0", "ProbablyLeft@8000"])
      const ended = yield* Effect.fork(call.ended)
      yield* hs.clearFaults
      // and so do its bounded retries (5 more), so the re-publish as a whole fails
      yield* hs.injectFault("sendSticky", fail({ status: 500 }), 5)
      yield* TestClock.adjust(15_000)
      yield* settle
      const failures = (yield* entries).filter((e) => e.op === "sendSticky" && e.detail === "fault 500")
      assert.strictEqual(failures.length, 6)
      // not fatal: the call goes on, and the membership is sent again once the re-publish has given up
      yield* TestClock.adjust(10_000)
      yield* settle
      yield* assertBack(call, seen)
      assert.isTrue(Option.isNone(yield* Fiber.poll(ended)), "the call ended")
      const resent = (yield* entries).filter((e) => e.op === "sendSticky" && e.detail?.startsWith("join") === true).at(-1)
      assert.isAtLeast(resent?.at ?? 0, failures.at(-1)!.at)
    }).pipe(Effect.provide(Testing.layer({ homeserver: { stickyEvents: true } }))))

  it.scoped("without delayed events (no MSC4140) there is nothing to fire: Live", () =>
    Effect.gen(function*() {
      const seen = yield* recordHealth(yield* joined())
      yield* TestClock.adjust(60_000)
      assert.deepStrictEqual(seen, ["Live@0"])
    }).pipe(Effect.provide(Testing.layer({ homeserver: { delayedEvents: false } }))))

  it.scoped("ends with the call", () =>
    Effect.gen(function*() {
      const call = yield* joined()
      const all = yield* Effect.fork(Stream.runCollect(call.membershipHealth))
      yield* settle
      yield* call.leave
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Fiber.join(all)), ["Live"])
    }).pipe(Effect.provide(Testing.layer())))
})
