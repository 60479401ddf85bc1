/**
 * Conformance of the auth service with auth-service.md §1–§2 over a real
 * loopback HTTP listener (fake verifier, in-memory LiveKit rooms).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { createHmac } from "node:crypto"
import {
  apiKey,
  apiSecret,
  corsHeaderValues,
  delegateBody,
  errorBody,
  getTokenBody,
  type Harness,
  liveKitUrl,
  openIdToken,
  post,
  type Reply,
  request,
  sfuGetBody,
  startServer,
  tokens,
  vectors
} from "./auth-service-fixtures.ts"

const postEndpoints = ["/get_token", "/sfu/get", "/delegate_delayed_leave"] as const

const assertCors = (reply: Reply) => {
  for (const [name, value] of Object.entries(corsHeaderValues)) {
    assert.strictEqual(reply.headers.get(name), value, name)
  }
  assert.isNull(reply.headers.get("access-control-max-age"))
  assert.isNull(reply.headers.get("access-control-allow-credentials"))
}

const assertError = (reply: Reply, status: number, errcode: string, error: string) => {
  assert.strictEqual(reply.status, status, reply.body)
  assert.strictEqual(reply.body, errorBody(errcode, error))
  assertCors(reply)
}

const notJson = (reply: Reply) => assertError(reply, 400, "M_NOT_JSON", "Error reading request")
const badJson = (reply: Reply, error: string) => assertError(reply, 400, "M_BAD_JSON", error)
const unauthorised = (reply: Reply) => assertError(reply, 401, "M_UNAUTHORIZED", "The request could not be authorised.")

const decodeSegment = (s: string) => JSON.parse(Buffer.from(s, "base64url").toString("utf8"))

/** Checks the HS256 signature and returns header + payload (and the raw payload JSON). */
const decodeJwt = (jwt: string) => {
  const [h, p, s] = jwt.split(".")
  assert.isDefined(s)
  const expected = createHmac("sha256", apiSecret).update(`${h}.${p}`).digest("base64url")
  assert.strictEqual(s, expected, "signature")
  return { header: decodeSegment(h!), payload: decodeSegment(p!), rawHeader: Buffer.from(h!, "base64url").toString() }
}

const grant = (reply: Reply) => {
  assert.strictEqual(reply.status, 200, reply.body)
  assert.isTrue(reply.body.endsWith("}\n"), "body ends with a newline")
  assertCors(reply)
  const json = JSON.parse(reply.body)
  assert.deepStrictEqual(Object.keys(json), ["url", "jwt"])
  assert.strictEqual(json.url, liveKitUrl)
  return decodeJwt(json.jwt)
}

const nowMs = 1_760_000_000_000

