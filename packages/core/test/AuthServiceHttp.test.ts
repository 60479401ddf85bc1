import { FetchHttpClient, HttpClient, HttpClientError, HttpClientResponse } from "@effect/platform"
import type { HttpClientRequest } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Encoding, Fiber, FiberRef, Redacted, Ref, TestClock, Tracer } from "effect"
import type { GetTokenRequest, LiveKitGrant, SfuGetRequest } from "../src/AuthService.ts"
import * as AuthServiceHttp from "../src/AuthServiceHttp.ts"
import type { JwtFetchFailed } from "../src/CallError.ts"

// Core compiles without DOM types; the test runtime (Node 24) has these globals.
const WebResponse = (globalThis as any).Response as new(body: string | null, init: { status: number; headers?: Record<string, string> }) => unknown
const utf8 = new ((globalThis as any).TextDecoder)() as { decode(bytes: Uint8Array): string }

const secret = "syt_very_secret_openid_token"

interface Captured {
  readonly method: string
  readonly url: string
  readonly headers: Record<string, string>
  readonly body: unknown
  readonly init: unknown
}

type Reply =
  | { readonly status: number; readonly body: string; readonly contentType?: string; readonly location?: string }
  | "network"
  | "hang"
  | "opaqueRedirect"

const jwtWith = (payload: unknown) =>
  `${Encoding.encodeBase64Url(JSON.stringify({ alg: "HS256", typ: "JWT" }))}.${Encoding.encodeBase64Url(JSON.stringify(payload))}.sig`

const claims = {
  iss: "devkey",
  sub: "@alice:example.org:DEVICEA",
  nbf: 1760000000,
  exp: 1760003600,
  video: { roomJoin: true, room: "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs", canPublish: true, canSubscribe: true, canUpdateOwnMetadata: true }
}
const goodJwt = jwtWith(claims)
const ok = (body: unknown = { url: "wss://sfu.example.org", jwt: goodJwt }): Reply => ({
  status: 200,
  body: JSON.stringify(body) + "\n",
  contentType: "application/json"
})
const matrixError = (status: number, errcode: string, error: string): Reply => ({
  status,
  body: JSON.stringify({ errcode, error }) + "\n",
  contentType: "application/json"
})

/** An auth service double: answers with `replies[i]` for the i-th request (the last one repeats). */
const fakeService = (replies: ReadonlyArray<Reply>, options: AuthServiceHttp.Options = {}) =>
  Effect.gen(function*() {
    const calls = yield* Ref.make<ReadonlyArray<Captured>>([])
    const client = HttpClient.make((request: HttpClientRequest.HttpClientRequest, url, _signal, fiber) =>
      Effect.gen(function*() {
        const body = request.body._tag === "Uint8Array" ? JSON.parse(utf8.decode(request.body.body)) : undefined
        // What FetchHttpClient would pass to fetch.
        const init = Context.getOption(fiber.getFiberRef(FiberRef.currentContext), FetchHttpClient.RequestInit)
        const captured = { method: request.method, url: url.toString(), headers: request.headers, body, init: init._tag === "Some" ? init.value : undefined }
        const n = (yield* Ref.updateAndGet(calls, (all) => [...all, captured])).length
        const reply = replies[Math.min(n, replies.length) - 1]!
        if (reply === "hang") return yield* Effect.never
        if (reply === "network") {
          return yield* new HttpClientError.RequestError({ request, reason: "Transport", cause: new Error("fetch failed") })
        }
        // A browser's fetch answers `redirect: "manual"` with an opaque response: status 0, no headers, no body.
        if (reply === "opaqueRedirect") return HttpClientResponse.fromWeb(request, (globalThis as any).Response.error())
        const headers: Record<string, string> = { "content-type": reply.contentType ?? "text/plain" }
        if (reply.location !== undefined) headers["location"] = reply.location
        return HttpClientResponse.fromWeb(request, new WebResponse(reply.body, { status: reply.status, headers }) as any)
      })
    )
    const service = yield* AuthServiceHttp.make(options).pipe(Effect.provideService(HttpClient.HttpClient, client))
    return { service, calls }
  })

const openIdToken = {
  accessToken: Redacted.make(secret),
  tokenType: "Bearer",
  matrixServerName: "example.org",
  expiresIn: 3600
}

