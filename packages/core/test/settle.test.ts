// `settle` is what the "still nothing happened" assertions stand on: it must not return while a
// forked fiber still has work that needs no clock, however long that work takes in real time.
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, TestClock } from "effect"
import * as Testing from "../src/testing/index.ts"
import { entries, settle, TestCallLog } from "./utils.ts"

const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 0)))

describe("settle", () => {
  it.scoped("waits for a digest that takes long in real time, and for the clock sleep after it", () =>
    Effect.gen(function*() {
      // Hashing 64 MiB takes far longer than the 10 ms the old settle slept.
      const big = new Uint8Array(64 * 1024 * 1024)
      yield* Effect.forkScoped(
        Effect.zipRight(Effect.promise(() => globalThis.crypto.subtle.digest("SHA-256", big)), Effect.sleep("1 minute"))
      )
      yield* settle
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* TestClock.sleeps()), [60_000])
    }))

  it.scoped("waits while a fiber keeps appending to the call log, one turn of the event loop at a time", () =>
    Effect.gen(function*() {
      const log = yield* TestCallLog.TestCallLog
      yield* Effect.forkScoped(
        Effect.forEach(Array.from({ length: 30 }, (_, i) => i), (i) =>
          Effect.zipRight(nextTurn, log.append({ actor: "homeserver", op: `step ${i}` })), { discard: true })
      )
      yield* settle
      assert.strictEqual((yield* entries).length, 30)
    }).pipe(Effect.provide(Testing.TestCallLog.layer)))

  it.live("works under the live clock too (no test-clock sleeps to watch)", () =>
    Effect.gen(function*() {
      const log = yield* TestCallLog.TestCallLog
      yield* Effect.forkScoped(Effect.zipRight(nextTurn, log.append({ actor: "sfu", op: "late" })))
      yield* settle
      assert.deepStrictEqual((yield* entries).map((e) => e.op), ["late"])
    }).pipe(Effect.scoped, Effect.provide(Testing.TestCallLog.layer)))
})