describe("auth service: routing and CORS", () => {
  it.scoped("/healthz answers GET and HEAD with 200 and an empty body, no CORS; other methods 405", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      for (const method of ["GET", "HEAD"]) {
        const r = yield* request(h, "/healthz", { method })
        assert.strictEqual(r.status, 200)
        assert.strictEqual(r.body, "")
        assert.isNull(r.headers.get("access-control-allow-origin"))
      }
      const r = yield* request(h, "/healthz", { method: "POST" })
      assert.strictEqual(r.status, 405)
      assert.strictEqual(r.body, "")
    }))

  it.scoped("unknown paths give Go's plain-text 404", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      for (const path of ["/", "/nope", "/sfu/get/", "/get_token/", "/GET_TOKEN", "/sfu", "/healthz/x"]) {
        const r = yield* request(h, path)
        assert.strictEqual(r.status, 404, path)
        assert.strictEqual(r.body, "404 page not found\n")
        assert.strictEqual(r.headers.get("content-type"), "text/plain; charset=utf-8")
      }
    }))

  it.scoped("non-canonical paths are redirected (301) to the cleaned path, keeping the query", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      const r = yield* request(h, "//get_token", { body: "{}" })
      assert.strictEqual(r.status, 301)
      assert.strictEqual(r.headers.get("location"), "/get_token")
      const r2 = yield* request(h, "/sfu//get?x=1", { method: "GET" })
      assert.strictEqual(r2.status, 301)
      assert.strictEqual(r2.headers.get("location"), "/sfu/get?x=1")
    }))

  it.scoped("OPTIONS preflight: 200, empty body, CORS + JSON headers, no checks of Origin", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      for (const path of postEndpoints) {
        const r = yield* request(h, path, {
          method: "OPTIONS",
          headers: { origin: "https://call.example", "access-control-request-method": "POST" }
        })
        assert.strictEqual(r.status, 200, path)
        assert.strictEqual(r.body, "")
        assertCors(r)
      }
    }))

  it.scoped("other methods: 405 with an empty body but the JSON + CORS headers", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      for (const path of postEndpoints) {
        for (const method of ["GET", "PUT", "DELETE", "PATCH", "HEAD"]) {
          const r = yield* request(h, path, { method })
          assert.strictEqual(r.status, 405, `${method} ${path}`)
          assert.strictEqual(r.body, "")
          assertCors(r)
        }
      }
    }))

  it.scoped("/sfu_webhook always answers 200 with an empty body", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      for (const method of ["POST", "GET", "PUT"]) {
        const r = yield* request(h, "/sfu_webhook", method === "GET" ? { method } : { method, body: "not json" })
        assert.strictEqual(r.status, 200)
        assert.strictEqual(r.body, "")
      }
      assert.strictEqual(h.delegation.webhooks.length, 3)
    }))

  it.scoped("the content type of the request is not checked", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      const r = yield* request(h, "/get_token", {
        body: JSON.stringify(getTokenBody()),
        headers: { "content-type": "text/plain" }
      })
      grant(r)
    }))
})