const sfuGetRequest: SfuGetRequest = { roomId: "!abc:example.org", openIdToken, deviceId: "DEVICEA" }
const getTokenRequest: GetTokenRequest = {
  roomId: "!abc:example.org",
  slotId: "m.call#ROOM",
  openIdToken,
  member: { id: "member-1", claimedUserId: "@alice:example.org", claimedDeviceId: "DEVICEA" }
}

const expectedToken = { access_token: secret, token_type: "Bearer", matrix_server_name: "example.org", expires_in: 3600 }

const assertNoSecret = (e: JwtFetchFailed) => {
  for (const text of [String(e), e.message, JSON.stringify(e), JSON.stringify(e.toJSON())]) {
    assert.notInclude(text, secret)
  }
}

describe("AuthServiceHttp: requests exactly as documented", () => {
  it.effect("/sfu/get: normalised URL, POST, only Content-Type, the documented body", () =>
    Effect.gen(function*() {
      const { service, calls } = yield* fakeService([ok()])
      const grant = yield* service.sfuGet("https://rtc.example.org/livekit/jwt//", sfuGetRequest)
      const [call] = yield* Ref.get(calls)
      assert.strictEqual(call!.method, "POST")
      assert.strictEqual(call!.url, "https://rtc.example.org/livekit/jwt/sfu/get")
      assert.deepStrictEqual(Object.keys(call!.headers).filter((h) => h !== "content-length"), ["content-type"])
      assert.strictEqual(call!.headers["content-type"], "application/json")
      assert.deepStrictEqual(call!.body, { room: "!abc:example.org", openid_token: expectedToken, device_id: "DEVICEA" })
      assert.deepStrictEqual(Object.keys((call!.body as any).openid_token), ["access_token", "token_type", "matrix_server_name", "expires_in"])
      assert.strictEqual(grant.url, "wss://sfu.example.org")
      assert.strictEqual(Redacted.value(grant.jwt), goodJwt)
      assert.strictEqual(String(grant.jwt), "<redacted>")
    }))

  it.effect("/sfu/get with delegation: both delay keys, integer timeout", () =>
    Effect.gen(function*() {
      const { service, calls } = yield* fakeService([ok()])
      yield* service.sfuGet("https://rtc.example.org", {
        ...sfuGetRequest,
        openIdToken: { ...openIdToken, expiresIn: 3599.6 },
        delegation: { delayId: "syd_abc", delayTimeoutMs: 8000.4 }
      })
      const [call] = yield* Ref.get(calls)
      assert.deepStrictEqual(call!.body, {
        room: "!abc:example.org",
        openid_token: { ...expectedToken, expires_in: 3600 },
        device_id: "DEVICEA",
        delay_id: "syd_abc",
        delay_timeout: 8000
      })
    }))

  it.effect("a delegation that cannot be valid sends neither delay key", () =>
    Effect.gen(function*() {
      const { service, calls } = yield* fakeService([ok()])
      yield* service.sfuGet("https://rtc.example.org", { ...sfuGetRequest, delegation: { delayId: "d", delayTimeoutMs: 0 } })
      assert.deepStrictEqual(Object.keys((yield* Ref.get(calls))[0]!.body as object), ["room", "openid_token", "device_id"])
    }))

  it.effect("/get_token: the MSC4195 body", () =>
    Effect.gen(function*() {
      const { service, calls } = yield* fakeService([ok()])
      yield* service.getToken("https://rtc.example.org/", { ...getTokenRequest, delegation: { delayId: "syd_x", delayTimeoutMs: 10000 } })
      const [call] = yield* Ref.get(calls)
      assert.strictEqual(call!.url, "https://rtc.example.org/get_token")
      assert.deepStrictEqual(call!.body, {
        room_id: "!abc:example.org",
        slot_id: "m.call#ROOM",
        openid_token: expectedToken,
        member: { id: "member-1", claimed_user_id: "@alice:example.org", claimed_device_id: "DEVICEA" },
        delay_id: "syd_x",
        delay_timeout: 10000
      })
    }))
})

