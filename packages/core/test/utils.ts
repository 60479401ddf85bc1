import { assert } from "@effect/vitest"
import { Chunk, Effect, Fiber, GlobalValue, Option, TestClock, TestServices } from "effect"
import type { RoomId } from "../src/Ids.ts"
import * as Testing from "../src/testing/index.ts"

export const { TestAuthService, TestCallLog, TestHomeserver, TestLiveKit } = Testing

export const roomId = "!room:example.org" as RoomId
export const aliceKey = "_@alice:example.org_ALICEDEVICE_m.call"

export const ops = Effect.flatMap(TestCallLog.TestCallLog, (l) => l.ops)
export const entries = Effect.flatMap(TestCallLog.TestCallLog, (l) => l.entries)

/** Asserts `first` occurs in the log, and before `then` when `then` occurs. */
export const assertBefore = (log: ReadonlyArray<string>, first: string, then: string) => {
  const a = log.indexOf(first)
  const b = log.lastIndexOf(then)
  assert.isAtLeast(a, 0, `${first} missing in ${log.join(", ")}`)
  assert.isAtLeast(b, 0, `${then} missing in ${log.join(", ")}`)
  assert.isBelow(a, b, `${first} should come before ${then}: ${log.join(", ")}`)
}

/**
 * Lets forked fibers run until the log has an entry matching `p`. The test
 * clock does not move; the short live pauses only let real promises settle
 * (core hashes the sticky dialect's LiveKit identity with Web Crypto).
 */
export const awaitLog = (p: (e: Testing.TestCallLog.CallLogEntry) => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      if ((yield* entries).some(p)) return
      yield* TestServices.provideLive(Effect.sleep(2))
    }
    assert.fail(`log entry never appeared: ${(yield* ops).join(", ")}`)
  })

// Web Crypto's digest (core's hashed LiveKit identity of the sticky dialect; the test backends
// hash synchronously) is the one step in core that completes outside the fiber runtime, on a
// thread of its own: counted, so that `settle` never returns while one is still running, however
// slow the machine. Installed once per process (vitest re-imports this module for every test file).
const digests = GlobalValue.globalValue(Symbol.for("@matrixrtc-effect/core/test/digestsInFlight"), () => {
  const counter = { inFlight: 0 }
  const subtle = globalThis.crypto.subtle
  const digest = subtle.digest.bind(subtle)
  subtle.digest = ((...args: Parameters<typeof digest>) => {
    counter.inFlight++
    return digest(...args).finally(() => counter.inFlight--)
  }) as typeof subtle.digest
  return counter
})

/** One turn of the event loop: every fiber that can run without the clock moving gets to run. */
const macrotask = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 0)))

const quietRounds = 5
const maxRounds = 5000

/**
 * Lets the other fibers run until they are all parked again (on TestClock sleeps,
 * queues, or each other): returns once no digest is in flight and the pending
 * TestClock sleeps and the call log have stayed the same over `quietRounds` turns
 * of the event loop. The test clock does not move. Fails when the fibers never
 * quiet down, instead of letting a "still nothing happened" assertion pass.
 */
export const settle: Effect.Effect<void> = Effect.gen(function*() {
  const log = yield* Effect.serviceOption(TestCallLog.TestCallLog)
  const clock = yield* Effect.clock
  // Under the live clock (it.live) there are no test-clock sleeps to watch.
  const pendingSleeps = "sleeps" in clock ? (clock as TestClock.TestClock).sleeps : Effect.succeed(Chunk.empty<number>())
  const snapshot = Effect.gen(function*() {
    const sleeps = Chunk.toReadonlyArray(yield* pendingSleeps).join(",")
    const logged = Option.isSome(log) ? (yield* log.value.entries).length : 0
    return `${digests.inFlight}|${sleeps}|${logged}`
  })
  let last = yield* snapshot
  let quiet = 0
  for (let round = 0; round < maxRounds; round++) {
    yield* macrotask
    const now = yield* snapshot
    quiet = now === last && digests.inFlight === 0 ? quiet + 1 : 0
    if (quiet >= quietRounds) return
    last = now
  }
  assert.fail(`the fibers never settled in ${maxRounds} turns of the event loop; last: ${last}`)
})

/** No membership in the room, none of our participants on the SFU, no delayed event left scheduled. */
export const assertNothingLeft = Effect.gen(function*() {
  const hs = yield* TestHomeserver.TestHomeserver
  const sfu = yield* TestLiveKit.TestLiveKit
  assert.deepStrictEqual((yield* hs.activeMemberships(roomId)).map((e) => e.stateKey), [])
  assert.deepStrictEqual((yield* sfu.participants()).filter((p) => p.local).map((p) => p.identity), [])
  assert.deepStrictEqual((yield* hs.scheduledDelayedEvents).map((d) => d.delayId), [])
})

export const memberContent = (key = aliceKey) =>
  Effect.gen(function*() {
    const hs = yield* TestHomeserver.TestHomeserver
    const state = yield* hs.roomState(roomId, "org.matrix.msc3401.call.member")
    return Option.fromNullable(state.find((e) => e.stateKey === key)?.content)
  })

/**
 * Interrupts `fiber` (a join or a call in its scope) while one of its homeserver writes never answers, and waits
 * for the leave: one leave step (3 s) for the write before the leave's requests, one more after them.
 */
export const interruptPastUnansweredWrite = (fiber: Fiber.Fiber<unknown, unknown>) =>
  Effect.gen(function*() {
    const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
    yield* settle
    yield* TestClock.adjust(3000)
    yield* settle
    yield* TestClock.adjust(3000)
    yield* Fiber.join(interrupting)
  })
