/**
 * Parser fuzzing for auth-service answers (`AuthServiceHttp`): generated and mutated
 * `{url, jwt}` bodies, JWT payloads and error bodies, under every HTTP status.
 *
 * Properties, checked through the real service over a fake HttpClient:
 *   1. the service never throws or dies: every answer becomes a grant or a typed
 *      `JwtFetchFailed`;
 *   2. it hands out a grant exactly when an independent oracle (written here from
 *      auth-service.md's answer shape, not from the parser) says the answer is a
 *      usable `{url, jwt|token}` with LiveKit claims — a 200 without `jwt` never is;
 *   3. HTTP errors are `Rejected` with the status and the errcode of a well-formed
 *      error body, bad 2xx answers are `BadResponse`, and no failure carries the
 *      OpenID token.
 */
import { HttpClient, HttpClientResponse } from "@effect/platform"
import type { HttpClientRequest } from "@effect/platform"
import { Cause, Effect, Encoding, Exit, Option, Redacted } from "effect"
import * as fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import type { AuthServiceService, SfuGetRequest } from "../src/AuthService.ts"
import * as AuthServiceHttp from "../src/AuthServiceHttp.ts"

// Core compiles without DOM types; the test runtime (Node 24) has this global.
const WebResponse = (globalThis as any).Response as new (body: string, init: { status: number; headers?: Record<string, string> }) => unknown
const B64 = (globalThis as any).Buffer as { from(s: string, enc: string): { toString(enc: string): string } }

let inputs = 0
afterAll(() => {
  console.log(`[fuzz] auth-service answers: ${inputs} generated/mutated inputs, no throw, no unusable answer accepted`)
})

const SECRET = "syt_fuzz_openid_secret"
const request: SfuGetRequest = {
  roomId: "!abc:localhost",
  deviceId: "DEVICEA",
  openIdToken: { accessToken: Redacted.make(SECRET), tokenType: "Bearer", matrixServerName: "localhost", expiresIn: 3600 }
}

// One service; each input sets the answer the fake HttpClient gives.
let answer = { status: 200, body: "" }
const client = HttpClient.make((req: HttpClientRequest.HttpClientRequest) =>
  Effect.sync(() =>
    HttpClientResponse.fromWeb(req, new WebResponse(answer.body, { status: answer.status, headers: { "content-type": "application/json" } }) as any)
  )
)
const service: AuthServiceService = Effect.runSync(
  AuthServiceHttp.make({ networkRetries: 0 }).pipe(Effect.provideService(HttpClient.HttpClient, client))
)

// ---------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v)
const has = (o: Obj, k: string) => Object.prototype.hasOwnProperty.call(o, k)
const parse = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** LiveKit claims from a JWT, or undefined when it is not `header.payload.signature` with a usable payload. */
const claimsOracle = (jwt: string): { sub: string; room: string } | undefined => {
  const parts = jwt.split(".")
  if (parts.length !== 3) return undefined
  const seg = parts[1] as string
  if (!/^[A-Za-z0-9_-]*$/.test(seg) || seg.length % 4 === 1) return undefined
  const payload = parse(B64.from(seg, "base64url").toString("utf8"))
  if (!isObj(payload) || typeof payload["sub"] !== "string") return undefined
  const video = payload["video"]
  if (!isObj(video) || typeof video["room"] !== "string") return undefined
  if (has(payload, "exp") && typeof payload["exp"] !== "number") return undefined
  for (const k of ["canPublish", "canSubscribe"]) if (has(video, k) && typeof video[k] !== "boolean") return undefined
  return { sub: payload["sub"], room: video["room"] }
}

type Expected =
  | { readonly ok: true; readonly url: string; readonly jwt: string; readonly sub: string; readonly room: string }
  | { readonly ok: false; readonly reason: "Rejected" | "BadResponse"; readonly errcode: string | undefined }

const oracle = (status: number, wireText: string): Expected => {
  // The body is read with the Fetch API's UTF-8 decode, which drops a leading BOM.
  const text = wireText.startsWith("\uFEFF") ? wireText.slice(1) : wireText
  // A redirect is refused before its body is read (the OpenID token must not follow it).
  if (status >= 300 && status < 400) return { ok: false, reason: "Rejected", errcode: undefined }
  if (status < 200 || status >= 300) {
    const body = parse(text)
    const wellFormed =
      isObj(body) &&
      (!has(body, "errcode") || typeof body["errcode"] === "string") &&
      (!has(body, "error") || typeof body["error"] === "string")
    return { ok: false, reason: "Rejected", errcode: wellFormed ? (body["errcode"] as string | undefined) : undefined }
  }
  const bad = { ok: false, reason: "BadResponse", errcode: undefined } as const
  const body = parse(text)
  if (!isObj(body) || typeof body["url"] !== "string") return bad
  for (const k of ["jwt", "token"]) if (has(body, k) && typeof body[k] !== "string") return bad
  const jwt = (has(body, "jwt") ? body["jwt"] : body["token"]) as string | undefined
  if (jwt === undefined || jwt === "") return bad
  const claims = claimsOracle(jwt)
  return claims === undefined ? bad : { ok: true, url: body["url"], jwt, ...claims }
}

