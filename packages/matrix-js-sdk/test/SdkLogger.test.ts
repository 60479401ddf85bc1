import { assert, describe, it } from "@effect/vitest"
import { MatrixClient } from "@matrixrtc-effect/core"
import { Effect, Logger, LogLevel, Redacted } from "effect"
import { logger as sdkRootLogger } from "matrix-js-sdk/lib/logger.js"
import { vi } from "vitest"
import { layerLogin, SdkLogger } from "../src/index.ts"

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

describe("SdkLogger.setRootLevel", () => {
  it.effect("drops the SDK's global log lines below the level, in loggers the SDK makes after the call", () =>
    Effect.gen(function* () {
      const printed: Array<string> = []
      // loglevel binds the console's methods when it rebuilds, so the spies go on first.
      const spies = (["trace", "debug", "info", "log", "warn", "error"] as const).map((m) =>
        vi.spyOn(console, m).mockImplementation((...args: Array<unknown>) => void printed.push(args.join(" ")))
      )
      try {
        yield* SdkLogger.setRootLevel("warn")
        const child = sdkRootLogger.getChild("setRootLevel-test")
        child.debug("quiet-debug")
        child.info("quiet-info")
        child.warn("loud-warn")
        child.error("loud-error")
        assert.isTrue(printed.some((l) => l.includes("loud-warn")))
        assert.isTrue(printed.some((l) => l.includes("loud-error")))
        assert.isFalse(printed.some((l) => l.includes("quiet-")))
        yield* SdkLogger.setRootLevel("trace")
        sdkRootLogger.getChild("setRootLevel-test-2").debug("back-debug")
        assert.isTrue(printed.some((l) => l.includes("back-debug")))
      } finally {
        for (const s of spies) s.mockRestore()
      }
    }))
})
