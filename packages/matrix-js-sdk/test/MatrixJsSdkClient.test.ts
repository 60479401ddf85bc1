import { afterEach, assert, describe, it } from "@effect/vitest"
import type { Ids } from "@matrixrtc-effect/core"
import { Effect, Fiber, Layer, Redacted, TestClock } from "effect"
import { createClient } from "matrix-js-sdk"
import { vi } from "vitest"
import { keepAliveRequests, layerLogin, make, withKeepAlive } from "../src/MatrixJsSdkClient.ts"

/** A client whose fetch answers like a homeserver with MSC4140 and records each request's path and keepalive. */
const recordingClient = () => {
  const seen: Array<{ readonly method: string; readonly path: string; readonly keepalive: boolean }> = []
  const fetchFn = (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input))
    seen.push({ method: init?.method ?? "GET", path: url.pathname, keepalive: init?.keepalive === true })
    const body = url.pathname === "/_matrix/client/versions"
      ? { versions: ["v1.11"], unstable_features: { "org.matrix.msc4140": true } }
      : url.pathname.includes("/state/")
      ? { event_id: "$e" }
      : {}
    return Promise.resolve(new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } }))
  }
  const client = createClient({ baseUrl: "http://127.0.0.1:1", accessToken: "t", userId: "@a:b", deviceId: "D", fetchFn })
  return { mx: make(client), seen }
}

const roomId = "!room:b" as Ids.RoomId

describe("MatrixJsSdkClient: keepalive requests", () => {
  it.effect("sending the delayed leave always goes with keepalive; restart and cancel do not", () =>
    Effect.gen(function*() {
      const { mx, seen } = recordingClient()
      yield* mx.updateDelayedEvent("syd_1", "restart")
      yield* mx.updateDelayedEvent("syd_1", "cancel")
      yield* mx.updateDelayedEvent("syd_1", "send")
      const updates = seen.filter((r) => r.path.includes("/delayed_events/"))
      assert.deepStrictEqual(updates.map((r) => [r.path.split("/").pop(), r.keepalive]), [
        ["restart", false],
        ["cancel", false],
        ["send", true]
      ])
    }))

  it.effect("inside withKeepAlive, state writes and delayed-event updates go with keepalive; outside they do not", () =>
    Effect.gen(function*() {
      const { mx, seen } = recordingClient()
      yield* mx.sendStateEvent(roomId, "org.matrix.msc3401.call.member", "_@a:b_D_m.call", {})
      yield* withKeepAlive(
        Effect.all([
          mx.sendStateEvent(roomId, "org.matrix.msc3401.call.member", "_@a:b_D_m.call", {}),
          mx.updateDelayedEvent("syd_2", "cancel")
        ])
      )
      assert.isFalse(yield* keepAliveRequests, "the FiberRef is only on inside withKeepAlive")
      const writes = seen.filter((r) => r.method === "PUT" || r.path.includes("/delayed_events/"))
      assert.deepStrictEqual(writes.map((r) => [r.method, r.keepalive]), [
        ["PUT", false],
        ["PUT", true],
        ["POST", true]
      ])
    }))
})

// --- logins and token-bearing answers, against a homeserver double on the global fetch ---

interface Seen {
  readonly method: string
  readonly path: string
  readonly authorization: string | undefined
}

/** Replaces the global fetch (what clients without `fetchFn` use) with `answer` for this test. */
const homeserver = (answer: (path: string) => { readonly status: number; readonly body: unknown }) => {
  const seen: Array<Seen> = []
  vi.stubGlobal("fetch", (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input))
    const authorization = new Headers(init?.headers).get("authorization") ?? undefined
    seen.push({ method: init?.method ?? "GET", path: url.pathname, authorization })
    const { body, status } = answer(url.pathname)
    return Promise.resolve(new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } }))
  })
  return seen
}

afterEach(() => {
  vi.unstubAllGlobals()
})

/** Every string reachable from `value` (own keys, enumerable or not, all the way down the cause chain). */
const reachableText = (value: unknown): string => {
  const seen = new Set<unknown>()
  const out: Array<string> = []
  const walk = (v: unknown): void => {
    if (typeof v === "string") return void out.push(v)
    if (typeof v !== "object" || v === null || seen.has(v)) return
    seen.add(v)
    for (const key of Reflect.ownKeys(v)) {
      const d = Object.getOwnPropertyDescriptor(v, key)
      if (d !== undefined && "value" in d) walk(d.value)
    }
  }
  walk(value)
  return out.join("\n")
}

const hs = "http://127.0.0.1:1"
const build = <A, E>(layer: Layer.Layer<A, E>) => Effect.flip(Effect.scoped(Layer.build(layer)))

