/**
 * Cleanup is the same for leave, failure and interruption at any step: SFU
 * disconnect before the membership ends, and nothing left behind.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope, TestClock } from "effect"
import * as Call from "../src/Call.ts"
import * as Testing from "../src/testing/index.ts"
import type { HomeserverOp } from "../src/testing/TestHomeserver.ts"
import { assertBefore, assertNothingLeft, awaitLog, entries, interruptPastUnansweredWrite, ops, roomId, settle, TestHomeserver, TestLiveKit } from "./utils.ts"

const { fail, hang } = Testing.TestCallLog
const authServiceUrl = "https://rtc.example.org/livekit/jwt"

type Step =
  | { readonly actor: "homeserver"; readonly op: HomeserverOp }
  | { readonly actor: "auth"; readonly op: "sfuGet" }
  | { readonly actor: "sfu"; readonly op: "connect" }

const steps: ReadonlyArray<Step> = [
  { actor: "homeserver", op: "openid" },
  { actor: "homeserver", op: "transports" },
  { actor: "homeserver", op: "serverSupport" },
  { actor: "homeserver", op: "roomVersion" },
  { actor: "auth", op: "sfuGet" },
  { actor: "homeserver", op: "scheduleDelayed" },
  { actor: "homeserver", op: "sendState" },
  { actor: "sfu", op: "connect" }
]

const inject = (step: Step, fault: Testing.TestCallLog.Fault) =>
  Effect.gen(function*() {
    if (step.actor === "homeserver") yield* (yield* TestHomeserver.TestHomeserver).injectFault(step.op, fault)
    else if (step.actor === "auth") yield* (yield* Testing.TestAuthService.TestAuthService).injectFault(step.op, fault)
    else yield* (yield* TestLiveKit.TestLiveKit).injectFault(step.op, fault)
  })

/** Every membership end (delayed-leave send/cancel, `{}` put) comes after the SFU disconnect, if there was a connection. */
const assertOrder = Effect.gen(function*() {
  const log = yield* entries
  const disconnect = log.findIndex((e) => e.actor === "sfu" && e.op === "disconnect")
  if (!log.some((e) => e.actor === "sfu" && e.op === "connected")) {
    assert.strictEqual(disconnect, -1)
    return
  }
  assert.isAtLeast(disconnect, 0)
  log.forEach((e, i) => {
    const ends = e.op === "delayed.send" || e.op === "delayed.cancel" || (e.op === "sendState" && e.detail === "leave")
    if (ends) assert.isAbove(i, disconnect, log.map((x) => `${x.actor}:${x.op}`).join(", "))
  })
})

describe("cleanup", () => {
  it.effect("leave (scope close): SFU disconnect, then the delayed leave is sent", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const call = yield* Call.join(roomId).pipe(Scope.extend(scope))
      yield* TestClock.adjust(12_000)
      yield* Scope.close(scope, Exit.void)
      yield* call.leave // idempotent
      const log = yield* ops
      assertBefore(log, "sfu:disconnect", "homeserver:delayed.send")
      assert.strictEqual(log.filter((o) => o === "sfu:disconnect").length, 1)
      assert.strictEqual(log.filter((o) => o === "homeserver:delayed.send").length, 1)
      yield* assertNothingLeft
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("call.leave leaves before the scope closes", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        const call = yield* Call.join(roomId)
        yield* call.leave
        yield* assertNothingLeft
      }))
      assert.strictEqual((yield* ops).filter((o) => o === "sfu:disconnect").length, 1)
    }).pipe(Effect.provide(Testing.layer())))

  for (const step of steps) {
    it.effect(`failure at ${step.actor}:${step.op}: nothing left behind, SFU first`, () =>
      Effect.gen(function*() {
        yield* inject(
          step,
          step.op === "openid" ? fail({ status: 401, errcode: "M_UNKNOWN_TOKEN" }) : fail({ status: 403, errcode: "M_FORBIDDEN" })
        )
        // with the transports endpoint failing, the configured URL is the fallback
        const exit = yield* Effect.exit(Effect.scoped(Call.join(roomId, { authServiceUrl })))
        // transports/serverSupport failures are tolerated (fallbacks); the rest fail the join (a 403 on the room
        // version: we may not read the room).
        const tolerated = step.op === "transports" || step.op === "serverSupport"
        assert.strictEqual(Exit.isSuccess(exit), tolerated, `${step.op}: ${String(exit)}`)
        yield* assertOrder
        yield* assertNothingLeft
      }).pipe(Effect.provide(Testing.layer())))
  }

  for (const step of steps) {
    it.effect(`interruption while ${step.actor}:${step.op} hangs: nothing left behind, SFU first`, () =>
      Effect.gen(function*() {
        yield* inject(step, hang)
        const fiber = yield* Effect.fork(
          Effect.scoped(Effect.zipRight(Call.join(roomId, { authServiceUrl }), Effect.never))
        )
        yield* awaitLog((e) =>
          step.actor === "sfu" ? e.actor === "sfu" && e.op === "connect" : e.op === step.op && e.detail === "fault hang"
        )
        // let the concurrent branch (membership or connect) get as far as it can
        yield* settle
        // A write that never answers could still land: the leave waits for it (and would undo it).
        yield* interruptPastUnansweredWrite(fiber)
        yield* assertOrder
        yield* assertNothingLeft
      }).pipe(Effect.provide(Testing.layer())))
  }

  it.effect("a hanging leave step is bounded: delayed-leave send hangs → PUT {} after leaveStepTimeoutMs", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const scope = yield* Scope.make()
      yield* Call.join(roomId, { leaveStepTimeoutMs: 2000 }).pipe(Scope.extend(scope))
      yield* hs.injectFault("delayed.send", hang)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* awaitLog((e) => e.op === "delayed.send" && e.detail === "fault hang")
      yield* TestClock.adjust(2000)
      yield* Fiber.join(closing)
      const log = yield* entries
      const put = log.findLast((e) => e.op === "sendState")
      assert.strictEqual(put?.detail, "leave")
      assert.strictEqual(put?.at, 2000)
      assert.deepStrictEqual((yield* hs.activeMemberships(roomId)).length, 0)
      assert.deepStrictEqual((yield* (yield* TestLiveKit.TestLiveKit).participants()).length, 0)
    }).pipe(Effect.provide(Testing.layer())))
})