describe("AuthServiceHttp: answers", () => {
  it.effect("decodes the JWT claims (base64url payload)", () =>
    Effect.gen(function*() {
      // "?>?" encodes to base64url with '-' / '_' in it: atob would choke on those.
      const jwt = jwtWith({ ...claims, sub: "@a:b:?>?~~~", video: { room: "r", canPublish: false } })
      const { service } = yield* fakeService([ok({ url: "wss://sfu", jwt })])
      const grant = yield* service.sfuGet("https://rtc.example.org", sfuGetRequest)
      assert.deepStrictEqual(grant.claims, {
        identity: "@a:b:?>?~~~",
        room: "r",
        expiresAt: 1760003600_000,
        canPublish: false,
        canSubscribe: true
      })
      const full = yield* (yield* fakeService([ok()])).service.sfuGet("https://rtc.example.org", sfuGetRequest)
      assert.deepStrictEqual(full.claims, {
        identity: "@alice:example.org:DEVICEA",
        room: "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs",
        expiresAt: 1760003600_000,
        canPublish: true,
        canSubscribe: true
      })
    }))

  it.effect("accepts `token` in place of `jwt`", () =>
    Effect.gen(function*() {
      const { service } = yield* fakeService([ok({ url: "wss://sfu", token: goodJwt })])
      const grant = yield* service.getToken("https://rtc.example.org", getTokenRequest)
      assert.strictEqual(Redacted.value(grant.jwt), goodJwt)
    }))

  it.effect("an unusable 200 is BadResponse", () =>
    Effect.gen(function*() {
      for (const body of [{ url: "wss://sfu" }, { jwt: goodJwt }, { url: "wss://sfu", jwt: "not-a-jwt" }]) {
        const { service } = yield* fakeService([ok(body)])
        const e = yield* Effect.flip(service.sfuGet("https://rtc.example.org", sfuGetRequest))
        assert.strictEqual(e.reason, "BadResponse")
      }
      const { service } = yield* fakeService([{ status: 200, body: "<html>" }])
      assert.strictEqual((yield* Effect.flip(service.sfuGet("https://rtc.example.org", sfuGetRequest))).reason, "BadResponse")
    }))

  it.effect("keeps the service's status, errcode and error; 4xx is final (one attempt)", () =>
    Effect.gen(function*() {
      const { service, calls } = yield* fakeService([matrixError(401, "M_UNAUTHORIZED", "The request could not be authorised.")])
      const e = yield* Effect.flip(service.getToken("https://rtc.example.org", getTokenRequest))
      assert.strictEqual(e.reason, "Rejected")
      assert.strictEqual(e.status, 401)
      assert.strictEqual(e.errcode, "M_UNAUTHORIZED")
      assert.strictEqual(e.error, "The request could not be authorised.")
      assert.strictEqual(e.endpoint, "https://rtc.example.org/get_token")
      assert.strictEqual((yield* Ref.get(calls)).length, 1)
      assertNoSecret(e)
    }))

  it.effect("5xx and 429 are final too (documented decision)", () =>
    Effect.gen(function*() {
      for (const reply of [matrixError(500, "M_UNKNOWN", "Unable to create room on SFU"), matrixError(429, "M_LIMIT_EXCEEDED", "slow")]) {
        const { service, calls } = yield* fakeService([reply])
        const e = yield* Effect.flip(service.sfuGet("https://rtc.example.org", sfuGetRequest))
        assert.strictEqual(e.reason, "Rejected")
        assert.strictEqual((yield* Ref.get(calls)).length, 1)
      }
    }))

  it.effect("an error that echoes our OpenID token (or another credential) does not carry it on", () =>
    Effect.gen(function*() {
      const echoed = [
        matrixError(401, "M_UNAUTHORIZED", `unknown token ${secret}`),
        matrixError(401, `M_BAD_TOKEN_${secret}`, `unknown token ${secret}`),
        { status: 502, body: `<pre>POST /sfu/get {"access_token":"${secret}"} Authorization: Bearer abc.def</pre>`, contentType: "text/html" }
      ]
      for (const reply of echoed) {
        const e = yield* Effect.flip((yield* fakeService([reply])).service.sfuGet("https://rtc.example.org", sfuGetRequest))
        assert.strictEqual(e.reason, "Rejected")
        assert.include(e.error ?? "", "<redacted>")
        assertNoSecret(e)
        assert.notInclude(e.error ?? "", "abc.def")
      }
    }))

  it.effect("non-JSON error bodies from proxies", () =>
    Effect.gen(function*() {
      const { service } = yield* fakeService([{ status: 502, body: "<html><body>Bad Gateway</body></html>", contentType: "text/html" }])
      const e = yield* Effect.flip(service.sfuGet("https://rtc.example.org", sfuGetRequest))
      assert.strictEqual(e.reason, "Rejected")
      assert.strictEqual(e.status, 502)
      assert.isUndefined(e.errcode)
      assert.strictEqual(e.error, "<html><body>Bad Gateway</body></html>")
      const empty = yield* Effect.flip((yield* fakeService([{ status: 405, body: "" }])).service.sfuGet("https://x.org", sfuGetRequest))
      assert.strictEqual(empty.status, 405)
      assert.isUndefined(empty.error)
    }))

  it.effect("400 M_BAD_JSON with delay keys: asks once more without them", () =>
    Effect.gen(function*() {
      const { service, calls } = yield* fakeService([matrixError(400, "M_BAD_JSON", "The request body was malformed"), ok()])
      yield* service.sfuGet("https://rtc.example.org", { ...sfuGetRequest, delegation: { delayId: "syd", delayTimeoutMs: 8000 } })
      const all = yield* Ref.get(calls)
      assert.strictEqual(all.length, 2)
      assert.deepStrictEqual(Object.keys(all[0]!.body as object), ["room", "openid_token", "device_id", "delay_id", "delay_timeout"])
      assert.deepStrictEqual(all[1]!.body, { room: "!abc:example.org", openid_token: expectedToken, device_id: "DEVICEA" })
    }))

  it.effect("400 M_BAD_JSON without delay keys is final; a second M_BAD_JSON is final too", () =>
    Effect.gen(function*() {
      const bad = matrixError(400, "M_BAD_JSON", "Missing room parameter")
      const a = yield* fakeService([bad])
      assert.strictEqual((yield* Effect.flip(a.service.sfuGet("https://x.org", sfuGetRequest))).errcode, "M_BAD_JSON")
      assert.strictEqual((yield* Ref.get(a.calls)).length, 1)
      const b = yield* fakeService([bad, bad, ok()])
      const e = yield* Effect.flip(b.service.getToken("https://x.org", { ...getTokenRequest, delegation: { delayId: "d", delayTimeoutMs: 1 } }))
      assert.strictEqual(e.errcode, "M_BAD_JSON")
      assert.strictEqual((yield* Ref.get(b.calls)).length, 2)
    }))
})

