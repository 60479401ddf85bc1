/**
 * Steps 2–3 of a join: the auth service (discovery), an OpenID token and the LiveKit JWT, and beside them what
 * the membership needs (the server's support, the room version). With a JoinCache in the context, what an
 * earlier join of the session learned is used instead of asking again. A service and a token are kept only once
 * they got a JWT, and a service that could not be reached is forgotten, so a join does not repeat a failure it
 * could have avoided.
 */
import { Clock, Effect, Either, Fiber, Option } from "effect"
import type { AuthService, LiveKitGrant } from "./AuthService.ts"
import * as AuthServiceHttp from "./AuthServiceHttp.ts"
import type { MembershipFailed, NotAuthenticated } from "./CallError.ts"
import { joinFailure, JwtFetchFailed, tokenRejected } from "./CallError.ts"
import * as Discovery from "./Discovery.ts"
import type { RoomId } from "./Ids.ts"
import * as JoinCache from "./JoinCache.ts"
import * as LiveKitNaming from "./LiveKitNaming.ts"
import * as MatrixErrors from "./MatrixErrors.ts"
import type { MatrixClientService, MatrixError, OpenIdToken, ServerSupport, Session } from "./MatrixClient.ts"
import { MatrixClient } from "./MatrixClient.ts"
import * as MatrixRetry from "./MatrixRetry.ts"
import * as Membership from "./Membership.ts"

export type Dialect = "session" | "sticky"

/** Who asks, for what: everything the JWT request and the cache keys depend on. */
export interface Asker {
  readonly mx: MatrixClientService
  readonly auth: AuthService["Type"]
  readonly cache: Option.Option<JoinCache.JoinCacheService>
  readonly session: Session
  readonly roomId: RoomId
  readonly dialect: Dialect
  readonly memberId: string
  /** Last resort of discovery, e.g. from app config. */
  readonly configuredUrl: string | undefined
  /**
   * Bound of each homeserver request of these steps (OpenID token, discovery, support, room version); default
   * `MatrixRetry.DefaultRequestTimeoutMs`, the join's default `requestTimeoutMs`.
   */
  readonly requestTimeoutMs?: number | undefined
}

/** Steps 2–3 under way: the JWT request and the membership facts as effects to await. */
export interface Started {
  readonly memberId: string
  readonly serviceUrl: string
  /**
   * The JWT request's outcome, as an Either so that a failure can wait for the delayed leave scheduled beside it.
   * With `verify`, when the request went out with a kept OpenID token (no homeserver request of this step has
   * then shown the access token alive), `/whoami` runs beside it, and a dead access token is the outcome.
   */
  readonly grant: (check: TokenCheck) => Effect.Effect<Either.Either<LiveKitGrant, JwtFetchFailed | NotAuthenticated>>
  /** What the membership needs: server support and the room version. */
  readonly facts: Effect.Effect<readonly [ServerSupport, string], NotAuthenticated>
  /** Stops what is still under way (the JWT request, the facts), e.g. when the join fails before awaiting them. */
  readonly interrupt: Effect.Effect<void>
}

export interface TokenCheck {
  /** Whether nothing else the caller does first would show a dead access token. */
  readonly verify: boolean
  /** Bound of the `/whoami`; without an answer by then the join goes on. */
  readonly timeoutMs: number
}

interface OpenId extends JoinCache.IssuedOpenIdToken {
  readonly reused: boolean
}

const sessionKey = (a: Asker) => JoinCache.sessionKey(a.session)
const serviceKey = (a: Asker) => JSON.stringify([sessionKey(a), a.configuredUrl ?? null])
const tokenKey = (a: Asker, serviceUrl: string) => JSON.stringify([sessionKey(a), serviceUrl])

/** What the cache holds, if there is a cache. */
const fromCache = <A>(
  a: Asker,
  f: (c: JoinCache.JoinCacheService) => Effect.Effect<Option.Option<A>>
): Effect.Effect<Option.Option<A>> => Option.match(a.cache, { onNone: () => Effect.succeed(Option.none()), onSome: f })

/** Updates the cache, if there is a cache. */
const toCache = (a: Asker, f: (c: JoinCache.JoinCacheService) => Effect.Effect<void>): Effect.Effect<void> =>
  Option.match(a.cache, { onNone: () => Effect.void, onSome: f })

