import { assert, describe, it } from "@effect/vitest"
import { MatrixClient } from "@matrixrtc-effect/core"
import { Effect, Logger, LogLevel, Redacted } from "effect"
import { layerLogin } from "../src/index.ts"

describe("matrix-js-sdk logs", () => {
  it.live("go to Effect's logger at Debug, with the token scrubbed, and a dead homeserver is a Transport error", () =>
    Effect.gen(function* () {
      const lines: Array<{ level: string; text: string }> = []
      const capture = Logger.make(({ logLevel, message }) => {
        lines.push({ level: logLevel.label, text: (Array.isArray(message) ? message : [message]).join(" ") })
      })
      const e = yield* Effect.flip(
        Effect.flatMap(MatrixClient, (mx) => mx.whoami).pipe(
          Effect.provide(
            layerLogin({
              // Nothing listens on port 1.
              homeserverUrl: "http://127.0.0.1:1",
              accessToken: Redacted.make("syt_secret_token_value"),
              userId: "@a:localhost",
              deviceId: "DEV",
              sync: false
            })
          ),
          Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
          Logger.withMinimumLogLevel(LogLevel.All)
        )
      )
      assert.strictEqual(e.reason, "Transport")
      const http = lines.filter((l) => l.text.includes("FetchHttpApi"))
      assert.isAbove(http.length, 0)
      assert.isTrue(http.every((l) => l.level === "DEBUG"))
      assert.isFalse(lines.some((l) => l.text.includes("syt_secret_token_value")))
    }))
})