describe("AuthServiceHttp: where the OpenID token may go", () => {
  it("https or loopback only", () => {
    for (const url of ["https://rtc.example.org", "HTTPS://rtc.example.org:8443/x", "http://127.0.0.1:8080", "http://127.255.0.9", "http://localhost:8080/jwt", "http://[::1]:8080"]) {
      assert.isTrue(AuthServiceHttp.isTokenSafeUrl(url), url)
    }
    for (const url of ["http://rtc.example.org", "http://127.0.0.1@evil.example", "http://128.0.0.1", "http://127.0.0.256", "http://localhost.evil.example", "ftp://x", "rtc.example.org", "https://", "http://[::2]"]) {
      assert.isFalse(AuthServiceHttp.isTokenSafeUrl(url), url)
    }
  })

  it.effect("InsecureUrl is refused without sending anything", () =>
    Effect.gen(function*() {
      const { service, calls } = yield* fakeService([ok()])
      const e = yield* Effect.flip(service.sfuGet("http://rtc.example.org/livekit/jwt", sfuGetRequest))
      assert.strictEqual(e.reason, "InsecureUrl")
      assert.strictEqual(e.endpoint, "http://rtc.example.org/livekit/jwt/sfu/get")
      assert.strictEqual((yield* Ref.get(calls)).length, 0)
      assertNoSecret(e)
      yield* service.getToken("http://127.0.0.1:8080/", getTokenRequest)
      assert.strictEqual((yield* Ref.get(calls))[0]!.url, "http://127.0.0.1:8080/get_token")
    }))

  it.effect("a URL with credentials is refused, and neither the error nor the span shows them", () =>
    Effect.gen(function*() {
      const { service, calls } = yield* fakeService([ok()])
      const native = yield* Effect.tracer
      const started: Array<Tracer.Span> = []
      const tracer = Tracer.make({
        span: (...args) => {
          const span = native.span(...args)
          started.push(span)
          return span
        },
        context: (f, fiber) => native.context(f, fiber)
      })
      const e = yield* Effect.flip(service.sfuGet("https://admin:hunter22@rtc.example.org/jwt", sfuGetRequest)).pipe(
        Effect.withTracer(tracer)
      )
      const spans = started.map((span) => [span.name, Object.fromEntries(span.attributes)])
      assert.strictEqual(e.reason, "InsecureUrl")
      assert.strictEqual(e.endpoint, "https://***@rtc.example.org/jwt/sfu/get")
      assert.include(e.message, "without userinfo")
      assert.strictEqual((yield* Ref.get(calls)).length, 0)
      for (const text of [e.message, JSON.stringify(e), JSON.stringify(spans)]) assert.notInclude(text, "hunter22")
      assert.include(JSON.stringify(spans), "https://***@rtc.example.org/jwt/sfu/get")
    }))
})