describe("layerLogin: refused credentials are NotAuthenticated", () => {
  it.effect("a dead access token (401 M_UNKNOWN_TOKEN on /whoami)", () =>
    Effect.gen(function*() {
      homeserver(() => ({ status: 401, body: { errcode: "M_UNKNOWN_TOKEN", error: "Invalid access token passed." } }))
      const e = yield* build(layerLogin({ homeserverUrl: hs, accessToken: Redacted.make("syt_dead_token_1"), sync: false }))
      assert.strictEqual(e._tag, "NotAuthenticated")
      assert.strictEqual(e.reason, "TokenRejected")
      assert.strictEqual(e.status, 401)
      assert.strictEqual(e.errcode, "M_UNKNOWN_TOKEN")
    }))

  it.effect("a wrong password (403 M_FORBIDDEN on /login)", () =>
    Effect.gen(function*() {
      homeserver(() => ({ status: 403, body: { errcode: "M_FORBIDDEN", error: "Invalid username or password" } }))
      const e = yield* build(layerLogin({ homeserverUrl: hs, user: "bob", password: Redacted.make("wrong-password"), sync: false }))
      assert.strictEqual(e._tag, "NotAuthenticated")
      assert.strictEqual(e.reason, "LoginRejected")
      assert.strictEqual(e.errcode, "M_FORBIDDEN")
      assert.include(e.message, "refused the login")
      assert.include(e.message, "Invalid username or password")
    }))

  it.effect("a failure that may pass (502, 429) stays MatrixError", () =>
    Effect.gen(function*() {
      homeserver(() => ({ status: 502, body: { errcode: "M_UNKNOWN", error: "Bad gateway" } }))
      const gateway = yield* build(layerLogin({ homeserverUrl: hs, accessToken: Redacted.make("syt_token_2"), sync: false }))
      assert.strictEqual(gateway._tag, "MatrixError")
      assert.strictEqual(gateway.status, 502)
      vi.unstubAllGlobals()
      homeserver(() => ({ status: 429, body: { errcode: "M_LIMIT_EXCEEDED", error: "Too many requests", retry_after_ms: 1 } }))
      const limited = yield* build(layerLogin({ homeserverUrl: hs, user: "bob", password: Redacted.make("pw-123456"), sync: false }))
      assert.strictEqual(limited._tag, "MatrixError")
      assert.strictEqual(limited.status, 429)
    }))
})

describe("answers that carry a token do not keep it in errors", () => {
  it.effect("an OpenID answer that does not decode: the error names the bad key, not the token", () =>
    Effect.gen(function*() {
      const fetchFn = () =>
        Promise.resolve(
          new Response(
            JSON.stringify({ access_token: "oid_secret_token_abc", token_type: "Bearer", matrix_server_name: "b", expires_in: "soon" }),
            { status: 200, headers: { "content-type": "application/json" } }
          )
        )
      const client = createClient({ baseUrl: hs, accessToken: "t", userId: "@a:b", deviceId: "D", fetchFn })
      const e = yield* Effect.flip(make(client).requestOpenIdToken)
      assert.strictEqual(e._tag, "MatrixError")
      assert.notInclude(reachableText(e), "oid_secret_token_abc")
      assert.notInclude(JSON.stringify(e), "oid_secret_token_abc")
      assert.include(e.message, "expires_in")
    }))

  it.effect("a /login answer that issued a token but does not decode: no token in the error, and the new device is logged out", () =>
    Effect.gen(function*() {
      const seen = homeserver((path) =>
        path.endsWith("/login")
          ? { status: 200, body: { access_token: "syt_issued_secret_xyz", user_id: 42, device_id: "NEWDEV" } }
          : { status: 200, body: {} }
      )
      const e = yield* build(layerLogin({ homeserverUrl: hs, user: "bob", password: Redacted.make("pw-123456"), sync: false }))
      assert.strictEqual(e._tag, "MatrixError")
      assert.notInclude(reachableText(e), "syt_issued_secret_xyz")
      assert.include(e.message, "user_id")
      const logouts = seen.filter((r) => r.path.endsWith("/logout"))
      assert.deepStrictEqual(logouts.map((r) => [r.method, r.authorization]), [["POST", "Bearer syt_issued_secret_xyz"]])
    }))

  it.effect("reusing a device (not ours to log out): no /logout on such a failure", () =>
    Effect.gen(function*() {
      const seen = homeserver(() => ({ status: 200, body: { access_token: "syt_issued_secret_xyz", device_id: "OLD" } }))
      yield* build(layerLogin({ homeserverUrl: hs, user: "bob", password: Redacted.make("pw-123456"), deviceId: "OLD", sync: false }))
      assert.isFalse(seen.some((r) => r.path.endsWith("/logout")))
    }))
})