describe("auth service: /get_token", () => {
  it.scoped("full-access user: JWT claims, signature, hashed room and identity; CreateRoom called", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(nowMs)
      const h = yield* startServer()
      const { header, payload, rawHeader } = grant(yield* post(h, "/get_token", getTokenBody()))
      assert.strictEqual(rawHeader, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}")
      assert.deepStrictEqual(header, { alg: "HS256", typ: "JWT" })
      assert.deepStrictEqual(payload, {
        exp: nowMs / 1000 + 3600,
        iss: apiKey,
        nbf: nowMs / 1000,
        sub: vectors.identity,
        video: { canPublish: true, canSubscribe: true, canUpdateOwnMetadata: true, room: vectors.room, roomJoin: true }
      })
      assert.deepStrictEqual(h.rooms.created, [vectors.room])
      assert.deepStrictEqual(h.delegation.jobs, [])
    }))

  it.scoped("room and identity follow the recipe for other inputs (vectors)", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      const { payload } = grant(
        yield* post(h, "/get_token", getTokenBody({
          room_id: "!roomid:example.com",
          slot_id: "slot1234",
          member: { id: "memberABC", claimed_user_id: "@alice:example.com", claimed_device_id: "DEVICE123" }
        }))
      )
      assert.strictEqual(payload.video.room, "O8437W3+jmzMVjoIP3tNwbm+XxHQk2iKpOA7aqw3qSc")
      assert.strictEqual(payload.sub, "J+T45tGruxc+HrUOqJJlyQSV33m728Cme4+vt8/SWrU")
    }))

  it.scoped("restricted user: token without room creation; delay_id rejected with 400 M_BAD_JSON", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      const body = getTokenBody({
        openid_token: openIdToken(tokens.bob, "remote.example"),
        member: { id: "m", claimed_user_id: "@bob:remote.example", claimed_device_id: "D" }
      })
      const { payload } = grant(yield* post(h, "/get_token", body))
      assert.strictEqual(payload.video.canPublish, true)
      assert.deepStrictEqual(h.rooms.created, [])
      badJson(
        yield* post(h, "/get_token", { ...body, delay_id: "syd_x", delay_timeout: 8000 }),
        "Delegation of delayed events is only supported for full access users"
      )
      assert.deepStrictEqual(h.rooms.created, [])
    }))

  it.scoped("`*` grants full access to every homeserver", () =>
    Effect.gen(function*() {
      const h = yield* startServer({ fullAccessHomeservers: ["*"] })
      grant(
        yield* post(h, "/get_token", getTokenBody({
          openid_token: openIdToken(tokens.bob, "remote.example"),
          member: { id: "m", claimed_user_id: "@bob:remote.example", claimed_device_id: "D" }
        }))
      )
      assert.strictEqual(h.rooms.created.length, 1)
    }))

  it.scoped("full-access user with delay_id: CS API resolved, room created, job registered", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      grant(yield* post(h, "/get_token", getTokenBody({ delay_id: "syd_abc", delay_timeout: 18000 })))
      assert.deepStrictEqual(h.rooms.created, [vectors.room])
      assert.deepStrictEqual(h.delegation.jobs, [{
        room: vectors.room,
        identity: vectors.identity,
        delayId: "syd_abc",
        delayTimeoutMs: 18000,
        csApiUrl: "http://127.0.0.1:8008"
      }])
    }))

  it.scoped("unresolvable CS API: 400 before room creation", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      h.delegation.csApiUrls.clear()
      badJson(
        yield* post(h, "/get_token", getTokenBody({ delay_id: "syd_abc", delay_timeout: 18000 })),
        "Unable to resolve client-server API"
      )
      assert.deepStrictEqual(h.rooms.created, [])
    }))

  it.scoped("shutting down: 503 M_UNKNOWN", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      h.delegation.shuttingDown = true
      assertError(
        yield* post(h, "/get_token", getTokenBody({ delay_id: "syd_abc", delay_timeout: 18000 })),
        503,
        "M_UNKNOWN",
        "Service is shutting down"
      )
    }))

  it.scoped("CreateRoom failure: 500 M_UNKNOWN", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      h.rooms.failCreate = true
      assertError(yield* post(h, "/get_token", getTokenBody()), 500, "M_UNKNOWN", "Unable to create room on SFU")
      assertError(yield* post(h, "/sfu/get", sfuGetBody()), 500, "M_UNKNOWN", "Unable to create room on SFU")
    }))

  it.scoped("validation order and messages", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      const roomSlot = "The request body is missing `room_id` or `slot_id`"
      const member = "The request body `member` is missing a `id`, `claimed_user_id` or `claimed_device_id`"
      const token = "The request body `openid_token` is missing a `access_token` or `matrix_server_name`"
      const delay = "The request body is missing `delay_id` or `delay_timeout`"
      badJson(yield* post(h, "/get_token", {}), roomSlot)
      badJson(yield* post(h, "/get_token", getTokenBody({ room_id: "" })), roomSlot)
      badJson(yield* post(h, "/get_token", getTokenBody({ slot_id: "", member: {} })), roomSlot)
      badJson(yield* post(h, "/get_token", getTokenBody({ member: {}, openid_token: {} })), member)
      for (const key of ["id", "claimed_user_id", "claimed_device_id"]) {
        badJson(
          yield* post(h, "/get_token", getTokenBody({ member: { ...getTokenBody().member, [key]: "" } })),
          member
        )
      }
      badJson(yield* post(h, "/get_token", getTokenBody({ openid_token: {} })), token)
      badJson(
        yield* post(h, "/get_token", getTokenBody({ openid_token: { access_token: "x" }, delay_id: "d" })),
        token
      )
      badJson(yield* post(h, "/get_token", getTokenBody({ openid_token: { matrix_server_name: "example.com" } })), token)
      badJson(yield* post(h, "/get_token", getTokenBody({ delay_id: "d" })), delay)
      badJson(yield* post(h, "/get_token", getTokenBody({ delay_id: "d", delay_timeout: 0 })), delay)
      badJson(yield* post(h, "/get_token", getTokenBody({ delay_id: "d", delay_timeout: -5 })), delay)
      badJson(yield* post(h, "/get_token", getTokenBody({ delay_timeout: 8000 })), delay)
      // Validation comes before verification: a bad token with a missing field is 400, not 401.
      badJson(yield* post(h, "/get_token", getTokenBody({ openid_token: openIdToken("bogus"), slot_id: "" })), roomSlot)
      // A non-positive delay_timeout without delay_id is ignored.
      grant(yield* post(h, "/get_token", getTokenBody({ delay_timeout: -1 })))
      grant(yield* post(h, "/get_token", getTokenBody({ delay_timeout: 0, delay_id: "" })))
      assert.deepStrictEqual(h.delegation.jobs, [])
    }))

  it.scoped("verification: unknown token, sub server mismatch and claimed_user_id mismatch are 401", () =>
    Effect.gen(function*() {
      const h = yield* startServer({ fullAccessHomeservers: ["*"] })
      unauthorised(yield* post(h, "/get_token", getTokenBody({ openid_token: openIdToken("bogus") })))
      // sub is @eve:evil.example but the token claims example.com
      unauthorised(
        yield* post(h, "/get_token", getTokenBody({
          openid_token: openIdToken(tokens.wrongServer),
          member: { id: "m", claimed_user_id: "@eve:evil.example", claimed_device_id: "D" }
        }))
      )
      // sub server part "example.com:443" is not byte-equal to "example.com"
      unauthorised(
        yield* post(h, "/get_token", getTokenBody({
          openid_token: openIdToken(tokens.withPort),
          member: { id: "m", claimed_user_id: "@carol:example.com:443", claimed_device_id: "D" }
        }))
      )
      // ... but matches "example.com:443" verbatim (after the first colon)
      grant(
        yield* post(h, "/get_token", getTokenBody({
          openid_token: openIdToken(tokens.withPort, "example.com:443"),
          member: { id: "m", claimed_user_id: "@carol:example.com:443", claimed_device_id: "D" }
        }))
      )
      unauthorised(
        yield* post(h, "/get_token", getTokenBody({
          openid_token: openIdToken(tokens.noColon, "alice"),
          member: { id: "m", claimed_user_id: "alice", claimed_device_id: "D" }
        }))
      )
      // claimed_user_id must equal the verified sub
      unauthorised(
        yield* post(h, "/get_token", getTokenBody({
          member: { id: "m", claimed_user_id: "@mallory:example.com", claimed_device_id: "D" }
        }))
      )
      assert.strictEqual(h.rooms.created.length, 1)
    }))
})

