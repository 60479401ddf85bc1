/**
 * Everything a browser app needs to `join` a call, as one layer:
 *
 * - `MatrixClient` (+ `MatrixSdkClient`) from the shared matrix-js-sdk adapter,
 *   logging in or wrapping a client the app already runs;
 * - `AuthService` over `HttpClient`, and `HttpClient` itself on the browser's fetch;
 * - `LiveKit` (+ `BrowserLiveKit`, the media handle) on livekit-client.
 *
 * Build it once at the app's edge (e.g. `ManagedRuntime.make(BrowserCall.layer(config))`).
 */
import { FetchHttpClient } from "@effect/platform"
import type { HttpClient } from "@effect/platform"
import { Layer } from "effect"
import { AuthServiceHttp, JoinCache } from "@matrixrtc-effect/core"
import type { AuthService, LiveKit, MatrixClient, MatrixError, NotAuthenticated } from "@matrixrtc-effect/core"
import { layerFromClient, layerLogin } from "@matrixrtc-effect/matrix-js-sdk"
import type { LoginOptions, MatrixSdkClient, StartOptions } from "@matrixrtc-effect/matrix-js-sdk"
import * as BrowserLiveKit from "./BrowserLiveKit.ts"

/** `HttpClient` on the browser's `fetch` (the auth-service requests go through it). */
export const layerHttpClient: Layer.Layer<HttpClient.HttpClient> = FetchHttpClient.layer

/** A matrix-js-sdk client the app already created (and may already run). */
export interface ExistingClient {
  readonly client: Parameters<typeof layerFromClient>[0]
  /** Start syncing it (needed for the member list) unless the app already does. */
  readonly start?: boolean | StartOptions | undefined
}

export interface Config {
  /** Log in (password or access token), or use an existing client. */
  readonly matrix: LoginOptions | ExistingClient
  readonly liveKit?: BrowserLiveKit.BrowserLiveKitOptions | undefined
  readonly authService?: AuthServiceHttp.Options | undefined
  /** What joins after the first reuse (discovery, server support, OpenID token); `false` asks every time. */
  readonly joinCache?: JoinCache.JoinCacheOptions | false | undefined
}

export type Services =
  | MatrixClient
  | MatrixSdkClient
  | AuthService
  | LiveKit
  | BrowserLiveKit.BrowserLiveKit
  | HttpClient.HttpClient
  | JoinCache.JoinCache

const isExisting = (m: Config["matrix"]): m is ExistingClient => "client" in m

/** A login with a dead access token or a wrong password fails with `NotAuthenticated` (`TokenRejected`, `LoginRejected`). */
export const layer = (config: Config): Layer.Layer<Services, NotAuthenticated | MatrixError> =>
  Layer.mergeAll(
    isExisting(config.matrix)
      ? layerFromClient(config.matrix.client, { start: config.matrix.start ?? false })
      : layerLogin(config.matrix),
    BrowserLiveKit.layer(config.liveKit),
    config.authService !== undefined ? AuthServiceHttp.layerWith(config.authService) : AuthServiceHttp.layer,
    JoinCache.layerOrNone(config.joinCache)
  ).pipe(Layer.provideMerge(layerHttpClient))
