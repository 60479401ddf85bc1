import { assert, describe, it } from "@effect/vitest"
import { MatrixClient } from "@matrixrtc-effect/core"
import { Effect, Logger, LogLevel, Redacted } from "effect"
import { logger as sdkRootLogger } from "matrix-js-sdk/lib/logger.js"
import { vi } from "vitest"
import { layerLogin, MatrixSdkClient, SdkLogger } from "../src/index.ts"

/** Runs `self` with every log line (level and text) collected, at every level. */
const capturing = <A, E>(self: (lines: ReadonlyArray<{ level: string; text: string }>) => Effect.Effect<A, E>) =>
  Effect.suspend(() => {
    const lines: Array<{ level: string; text: string }> = []
    const capture = Logger.make(({ logLevel, message }) => {
      lines.push({ level: logLevel.label, text: (Array.isArray(message) ? message : [message]).join(" ") })
    })
    return self(lines).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
  })

const deadHomeserver = {
  // Nothing listens on port 1.
  homeserverUrl: "http://127.0.0.1:1",
  accessToken: Redacted.make("syt_secret_token_value"),
  userId: "@a:localhost",
  deviceId: "DEV",
  sync: false
}

describe("matrix-js-sdk logs", () => {
  it.live("go to Effect's logger at Debug, and a dead homeserver is a Transport error", () =>
    capturing((lines) =>
      Effect.gen(function* () {
        const e = yield* Effect.flip(
          Effect.flatMap(MatrixClient, (mx) => mx.whoami).pipe(Effect.provide(layerLogin(deadHomeserver)))
        )
        assert.strictEqual(e.reason, "Transport")
        const http = lines.filter((l) => l.text.includes("FetchHttpApi"))
        assert.isAbove(http.length, 0)
        assert.isTrue(http.every((l) => l.level === "DEBUG"))
      })
    ))

  // The SDK strips query parameters from the URLs it logs itself, but it also logs errors and
  // objects it was handed: whatever reaches the logger it was given must come out scrubbed.
  it.live("lines that reach the client's logger carrying credentials come out scrubbed, at every level and in child loggers", () =>
    capturing((lines) =>
      Effect.gen(function* () {
        const sdk = yield* MatrixSdkClient.pipe(Effect.provide(layerLogin(deadHomeserver)))
        // The logger layerLogin gave the SDK, as its HTTP layer calls it.
        const logger = sdk.http.opts.logger
        assert.isDefined(logger)
        const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"
        logger!.debug(`GET http://hs/_matrix/client/v3/sync?access_token=syt_query_secret&timeout=30000`)
        logger!.info("headers", { authorization: "Bearer syt_header_secret" })
        logger!.warn(new Error(`connect failed: wss://sfu/rtc?access_token=${jwt}`))
        logger!.getChild("sync").error("token", "syt_child_secret_0123")
        const text = lines.map((l) => l.text).join("\n")
        for (const secret of ["syt_query_secret", "syt_header_secret", jwt, "eyJhbGciOiJIUzI1NiJ9", "syt_child_secret_0123"]) {
          assert.notInclude(text, secret)
        }
        // The rest of each line is kept, so the scrubbing is what removed the secrets.
        assert.include(text, "GET http://hs/_matrix/client/v3/sync?access_token=<redacted>&timeout=30000")
        assert.include(text, "Bearer <redacted>")
        assert.include(text, "Error: connect failed: wss://sfu/rtc?access_token=<redacted>")
        assert.include(text, "token <redacted-token>")
        assert.deepStrictEqual(lines.map((l) => l.level).slice(-4), ["DEBUG", "DEBUG", "DEBUG", "WARN"])
      })
    ))
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