const check = async (status: number, text: string): Promise<void> => {
  inputs++
  answer = { status, body: text }
  const expected = oracle(status, text)
  let exit: Exit.Exit<unknown, unknown>
  try {
    exit = await Effect.runPromiseExit(service.sfuGet("http://127.0.0.1:8080", request))
  } catch (e) {
    throw new Error(`sfuGet threw on HTTP ${status} ${JSON.stringify(text)}: ${String(e)}`)
  }
  const where = `HTTP ${status} ${JSON.stringify(text).slice(0, 400)}`
  if (Exit.isSuccess(exit)) {
    if (!expected.ok) throw new Error(`accepted an unusable answer (${expected.reason} expected): ${where}`)
    const grant = exit.value as { url: string; jwt: Redacted.Redacted<string>; claims: { identity: string; room: string } }
    expect(grant.url).toBe(expected.url)
    expect(Redacted.value(grant.jwt)).toBe(expected.jwt)
    expect(grant.claims.identity).toBe(expected.sub)
    expect(grant.claims.room).toBe(expected.room)
    return
  }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) throw new Error(`died instead of failing: ${Cause.pretty(exit.cause)} on ${where}`)
  const e = failure.value as { _tag: string; reason: string; status?: number; errcode?: string; message: string }
  expect(e._tag).toBe("JwtFetchFailed")
  if (expected.ok) throw new Error(`rejected a usable answer (${e.reason}): ${where}`)
  expect(e.reason).toBe(expected.reason)
  if (expected.reason === "Rejected") {
    expect(e.status).toBe(status)
    expect(e.errcode).toBe(expected.errcode)
  }
  for (const t of [e.message, JSON.stringify(e)]) expect(t).not.toContain(SECRET)
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

const json = fc.jsonValue({ maxDepth: 3 })
const b64url = (s: string) => Encoding.encodeBase64Url(s)
const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }))

const validPayload = fc
  .record(
    {
      sub: fc.oneof(fc.constant("@alice:localhost:DEVICEA"), fc.string()),
      exp: fc.integer({ min: 0, max: 2 ** 40 }),
      nbf: fc.integer({ min: 0, max: 2 ** 40 }),
      iss: fc.constant("devkey"),
      video: fc.record(
        {
          room: fc.oneof(fc.constant("krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs"), fc.string()),
          roomJoin: fc.boolean(),
          canPublish: fc.boolean(),
          canSubscribe: fc.boolean()
        },
        { requiredKeys: ["room"] }
      )
    },
    { requiredKeys: ["sub", "video"] }
  )
  .map((p) => p as Obj)

const wrongValue = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.string({ maxLength: 6 }), fc.array(fc.integer(), { maxLength: 2 }), fc.constant({}))

/** Payload mutations: a field removed, retyped, or the whole payload replaced. */
const payload = fc.oneof(
  { weight: 3, arbitrary: validPayload },
  {
    weight: 2,
    arbitrary: fc
      .tuple(validPayload, fc.constantFrom("sub", "exp", "video", "video.room", "video.canPublish", "video.canSubscribe"), wrongValue, fc.boolean())
      .map(([p, field, v, remove]) => {
        const [a, b] = field.split(".") as [string, string | undefined]
        const copy: Obj = { ...p }
        if (b === undefined) {
          if (remove) delete copy[a]
          else copy[a] = v
        } else {
          const inner: Obj = { ...(copy[a] as Obj) }
          if (remove) delete inner[b]
          else inner[b] = v
          copy[a] = inner
        }
        return copy
      })
  },
  { weight: 1, arbitrary: json }
)

const jwt = fc.oneof(
  { weight: 5, arbitrary: payload.map((p) => `${header}.${b64url(JSON.stringify(p))}.c2lnbmF0dXJl`) },
  // structural damage: parts missing or extra, garbage segments, non-JSON payloads
  { weight: 1, arbitrary: fc.tuple(payload, fc.nat({ max: 4 })).map(([p, n]) => [header, b64url(JSON.stringify(p)), "sig", "x"].slice(0, n).join(".")) },
  { weight: 1, arbitrary: fc.tuple(fc.string(), fc.string()).map(([a, b]) => `${header}.${a}.${b}`) },
  { weight: 1, arbitrary: fc.string().map((s) => `${header}.${b64url(s)}.sig`) },
  { weight: 1, arbitrary: fc.string() }
)

