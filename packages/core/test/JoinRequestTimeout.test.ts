/** `JoinOptions.requestTimeoutMs` bounds the join's homeserver requests before the membership too, not only its own. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import * as Call from "../src/Call.ts"
import * as Testing from "../src/testing/index.ts"
import { ops, roomId, settle, TestHomeserver } from "./utils.ts"

describe("requestTimeoutMs before the membership", () => {
  for (const op of ["roomVersion", "serverSupport"] as const) {
    it.scoped(`a ${op} request that never answers is given up after requestTimeoutMs`, () =>
      Effect.gen(function*() {
        const hs = yield* TestHomeserver.TestHomeserver
        yield* hs.injectFault(op, Testing.TestCallLog.hang)
        const joining = yield* Effect.fork(Call.join(roomId, { requestTimeoutMs: 2_000 }))
        yield* settle
        assert.notInclude(yield* ops, "homeserver:sendState")
        yield* TestClock.adjust(2_000)
        yield* settle
        // Well before the default 10 s: the join went on without the answer.
        assert.include(yield* ops, "homeserver:sendState")
        yield* Fiber.join(joining)
      }).pipe(Effect.provide(Testing.layer())))
  }
})
