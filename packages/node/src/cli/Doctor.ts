/**
 * `matrixrtc doctor`: checks a deployment the way a MatrixRTC client depends on
 * it, one line per check with the fix. It talks plain HTTP on purpose: the point
 * is to report which request failed and how (status, errcode, missing header),
 * which is exactly what the higher-level clients abstract away.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { AuthServiceHttp, Discovery, Ids } from "@matrixrtc-effect/core"
import { Duration, Effect, Option, Redacted, Schema } from "effect"
import { type Output, printable } from "./Output.ts"

export interface DoctorOptions {
  readonly homeserver: string
  readonly accessToken: Option.Option<Redacted.Redacted<string>>
  readonly roomId: Option.Option<string>
}

export type CheckStatus = "pass" | "fail" | "skip"

export interface CheckResult {
  readonly check: string
  readonly status: CheckStatus
  readonly detail: string
  readonly fix?: string | undefined
}

const CALL_MEMBER = "org.matrix.msc3401.call.member"
/** The delayed-leave delay matrix-js-sdk uses by default; the server must allow at least this. */
const MIN_MAX_DELAY_MS = 8_000
const TIMEOUT = Duration.seconds(5)

// --- response shapes (only the keys we read) ------------------------------------------

const MatrixErrorBody = Schema.Struct({ errcode: Schema.String, error: Schema.optional(Schema.String) })
const Versions = Schema.Struct({
  versions: Schema.Array(Schema.String),
  unstable_features: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Boolean }), { default: () => ({}) })
})
const Whoami = Schema.Struct({ user_id: Schema.String })
const RoomMember = Schema.Struct({ membership: Schema.String })
const Capabilities = Schema.Struct({
  capabilities: Schema.Struct({
    "org.matrix.msc4140.delayed_events": Schema.optional(Schema.Struct({ max_delay_ms: Schema.optional(Schema.Number) }))
  })
})
const OpenId = Schema.Struct({
  access_token: Schema.String,
  token_type: Schema.String,
  matrix_server_name: Schema.String,
  expires_in: Schema.Number
})
const SfuGrant = Schema.Struct({ url: Schema.String, jwt: Schema.String })
const PowerLevels = Schema.Struct({
  users: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Number }), { default: () => ({}) }),
  users_default: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  events: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Number }), { default: () => ({}) }),
  state_default: Schema.optionalWith(Schema.Number, { default: () => 50 })
})

// --- a tiny HTTP helper that never fails: a response or a transport error -------------

interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: unknown
}
type Reply = { readonly _tag: "Answer"; readonly answer: Answer } | { readonly _tag: "Unreachable"; readonly reason: string }

const send = (request: HttpClientRequest.HttpClientRequest): Effect.Effect<Reply, never, HttpClient.HttpClient> =>
  HttpClient.HttpClient.pipe(
    Effect.flatMap((client) => client.execute(request)),
    Effect.flatMap((res) =>
      res.text.pipe(
        Effect.map((text): Reply => {
          let body: unknown = text
          try {
            body = text === "" ? undefined : JSON.parse(text)
          } catch {
            // not JSON: keep the text
          }
          return { _tag: "Answer", answer: { status: res.status, headers: res.headers, body } }
        })
      )
    ),
    Effect.scoped,
    Effect.timeoutFail({ duration: TIMEOUT, onTimeout: () => "timed out" as const }),
    Effect.catchAll((e): Effect.Effect<Reply> =>
      Effect.succeed({ _tag: "Unreachable", reason: e === "timed out" ? `no answer within ${Duration.format(TIMEOUT)}` : describeTransport(e) })
    )
  )

/**
 * The auth service as clients reach it: without following redirects (core refuses them,
 * since fetch would re-send a POST body, and so the OpenID token, to the new URL).
 */
const sendToAuthService = (request: HttpClientRequest.HttpClientRequest) => AuthServiceHttp.withoutRedirects(send(request))

