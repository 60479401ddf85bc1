import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option, Ref, TestClock } from "effect"
import { MatrixError } from "../src/MatrixClient.ts"
import * as MatrixRetry from "../src/MatrixRetry.ts"

const day = 24 * 3600 * 1000

const rateLimited = (retryAfterMs: number) =>
  new MatrixError({ reason: "Http", status: 429, errcode: "M_LIMIT_EXCEEDED", retryAfterMs })

/** A request that fails with `errors` in turn, then answers "ok"; and how often it was sent. */
const request = (errors: ReadonlyArray<MatrixError>) =>
  Effect.map(Ref.make(0), (sent) => ({
    sent: Ref.get(sent),
    eff: Effect.flatMap(Ref.getAndUpdate(sent, (n) => n + 1), (n) =>
      n < errors.length ? Effect.fail(errors[n]!) : Effect.succeed("ok"))
  }))

/** Whether the fiber has ended, once the test clock has reached `ms`. */
const doneBy = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, ms: number) =>
  Effect.zipRight(TestClock.adjust(ms), Effect.map(Fiber.poll(fiber), Option.isSome))

describe("MatrixRetry.withRetry", () => {
  it.effect("a rate limit asking for 30 days fails at once with the rate-limit error, without waiting", () =>
    Effect.gen(function*() {
      const r = yield* request([rateLimited(30 * day)])
      // no clock adjustment: a sleep would never end here
      const e = yield* Effect.flip(MatrixRetry.withRetry(r.eff))
      assert.strictEqual(e.status, 429)
      assert.strictEqual(e.retryAfterMs, 30 * day)
      assert.strictEqual(yield* r.sent, 1)
    }))

  it.effect("a rate limit longer than maxWaitMs is final; a modest one is waited for and then succeeds", () =>
    Effect.gen(function*() {
      const long = yield* request([rateLimited(2_000)])
      const e = yield* Effect.flip(MatrixRetry.withRetry(long.eff, { maxWaitMs: 1_000 }))
      assert.strictEqual(e.status, 429)

      const modest = yield* request([rateLimited(2_000), rateLimited(2_000)])
      const fiber = yield* Effect.fork(MatrixRetry.withRetry(modest.eff))
      yield* TestClock.adjust(2_000)
      yield* TestClock.adjust(2_000)
      assert.strictEqual(yield* Fiber.join(fiber), "ok")
      assert.strictEqual(yield* modest.sent, 3)
    }))

  it.effect("waits are bounded in total: no wait that would end after the budget is started", () =>
    Effect.gen(function*() {
      // 10 waits of 20 s each are allowed by count (200 s); the budget of 60 s allows three
      const r = yield* request(Array.from({ length: 11 }, () => rateLimited(20_000)))
      const fiber = yield* Effect.fork(MatrixRetry.withRetry(r.eff))
      for (let i = 0; i < 2; i++) assert.isFalse(yield* doneBy(fiber, 20_000))
      // the third wait ends at 60 s; the fourth would end at 80 s
      assert.isTrue(yield* doneBy(fiber, 20_000))
      const e = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(e.status, 429)
      assert.strictEqual(yield* r.sent, 4)
    }))

  it.effect("network errors back off within the budget, then the last error is final", () =>
    Effect.gen(function*() {
      const transport = new MatrixError({ reason: "Transport", error: "fetch failed" })
      const r = yield* request(Array.from({ length: 10 }, () => transport))
      // backoffs 0.5 + 1 + 2 + 4 s fit a 10 s budget, the next 5 s does not
      const fiber = yield* Effect.fork(MatrixRetry.withRetry(r.eff, { budgetMs: 10_000 }))
      for (const wait of [500, 1_000, 2_000]) assert.isFalse(yield* doneBy(fiber, wait))
      assert.isTrue(yield* doneBy(fiber, 4_000))
      assert.strictEqual((yield* Effect.flip(Fiber.join(fiber))).reason, "Transport")
      assert.strictEqual(yield* r.sent, 5)
    }))
})

describe("MatrixRetry.timeoutAfter", () => {
  it.effect("a request without an answer fails with a Timeout MatrixError", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(MatrixRetry.timeoutAfter(1_000)(Effect.never))
      yield* TestClock.adjust(1_000)
      const e = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(e._tag, "MatrixError")
      assert.strictEqual(e.reason, "Timeout")
    }))
})