describe("auth service: /sfu/get (legacy)", () => {
  it.scoped("plain identity sub:device, room hashed with slot m.call#ROOM, CreateRoom for full access", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(nowMs)
      const h = yield* startServer()
      const { payload } = grant(yield* post(h, "/sfu/get", sfuGetBody()))
      assert.deepStrictEqual(payload, {
        exp: nowMs / 1000 + 3600,
        iss: apiKey,
        nbf: nowMs / 1000,
        sub: "@alice:example.com:DEVICE",
        video: { canPublish: true, canSubscribe: true, canUpdateOwnMetadata: true, room: vectors.room, roomJoin: true }
      })
      assert.deepStrictEqual(h.rooms.created, [vectors.room])
    }))

  it.scoped("device_id is not validated: empty gives `@user:server:`", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      assert.strictEqual(grant(yield* post(h, "/sfu/get", sfuGetBody({ device_id: "" }))).payload.sub, "@alice:example.com:")
      const { device_id: _, ...noDevice } = sfuGetBody()
      assert.strictEqual(grant(yield* post(h, "/sfu/get", noDevice)).payload.sub, "@alice:example.com:")
    }))

  it.scoped("validation messages, verification, restricted users", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      badJson(yield* post(h, "/sfu/get", {}), "Missing room parameter")
      badJson(yield* post(h, "/sfu/get", sfuGetBody({ room: "", openid_token: {} })), "Missing room parameter")
      badJson(yield* post(h, "/sfu/get", sfuGetBody({ openid_token: {} })), "Missing OpenID token parameters")
      badJson(
        yield* post(h, "/sfu/get", sfuGetBody({ openid_token: { access_token: "x" } })),
        "Missing OpenID token parameters"
      )
      badJson(
        yield* post(h, "/sfu/get", sfuGetBody({ delay_id: "d" })),
        "The request body is missing `delay_id` or `delay_timeout`"
      )
      badJson(
        yield* post(h, "/sfu/get", sfuGetBody({ delay_timeout: 100 })),
        "The request body is missing `delay_id` or `delay_timeout`"
      )
      unauthorised(yield* post(h, "/sfu/get", sfuGetBody({ openid_token: openIdToken("bogus") })))
      unauthorised(yield* post(h, "/sfu/get", sfuGetBody({ openid_token: openIdToken(tokens.wrongServer) })))
      // the /get_token shape is not accepted here (unknown keys)
      notJson(yield* post(h, "/sfu/get", getTokenBody()))
      // restricted
      const bob = sfuGetBody({ openid_token: openIdToken(tokens.bob, "remote.example") })
      assert.strictEqual(grant(yield* post(h, "/sfu/get", bob)).payload.sub, "@bob:remote.example:DEVICE")
      assert.deepStrictEqual(h.rooms.created, [])
      badJson(
        yield* post(h, "/sfu/get", { ...bob, delay_id: "d", delay_timeout: 1000 }),
        "Delegation of delayed events is only supported for full access users"
      )
      // full access with delegation keys (delay_cs_api_url accepted and ignored)
      grant(
        yield* post(h, "/sfu/get", sfuGetBody({ delay_id: "d", delay_timeout: 1000, delay_cs_api_url: "https://x" }))
      )
      assert.deepStrictEqual(h.delegation.jobs.map((j) => [j.identity, j.delayId]), [["@alice:example.com:DEVICE", "d"]])
    }))
})

