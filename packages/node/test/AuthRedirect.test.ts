// Core's auth-service client over Node's real fetch: a redirect must not carry the
// OpenID token on (fetch re-sends a POST body on 307/308, even from https to http).
import { assert, describe, it } from "@effect/vitest"
import { FetchHttpClient } from "@effect/platform"
import { AuthServiceHttp } from "@matrixrtc-effect/core"
import { Effect, Redacted, Ref } from "effect"
import { fakeServer, json } from "./support/loopback.ts"

const secret = "syt_openid_token_that_must_stay_home"
const request = {
  roomId: "!abc:example.org",
  deviceId: "DEVICEA",
  openIdToken: { accessToken: Redacted.make(secret), tokenType: "Bearer", matrixServerName: "example.org", expiresIn: 3600 }
}

describe("AuthServiceHttp over fetch: redirects", () => {
  for (const status of [307, 308]) {
    it.scopedLive(`a ${status} to another server: that server gets nothing, the error is a final Rejected`, () =>
      Effect.gen(function*() {
        const reached = yield* Ref.make(0)
        const elsewhere = yield* fakeServer((_req, res) => {
          Effect.runSync(Ref.update(reached, (n) => n + 1))
          json(res, 500, {})
        })
        const asked = yield* Ref.make(0)
        const redirecting = yield* fakeServer((_req, res) => {
          Effect.runSync(Ref.update(asked, (n) => n + 1))
          res.writeHead(status, { location: `${elsewhere.url}/sfu/get` })
          res.end()
        })
        const service = yield* AuthServiceHttp.make().pipe(Effect.provide(FetchHttpClient.layer))
        const e = yield* Effect.flip(service.sfuGet(redirecting.url, request))
        assert.strictEqual(e._tag, "JwtFetchFailed")
        assert.strictEqual(e.reason, "Rejected")
        assert.strictEqual(e.status, status)
        assert.include(e.message, "redirect")
        assert.notInclude(JSON.stringify(e), secret)
        assert.strictEqual(yield* Ref.get(asked), 1)
        assert.strictEqual(yield* Ref.get(reached), 0)
      }))
  }
})