const describeTransport = (e: { readonly message?: string; readonly cause?: unknown }): string => {
  // fetch hides the interesting part (ECONNREFUSED, ENOTFOUND) in cause.cause.
  const inner = (e.cause as { cause?: { code?: string; message?: string } } | undefined)?.cause
  return inner?.code ?? inner?.message ?? e.message ?? "network error"
}

/**
 * Why the homeserver gives no answer to `/versions` (the network's reason, e.g. `ECONNREFUSED`), or none when it
 * answers at all. The CLI asks after a Matrix request failed in transport: matrix-js-sdk's error, as the adapter
 * keeps it, says only "fetch failed".
 */
export const unreachableReason = (homeserver: string): Effect.Effect<Option.Option<string>, never, HttpClient.HttpClient> =>
  send(HttpClientRequest.get(`${trimSlash(homeserver)}/_matrix/client/versions`)).pipe(
    Effect.map((reply) => (reply._tag === "Unreachable" ? Option.some(reply.reason) : Option.none()))
  )

const decode = <A, I>(schema: Schema.Schema<A, I>, body: unknown): Option.Option<A> =>
  Schema.decodeUnknownOption(schema)(body)

const describeAnswer = (a: Answer): string => {
  if (AuthServiceHttp.isRedirect(a.status)) {
    return `HTTP ${a.status}, a redirect${a.headers["location"] ? ` to ${a.headers["location"]}` : ""} (not followed)`
  }
  const err = decode(MatrixErrorBody, a.body)
  return Option.match(err, {
    onNone: () => `HTTP ${a.status}`,
    onSome: (e) => `HTTP ${a.status} ${e.errcode}${e.error ? ` (${e.error})` : ""}`
  })
}

const trimSlash = (url: string) => url.replace(/\/+$/, "")

const pass = (check: string, detail: string): CheckResult => ({ check, status: "pass", detail })
const fail = (check: string, detail: string, fix: string): CheckResult => ({ check, status: "fail", detail, fix })
const skip = (check: string, detail: string): CheckResult => ({ check, status: "skip", detail })

// --- the checks -----------------------------------------------------------------------