/** A homeserver request of these steps, bounded: one that never answers would hold up the join for ever. */
const bounded = <A>(a: Asker, request: Effect.Effect<A, MatrixError>): Effect.Effect<A, MatrixError> =>
  MatrixRetry.timeoutAfter(a.requestTimeoutMs ?? MatrixRetry.DefaultRequestTimeoutMs)(request)

/** A homeserver that does not answer in time fails it with `OpenIdFailed` and a `MatrixError` Timeout as cause. */
const freshOpenId = (a: Asker): Effect.Effect<OpenId, NotAuthenticated | JwtFetchFailed> =>
  MatrixRetry.withRetry(bounded(a, a.mx.requestOpenIdToken)).pipe(
    Effect.mapError((e) =>
      MatrixRetry.isTokenRejected(e)
        ? tokenRejected(e)
        : new JwtFetchFailed({ reason: "OpenIdFailed", status: e.status, errcode: e.errcode, error: e.error, cause: e })
    ),
    Effect.flatMap((token) => Effect.map(Clock.currentTimeMillis, (receivedAt) => ({ token, receivedAt, reused: false }))),
    Effect.withSpan("MatrixRTC.openId")
  )

/** The kept token for `serviceUrl`, else a new one. */
const openIdFor = (a: Asker, serviceUrl: string): Effect.Effect<OpenId, NotAuthenticated | JwtFetchFailed> =>
  Effect.flatMap(fromCache(a, (c) => c.openIdToken.get(tokenKey(a, serviceUrl))), Option.match({
    onSome: (kept) => Effect.succeed({ ...kept, reused: true }),
    onNone: () => freshOpenId(a)
  }))

const requestJwt = (a: Asker, serviceUrl: string, token: OpenIdToken): Effect.Effect<LiveKitGrant, JwtFetchFailed> =>
  (a.dialect === "session"
    ? a.auth.sfuGet(serviceUrl, { roomId: a.roomId, openIdToken: token, deviceId: a.session.deviceId })
    : a.auth.getToken(serviceUrl, {
      roomId: a.roomId,
      slotId: Membership.RoomSlotId,
      openIdToken: token,
      member: { id: a.memberId, claimedUserId: a.session.userId, claimedDeviceId: a.session.deviceId }
    })).pipe(
      Effect.tap((grant) => checkIdentity(a, serviceUrl, grant)),
      Effect.withSpan("MatrixRTC.jwt", { attributes: { endpoint: AuthServiceHttp.withoutUserinfo(serviceUrl) } })
    )

/**
 * Peers find our media by the LiveKit identity our membership implies (JS-SDK `rtcBackendIdentity`); a JWT for
 * another identity joins the SFU fine, but no peer ever shows our tracks or maps our keys (element-call#4123).
 * `/sfu/get` has minted `<OpenID sub>:<device_id>` in every service version, so a different one there means the
 * service vouches for someone else (the OpenID `sub` is not our user): the join fails. `/get_token` has used other
 * recipes in deployed versions (v0.4.0: `member.id`; v0.4.1: a hash of `user|device|member`; Go's JSON escaping for
 * odd ids), whose peers of the same vintage do find us, so there a mismatch is only reported.
 */
const checkIdentity = (a: Asker, serviceUrl: string, grant: LiveKitGrant): Effect.Effect<void, JwtFetchFailed> =>
  Effect.gen(function*() {
    const expected = yield* (a.dialect === "session"
      ? LiveKitNaming.liveKitIdentityLegacy(a.session.userId, a.session.deviceId)
      : LiveKitNaming.liveKitIdentityHashed(a.session.userId, a.session.deviceId, a.memberId))
    const actual = grant.claims.identity
    if (actual === expected) return
    yield* Effect.annotateCurrentSpan({ identityMismatch: true, identity: actual, expectedIdentity: expected })
    if (a.dialect === "session") {
      return yield* new JwtFetchFailed({
        reason: "BadResponse",
        endpoint: AuthServiceHttp.withoutUserinfo(`${serviceUrl.replace(/\/+$/, "")}/sfu/get`),
        cause: `the JWT is for LiveKit identity ${actual}, but peers look for ${expected}`
      })
    }
    yield* Effect.logWarning(
      "the auth service minted a LiveKit identity other than the one our membership implies; peers may not see our media"
    ).pipe(Effect.annotateLogs({ identity: actual, expectedIdentity: expected }))
  })