describe("auth service: /delegate_delayed_leave", () => {
  it.scoped("full-access user: 200 {} and a job for the hashed identity; no JWT, no room", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      const r = yield* post(h, "/delegate_delayed_leave", delegateBody())
      assert.strictEqual(r.status, 200)
      assert.strictEqual(r.body, "{}\n")
      assertCors(r)
      assert.deepStrictEqual(h.delegation.jobs, [{
        room: vectors.room,
        identity: vectors.identity,
        delayId: "syd_abc",
        delayTimeoutMs: 8000,
        csApiUrl: "http://127.0.0.1:8008"
      }])
      assert.deepStrictEqual(h.rooms.created, [])
    }))

  it.scoped("an empty POST is 400 M_NOT_JSON (not 404)", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      notJson(yield* request(h, "/delegate_delayed_leave", { body: "" }))
      notJson(yield* request(h, "/delegate_delayed_leave"))
    }))

  it.scoped("validation messages (no 'a'), delay pair mandatory", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      const path = "/delegate_delayed_leave"
      badJson(yield* post(h, path, {}), "The request body is missing `room_id` or `slot_id`")
      badJson(
        yield* post(h, path, delegateBody({ member: {} })),
        "The request body `member` is missing `id`, `claimed_user_id` or `claimed_device_id`"
      )
      badJson(
        yield* post(h, path, delegateBody({ openid_token: {} })),
        "The request body `openid_token` is missing `access_token` or `matrix_server_name`"
      )
      const delay = "The request body is missing `delay_id` or `delay_timeout`"
      badJson(yield* post(h, path, getTokenBody()), delay)
      badJson(yield* post(h, path, delegateBody({ delay_id: "" })), delay)
      badJson(yield* post(h, path, delegateBody({ delay_timeout: 0 })), delay)
      badJson(yield* post(h, path, delegateBody({ delay_timeout: -1 })), delay)
      assert.deepStrictEqual(h.delegation.jobs, [])
    }))

  it.scoped("401 for lookup failure and claimed-user mismatch; 403 for restricted users; 400 unresolvable CS API; 503", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      const path = "/delegate_delayed_leave"
      unauthorised(yield* post(h, path, delegateBody({ openid_token: openIdToken("bogus") })))
      unauthorised(
        yield* post(h, path, delegateBody({ member: { id: "m", claimed_user_id: "@x:example.com", claimed_device_id: "D" } }))
      )
      unauthorised(yield* post(h, path, delegateBody({ openid_token: openIdToken(tokens.wrongServer) })))
      assertError(
        yield* post(h, path, delegateBody({
          openid_token: openIdToken(tokens.bob, "remote.example"),
          member: { id: "m", claimed_user_id: "@bob:remote.example", claimed_device_id: "D" }
        })),
        403,
        "M_FORBIDDEN",
        "Delegation of delayed events is only supported for full access users"
      )
      h.delegation.shuttingDown = true
      assertError(yield* post(h, path, delegateBody()), 503, "M_UNKNOWN", "Service is shutting down")
      h.delegation.csApiUrls.clear()
      badJson(yield* post(h, path, delegateBody()), "Unable to resolve client-server API")
      assert.deepStrictEqual(h.delegation.jobs, [])
    }))
})