/** Runs every check in order, printing each result as it completes. Returns all results. */
export const run = (options: DoctorOptions, out: Output): Effect.Effect<ReadonlyArray<CheckResult>, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const hs = trimSlash(options.homeserver)
    const results: Array<CheckResult> = []
    const report = (r: CheckResult) =>
      Effect.sync(() => results.push(r)).pipe(
        Effect.zipRight(
          out.event(
            "check",
            { ...r },
            // Details quote servers' answers and URLs.
            `${r.status.toUpperCase().padEnd(4)} ${r.check}: ${printable(r.detail)}${r.fix ? `\n     fix: ${printable(r.fix)}` : ""}`
          )
        )
      )
    const authed = (req: HttpClientRequest.HttpClientRequest) =>
      Option.match(options.accessToken, { onNone: () => req, onSome: (t) => HttpClientRequest.bearerToken(req, t) })
    const get = (url: string) => send(authed(HttpClientRequest.get(url)))

    // 1. The homeserver answers /versions.
    const versions = yield* send(HttpClientRequest.get(`${hs}/_matrix/client/versions`))
    const features = versions._tag === "Answer" ? decode(Versions, versions.answer.body) : Option.none()
    if (Option.isNone(features)) {
      yield* report(
        fail(
          "homeserver",
          versions._tag === "Unreachable" ? `${hs} is unreachable (${versions.reason})` : `${hs}/_matrix/client/versions: ${describeAnswer(versions.answer)}`,
          "pass the client-server API base URL (e.g. https://matrix.example.org), not the server name"
        )
      )
      return results
    }
    yield* report(pass("homeserver", `${hs} speaks ${features.value.versions.at(-1) ?? "?"}`))

    // 2. The access token, if any, is accepted.
    let userId: string | undefined
    if (Option.isSome(options.accessToken)) {
      const who = yield* get(`${hs}/_matrix/client/v3/account/whoami`)
      const me = who._tag === "Answer" && who.answer.status === 200 ? decode(Whoami, who.answer.body) : Option.none()
      if (Option.isSome(me)) {
        userId = me.value.user_id
        yield* report(pass("access token", `valid for ${userId}`))
      } else {
        yield* report(
          fail(
            "access token",
            who._tag === "Answer" ? `whoami: ${describeAnswer(who.answer)}` : `whoami: ${who.reason}`,
            "log in again and pass the new token (--access-token or MATRIXRTC_ACCESS_TOKEN)"
          )
        )
      }
    }
    const token = userId === undefined ? Option.none<Redacted.Redacted<string>>() : options.accessToken

    // 3. Transport discovery: the authenticated endpoint, then the legacy .well-known key.
    const discovered: Array<string> = []
    if (Option.isNone(token)) {
      yield* report(skip("rtc transports endpoint", "needs a valid --access-token (the endpoint is authenticated)"))
    } else {
      const tr = yield* get(`${hs}/_matrix/client/unstable/org.matrix.msc4143/rtc/transports`)
      const found = tr._tag === "Answer" && tr.answer.status === 200 ? Discovery.fromTransportsResponse(tr.answer.body) : Option.none()
      if (Option.isSome(found)) {
        discovered.push(found.value.livekit_service_url)
        yield* report(pass("rtc transports endpoint", `livekit_service_url ${found.value.livekit_service_url}`))
      } else {
        yield* report(
          fail(
            "rtc transports endpoint",
            tr._tag === "Unreachable"
              ? tr.reason
              : tr.answer.status === 200
              ? "no livekit transport with a livekit_service_url"
              : describeAnswer(tr.answer),
            "Synapse: experimental_features.msc4143_enabled: true and matrix_rtc.transports: [{type: livekit, livekit_service_url: <auth service URL>}]"
          )
        )
      }
    }
    const wk = yield* send(HttpClientRequest.get(`${hs}/.well-known/matrix/client`))
    const wkFound = wk._tag === "Answer" && wk.answer.status === 200 ? Discovery.fromWellKnown(wk.answer.body) : Option.none()
    if (Option.isSome(wkFound)) {
      discovered.push(wkFound.value.livekit_service_url)
      const same = discovered.length < 2 || trimSlash(discovered[0]!) === trimSlash(discovered[1]!)
      yield* report(
        pass(
          ".well-known rtc_foci",
          `livekit_service_url ${wkFound.value.livekit_service_url}${same ? "" : ` (differs from the transports endpoint; clients that read .well-known use this one)`}`
        )
      )
    } else {
      yield* report(
        fail(
          ".well-known rtc_foci",
          wk._tag === "Unreachable" ? wk.reason : wk.answer.status === 200 ? "no org.matrix.msc4143.rtc_foci livekit entry" : describeAnswer(wk.answer),
          "publish {\"org.matrix.msc4143.rtc_foci\":[{\"type\":\"livekit\",\"livekit_service_url\":\"<auth service URL>\"}]} in /.well-known/matrix/client (Synapse: extra_well_known_client_content + public_baseurl); older clients still read it"
        )
      )
    }
    const authUrl = discovered[0] === undefined ? undefined : trimSlash(discovered[0])
    const tokenSafe = authUrl !== undefined && AuthServiceHttp.isTokenSafeUrl(authUrl)

    // 4. The auth service: CORS preflight and the lk-jwt-style answer to an empty POST.
    if (authUrl === undefined) {
      yield* report(skip("auth service CORS", "no auth service URL discovered"))
      yield* report(skip("auth service /sfu/get", "no auth service URL discovered"))
    } else {
      if (!tokenSafe) {
        yield* report(
          fail(
            "auth service URL",
            `${authUrl} is not https or loopback; clients refuse it (they only send OpenID tokens over https)`,
            "serve the auth service over https and publish that URL as livekit_service_url"
          )
        )
      }
      const pre = yield* sendToAuthService(
        HttpClientRequest.make("OPTIONS")(`${authUrl}/sfu/get`).pipe(
          HttpClientRequest.setHeaders({
            Origin: "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"
          })
        )
      )
      if (pre._tag === "Unreachable") {
        yield* report(fail("auth service CORS", `${authUrl} is unreachable (${pre.reason})`, "start the auth service, or fix livekit_service_url"))
      } else {
        const h = pre.answer.headers
        const problems = [
          pre.answer.status >= 300 ? `OPTIONS answered ${pre.answer.status}` : undefined,
          h["access-control-allow-origin"] !== "*" ? `Access-Control-Allow-Origin is ${JSON.stringify(h["access-control-allow-origin"] ?? null)}, not "*"` : undefined,
          !/\bPOST\b/i.test(h["access-control-allow-methods"] ?? "") ? "Access-Control-Allow-Methods lacks POST" : undefined,
          !/\bcontent-type\b/i.test(h["access-control-allow-headers"] ?? "") ? "Access-Control-Allow-Headers lacks Content-Type" : undefined
        ].filter((p) => p !== undefined)
        yield* report(
          problems.length === 0
            ? pass("auth service CORS", `${authUrl}/sfu/get preflight allows any origin, POST and Content-Type`)
            : fail(
              "auth service CORS",
              problems.join("; "),
              "answer OPTIONS on /sfu/get and /get_token with 200 and Access-Control-Allow-Origin: *, Access-Control-Allow-Methods: POST, Access-Control-Allow-Headers: Content-Type (check the reverse proxy does not strip them)"
            )
        )
      }
      const empty = yield* sendToAuthService(HttpClientRequest.post(`${authUrl}/sfu/get`))
      const code = empty._tag === "Answer" ? decode(MatrixErrorBody, empty.answer.body) : Option.none()
      if (empty._tag === "Answer" && empty.answer.status === 400 && Option.exists(code, (c) => c.errcode === "M_NOT_JSON")) {
        yield* report(pass("auth service /sfu/get", "an empty POST gets 400 M_NOT_JSON, as lk-jwt-service answers"))
      } else {
        yield* report(
          fail(
            "auth service /sfu/get",
            empty._tag === "Unreachable" ? empty.reason : `an empty POST got ${describeAnswer(empty.answer)}, expected 400 M_NOT_JSON`,
            empty._tag === "Answer" && empty.answer.status === 404
              ? "the path does not reach the service: route <livekit_service_url>/sfu/get to its /sfu/get (a proxy prefix is usually the cause)"
              : "livekit_service_url must point at an lk-jwt-service compatible auth service"
          )
        )
      }
    }

    // 5. Delayed events (MSC4140): advertised, and the server allows the delay clients use.
    if (features.value.unstable_features["org.matrix.msc4140"] !== true) {
      yield* report(
        fail(
          "delayed events (MSC4140)",
          "org.matrix.msc4140 is not in /versions unstable_features: crashed clients stay in calls until their membership expires",
          "Synapse: set max_event_delay_duration (e.g. 24h)"
        )
      )
    } else if (Option.isNone(token)) {
      yield* report(pass("delayed events (MSC4140)", "advertised (max delay needs --access-token to check)"))
    } else {
      const caps = yield* get(`${hs}/_matrix/client/v3/capabilities`)
      const max = caps._tag === "Answer" && caps.answer.status === 200
        ? Option.flatMap(decode(Capabilities, caps.answer.body), (c) =>
          Option.fromNullable(c.capabilities["org.matrix.msc4140.delayed_events"]?.max_delay_ms))
        : Option.none()
      yield* report(
        Option.match(max, {
          onNone: () => pass("delayed events (MSC4140)", "advertised; /capabilities gives no max_delay_ms (assuming no limit)"),
          onSome: (ms) =>
            ms >= MIN_MAX_DELAY_MS
              ? pass("delayed events (MSC4140)", `advertised, max delay ${ms} ms`)
              : fail(
                "delayed events (MSC4140)",
                `max delay ${ms} ms is below the ${MIN_MAX_DELAY_MS} ms clients schedule their leave with`,
                "raise max_event_delay_duration"
              )
        })
      )
    }

    // 6. LiveKit: a real /sfu/get gives the SFU URL; the SFU must answer on it.
    if (authUrl === undefined || Option.isNone(token) || userId === undefined) {
      yield* report(skip("LiveKit SFU", "needs a valid --access-token and a discovered auth service (the SFU URL comes from /sfu/get)"))
    } else if (!tokenSafe) {
      yield* report(skip("LiveKit SFU", "the auth service URL is not https or loopback: no OpenID token is sent to it"))
    } else {
      yield* checkLiveKit({ hs, authUrl, userId, token: token.value, roomId: options.roomId, out }).pipe(Effect.flatMap(report))
    }

    // 7. Power level for call memberships, in a room we are joined to.
    if (Option.isNone(options.roomId)) {
      yield* report(skip("call.member power level", "pass --room to check"))
    } else if (Option.isNone(token) || userId === undefined) {
      yield* report(skip("call.member power level", "needs a valid --access-token"))
    } else {
      yield* checkRoom({ hs, room: options.roomId.value, userId, get }).pipe(Effect.flatMap(report))
    }
    return results
  })

