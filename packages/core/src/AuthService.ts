/**
 * The MatrixRTC auth service (lk-jwt-service API) as the lifecycle needs it:
 * trade an OpenID token for a LiveKit JWT. The HTTP implementation lives in
 * `AuthServiceHttp.ts`; `@matrixrtc-effect/core/testing` has an in-memory one.
 */
import type { Effect, Redacted } from "effect"
import { Context } from "effect"
import type { JwtFetchFailed } from "./CallError.ts"
import type { OpenIdToken } from "./MatrixClient.ts"

/** Hand the MSC4140 delayed leave to the service (full-access users only). */
export interface DelayDelegation {
  readonly delayId: string
  readonly delayTimeoutMs: number
}

export interface SfuGetRequest {
  readonly roomId: string
  readonly openIdToken: OpenIdToken
  readonly deviceId: string
  readonly delegation?: DelayDelegation | undefined
}

export interface GetTokenRequest {
  readonly roomId: string
  readonly slotId: string
  readonly openIdToken: OpenIdToken
  readonly member: { readonly id: string; readonly claimedUserId: string; readonly claimedDeviceId: string }
  readonly delegation?: DelayDelegation | undefined
}

/** What the JWT grants, read from its payload (base64url), never trusted for security. */
export interface LiveKitClaims {
  readonly identity: string
  readonly room: string
  /** ms since the epoch (the JWT `exp`, which is in seconds, × 1000). */
  readonly expiresAt: number | undefined
  readonly canPublish: boolean
  readonly canSubscribe: boolean
}

export interface LiveKitGrant {
  /** The SFU websocket URL, verbatim from the service. */
  readonly url: string
  readonly jwt: Redacted.Redacted<string>
  readonly claims: LiveKitClaims
}

export interface AuthServiceService {
  /** `POST <base>/sfu/get`: identity `@user:server:DEVICE` (the default session dialect). */
  readonly sfuGet: (baseUrl: string, request: SfuGetRequest) => Effect.Effect<LiveKitGrant, JwtFetchFailed>
  /** `POST <base>/get_token`: hashed identity (the sticky dialect). */
  readonly getToken: (baseUrl: string, request: GetTokenRequest) => Effect.Effect<LiveKitGrant, JwtFetchFailed>
}

export class AuthService extends Context.Tag("@matrixrtc-effect/core/AuthService")<AuthService, AuthServiceService>() {}
