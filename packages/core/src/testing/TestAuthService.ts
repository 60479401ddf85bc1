/**
 * An in-memory MatrixRTC auth service behind the `AuthService` port. Like
 * lk-jwt-service it trusts nothing but the OpenID token, which it verifies
 * against the `TestHomeserver` that issued it. It hands out JWT-shaped
 * strings that the `TestLiveKit` SFU accepts.
 */
import { Clock, Context, Effect, Layer, Option, Redacted, Ref } from "effect"
import type { LiveKitClaims, LiveKitGrant } from "../AuthService.ts"
import { AuthService } from "../AuthService.ts"
import { JwtFetchFailed } from "../CallError.ts"
import * as LiveKitNaming from "../LiveKitNaming.ts"
import type { OpenIdToken } from "../MatrixClient.ts"
import * as Sha256 from "./Sha256.ts"
import type { Fault, FaultQueue } from "./TestCallLog.ts"
import { makeFaultQueue, TestCallLog } from "./TestCallLog.ts"
import { defaultAuthServiceUrl, TestHomeserver } from "./TestHomeserver.ts"

export type AuthOp = "sfuGet" | "getToken"

// LiveKitNaming's own recipes, hashed on the fiber runtime (see Sha256.ts).
const naming = LiveKitNaming.recipes(Sha256.hashJsonArray)

export interface TestAuthServiceOptions {
  /** The base URL it answers on (default: what the test homeserver advertises). */
  readonly url?: string | undefined
  /** The SFU websocket URL it hands out. */
  readonly sfuUrl?: string | undefined
  /** More base URLs it answers on, as if several relying parties shared one SFU. */
  readonly alsoAt?: ReadonlyArray<string> | undefined
}

/** One request as the service received it: the base URL it was sent to and the OpenID token it carried. */
export interface ReceivedRequest {
  readonly url: string
  readonly openIdToken: string
}

export interface TestAuthServiceService {
  readonly url: string
  readonly sfuUrl: string
  /** Faults are answered like the real service: `status`/`errcode` → `JwtFetchFailed` Rejected; no status → Unreachable. */
  readonly injectFault: (op: AuthOp, fault: Fault, times?: number) => Effect.Effect<void>
  readonly clearFaults: Effect.Effect<void>
  /** The claims of a JWT this service issued (what the SFU checks). */
  readonly claimsFor: (jwt: string) => Effect.Effect<Option.Option<LiveKitClaims>>
  /** Every JWT issued so far (so tests can prove none leaks into logs). */
  readonly issuedJwts: Effect.Effect<ReadonlyArray<string>>
  /** Every request that reached one of its URLs, in order (so tests can tell which token went where). */
  readonly received: Effect.Effect<ReadonlyArray<ReceivedRequest>>
}

export class TestAuthService extends Context.Tag("@matrixrtc-effect/core/testing/TestAuthService")<
  TestAuthService,
  TestAuthServiceService
>() {}

export const defaultSfuUrl = "wss://sfu.example.org"
const jwtLifetimeS = 3600

// JWT segments are base64url of ASCII JSON here; test ids are ASCII, so a byte per char is exact.
const b64url = (s: string) =>
  LiveKitNaming.base64StdNoPad(Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff)).replace(/\+/g, "-").replace(
    /\//g,
    "_"
  )