/**
 * Our membership in the room, then the power level a call membership needs there. The state of a room we left
 * stays readable (as it was when we left), so the power levels alone would pass for it.
 */
const checkRoom = (args: {
  readonly hs: string
  readonly room: string
  readonly userId: string
  readonly get: (url: string) => Effect.Effect<Reply, never, HttpClient.HttpClient>
}): Effect.Effect<CheckResult, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const check = "call.member power level"
    const { get, room, userId } = args
    const roomId = yield* Ids.roomId(room).pipe(Effect.option)
    if (Option.isNone(roomId)) {
      return fail(
        check,
        `${room} is not a room id`,
        room.startsWith("#")
          ? "room aliases are not accepted: pass the room id (!…:server; Element shows it under Settings → Advanced)"
          : "pass the room id, e.g. !abc:example.org"
      )
    }
    const stateUrl = (type: string, stateKey: string) =>
      `${args.hs}/_matrix/client/v3/rooms/${encodeURIComponent(roomId.value)}/state/${type}/${encodeURIComponent(stateKey)}`
    const me = yield* get(stateUrl("m.room.member", userId))
    const membership = me._tag === "Answer" && me.answer.status === 200
      ? Option.map(decode(RoomMember, me.answer.body), (m) => m.membership)
      : Option.none()
    if (Option.getOrUndefined(membership) !== "join") {
      return fail(
        check,
        Option.isSome(membership)
          ? `${userId} is not joined to ${roomId.value} (membership: ${membership.value})`
          : me._tag === "Unreachable"
          ? me.reason
          : `${userId} is not joined to ${roomId.value} (reading m.room.member: ${describeAnswer(me.answer)})`,
        `join ${roomId.value} first (check the room id)`
      )
    }
    const pl = yield* get(stateUrl("m.room.power_levels", ""))
    const levels = pl._tag === "Answer" && pl.answer.status === 200 ? decode(PowerLevels, pl.answer.body) : Option.none()
    if (Option.isNone(levels)) {
      return fail(
        check,
        pl._tag === "Unreachable" ? pl.reason : `reading m.room.power_levels: ${describeAnswer(pl.answer)}`,
        "the room has no readable m.room.power_levels; ask a room admin"
      )
    }
    const l = levels.value
    const needed = l.events[CALL_MEMBER] ?? l.state_default
    const mine = l.users[userId] ?? l.users_default
    return mine >= needed
      ? pass(check, `${CALL_MEMBER} needs ${needed}, you have ${mine}`)
      : fail(
        check,
        `${CALL_MEMBER} needs ${needed}, you have ${mine}: joining the call will fail with M_FORBIDDEN`,
        `a room admin lowers events["${CALL_MEMBER}"] in m.room.power_levels to at most ${mine} (Element Call rooms use 0), or raises your level to ${needed}`
      )
  })

