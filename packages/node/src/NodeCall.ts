/**
 * Everything a node program needs to join a MatrixRTC call, as one layer:
 * the homeserver (matrix-js-sdk, logged in by password or access token), the
 * auth service (core's HTTP client over Node's fetch) and the LiveKit SFU
 * (rtc-node). Build it once at the edge of the program.
 *
 * HttpClient is `FetchHttpClient.layer`: Node 24's fetch is enough and keeps
 * @effect/platform-node out of this package.
 */
import { FetchHttpClient } from "@effect/platform"
import type { HttpClient } from "@effect/platform"
import { AuthServiceHttp, JoinCache } from "@matrixrtc-effect/core"
import type { AuthService, LiveKit, MatrixClient, MatrixError, NotAuthenticated } from "@matrixrtc-effect/core"
import { layerLogin } from "@matrixrtc-effect/matrix-js-sdk"
import type { LoginOptions, MatrixSdkClient } from "@matrixrtc-effect/matrix-js-sdk"
import { Layer } from "effect"
import * as NodeLiveKit from "./NodeLiveKit.ts"

export interface NodeCallConfig {
  /** Password (`user` + `password`) or access-token login; secrets as `Redacted`. */
  readonly matrix: LoginOptions
  readonly liveKit?: NodeLiveKit.NodeLiveKitOptions | undefined
  readonly authService?: AuthServiceHttp.Options | undefined
  /** What joins after the first reuse (discovery, server support, OpenID token); `false` asks every time. */
  readonly joinCache?: JoinCache.JoinCacheOptions | false | undefined
}

export type NodeCallServices =
  | MatrixClient
  | MatrixSdkClient
  | AuthService
  | HttpClient.HttpClient
  | LiveKit
  | NodeLiveKit.NodeLiveKit
  | JoinCache.JoinCache

/**
 * Logs in, starts syncing, and provides every port `join` needs, plus the
 * richer `MatrixSdkClient` and `NodeLiveKit` handles. Closing it stops the
 * Matrix client and disposes rtc-node's native runtime. A dead access token or a
 * wrong password fails it with `NotAuthenticated` (`TokenRejected`, `LoginRejected`); other
 * homeserver failures (network, 5xx, rate limit) with `MatrixError`.
 */
export const layer = (config: NodeCallConfig): Layer.Layer<NodeCallServices, NotAuthenticated | MatrixError> =>
  Layer.mergeAll(
    layerLogin(config.matrix),
    AuthServiceHttp.layerWith(config.authService ?? {}).pipe(Layer.provideMerge(FetchHttpClient.layer)),
    NodeLiveKit.layer(config.liveKit),
    JoinCache.layerOrNone(config.joinCache)
  )
