/**
 * The HTTP surface of the auth service, reproducing lk-jwt-service's
 * `prepareMux` (auth-service.md §1): exact-path routing like Go's
 * `http.ServeMux` (cleaned-path 301, plain-text 404), the CORS/JSON wrapper on
 * the three POST endpoints, validation order, error texts and bodies ending
 * in `\n`.
 */
import { HttpApp, HttpServer, HttpServerError, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { LiveKitNaming } from "@matrixrtc-effect/core"
import { Clock, Data, Effect, Either, Layer, Option, Redacted } from "effect"
import { createServer } from "node:http"
import { Delegation } from "./Delegation.ts"
import * as GoJson from "./GoJson.ts"
import { mintJoinToken } from "./Jwt.ts"
import { LiveKitRooms } from "./LiveKitRooms.ts"
import { OpenIdVerifier } from "./OpenIdVerifier.ts"
import * as Requests from "./Requests.ts"
import { AuthServiceSettings, isFullAccess } from "./Settings.ts"

/** Headers set by the `corsJSON` wrapper on every response of the three POST endpoints. */
export const corsHeaders: Readonly<Record<string, string>> = {
  "content-type": "application/json",
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "POST",
  "access-control-allow-headers": "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token"
}

/** A `gomatrix.RespError` answer. */
export class MatrixError extends Data.TaggedError("MatrixError")<{
  readonly status: number
  readonly errcode: string
  readonly error: string
}> {}

export const unauthorised = () =>
  new MatrixError({ status: 401, errcode: "M_UNAUTHORIZED", error: "The request could not be authorised." })
const notJson = () => new MatrixError({ status: 400, errcode: "M_NOT_JSON", error: "Error reading request" })
const badJson = (error: string) => new MatrixError({ status: 400, errcode: "M_BAD_JSON", error })
const delegationRestricted = "Delegation of delayed events is only supported for full access users"
const csApiUnresolvable = () => badJson("Unable to resolve client-server API")
const shuttingDown = () => new MatrixError({ status: 503, errcode: "M_UNKNOWN", error: "Service is shutting down" })

const encoder = new TextEncoder()

const jsonResponse = (status: number, value: unknown) =>
  HttpServerResponse.uint8Array(encoder.encode(`${GoJson.goStringify(value)}\n`), {
    status,
    contentType: "application/json",
    headers: corsHeaders
  })

/** An empty body with `Content-Length: 0` (what Go sends), not chunked. */
const emptyResponse = (status: number, headers: Readonly<Record<string, string>> = {}) =>
  HttpServerResponse.empty({ status, headers: { ...headers, "content-length": "0" } })

/** Go's `http.NotFound`. */
const notFound = HttpServerResponse.text("404 page not found\n", {
  status: 404,
  contentType: "text/plain; charset=utf-8",
  headers: { "x-content-type-options": "nosniff" }
})

/** Go's `cleanPath`: `path.Clean` but keeping a trailing slash. */
export const cleanPath = (p: string): string => {
  if (p === "") return "/"
  const rooted = p.startsWith("/") ? p : `/${p}`
  const segments: Array<string> = []
  for (const s of rooted.split("/")) {
    if (s === "" || s === ".") continue
    if (s === "..") segments.pop()
    else segments.push(s)
  }
  let np = `/${segments.join("/")}`
  if (rooted.endsWith("/") && np !== "/") np += "/"
  return np
}

const escapeHtml = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&#34;").replace(/'/g, "&#39;")

/** Go's `http.Redirect(w, r, url, 301)`. */
const movedPermanently = (method: string, location: string) =>
  method === "GET" || method === "HEAD"
    ? HttpServerResponse.text(`<a href="${escapeHtml(location)}">Moved Permanently</a>.\n\n`, {
      status: 301,
      contentType: "text/html; charset=utf-8",
      headers: { location }
    })
    : emptyResponse(301, { location })

interface Issue {
  readonly serverName: string
  readonly room: string
  readonly identity: string
  readonly delayId: string
  readonly delayTimeoutMs: number
}

/** Builds the request handler once the services are available. */
export const makeApp: Effect.Effect<
  HttpApp.Default,
  never,
  AuthServiceSettings | OpenIdVerifier | LiveKitRooms | Delegation
> = Effect.gen(function*() {
  const settings = yield* AuthServiceSettings
  const verifier = yield* OpenIdVerifier
  const rooms = yield* LiveKitRooms
  const delegation = yield* Delegation

  const readBody = (request: HttpServerRequest.HttpServerRequest) =>
    request.arrayBuffer.pipe(Effect.mapError(() => notJson()), Effect.map((b) => new Uint8Array(b)))

  const decode = <A>(field: GoJson.Field<A>, bytes: Uint8Array) =>
    Either.match(GoJson.decodeBytes(field, bytes), {
      onLeft: (reason) => Effect.logDebug("undecodable request", reason).pipe(Effect.zipRight(Effect.fail(notJson()))),
      onRight: Effect.succeed
    })

  const validate = (message: Option.Option<string>) =>
    Option.match(message, { onNone: () => Effect.void, onSome: (m) => Effect.fail(badJson(m)) })

  /** OpenID lookup plus the `sub`-suffix check; any failure is 401. */
  const verify = (serverName: string, accessToken: string) =>
    verifier.userInfo(serverName, Redacted.make(accessToken)).pipe(
      Effect.filterOrFail(
        (sub) => {
          const colon = sub.indexOf(":")
          return colon !== -1 && sub.slice(colon + 1) === serverName
        },
        (sub) => ({ _tag: "SubMismatch" as const, sub })
      ),
      Effect.tapError((e) =>
        Effect.logInfo("OpenID verification failed").pipe(
          Effect.annotateLogs(
            e._tag === "SubMismatch" ? { serverName, sub: e.sub, reason: "sub server mismatch" } : { serverName, reason: e.reason }
          )
        )
      ),
      Effect.mapError(unauthorised)
    )

  const checkClaimedUser = (claimed: string, sub: string) =>
    claimed === sub
      ? Effect.void
      : Effect.logInfo("claimed_user_id does not match the verified user").pipe(
        Effect.annotateLogs({ claimed, sub }),
        Effect.zipRight(Effect.fail(unauthorised()))
      )

  /**
   * Decode, validate, verify, check `claimed_user_id`: the steps `/get_token` and delegate share.
   * Gives the LiveKit room and hashed identity.
   */
  const memberRequest = (bytes: Uint8Array, validator: (r: Requests.SfuRequest) => Option.Option<string>) =>
    Effect.gen(function*() {
      const r = yield* decode(Requests.SfuRequest, bytes)
      yield* validate(validator(r))
      const serverName = r.openid_token.matrix_server_name
      const sub = yield* verify(serverName, r.openid_token.access_token)
      yield* checkClaimedUser(r.member.claimed_user_id, sub)
      return {
        serverName,
        room: yield* LiveKitNaming.liveKitRoomName(r.room_id, r.slot_id),
        identity: yield* LiveKitNaming.liveKitIdentityHashed(sub, r.member.claimed_device_id, r.member.id),
        delayId: r.delay_id,
        delayTimeoutMs: r.delay_timeout
      } satisfies Issue
    })

  const resolveCsApi = (serverName: string) => delegation.resolveCsApi(serverName).pipe(Effect.mapError(csApiUnresolvable))

  const register = (i: Issue, csApiUrl: string) =>
    delegation.register({
      room: i.room,
      identity: i.identity,
      delayId: i.delayId,
      delayTimeoutMs: i.delayTimeoutMs,
      csApiUrl
    }).pipe(Effect.mapError(shuttingDown))

  /** `/get_token` and `/sfu/get` steps 9–12. */
  const issue = (i: Issue) =>
    Effect.gen(function*() {
      const fullAccess = isFullAccess(settings, i.serverName)
      const delegating = i.delayId !== ""
      if (delegating && !fullAccess) return yield* Effect.fail(badJson(delegationRestricted))
      const nowSeconds = Math.floor((yield* Clock.currentTimeMillis) / 1000)
      const jwt = yield* Effect.try({
        try: () =>
          mintJoinToken({
            apiKey: settings.apiKey,
            apiSecret: settings.apiSecret,
            identity: i.identity,
            room: i.room,
            nowSeconds
          }),
        catch: () => new MatrixError({ status: 500, errcode: "M_UNKNOWN", error: "Internal Server Error" })
      })
      if (fullAccess) {
        const csApiUrl = delegating ? yield* resolveCsApi(i.serverName) : ""
        yield* rooms.createRoom(i.room).pipe(
          Effect.tapError((e) => Effect.logWarning("CreateRoom failed", e.cause).pipe(Effect.annotateLogs({ room: i.room }))),
          Effect.mapError(() => new MatrixError({ status: 500, errcode: "M_UNKNOWN", error: "Unable to create room on SFU" }))
        )
        if (delegating) yield* register(i, csApiUrl)
      }
      yield* Effect.logInfo("issued LiveKit token").pipe(
        Effect.annotateLogs({ room: i.room, identity: i.identity, fullAccess, delegating })
      )
      return jsonResponse(200, { url: settings.liveKitUrl, jwt: Redacted.value(jwt) })
    })

  const getToken = (bytes: Uint8Array) => memberRequest(bytes, Requests.validateGetToken).pipe(Effect.flatMap(issue))

  const sfuGet = (bytes: Uint8Array) =>
    Effect.gen(function*() {
      const r = yield* decode(Requests.LegacySfuRequest, bytes)
      yield* validate(Requests.validateLegacy(r))
      const serverName = r.openid_token.matrix_server_name
      const sub = yield* verify(serverName, r.openid_token.access_token)
      return yield* issue({
        serverName,
        room: yield* LiveKitNaming.liveKitRoomName(r.room, LiveKitNaming.legacySlotId),
        identity: yield* LiveKitNaming.liveKitIdentityLegacy(sub, r.device_id),
        delayId: r.delay_id,
        delayTimeoutMs: r.delay_timeout
      })
    })

  const delegate = (bytes: Uint8Array) =>
    Effect.gen(function*() {
      const m = yield* memberRequest(bytes, Requests.validateDelegate)
      if (!isFullAccess(settings, m.serverName)) {
        return yield* Effect.fail(new MatrixError({ status: 403, errcode: "M_FORBIDDEN", error: delegationRestricted }))
      }
      yield* register(m, yield* resolveCsApi(m.serverName))
      return jsonResponse(200, {})
    })

  /** The `corsJSON` wrapper + method check of the three POST endpoints. */
  const postEndpoint = (
    name: string,
    handler: (bytes: Uint8Array) => Effect.Effect<HttpServerResponse.HttpServerResponse, MatrixError>
  ) =>
  (request: HttpServerRequest.HttpServerRequest) => {
    if (request.method === "OPTIONS") return Effect.succeed(emptyResponse(200, corsHeaders))
    if (request.method !== "POST") return Effect.succeed(emptyResponse(405, corsHeaders))
    return readBody(request).pipe(
      Effect.flatMap(handler),
      Effect.catchTag("MatrixError", (e) =>
        Effect.logDebug("request rejected").pipe(
          Effect.annotateLogs({ status: e.status, errcode: e.errcode, error: e.error }),
          Effect.as(jsonResponse(e.status, { errcode: e.errcode, error: e.error }))
        )),
      Effect.annotateLogs({ endpoint: name })
    )
  }

  const routes: Record<string, (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<HttpServerResponse.HttpServerResponse>> = {
    "/get_token": postEndpoint("/get_token", getToken),
    "/sfu/get": postEndpoint("/sfu/get", sfuGet),
    "/delegate_delayed_leave": postEndpoint("/delegate_delayed_leave", delegate),
    "/sfu_webhook": (request) =>
      request.text.pipe(
        Effect.flatMap((body) => delegation.webhook(body, Option.fromNullable(request.headers["authorization"]))),
        Effect.catchAll(() => Effect.logWarning("unreadable sfu webhook body")),
        Effect.as(emptyResponse(200))
      ),
    "/healthz": (request) =>
      Effect.succeed(request.method === "GET" || request.method === "HEAD" ? emptyResponse(200) : emptyResponse(405))
  }

  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const q = request.url.indexOf("?")
    const rawPath = q === -1 ? request.url : request.url.slice(0, q)
    let decoded: string
    try {
      decoded = decodeURIComponent(rawPath)
    } catch {
      return HttpServerResponse.text("400 Bad Request", { status: 400, contentType: "text/plain; charset=utf-8" })
    }
    const cleaned = cleanPath(decoded)
    if (cleaned !== rawPath) {
      return movedPermanently(request.method, encodeURI(cleaned) + (q === -1 ? "" : request.url.slice(q)))
    }
    const route = Object.hasOwn(routes, cleaned) ? routes[cleaned] : undefined
    return route === undefined ? notFound : yield* route(request)
  })
})

/** The HTTP server on `LIVEKIT_JWT_BIND` (port 0 = any free port; read it from `HttpServer.address`). */
export const layerServer: Layer.Layer<
  HttpServer.HttpServer,
  HttpServerError.ServeError,
  AuthServiceSettings | OpenIdVerifier | LiveKitRooms | Delegation
> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const settings = yield* AuthServiceSettings
    const app = yield* makeApp
    return HttpServer.serve(app).pipe(
      HttpServer.withLogAddress,
      Layer.provideMerge(NodeHttpServer.layer(createServer, { host: settings.bindHost, port: settings.bindPort }))
    )
  })
)