const checkLiveKit = (args: {
  readonly hs: string
  readonly authUrl: string
  readonly userId: string
  readonly token: Redacted.Redacted<string>
  readonly roomId: Option.Option<string>
  readonly out: Output
}): Effect.Effect<CheckResult, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const check = "LiveKit SFU"
    const oid = yield* send(
      HttpClientRequest.post(`${args.hs}/_matrix/client/v3/user/${encodeURIComponent(args.userId)}/openid/request_token`).pipe(
        HttpClientRequest.bearerToken(args.token),
        HttpClientRequest.bodyUnsafeJson({})
      )
    )
    const openId = oid._tag === "Answer" && oid.answer.status === 200 ? decode(OpenId, oid.answer.body) : Option.none()
    if (Option.isNone(openId)) {
      return fail(check, `the homeserver issued no OpenID token (${oid._tag === "Answer" ? describeAnswer(oid.answer) : oid.reason})`, "check the access token")
    }
    args.out.addSecret(openId.value.access_token)
    // Without --room we ask for a placeholder room: the service only needs a room id to mint a token.
    const room = Option.getOrElse(args.roomId, () => `!matrixrtc-doctor:${openId.value.matrix_server_name}`)
    const got = yield* sendToAuthService(
      HttpClientRequest.post(`${args.authUrl}/sfu/get`).pipe(
        HttpClientRequest.bodyUnsafeJson({ room, openid_token: openId.value, device_id: "MATRIXRTC_DOCTOR" })
      )
    )
    const grant = got._tag === "Answer" && got.answer.status === 200 ? decode(SfuGrant, got.answer.body) : Option.none()
    if (Option.isNone(grant)) {
      return fail(
        check,
        `POST ${args.authUrl}/sfu/get with a real OpenID token: ${got._tag === "Answer" ? describeAnswer(got.answer) : got.reason}`,
        got._tag === "Answer" && got.answer.status === 401
          ? "the auth service cannot verify OpenID tokens of this homeserver (federation/openid listener, DNS, TLS)"
          : "see the auth service logs (it must reach the homeserver and LiveKit)"
      )
    }
    args.out.addSecret(grant.value.jwt)
    const sfu = grant.value.url
    const httpRoot = sfu.replace(/^ws(s?):/, "http$1:").replace(/\/+$/, "")
    const root = yield* send(HttpClientRequest.get(`${httpRoot}/`))
    if (root._tag === "Unreachable" || root.answer.status !== 200) {
      return fail(
        check,
        `the auth service hands out ${sfu}, but ${httpRoot}/ ${root._tag === "Unreachable" ? `is unreachable (${root.reason})` : `answered ${describeAnswer(root.answer)}`}`,
        "LIVEKIT_URL of the auth service must be the public websocket URL of the SFU, reachable from clients"
      )
    }
    // The SFU checks the JWT on /rtc/validate: a mismatch of API key/secret between the auth service and LiveKit shows here.
    const validate = yield* send(HttpClientRequest.get(`${httpRoot}/rtc/validate`).pipe(HttpClientRequest.setUrlParam("access_token", grant.value.jwt)))
    if (validate._tag === "Answer" && validate.answer.status === 401) {
      return fail(check, `${sfu} rejects the token the auth service minted (HTTP 401)`, "LIVEKIT_KEY/LIVEKIT_SECRET of the auth service must match the SFU's keys")
    }
    return pass(check, `${sfu} is reachable${validate._tag === "Answer" && validate.answer.status === 200 ? " and accepts the service's token" : ""}`)
  })
