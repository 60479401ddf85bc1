import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { AuthService } from "../src/AuthService.ts"
import { MatrixClient } from "../src/MatrixClient.ts"
import * as Testing from "../src/testing/index.ts"

describe("TestAuthService", () => {
  // lk-jwt-service compares the part of the OpenID `sub` after the first ':' with the claimed server name;
  // a suffix check would let "8448" pass for @alice:example.org:8448.
  it.effect("accepts a token only for the whole server name, port included", () =>
    Effect.gen(function*() {
      const auth = yield* Testing.TestAuthService.TestAuthService
      const token = yield* (yield* MatrixClient).requestOpenIdToken
      assert.strictEqual(token.matrixServerName, "example.org:8448")
      const sfuGet = (matrixServerName: string) =>
        Effect.flatMap(AuthService, (a) =>
          a.sfuGet(auth.url, { roomId: "!r:example.org:8448", deviceId: "DEV", openIdToken: { ...token, matrixServerName } }))
      yield* sfuGet("example.org:8448")
      const refused = yield* Effect.flip(sfuGet("8448"))
      assert.strictEqual(refused.reason, "Rejected")
      assert.strictEqual(refused.status, 401)
    }).pipe(Effect.provide(Testing.layer({ homeserver: { serverName: "example.org:8448" } }))))
})