export const make = (options: TestAuthServiceOptions = {}) =>
  Effect.gen(function*() {
    const hs = yield* TestHomeserver
    const log = yield* TestCallLog
    const url = (options.url ?? defaultAuthServiceUrl).replace(/\/+$/, "")
    const sfuUrl = options.sfuUrl ?? defaultSfuUrl
    const answersOn = new Set([url, ...(options.alsoAt ?? []).map((u) => u.replace(/\/+$/, ""))])
    const received = yield* Ref.make<ReadonlyArray<ReceivedRequest>>([])
    const faults: FaultQueue<AuthOp> = yield* makeFaultQueue<AuthOp>(log, "auth")
    const issued = yield* Ref.make<ReadonlyMap<string, LiveKitClaims>>(new Map())
    const counter = yield* Ref.make(0)

    const reject = (endpoint: string, status: number, errcode: string, error: string) =>
      new JwtFetchFailed({ reason: "Rejected", endpoint, status, errcode, error })

    const handle = (
      op: AuthOp,
      baseUrl: string,
      roomId: string,
      openIdToken: OpenIdToken,
      identityFor: (sub: string) => Effect.Effect<string, JwtFetchFailed>,
      slotId: string
    ): Effect.Effect<LiveKitGrant, JwtFetchFailed> =>
      Effect.gen(function*() {
        const base = baseUrl.replace(/\/+$/, "")
        const endpoint = `${base}/${op === "sfuGet" ? "sfu/get" : "get_token"}`
        if (!answersOn.has(base)) {
          return yield* Effect.fail(new JwtFetchFailed({ reason: "Unreachable", endpoint }))
        }
        yield* Ref.update(received, (r) => [...r, { url: base, openIdToken: Redacted.value(openIdToken.accessToken) }])
        yield* faults.play(op, { roomId }, (fault) =>
          fault.status === undefined
            ? new JwtFetchFailed({ reason: "Unreachable", endpoint })
            : reject(endpoint, fault.status, fault.errcode ?? "M_UNKNOWN", fault.error ?? "injected fault"))
        const verified = yield* hs.verifyOpenIdToken(Redacted.value(openIdToken.accessToken))
        // As lk-jwt-service: the server part of the user id (after the first ':') is the claimed server name.
        const serverOf = (sub: string) => sub.slice(sub.indexOf(":") + 1)
        if (Option.isNone(verified) || serverOf(verified.value.sub) !== openIdToken.matrixServerName) {
          yield* log.append({ actor: "auth", op, roomId, detail: "401 M_UNAUTHORIZED" })
          return yield* Effect.fail(reject(endpoint, 401, "M_UNAUTHORIZED", "The request could not be authorised."))
        }
        const identity = yield* identityFor(verified.value.sub)
        const room = naming.roomName(roomId, slotId)
        const n = yield* Ref.updateAndGet(counter, (x) => x + 1)
        const exp = Math.floor((yield* Clock.currentTimeMillis) / 1000) + jwtLifetimeS
        const claims: LiveKitClaims = {
          identity,
          room,
          expiresAt: exp * 1000,
          canPublish: true,
          canSubscribe: true
        }
        const jwt = [
          b64url(JSON.stringify({ alg: "HS256", typ: "JWT" })),
          b64url(JSON.stringify({ sub: identity, exp, video: { room, roomJoin: true } })),
          `jwt_signature_secret_${n}`
        ].join(".")
        yield* Ref.update(issued, (m) => new Map(m).set(jwt, claims))
        yield* log.append({ actor: "auth", op, roomId, who: identity })
        return { url: sfuUrl, jwt: Redacted.make(jwt), claims }
      })

    const service = AuthService.of({
      sfuGet: (baseUrl, request) =>
        handle(
          "sfuGet",
          baseUrl,
          request.roomId,
          request.openIdToken,
          (sub) => Effect.succeed(naming.identityLegacy(sub, request.deviceId)),
          LiveKitNaming.legacySlotId
        ),
      getToken: (baseUrl, request) =>
        handle(
          "getToken",
          baseUrl,
          request.roomId,
          request.openIdToken,
          (sub) =>
            sub === request.member.claimedUserId
              ? Effect.succeed(naming.identityHashed(sub, request.member.claimedDeviceId, request.member.id))
              : Effect.fail(reject(`${url}/get_token`, 401, "M_UNAUTHORIZED", "The request could not be authorised.")),
          request.slotId
        )
    })
    const control = TestAuthService.of({
      url,
      sfuUrl,
      injectFault: faults.inject,
      clearFaults: faults.clear,
      claimsFor: (jwt) => Effect.map(Ref.get(issued), (m) => Option.fromNullable(m.get(jwt))),
      issuedJwts: Effect.map(Ref.get(issued), (m) => [...m.keys()]),
      received: Ref.get(received)
    })
    return [service, control] as const
  })

/** `AuthService` plus the `TestAuthService` control. */
export const layer = (
  options: TestAuthServiceOptions = {}
): Layer.Layer<AuthService | TestAuthService, never, TestHomeserver | TestCallLog> =>
  Layer.effectContext(
    Effect.map(make(options), ([service, control]) =>
      Context.make(AuthService, service).pipe(Context.add(TestAuthService, control)))
  )