/** The service is not there (any more): asking it again soon would fail the same way. */
const unreachable = (e: JwtFetchFailed | NotAuthenticated) =>
  e._tag === "JwtFetchFailed" && (e.reason === "Unreachable" || e.reason === "Timeout" || e.status === 404)

/**
 * The JWT from `serviceUrl` with `openId`. A kept token the service refuses (401) may have been revoked: it is
 * replaced once. What got the JWT is kept: the token, and the service if discovery has just found it (a kept
 * service is not kept longer for working, or a changed configuration would never be noticed).
 */
const jwtWith = (
  a: Asker,
  serviceUrl: string,
  openId: OpenId,
  discovered: boolean
): Effect.Effect<readonly [LiveKitGrant, OpenId], JwtFetchFailed | NotAuthenticated> => {
  const key = tokenKey(a, serviceUrl)
  const request = (o: OpenId) => Effect.map(requestJwt(a, serviceUrl, o.token), (grant) => [grant, o] as const)
  return request(openId).pipe(
    Effect.catchIf(
      (e) => openId.reused && e.reason === "Rejected" && e.status === 401,
      () =>
        Effect.logInfo("the auth service refused the kept OpenID token; asking for a new one").pipe(
          Effect.zipRight(toCache(a, (c) => c.openIdToken.forget(key, (kept) => kept.token === openId.token))),
          Effect.zipRight(freshOpenId(a)),
          Effect.flatMap(request)
        )
    ),
    Effect.tap(([, used]) =>
      toCache(a, (c) =>
        Effect.all([
          used.reused ? Effect.void : c.openIdToken.set(key, used),
          discovered ? c.authServiceUrl.set(serviceKey(a), serviceUrl) : Effect.void
        ], { discard: true }))
    ),
    // Only if it still is this service: a concurrent join may have kept another one that works.
    Effect.tapError((e) =>
      unreachable(e) ? toCache(a, (c) => c.authServiceUrl.forget(serviceKey(a), (kept) => kept === serviceUrl)) : Effect.void
    )
  )
}

/** A JWT from a known service: the kept OpenID token or a new one (e.g. when the SFU refused a prepared grant). */
export const grantFor = (a: Asker, serviceUrl: string): Effect.Effect<LiveKitGrant, JwtFetchFailed | NotAuthenticated> =>
  Effect.flatMap(openIdFor(a, serviceUrl), (openId) => Effect.map(jwtWith(a, serviceUrl, openId, false), ([grant]) => grant))

/**
 * Without a kept service, discovery and a new OpenID token at once, each run to its end. When both fail, the
 * OpenID request's error is the one reported: a dead session says more than a missing service (discovery's
 * requests may have failed for the same reason).
 */
const discoverWithToken = (a: Asker): Effect.Effect<readonly [OpenId, string], JwtFetchFailed | NotAuthenticated> =>
  Effect.all([
    Effect.either(freshOpenId(a)),
    Effect.either(
      Discovery.discoverAuthService({ configuredUrl: a.configuredUrl, requestTimeoutMs: a.requestTimeoutMs }).pipe(
        Effect.map((d) => d.livekitServiceUrl),
        Effect.provideService(MatrixClient, a.mx),
        Effect.withSpan("MatrixRTC.discover")
      )
    )
  ], { concurrency: "unbounded" }).pipe(Effect.flatMap((both) => Effect.all(both)))

/**
 * `/versions` + `/capabilities`, kept (they describe the server, not this join's JWT). A dead access token is
 * NotAuthenticated; another failure assumes no delayed events, and that guess is not kept.
 */
const serverSupport = (a: Asker): Effect.Effect<ServerSupport, NotAuthenticated> =>
  Effect.flatMap(fromCache(a, (c) => c.serverSupport.get(sessionKey(a))), Option.match({
    onSome: Effect.succeed,
    onNone: () =>
      bounded(a, a.mx.serverSupport).pipe(
        Effect.tap((support) => toCache(a, (c) => c.serverSupport.set(sessionKey(a), support))),
        Effect.catchTag("MatrixError", (e) =>
          MatrixRetry.isTokenRejected(e)
            ? Effect.fail(tokenRejected(e))
            : Effect.as(
              Effect.logWarning("could not read /versions; assuming no delayed events", e.message),
              { delayedEvents: false, maxDelayMs: Option.none(), stickyEvents: false }
            ))
      )
  }))

