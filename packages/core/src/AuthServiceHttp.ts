/**
 * `AuthService` over @effect/platform's `HttpClient`, speaking the
 * lk-jwt-service API exactly (auth-service.md §1.2, §1.3, §5.4, §8).
 *
 * Retry policy: only network failures (no HTTP answer) are retried, with a
 * bounded exponential backoff. Every HTTP error status is final, as in Element
 * Call: the service's 4xx are about the request, and its 5xx ("Unable to create
 * room on SFU", "shutting down") do not heal within a backoff window; the
 * lifecycle above decides whether to ask again with a fresh OpenID token.
 * Timeouts are final too (EC does not retry aborted requests).
 *
 * Secrets: the OpenID access token is encoded into the body at the last moment
 * and the JWT is handed out `Redacted`; neither request nor response objects
 * are kept in errors.
 *
 * Redirects are not followed: fetch re-sends a POST's body on 307/308, even from
 * https to http, so the OpenID token would reach a URL `isTokenSafeUrl` never saw.
 * A redirect answer is a final `Rejected`.
 */
import { FetchHttpClient, HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError } from "@effect/platform"
import { Duration, Effect, Either, Encoding, Layer, Option, Redacted, Schedule, Schema } from "effect"
import { AuthService } from "./AuthService.ts"
import type {
  AuthServiceService,
  DelayDelegation,
  GetTokenRequest,
  LiveKitClaims,
  LiveKitGrant,
  SfuGetRequest
} from "./AuthService.ts"
import { JwtFetchFailed } from "./CallError.ts"
import type { OpenIdToken } from "./MatrixClient.ts"
import { scrubSecrets } from "./ScrubSecrets.ts"

export interface Options {
  /** Per attempt; exceeding it fails with `Timeout`. Default 10 s. */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /** Retries after network failures. Default 3. */
  readonly networkRetries?: number | undefined
  /** First backoff delay, doubled per retry. Default 1 s. */
  readonly retryBaseDelay?: Duration.DurationInput | undefined
}

/** lk-jwt-service's mux redirects `//get_token` (a base ending in `/`) and the POST turns into a 405. */
export const normaliseBaseUrl = (baseUrl: string): string => baseUrl.trim().replace(/\/+$/, "")

const urlParts = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)/
const ipv4Loopback = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

const isLoopbackHost = (host: string): boolean => {
  if (host === "localhost" || host === "[::1]" || host === "[0:0:0:0:0:0:0:1]") return true
  const v4 = ipv4Loopback.exec(host)
  return v4 !== null && v4.slice(1).every((octet) => Number(octet) <= 255)
}

/**
 * An OpenID token lets anyone who holds it prove to be us, so it only goes to
 * https URLs or to loopback (127.0.0.0/8, ::1, localhost) over http. URLs with
 * userinfo are refused too: `http://127.0.0.1@evil.example` is not loopback.
 */
export const isTokenSafeUrl = (url: string): boolean => {
  const match = urlParts.exec(url)
  if (match === null) return false
  const scheme = match[1]!.toLowerCase()
  const authority = match[2]!.toLowerCase()
  if (authority.includes("@")) return false
  const host = authority.startsWith("[") ? authority.slice(0, authority.indexOf("]") + 1) : authority.split(":")[0]!
  if (host === "") return false
  return scheme === "https" || (scheme === "http" && isLoopbackHost(host))
}

/** The URL for spans and errors: a password in `https://user:pw@host` is not for them. */
export const withoutUserinfo = (url: string): string => url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/, "$1***@")

/**
 * Runs `self` (HTTP requests) with fetch's `redirect: "manual"`, keeping the rest of a
 * `FetchHttpClient.RequestInit` the caller provided: the 3xx comes back as the answer
 * (in browsers as an opaque one with status 0). Other `HttpClient`s ignore it; the
 * platform ones do not follow redirects, except XMLHttpRequest, which always does.
 */
export const withoutRedirects = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.serviceOption(FetchHttpClient.RequestInit), (init) =>
    Effect.provideService(self, FetchHttpClient.RequestInit, {
      ...Option.getOrElse(init, () => ({})),
      redirect: "manual"
    }))

/** A redirect as `withoutRedirects` leaves it: a 3xx, or the browser's opaque redirect (status 0). */
export const isRedirect = (status: number): boolean => status === 0 || (status >= 300 && status < 400)

// Exactly the four keys of the homeserver's answer: the service rejects unknown keys.
const OpenIdTokenBody = Schema.Struct({
  access_token: Schema.Redacted(Schema.String),
  token_type: Schema.String,
  matrix_server_name: Schema.String,
  expires_in: Schema.Int
})

const delegationFields = {
  delay_id: Schema.optional(Schema.String),
  delay_timeout: Schema.optional(Schema.Int)
}

const SfuGetBody = Schema.Struct({
  room: Schema.String,
  openid_token: OpenIdTokenBody,
  device_id: Schema.String,
  ...delegationFields
})

