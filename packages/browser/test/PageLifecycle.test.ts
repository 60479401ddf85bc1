import { assert, describe, it } from "@effect/vitest"
import { MatrixJsSdkClient } from "@matrixrtc-effect/matrix-js-sdk"
import { Effect, Exit, Logger, Ref, Scope } from "effect"
import { leaveOnPageHide } from "../src/PageLifecycle.ts"

describe("leaveOnPageHide", () => {
  it.effect("runs the leave once on pagehide, and no more after the scope closed", () =>
    Effect.gen(function*() {
      const page = new EventTarget()
      const leaves = yield* Ref.make(0)
      const scope = yield* Scope.make()
      yield* leaveOnPageHide(Ref.update(leaves, (n) => n + 1), page).pipe(Scope.extend(scope))

      page.dispatchEvent(new Event("pagehide"))
      page.dispatchEvent(new Event("pagehide"))
      yield* Effect.yieldNow()
      assert.strictEqual(yield* Ref.get(leaves), 1)

      yield* Scope.close(scope, Exit.void)
      const again = yield* Ref.make(0)
      const scope2 = yield* Scope.make()
      yield* leaveOnPageHide(Ref.update(again, (n) => n + 1), page).pipe(Scope.extend(scope2))
      yield* Scope.close(scope2, Exit.void)
      page.dispatchEvent(new Event("pagehide"))
      yield* Effect.yieldNow()
      assert.strictEqual(yield* Ref.get(again), 0)
    }))

  it.effect("a failing leave is logged as a warning with its error, not thrown into the page", () =>
    Effect.gen(function*() {
      const lines: Array<{ level: string; text: string }> = []
      const capture = Logger.make(({ logLevel, message }) => {
        lines.push({ level: logLevel.label, text: (Array.isArray(message) ? message : [message]).map(String).join(" ") })
      })
      const page = new EventTarget()
      const ran = yield* Ref.make(false)
      // The page's runtime, with its logger, is the one the listener captured.
      yield* leaveOnPageHide(Effect.zipRight(Ref.set(ran, true), Effect.fail("offline")), page).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      page.dispatchEvent(new Event("pagehide"))
      yield* Effect.yieldNow()
      assert.isTrue(yield* Ref.get(ran))
      const warnings = lines.filter((l) => l.level === "WARN")
      assert.deepStrictEqual(warnings.map((l) => l.text), [
        "leave on pagehide failed; the delayed leave will remove the membership offline"
      ])
    }).pipe(Effect.scoped))

  it.effect("the leave's homeserver requests go with keepalive (the page is torn down right after)", () =>
    Effect.gen(function*() {
      const page = new EventTarget()
      const keepAlive = yield* Ref.make<ReadonlyArray<boolean>>([])
      const record = Effect.flatMap(MatrixJsSdkClient.keepAliveRequests, (on) => Ref.update(keepAlive, (all) => [...all, on]))
      yield* record
      yield* leaveOnPageHide(record, page)
      page.dispatchEvent(new Event("pagehide"))
      yield* Effect.yieldNow()
      assert.deepStrictEqual(yield* Ref.get(keepAlive), [false, true])
    }).pipe(Effect.scoped))
})