// --- where the `.well-known/matrix/client` comes from ---

const foci = (url: string) => ({ "org.matrix.msc4143.rtc_foci": [{ type: "livekit", livekit_service_url: url }] })
const json = (body: unknown, status = 200) =>
  Promise.resolve(new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } }))

/**
 * A client of `@a:<serverName>` on `baseUrl` whose fetch answers `/.well-known/matrix/client` per host: a body,
 * a refused connection, or no answer until aborted. Records the URLs asked and whether they were aborted.
 */
const wellKnownClient = (
  serverName: string,
  baseUrl: string,
  answer: (host: string) => unknown | "refused" | "hang"
) => {
  const asked: Array<string> = []
  const aborted: Array<string> = []
  let serverNameAsked: () => void = () => {}
  const serverNameRequested = new Promise<void>((resolve) => (serverNameAsked = resolve))
  const fetchFn = (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input))
    asked.push(url.origin + url.pathname)
    if (url.host === serverName) serverNameAsked()
    const a = answer(url.host)
    if (a === "refused") return Promise.reject(new TypeError("fetch failed"))
    if (a === "hang") {
      return new Promise<Response>((_, reject) =>
        init?.signal?.addEventListener("abort", () => {
          aborted.push(url.origin)
          reject(init.signal?.reason)
        }))
    }
    return json(a)
  }
  const client = createClient({ baseUrl, accessToken: "t", userId: `@a:${serverName}`, deviceId: "D", fetchFn })
  return { mx: make(client), asked, aborted, serverNameRequested }
}

describe("wellKnown: the user id's server name first, as matrix-js-sdk reads it, then the homeserver", () => {
  it.effect("delegated (example.org → homeserver elsewhere): the server name's rtc_foci win", () =>
    Effect.gen(function*() {
      const { asked, mx } = wellKnownClient("example.org", hs, (host) =>
        host === "example.org" ? foci("https://jwt.example.org") : foci("https://homeserver-host"))
      assert.deepStrictEqual(yield* mx.wellKnown, foci("https://jwt.example.org"))
      assert.include(asked, "https://example.org/.well-known/matrix/client")
    }))

  it.effect("the server name is not reachable over https (a `localhost` stack): the homeserver's answer", () =>
    Effect.gen(function*() {
      const { asked, mx } = wellKnownClient("localhost", hs, (host) => host === "localhost" ? "refused" : foci("https://hs"))
      assert.deepStrictEqual(yield* mx.wellKnown, foci("https://hs"))
      assert.sameMembers(asked, ["https://localhost/.well-known/matrix/client", `${hs}/.well-known/matrix/client`])
    }))

  it.effect("the server name's answer has no LiveKit focus: the homeserver's answer", () =>
    Effect.gen(function*() {
      const { mx } = wellKnownClient("example.org", hs, (host) =>
        host === "example.org" ? { "m.homeserver": { base_url: hs } } : foci("https://hs"))
      assert.deepStrictEqual(yield* mx.wellKnown, foci("https://hs"))
    }))

  it.effect("the server name never answers: after 3 s the homeserver's answer, and the request is aborted", () =>
    Effect.gen(function*() {
      const { aborted, mx, serverNameRequested } = wellKnownClient("example.org", hs, (host) =>
        host === "example.org" ? "hang" : foci("https://hs"))
      const fiber = yield* Effect.fork(mx.wellKnown)
      yield* Effect.promise(() => serverNameRequested)
      yield* TestClock.adjust("3 seconds")
      assert.deepStrictEqual(yield* Fiber.join(fiber), foci("https://hs"))
      assert.deepStrictEqual(aborted, ["https://example.org"])
    }))

  it.effect("neither has it: the homeserver's failure is the answer", () =>
    Effect.gen(function*() {
      const { mx } = wellKnownClient("example.org", hs, (host) => host === "example.org" ? {} : "refused")
      const e = yield* Effect.flip(mx.wellKnown)
      assert.strictEqual(e._tag, "MatrixError")
    }))

  it.effect("not delegated (the homeserver is https://<server name>): asked once", () =>
    Effect.gen(function*() {
      const { asked, mx } = wellKnownClient("example.org", "https://example.org/", () => foci("https://jwt"))
      assert.deepStrictEqual(yield* mx.wellKnown, foci("https://jwt"))
      assert.deepStrictEqual(asked, ["https://example.org/.well-known/matrix/client"])
    }))
})
