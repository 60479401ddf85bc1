import { assert, describe, it } from "@effect/vitest"
import { safeCause, scrubSecrets } from "../src/ScrubSecrets.ts"

// A LiveKit-shaped JWT (header.payload.signature) and a Synapse access token.
const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJAYTpsb2NhbGhvc3QifQ.c2lnbmF0dXJl"
const syt = "syt_YWxpY2U_secretpart_0abc12"

describe("scrubSecrets", () => {
  it("removes access_token query values but keeps the rest of the URL", () => {
    const out = scrubSecrets(`could not connect to wss://sfu.local/rtc?access_token=${jwt}&auto_subscribe=1`)
    assert.notInclude(out, jwt)
    assert.strictEqual(out, "could not connect to wss://sfu.local/rtc?access_token=<redacted>&auto_subscribe=1")
    // The parameter name is matched case-insensitively, and the value ends at a quote or bracket.
    assert.strictEqual(scrubSecrets(`"url":"/x?ACCESS_TOKEN=abc"`), `"url":"/x?ACCESS_TOKEN=<redacted>"`)
  })

  it("removes bearer values, bare JWTs and syt_ tokens", () => {
    assert.strictEqual(scrubSecrets(`Authorization: Bearer ${syt}`), "Authorization: Bearer <redacted>")
    assert.strictEqual(scrubSecrets(`token ${jwt} expired`), "token <redacted-jwt> expired")
    assert.strictEqual(scrubSecrets(`M_UNKNOWN_TOKEN for ${syt}.`), "M_UNKNOWN_TOKEN for <redacted-token>.")
  })

  it("leaves text without credentials unchanged", () => {
    const text = "M_LIMIT_EXCEEDED: Too many requests (HTTP 429) at http://127.0.0.1:8008/_matrix/client/v3/sync?since=s12_3"
    assert.strictEqual(scrubSecrets(text), text)
  })
})

describe("safeCause", () => {
  it("keeps an error's name and scrubbed message and drops everything else it carries", () => {
    const e = Object.assign(new Error(`request to /x?access_token=${syt} failed`), {
      url: `/x?access_token=${syt}`,
      headers: { Authorization: `Bearer ${syt}` }
    })
    e.name = "ConnectionError"
    const out = safeCause(e)
    assert.strictEqual(out.name, "ConnectionError")
    assert.strictEqual(out.message, "request to /x?access_token=<redacted> failed")
    assert.notProperty(out, "url")
    assert.notProperty(out, "headers")
    assert.notInclude(JSON.stringify(out), syt)
  })

  it("turns a non-Error rejection into an Error with its scrubbed text", () => {
    const out = safeCause(`Bearer ${jwt}`)
    assert.instanceOf(out, Error)
    assert.strictEqual(out.message, "Bearer <redacted>")
  })
})
