/**
 * The leave against what is still under way when it starts: membership writes on the wire, a JWT request, a
 * defect in a leave step, a refused final leave.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Scope, TestClock } from "effect"
import { AuthService } from "../src/AuthService.ts"
import * as Call from "../src/Call.ts"
import { LiveKit } from "../src/LiveKit.ts"
import * as Testing from "../src/testing/index.ts"
import { assertBefore, assertNothingLeft, awaitLog, entries, interruptPastUnansweredWrite, ops, roomId, settle, TestHomeserver } from "./utils.ts"

const { fail, hang, late } = Testing.TestCallLog

describe("leave races", () => {
  it.effect("a join interrupted while its membership PUT is on the wire: the leave waits for it, so it cannot land after", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("sendState", late(2000))
      const fiber = yield* Effect.fork(Effect.scoped(Effect.zipRight(Call.join(roomId), Effect.never)))
      yield* awaitLog((e) => e.op === "sendState" && e.detail === "fault late 2000")
      yield* settle
      const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* settle
      yield* TestClock.adjust(2000)
      yield* Fiber.join(interrupting)
      const log = yield* entries
      const landed = log.findIndex((e) => e.op === "sendState" && e.detail?.startsWith("join") === true)
      const ended = log.findIndex((e) => e.op === "delayed.send")
      assert.isAtLeast(landed, 0)
      assert.isAbove(ended, landed, (yield* ops).join(", "))
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  // Answered within the leave's first step (the leave waits for it), or only after it (cancelled once it lands).
  for (const ms of [1000, 5000]) {
    it.effect(`a join interrupted while its delayed leave is being scheduled (answered after ${ms} ms): it is cancelled`, () =>
      Effect.gen(function*() {
        const hs = yield* TestHomeserver.TestHomeserver
        yield* hs.injectFault("scheduleDelayed", late(ms))
        yield* (yield* Testing.TestAuthService.TestAuthService).injectFault("sfuGet", hang)
        const fiber = yield* Effect.fork(Effect.scoped(Call.join(roomId)))
        yield* awaitLog((e) => e.op === "scheduleDelayed" && e.detail === `fault late ${ms}`)
        yield* awaitLog((e) => e.op === "sfuGet" && e.detail === "fault hang")
        yield* settle
        const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
        yield* settle
        yield* TestClock.adjust(ms)
        yield* Fiber.join(interrupting)
        yield* settle
        assert.isTrue((yield* entries).some((e) => e.op === "delayed.cancel" && e.at === ms), (yield* ops).join(", "))
        yield* assertNothingLeft
      }).pipe(Effect.provide(Testing.layer())))
  }

  it.effect("a refresh answered while the leave's requests are out: the leave itself ends the membership again", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const scope = yield* Scope.make()
      const call = yield* Call.join(roomId, { membershipExpiryMs: 60_000 }).pipe(Scope.extend(scope))
      yield* hs.injectFault("sendState", late(5000))
      // the refresh is due 5 s before the expiry
      yield* TestClock.adjust(55_000)
      yield* awaitLog((e) => e.op === "sendState" && e.detail === "fault late 5000")
      const leaving = yield* Effect.fork(call.leave)
      yield* settle
      // the leave waits one step (3 s) for the write, then ends the membership; the write lands 2 s later, while
      // the leave still waits for it, so the leave ends the membership again before it returns
      yield* TestClock.adjust(3000)
      yield* settle
      assert.isTrue((yield* entries).some((e) => e.op === "delayed.send" && e.at === 58_000))
      assert.isTrue(Option.isNone(yield* Fiber.poll(leaving)), "the leave returned with a write still on its way")
      yield* TestClock.adjust(2000)
      yield* Fiber.join(leaving)
      const puts = (yield* entries).filter((e) => e.op === "sendState" && e.at === 60_000).map((e) => e.detail)
      assert.deepStrictEqual(puts.map((d) => d?.split(" ")[0]), ["join", "leave"])
      yield* Scope.close(scope, Exit.void)
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("a refresh answered only after the leave has returned: ended again in the background once it lands", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const scope = yield* Scope.make()
      const call = yield* Call.join(roomId, { membershipExpiryMs: 60_000 }).pipe(Scope.extend(scope))
      yield* hs.injectFault("sendState", late(8000))
      yield* TestClock.adjust(55_000)
      yield* awaitLog((e) => e.op === "sendState" && e.detail === "fault late 8000")
      const leaving = yield* Effect.fork(call.leave)
      yield* settle
      // one step before the leave's requests (delayed leave sent at 58 s), one after (61 s): the write lands at 63 s
      yield* TestClock.adjust(3000)
      yield* settle
      yield* TestClock.adjust(3000)
      yield* Fiber.join(leaving)
      assert.isTrue((yield* entries).some((e) => e.op === "delayed.send" && e.at === 58_000))
      yield* TestClock.adjust(2000)
      yield* settle
      const puts = (yield* entries).filter((e) => e.op === "sendState" && e.at === 63_000).map((e) => e.detail)
      assert.deepStrictEqual(puts.map((d) => d?.split(" ")[0]), ["join", "leave"])
      yield* Scope.close(scope, Exit.void)
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("once the leave has started, an unanswered membership write is not tried again", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("sendState", hang)
      const fiber = yield* Effect.fork(Effect.scoped(Effect.zipRight(Call.join(roomId), Effect.never)))
      yield* awaitLog((e) => e.op === "sendState" && e.detail === "fault hang")
      yield* settle
      yield* interruptPastUnansweredWrite(fiber)
      // the hanging attempt times out at 10 s; a retry would then put the membership up again
      yield* TestClock.adjust(20_000)
      yield* settle
      assert.isFalse((yield* entries).some((e) => e.op === "sendState" && e.detail?.startsWith("join") === true))
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("a defect in the SFU disconnect does not keep the membership from being ended", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const exit = yield* Effect.exit(Effect.scoped(Call.join(roomId)))
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 0)
      assert.isTrue((yield* ops).includes("homeserver:delayed.send"))
    }).pipe(
      Effect.updateService(LiveKit, (lk) => ({
        connect: (url, jwt, options) =>
          Effect.tap(lk.connect(url, jwt, options), () => Effect.addFinalizer(() => Effect.die("a bug in the disconnect")))
      })),
      Effect.provide(Testing.layer())
    ))

  it.effect("no MSC4140: a rate-limited `{}` at leave is retried within the leave step", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const scope = yield* Scope.make()
      yield* Call.join(roomId).pipe(Scope.extend(scope))
      yield* hs.injectFault("sendState", fail({ status: 429, errcode: "M_LIMIT_EXCEEDED", retryAfterMs: 1000 }))
      yield* hs.injectFault("sendState", fail({ status: 502 }))
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* awaitLog((e) => e.op === "sendState" && e.detail === "fault 429 M_LIMIT_EXCEEDED")
      yield* TestClock.adjust(1000)
      yield* awaitLog((e) => e.op === "sendState" && e.detail === "fault 502")
      yield* TestClock.adjust(500)
      yield* Fiber.join(closing)
      assert.isTrue((yield* entries).some((e) => e.op === "sendState" && e.detail === "leave" && e.at === 1500))
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer({ homeserver: { delayedEvents: false } }))))

  // The JWT request is a child of the joining fiber, so interrupting the join stops it at once, before the cleanup.
  it.effect("a join interrupted while the JWT is requested stops that request before it leaves", () =>
    Effect.gen(function*() {
      yield* (yield* Testing.TestAuthService.TestAuthService).injectFault("sfuGet", hang)
      const fiber = yield* Effect.fork(Effect.scoped(Call.join(roomId)))
      yield* awaitLog((e) => e.op === "sfuGet" && e.detail === "fault hang")
      yield* settle
      yield* Fiber.interrupt(fiber)
      assertBefore(yield* ops, "auth:interrupted", "homeserver:delayed.cancel")
      yield* assertNothingLeft
    }).pipe(
      Effect.provideServiceEffect(
        AuthService,
        Effect.gen(function*() {
          const auth = yield* AuthService
          const log = yield* Testing.TestCallLog.TestCallLog
          return {
            ...auth,
            sfuGet: (url, request) =>
              Effect.onInterrupt(auth.sfuGet(url, request), () => log.append({ actor: "auth", op: "interrupted" }))
          }
        })
      ),
      Effect.provide(Testing.layer())
    ))
})