/**
 * The room version. A dead access token is NotAuthenticated; a 403 (Synapse's answer for a room we are not joined
 * to, or may not read) is MembershipFailed Forbidden, as the membership would be refused too; anything else falls
 * back to what every version needs.
 */
const roomVersionOf = (a: Asker): Effect.Effect<string, NotAuthenticated | MembershipFailed> =>
  bounded(a, a.mx.roomVersion(a.roomId)).pipe(
    Effect.catchTag("MatrixError", (e): Effect.Effect<string, NotAuthenticated | MembershipFailed> =>
      ["UnknownToken", "Forbidden"].includes(MatrixErrors.classify(e)._tag)
        ? Effect.fail(joinFailure(e))
        // Unknown version: the `_` prefix is what every normal room version needs.
        : Effect.as(Effect.logWarning("could not read the room version", e.message), "1"))
  )

/**
 * Steps 2–3: the facts the membership needs, and beside them the OpenID token and the service (kept, or asked
 * for at once), then the JWT request, left running. A dead access token fails the OpenID request with
 * NotAuthenticated; with a kept token, `grant` can check it. A room we may not read fails with MembershipFailed
 * before the JWT request: the auth service would create a LiveKit room for a join the membership then refuses.
 * `interrupt` stops the forked fibers when the caller fails before awaiting them.
 */
export const start = (a: Asker): Effect.Effect<Started, NotAuthenticated | JwtFetchFailed | MembershipFailed> =>
  Effect.gen(function*() {
    // Only the membership needs these, so they must not hold up the OpenID token and discovery. The room version
    // is asked for beside them, and is local for a room the client has synced (matrix-js-sdk): a joined room pays
    // nothing for it before the JWT.
    const support = yield* Effect.fork(serverSupport(a))
    const version = yield* Effect.fork(a.dialect === "session" ? roomVersionOf(a) : Effect.succeed(""))
    const stopFacts = Fiber.interruptAll([support, version])
    const knownUrl = yield* fromCache(a, (c) => c.authServiceUrl.get(serviceKey(a)))
    // The OpenID token is kept per auth service, so a kept one can only be found once the service is known.
    // Without them the caller gets no `interrupt`: the facts are stopped here, or they would run on (and be kept).
    const [openId, serviceUrl, roomVersion] = yield* Effect.gen(function*() {
      const [openId, serviceUrl] = yield* (Option.isSome(knownUrl)
        ? Effect.map(openIdFor(a, knownUrl.value), (o) => [o, knownUrl.value] as const)
        : discoverWithToken(a))
      return [openId, serviceUrl, yield* Fiber.join(version)] as const
    }).pipe(Effect.onError(() => stopFacts))
    const facts = Effect.map(Fiber.join(support), (s) => [s, roomVersion] as const)
    const jwt = yield* jwtWith(a, serviceUrl, openId, Option.isNone(knownUrl)).pipe(Effect.either, Effect.fork)
    const outcome = Effect.map(Fiber.join(jwt), Either.map(([grant]) => grant))
    return {
      memberId: a.memberId,
      serviceUrl,
      // Should the service refuse the kept token, the new one's request shows the access token alive: the check
      // started beside it is then one request too many, and harmless.
      grant: (check) =>
        check.verify && openId.reused
          ? Effect.map(
            Effect.all([outcome, Effect.either(checkToken(a.mx, check.timeoutMs))], { concurrency: "unbounded" }),
            ([result, checked]) => Either.isLeft(checked) ? Either.left(checked.left) : result
          )
          : outcome,
      facts,
      interrupt: Effect.asVoid(Fiber.interruptAll([jwt, support]))
    } satisfies Started
  })

/**
 * Confirms the access token still works (`/account/whoami`) when nothing else of the step would: a dead one is
 * NotAuthenticated; a failure that says nothing about the token, or no answer within `timeoutMs`, is only logged.
 */
const checkToken = (mx: MatrixClientService, timeoutMs: number): Effect.Effect<void, NotAuthenticated> =>
  mx.whoami.pipe(
    Effect.asVoid,
    MatrixRetry.timeoutAfter(timeoutMs),
    Effect.catchTag("MatrixError", (e) =>
      MatrixRetry.isTokenRejected(e)
        ? Effect.fail(tokenRejected(e))
        : Effect.logWarning("whoami failed; going on", e.message)),
    Effect.withSpan("MatrixRTC.authenticate")
  )
