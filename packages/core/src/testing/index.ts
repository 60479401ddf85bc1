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
 */
import { Layer } from "effect"
import type { AuthService } from "../AuthService.ts"
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
}

export type TestServices =
  | MatrixClient
  | AuthService
  | LiveKit
  | TestHomeserver.TestHomeserver
  | TestAuthService.TestAuthService
  | TestLiveKit.TestLiveKit
  | TestCallLog.TestCallLog

/** All three backends wired to one call log. */
export const layer = (options: TestLayerOptions = {}): Layer.Layer<TestServices> => {
  const hs = TestHomeserver.layer(options.homeserver)
  const auth = TestAuthService.layer(options.authService).pipe(Layer.provideMerge(hs))
  return TestLiveKit.layer.pipe(Layer.provideMerge(auth), Layer.provideMerge(TestCallLog.layer))
}