describe("AuthServiceHttp: redirects are not followed", () => {
  it.effect("fetch is asked not to follow them; a caller's other RequestInit options are kept", () =>
    Effect.gen(function*() {
      const { service, calls } = yield* fakeService([ok()])
      yield* service.sfuGet("https://rtc.example.org", sfuGetRequest)
      yield* service.sfuGet("https://rtc.example.org", sfuGetRequest).pipe(
        Effect.provideService(FetchHttpClient.RequestInit, { credentials: "omit", redirect: "follow" })
      )
      const [plain, withInit] = yield* Ref.get(calls)
      assert.deepStrictEqual(plain!.init, { redirect: "manual" })
      assert.deepStrictEqual(withInit!.init, { credentials: "omit", redirect: "manual" })
    }))

  it.effect("a 3xx or an opaque redirect is a final Rejected (one attempt, nothing sent on)", () =>
    Effect.gen(function*() {
      const replies: ReadonlyArray<{ readonly status: number; readonly body: string; readonly location?: string } | "opaqueRedirect"> = [
        { status: 307, body: "", location: "http://evil.example/sfu/get" },
        { status: 308, body: "", location: "https://other.example/sfu/get" },
        { status: 302, body: "", location: "/elsewhere" },
        "opaqueRedirect"
      ]
      for (const reply of replies) {
        const { service, calls } = yield* fakeService([reply, ok()])
        const e = yield* Effect.flip(service.sfuGet("https://rtc.example.org", sfuGetRequest))
        assert.strictEqual(e.reason, "Rejected")
        assert.strictEqual(e.status, reply === "opaqueRedirect" ? 0 : reply.status)
        assert.include(e.message, "redirect")
        assert.strictEqual((yield* Ref.get(calls)).length, 1)
        assertNoSecret(e)
      }
    }))
})

describe("AuthServiceHttp: network failures and timeouts (TestClock)", () => {
  it.effect("network errors: bounded exponential retries, then Unreachable", () =>
    Effect.gen(function*() {
      const { service, calls } = yield* fakeService(["network"])
      const fiber = yield* Effect.fork(Effect.flip(service.sfuGet("https://rtc.example.org", sfuGetRequest)))
      yield* TestClock.adjust(0)
      assert.strictEqual((yield* Ref.get(calls)).length, 1)
      yield* TestClock.adjust(1_000)
      assert.strictEqual((yield* Ref.get(calls)).length, 2)
      yield* TestClock.adjust(2_000)
      assert.strictEqual((yield* Ref.get(calls)).length, 3)
      yield* TestClock.adjust(4_000)
      const e = yield* Fiber.join(fiber)
      assert.strictEqual((yield* Ref.get(calls)).length, 4)
      assert.strictEqual(e.reason, "Unreachable")
      assertNoSecret(e)
      yield* TestClock.adjust(60_000)
      assert.strictEqual((yield* Ref.get(calls)).length, 4)
    }))

  it.effect("a network error followed by an answer succeeds", () =>
    Effect.gen(function*() {
      const { service, calls } = yield* fakeService(["network", ok()])
      const fiber = yield* Effect.fork(service.sfuGet("https://rtc.example.org", sfuGetRequest))
      yield* TestClock.adjust(1_000)
      const grant: LiveKitGrant = yield* Fiber.join(fiber)
      assert.strictEqual(grant.url, "wss://sfu.example.org")
      assert.strictEqual((yield* Ref.get(calls)).length, 2)
    }))

  it.effect("per-request timeout, not retried", () =>
    Effect.gen(function*() {
      const { service, calls } = yield* fakeService(["hang"], { requestTimeout: "5 seconds" })
      const fiber = yield* Effect.fork(Effect.flip(service.getToken("https://rtc.example.org", getTokenRequest)))
      yield* TestClock.adjust(5_000)
      const e = yield* Fiber.join(fiber)
      assert.strictEqual(e.reason, "Timeout")
      assert.strictEqual((yield* Ref.get(calls)).length, 1)
    }))
})