describe("auth service: strict decoding (Go encoding/json)", () => {
  const cases = (h: Harness) => ({
    ok: (body: string) => Effect.map(request(h, "/get_token", { body }), grant),
    notJson: (body: string, path = "/get_token") => Effect.map(request(h, path, { body }), notJson),
    badJson: (body: string, error: string, path = "/get_token") =>
      Effect.map(request(h, path, { body }), (r) => badJson(r, error))
  })
  const valid = JSON.stringify(getTokenBody())

  it.scoped("unknown keys anywhere are M_NOT_JSON", () =>
    Effect.gen(function*() {
      const t = cases(yield* startServer())
      yield* t.notJson(JSON.stringify({ ...getTokenBody(), extra: 1 }))
      yield* t.notJson(JSON.stringify({ ...getTokenBody(), extra: null }))
      yield* t.notJson(JSON.stringify(getTokenBody({ openid_token: { ...openIdToken(tokens.alice), refresh: "x" } })))
      yield* t.notJson(JSON.stringify(getTokenBody({ member: { ...getTokenBody().member, device_id: "x" } })))
      yield* t.notJson(JSON.stringify({ ...sfuGetBody(), slot_id: "m.call#ROOM" }), "/sfu/get")
      yield* t.notJson(JSON.stringify({ ...delegateBody(), foo: {} }), "/delegate_delayed_leave")
    }))

  it.scoped("wrong JSON types are M_NOT_JSON", () =>
    Effect.gen(function*() {
      const t = cases(yield* startServer())
      for (
        const overrides of [
          { delay_id: "d", delay_timeout: "8000" },
          { delay_id: "d", delay_timeout: 8000.5 },
          { delay_id: "d", delay_timeout: 8000.0 },
          { delay_id: "d", delay_timeout: 8e3 },
          { delay_timeout: true },
          { openid_token: { ...openIdToken(tokens.alice), expires_in: "3600" } },
          { openid_token: { ...openIdToken(tokens.alice), expires_in: 3600.5 } },
          { openid_token: { ...openIdToken(tokens.alice), token_type: 1 } },
          { room_id: 5 },
          { room_id: ["!room:example.com"] },
          { slot_id: { x: 1 } },
          { member: "alice" },
          { member: [] },
          { openid_token: "token" }
        ]
      ) {
        // JSON.stringify(8000.0) is "8000", so spell floats out by hand
        const body = JSON.stringify(getTokenBody(overrides))
          .replace("\"delay_timeout\":8000,", "\"delay_timeout\":8000.0,")
          .replace(/"delay_timeout":8000}/, "\"delay_timeout\":8e3}")
        yield* t.notJson(body)
      }
      yield* t.notJson("[]")
      yield* t.notJson("\"string\"")
      yield* t.notJson("42")
      yield* t.notJson("true")
      // integers beyond int64
      yield* t.notJson(valid.replace("\"expires_in\":3600", "\"expires_in\":9223372036854775808"))
    }))

  it.scoped("empty, blank and malformed bodies are M_NOT_JSON", () =>
    Effect.gen(function*() {
      const t = cases(yield* startServer())
      for (
        const body of [
          "",
          " \n\t",
          "{",
          "{\"room_id\":",
          "{'room_id':'x'}",
          "{\"room_id\":\"x\",}",
          "{\"room_id\" \"x\"}",
          valid.slice(0, -1),
          "\uFEFF" + valid,
          "nul",
          "{\"room_id\":\"a\nb\"}",
          "{\"room_id\":\"\\x\"}",
          "{\"room_id\":01}"
        ]
      ) {
        yield* t.notJson(body)
      }
    }))

  it.scoped("only the first JSON value is read; trailing bytes are ignored", () =>
    Effect.gen(function*() {
      const t = cases(yield* startServer())
      yield* t.ok(valid + "garbage")
      yield* t.ok(valid + "{\"unknown\":1}")
      yield* t.ok("\n  " + valid + "\n}}}")
    }))

  it.scoped("keys match case-insensitively and the last duplicate wins", () =>
    Effect.gen(function*() {
      const h = yield* startServer()
      const t = cases(h)
      const upper = valid
        .replace("\"room_id\"", "\"Room_ID\"")
        .replace("\"openid_token\"", "\"OPENID_TOKEN\"")
        .replace("\"claimed_user_id\"", "\"Claimed_User_Id\"")
        .replace("\"access_token\"", "\"ACCESS_token\"")
      const { payload } = yield* t.ok(upper)
      assert.strictEqual(payload.video.room, vectors.room)
      // duplicates: the last value wins, also across spellings
      const dup = valid.replace("\"room_id\":\"!room:example.com\"", "\"room_id\":\"!other:x\",\"ROOM_ID\":\"!room:example.com\"")
      assert.strictEqual((yield* t.ok(dup)).payload.video.room, vectors.room)
      yield* t.badJson(
        valid.replace("\"room_id\":\"!room:example.com\"", "\"room_id\":\"!room:example.com\",\"room_id\":\"\""),
        "The request body is missing `room_id` or `slot_id`"
      )
      // a repeated object key merges into the struct decoded so far
      const merged = JSON.stringify(getTokenBody()).replace(
        "\"member\":{\"id\":\"member-1\",",
        "\"member\":{\"id\":\"member-1\"},\"member\":{"
      )
      assert.strictEqual((yield* t.ok(merged)).payload.sub, vectors.identity)
    }))

  it.scoped("null leaves a field empty: M_BAD_JSON, not M_NOT_JSON", () =>
    Effect.gen(function*() {
      const t = cases(yield* startServer())
      yield* t.badJson(JSON.stringify(getTokenBody({ room_id: null })), "The request body is missing `room_id` or `slot_id`")
      yield* t.badJson(
        JSON.stringify(getTokenBody({ member: null })),
        "The request body `member` is missing a `id`, `claimed_user_id` or `claimed_device_id`"
      )
      yield* t.badJson(
        JSON.stringify(getTokenBody({ openid_token: { ...openIdToken(tokens.alice), access_token: null } })),
        "The request body `openid_token` is missing a `access_token` or `matrix_server_name`"
      )
      yield* t.badJson("null", "The request body is missing `room_id` or `slot_id`")
      yield* t.badJson("null", "Missing room parameter", "/sfu/get")
      // null for an int is ignored too
      yield* t.ok(JSON.stringify(getTokenBody({ delay_timeout: null, delay_id: null })))
      // a null after a value keeps the value
      yield* t.ok(valid.replace("\"slot_id\":\"m.call#ROOM\"", "\"slot_id\":\"m.call#ROOM\",\"slot_id\":null"))
    }))

  it.scoped("escapes and unicode in strings are decoded", () =>
    Effect.gen(function*() {
      const t = cases(yield* startServer())
      const escaped = valid.replace("\"!room:example.com\"", "\"\\u0021room:example\\u002ecom\"")
      assert.strictEqual((yield* t.ok(escaped)).payload.video.room, vectors.room)
    }))
})