const GetTokenBody = Schema.Struct({
  room_id: Schema.String,
  slot_id: Schema.String,
  openid_token: OpenIdTokenBody,
  member: Schema.Struct({ id: Schema.String, claimed_user_id: Schema.String, claimed_device_id: Schema.String }),
  ...delegationFields
})

const GrantBody = Schema.Struct({
  url: Schema.String,
  jwt: Schema.optional(Schema.String),
  // Some deployments answer with `token` instead of `jwt`.
  token: Schema.optional(Schema.String)
})

const ErrorBody = Schema.Struct({ errcode: Schema.optional(Schema.String), error: Schema.optional(Schema.String) })

const JwtPayload = Schema.Struct({
  sub: Schema.String,
  exp: Schema.optional(Schema.Number),
  video: Schema.Struct({
    room: Schema.String,
    canPublish: Schema.optional(Schema.Boolean),
    canSubscribe: Schema.optional(Schema.Boolean)
  })
})

const decodeGrant = Schema.decodeUnknownEither(Schema.parseJson(GrantBody))
const decodeErrorBody = Schema.decodeUnknownOption(Schema.parseJson(ErrorBody))
const decodePayload = Schema.decodeUnknownEither(Schema.parseJson(JwtPayload))

/** Reads the JWT payload (base64url, not `atob`-safe) for the SFU room and our identity; never a security check. */
export const decodeClaims = (jwt: string): Option.Option<LiveKitClaims> => {
  const parts = jwt.split(".")
  if (parts.length !== 3) return Option.none()
  const payload = Either.flatMap(
    Either.mapLeft(Encoding.decodeBase64UrlString(parts[1]!), () => undefined),
    (json) => Either.mapLeft(decodePayload(json), () => undefined)
  )
  return Option.map(Either.getRight(payload), (p) => ({
    identity: p.sub,
    room: p.video.room,
    expiresAt: p.exp !== undefined ? p.exp * 1000 : undefined,
    // LiveKit treats an absent publish/subscribe grant as allowed.
    canPublish: p.video.canPublish ?? true,
    canSubscribe: p.video.canSubscribe ?? true
  }))
}

const openIdTokenBody = (token: OpenIdToken) => ({
  access_token: token.accessToken,
  token_type: token.tokenType,
  matrix_server_name: token.matrixServerName,
  expires_in: Number.isFinite(token.expiresIn) ? Math.max(0, Math.round(token.expiresIn)) : 0
})

/** Both delay keys or neither; a non-positive timeout would only earn a 400, so it drops the pair. */
const delegationBody = (
  delegation: DelayDelegation | undefined
): { readonly delay_id: string; readonly delay_timeout: number } | {} => {
  if (delegation === undefined) return {}
  const timeout = Math.round(delegation.delayTimeoutMs)
  return timeout > 0 && delegation.delayId !== "" ? { delay_id: delegation.delayId, delay_timeout: timeout } : {}
}

type Attempt =
  | { readonly _tag: "Network"; readonly detail: string }
  | { readonly _tag: "Timeout" }

interface Answer {
  readonly status: number
  readonly text: string
}

const networkDetail = (e: HttpClientError.HttpClientError) => `${e._tag}(${e.reason}): ${e.message}`