const grantBody = fc
  .record(
    {
      url: fc.oneof(fc.constant("ws://127.0.0.1:7880"), fc.string()),
      jwt,
      token: jwt,
      extra: json
    },
    { requiredKeys: ["url"] }
  )
  .map((g) => g as Obj)

const mutatedGrant = fc
  .tuple(grantBody, fc.constantFrom("url", "jwt", "token"), wrongValue, fc.boolean())
  .map(([g, field, v, remove]) => {
    const copy: Obj = { ...g }
    if (remove) delete copy[field]
    else copy[field] = v
    return copy
  })

const okStatus = fc.constantFrom(200, 201, 202, 203, 206, 299)
const errorStatus = fc.oneof(fc.constantFrom(400, 401, 403, 404, 405, 429, 500, 502, 503), fc.integer({ min: 300, max: 599 })).filter((s) => s !== 304)
const anyStatus = fc.oneof(okStatus, errorStatus)

const errorBody = fc
  .record({ errcode: fc.oneof(fc.constantFrom("M_UNKNOWN", "M_FORBIDDEN", "M_BAD_JSON", "M_LIMIT_EXCEEDED", "X_WHATEVER"), fc.string()), error: fc.string(), retry_after_ms: fc.nat() }, { requiredKeys: [] })
  .chain((b) => fc.oneof(fc.constant(b as Obj), fc.tuple(fc.constantFrom("errcode", "error"), wrongValue).map(([k, v]) => ({ ...b, [k]: v }) as Obj)))

/** Text damage on a serialised body: truncation, a byte replaced, or wrapping in HTML. */
const damaged = (body: fc.Arbitrary<Obj>) =>
  fc.tuple(body, fc.nat(), fc.string({ minLength: 1, maxLength: 3 }), fc.constantFrom("truncate", "replace", "html", "bom", "trailing")).map(
    ([b, n, s, how]) => {
      const text = JSON.stringify(b)
      const i = n % Math.max(1, text.length)
      switch (how) {
        case "truncate":
          return text.slice(0, i)
        case "replace":
          return text.slice(0, i) + s + text.slice(i + 1)
        case "html":
          return `<html><body>${text}</body></html>`
        case "bom":
          return `\uFEFF${text}`
        case "trailing":
          return `${text}\n${s}`
      }
    }
  )

// ---------------------------------------------------------------------------

describe("auth-service answer fuzzing", () => {
  it("the oracle accepts the service's real answer shape and rejects a 200 without jwt", async () => {
    const good = { url: "ws://127.0.0.1:7880", jwt: `${header}.${b64url(JSON.stringify({ sub: "@a:l:D", video: { room: "r" } }))}.s` }
    expect(oracle(200, JSON.stringify(good)).ok).toBe(true)
    expect(oracle(200, JSON.stringify({ url: good.url })).ok).toBe(false)
    await check(200, JSON.stringify(good))
    await check(200, JSON.stringify({ url: good.url }))
  })

  it("generated {url, jwt|token} answers under 2xx: grant iff usable", async () => {
    await fc.assert(fc.asyncProperty(okStatus, grantBody, (s, b) => check(s, JSON.stringify(b))), { numRuns: 1500 })
  })

  it("mutated answers (fields removed or retyped, text damaged): never a grant from an unusable answer", async () => {
    await fc.assert(fc.asyncProperty(okStatus, mutatedGrant, (s, b) => check(s, JSON.stringify(b))), { numRuns: 1000 })
    await fc.assert(fc.asyncProperty(anyStatus, damaged(grantBody), (s, t) => check(s, t)), { numRuns: 700 })
  })

  it("error statuses with error bodies (well-formed, retyped, damaged, arbitrary): Rejected with status and errcode", async () => {
    await fc.assert(fc.asyncProperty(errorStatus, errorBody, (s, b) => check(s, JSON.stringify(b))), { numRuns: 800 })
    await fc.assert(fc.asyncProperty(errorStatus, damaged(errorBody), (s, t) => check(s, t)), { numRuns: 300 })
    // an error status never yields a grant, even with a perfect grant body
    await fc.assert(fc.asyncProperty(errorStatus, grantBody, (s, b) => check(s, JSON.stringify(b))), { numRuns: 300 })
  })

  it("arbitrary JSON and arbitrary text under any status", async () => {
    await fc.assert(fc.asyncProperty(anyStatus, json, (s, j) => check(s, JSON.stringify(j))), { numRuns: 700 })
    await fc.assert(fc.asyncProperty(anyStatus, fc.string({ maxLength: 300 }), (s, t) => check(s, t)), { numRuns: 500 })
  })
})
