import { assert, describe, it } from "@effect/vitest"
import { MatrixJsSdkClient } from "@matrixrtc-effect/matrix-js-sdk"
import { Effect, Exit, Ref, Scope } from "effect"
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

  it.effect("a failing leave is logged, not thrown into the page", () =>
    Effect.gen(function*() {
      const page = new EventTarget()
      const ran = yield* Ref.make(false)
      yield* leaveOnPageHide(Effect.zipRight(Ref.set(ran, true), Effect.fail("offline")), page)
      page.dispatchEvent(new Event("pagehide"))
      yield* Effect.yieldNow()
      assert.isTrue(yield* Ref.get(ran))
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
