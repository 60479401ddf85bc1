/**
 * In-memory backends for tests: a Matrix homeserver, a MatrixRTC auth service
 * and a LiveKit SFU that share one ordered call log. Swap `layer()` in where
 * the real `MatrixClient`, `AuthService` and `LiveKit` layers would go:
 *
 *     it.scoped("joins", () =>
 *       Effect.gen(function*() {
 *         const hs = yield* Testing.TestHomeserver.TestHomeserver
 *         yield* hs.injectFault("delayed.restart", Testing.TestCallLog.fail({ status: 429, retryAfterMs: 2000 }))
 *         const call = yield* Call.join(roomId)
 *         yield* TestClock.adjust(10_000)
 *         const ops = yield* (yield* Testing.TestCallLog.TestCallLog).ops // ["homeserver:openid", …]
 *       }).pipe(Effect.provide(Testing.layer({ homeserver: { maxDelayMs: 4000 } }))))
 *
 * The backends answer on the fiber runtime only (they hash LiveKit names synchronously, not with Web Crypto), so
 * a test can fork a join and move the `TestClock` at once: `TestClock.adjust` first waits until every fiber of
 * the test is suspended, and a session-dialect join then really is parked on the clock (its heartbeat), not
 * waiting for an answer from outside. One step of a sticky-dialect join does leave the runtime: core checks the
 * JWT's hashed LiveKit identity with Web Crypto. There, wait for something the call log or the homeserver shows
 * (e.g. the membership in `hs.activeMemberships`) before moving the clock.
 */
import { Layer } from "effect"
import type { AuthService } from "../AuthService.ts"
import * as JoinCache from "../JoinCache.ts"
import type { LiveKit } from "../LiveKit.ts"
import type { MatrixClient } from "../MatrixClient.ts"
import * as TestAuthService from "./TestAuthService.ts"
import * as TestCallLog from "./TestCallLog.ts"
import * as TestHomeserver from "./TestHomeserver.ts"
import * as TestLiveKit from "./TestLiveKit.ts"

export { TestAuthService, TestCallLog, TestHomeserver, TestLiveKit }

export interface TestLayerOptions {
  readonly homeserver?: TestHomeserver.TestHomeserverOptions | undefined
  readonly authService?: TestAuthService.TestAuthServiceOptions | undefined
  /**
   * The `JoinCache`, set as on `NodeCall.layer` / `BrowserCall.layer`. Default `false` (unlike those layers):
   * every join then makes all of its requests, which is what most tests want to see. Pass `{}` to test an
   * app with the platform layers' default caching.
   */
  readonly joinCache?: JoinCache.JoinCacheOptions | false | undefined
}

export type TestServices =
  | MatrixClient
  | AuthService
  | LiveKit
  | TestHomeserver.TestHomeserver
  | TestAuthService.TestAuthService
  | TestLiveKit.TestLiveKit
  | TestCallLog.TestCallLog
  | JoinCache.JoinCache

/** All three backends wired to one call log, and a `JoinCache` as `options.joinCache` says. */
export const layer = (options: TestLayerOptions = {}): Layer.Layer<TestServices> => {
  const hs = TestHomeserver.layer(options.homeserver)
  const auth = TestAuthService.layer(options.authService).pipe(Layer.provideMerge(hs))
  return TestLiveKit.layer.pipe(
    Layer.provideMerge(auth),
    Layer.provideMerge(TestCallLog.layer),
    Layer.merge(JoinCache.layerOrNone(options.joinCache ?? false))
  )
}
