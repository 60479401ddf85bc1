import { assert } from "@effect/vitest"
import { Effect, Option, TestServices } from "effect"
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
 * (the auth service hashes room names with Web Crypto).
 */
export const awaitLog = (p: (e: Testing.TestCallLog.CallLogEntry) => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      if ((yield* entries).some(p)) return
      yield* TestServices.provideLive(Effect.sleep(2))
    }
    assert.fail(`log entry never appeared: ${(yield* ops).join(", ")}`)
  })

/** Lets the other fibers settle (see `awaitLog`). */
export const settle = TestServices.provideLive(Effect.sleep(10))

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