export const make = (options: Options = {}): Effect.Effect<AuthServiceService, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    // No trace headers: the service's CORS allow-list would make browsers fail the preflight.
    const client = HttpClient.withTracerPropagation(yield* HttpClient.HttpClient, false)
    const timeout = Duration.decode(options.requestTimeout ?? Duration.seconds(10))
    const retrySchedule = Schedule.exponential(options.retryBaseDelay ?? Duration.seconds(1)).pipe(
      Schedule.intersect(Schedule.recurs(options.networkRetries ?? 3))
    )

    const send = (url: string, request: HttpClientRequest.HttpClientRequest): Effect.Effect<Answer, Attempt> =>
      client.execute(request).pipe(
        Effect.flatMap((response) => Effect.map(response.text, (text) => ({ status: response.status, text }))),
        withoutRedirects,
        Effect.mapError((e): Attempt => ({ _tag: "Network", detail: networkDetail(e) })),
        Effect.timeoutFail({ duration: timeout, onTimeout: (): Attempt => ({ _tag: "Timeout" }) }),
        Effect.retry({ schedule: retrySchedule, while: (e) => e._tag === "Network" }),
        Effect.tapError((e) => Effect.logDebug("auth service request failed", { url: withoutUserinfo(url), failure: e._tag }))
      )

    const failure = (endpoint: string, attempt: Attempt) =>
      attempt._tag === "Timeout"
        ? new JwtFetchFailed({ reason: "Timeout", endpoint })
        : new JwtFetchFailed({ reason: "Unreachable", endpoint, cause: attempt.detail })

    /** `sent`: the OpenID token of the request; a service or proxy that echoes it must not put it in our error. */
    const rejected = (url: string, answer: Answer, sent: Redacted.Redacted<string>) => {
      if (isRedirect(answer.status)) {
        return new JwtFetchFailed({
          reason: "Rejected",
          endpoint: url,
          status: answer.status,
          error: "answered with a redirect, which is not followed: the OpenID token only goes to the configured URL"
        })
      }
      const clean = (text: string) => scrubSecrets(text.replaceAll(Redacted.value(sent), "<redacted>"))
      const body = decodeErrorBody(answer.text)
      const snippet = clean(answer.text.trim()).slice(0, 200)
      return new JwtFetchFailed({
        reason: "Rejected",
        endpoint: url,
        status: answer.status,
        errcode: Option.getOrUndefined(Option.map(Option.flatMapNullable(body, (b) => b.errcode), clean)),
        // Proxies answer with HTML or plain text; keep a little of it for the humans.
        error: Option.match(body, {
          onNone: () => (snippet === "" ? undefined : snippet),
          onSome: (b) => (b.error === undefined ? undefined : clean(b.error))
        })
      })
    }

    const grant = (url: string, answer: Answer): Either.Either<LiveKitGrant, JwtFetchFailed> => {
      const bad = (detail: string) =>
        new JwtFetchFailed({ reason: "BadResponse", endpoint: url, status: answer.status, cause: detail })
      const body = decodeGrant(answer.text)
      if (Either.isLeft(body)) return Either.left(bad("the answer is not {url, jwt}"))
      const jwt = body.right.jwt ?? body.right.token
      if (jwt === undefined || jwt === "") return Either.left(bad("the answer has neither jwt nor token"))
      return Option.match(decodeClaims(jwt), {
        onNone: () => Either.left(bad("the JWT payload does not decode to LiveKit claims")),
        onSome: (claims) => Either.right({ url: body.right.url, jwt: Redacted.make(jwt), claims })
      })
    }

    /** One POST; on 400 `M_BAD_JSON` with delay keys, once more without them (older services, restricted users). */
    const post = <A extends object>(
      baseUrl: string,
      path: "/sfu/get" | "/get_token",
      schema: Schema.Schema<A, any>,
      plain: A,
      delegation: ReturnType<typeof delegationBody>,
      openIdToken: Redacted.Redacted<string>
    ): Effect.Effect<LiveKitGrant, JwtFetchFailed> =>
      Effect.gen(function*() {
        const url = normaliseBaseUrl(baseUrl) + path
        // What errors, logs and spans name: a password in the URL's userinfo stays out of them.
        const shown = withoutUserinfo(url)
        yield* Effect.annotateCurrentSpan("endpoint", shown)
        if (!isTokenSafeUrl(url)) return yield* new JwtFetchFailed({ reason: "InsecureUrl", endpoint: shown })
        const attempt = (payload: A) =>
          HttpClientRequest.post(url).pipe(
            HttpClientRequest.schemaBodyJson(schema)(payload),
            // Encoding our own well-typed body cannot fail.
            Effect.orDie,
            Effect.flatMap((request) => send(url, request)),
            Effect.mapError((e) => failure(shown, e))
          )
        const delegated = "delay_id" in delegation
        let answer = yield* attempt(delegated ? { ...plain, ...delegation } : plain)
        if (
          delegated && answer.status === 400 &&
          Option.exists(decodeErrorBody(answer.text), (b) => b.errcode === "M_BAD_JSON")
        ) {
          yield* Effect.logDebug("auth service refused the delay delegation; asking again without it", { url: shown })
          answer = yield* attempt(plain)
        }
        if (answer.status < 200 || answer.status >= 300) return yield* rejected(shown, answer, openIdToken)
        return yield* grant(shown, answer)
      })

    const sfuGet = Effect.fn("AuthService.sfuGet")(function*(baseUrl: string, request: SfuGetRequest) {
      const plain: typeof SfuGetBody.Type = {
        room: request.roomId,
        openid_token: openIdTokenBody(request.openIdToken),
        device_id: request.deviceId
      }
      return yield* post(baseUrl, "/sfu/get", SfuGetBody, plain, delegationBody(request.delegation), request.openIdToken.accessToken)
    })

    const getToken = Effect.fn("AuthService.getToken")(function*(baseUrl: string, request: GetTokenRequest) {
      const plain: typeof GetTokenBody.Type = {
        room_id: request.roomId,
        slot_id: request.slotId,
        openid_token: openIdTokenBody(request.openIdToken),
        member: {
          id: request.member.id,
          claimed_user_id: request.member.claimedUserId,
          claimed_device_id: request.member.claimedDeviceId
        }
      }
      return yield* post(baseUrl, "/get_token", GetTokenBody, plain, delegationBody(request.delegation), request.openIdToken.accessToken)
    })

    return AuthService.of({ sfuGet, getToken })
  })

export const layer: Layer.Layer<AuthService, never, HttpClient.HttpClient> = Layer.effect(AuthService, make())

export const layerWith = (options: Options): Layer.Layer<AuthService, never, HttpClient.HttpClient> =>
  Layer.effect(AuthService, make(options))
