/**
 * Tokens travel as `Redacted`: capture every log line (debug level) over
 * whole lifecycles, and every error's message and JSON, and look for the
 * access token, the OpenID tokens and the JWTs.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, HashMap, Inspectable, Layer, Logger, LogLevel, Scope, TestClock } from "effect"
import * as Call from "../src/Call.ts"
import * as Testing from "../src/testing/index.ts"
import { aliceKey, roomId, settle, TestAuthService, TestHomeserver, TestLiveKit } from "./utils.ts"

const { fail } = Testing.TestCallLog

const capture = (lines: Array<string>) =>
  Layer.mergeAll(
    Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ annotations, cause, logLevel, message, spans }) => {
        lines.push([
          logLevel.label,
          Inspectable.stringifyCircular(message),
          Cause.isEmpty(cause) ? "" : Cause.pretty(cause, { renderErrorCause: true }),
          Inspectable.stringifyCircular(HashMap.toEntries(annotations)),
          [...spans].map((s) => s.label).join(",")
        ].join(" | "))
      })
    ),
    Logger.minimumLogLevel(LogLevel.All)
  )

const secrets = Effect.gen(function*() {
  const hs = yield* TestHomeserver.TestHomeserver
  const auth = yield* TestAuthService.TestAuthService
  const jwts = yield* auth.issuedJwts
  return [hs.accessToken, ...(yield* hs.issuedOpenIdTokens), ...jwts, ...jwts.map((j) => j.split(".")[2]!)]
})

const describeError = (e: unknown) => [String(e), (e as Error).message, JSON.stringify(e), Inspectable.stringifyCircular(e)]

describe("secrets", () => {
  it.effect("no token appears in any log line or error across join, heartbeat faults, re-publish, leave and failures", () => {
    const lines: Array<string> = []
    return Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      const auth = yield* TestAuthService.TestAuthService
      const sfu = yield* TestLiveKit.TestLiveKit
      const texts: Array<string> = []

      // a whole call with heartbeat trouble and a re-publish
      const scope = yield* Scope.make()
      yield* Call.join(roomId).pipe(Scope.extend(scope))
      yield* hs.injectFault("delayed.restart", fail({ status: 429, errcode: "M_LIMIT_EXCEEDED", retryAfterMs: 1000 }))
      yield* hs.injectFault("delayed.restart", fail({ status: 500 }))
      yield* hs.injectFault("delayed.restart", fail({ status: 404, errcode: "M_NOT_FOUND" }))
      yield* TestClock.adjust(20_000)
      yield* hs.setState(roomId, "org.matrix.msc3401.call.member", aliceKey, {})
      yield* settle
      yield* hs.injectFault("delayed.send", fail({ status: 502 }), 10)
      yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      yield* TestClock.adjust(60_000)
      yield* settle

      // every typed failure
      const failures: ReadonlyArray<Effect.Effect<void>> = [
        hs.injectFault("openid", fail({ status: 401, errcode: "M_UNKNOWN_TOKEN" })),
        hs.injectFault("openid", fail({ status: 403, errcode: "M_FORBIDDEN" })),
        auth.injectFault("sfuGet", fail({ status: 401, errcode: "M_UNAUTHORIZED" })),
        sfu.injectFault("connect", fail({ status: 401 })),
        hs.injectFault("sendState", fail({ status: 403, errcode: "M_FORBIDDEN" }))
      ]
      for (const setup of failures) {
        yield* setup
        const e = yield* Effect.flip(Effect.scoped(Call.join(roomId)))
        texts.push(...describeError(e))
        yield* TestClock.adjust(10_000)
      }
      // the auth service verified real tokens, so there is something to look for
      const found = yield* secrets
      assert.isAtLeast(found.length, 8)
      // the capture saw the interesting paths, at debug level too
      for (const expected of ["rate limited", "retrying in", "not found", "vanished", "left the call", "joined the call", "DEBUG"]) {
        assert.isTrue(lines.some((l) => l.includes(expected)), `no log line with ${expected}`)
      }
      for (const secret of found) {
        for (const line of [...lines, ...texts]) {
          assert.notInclude(line, secret)
        }
      }
    }).pipe(Effect.provide(Layer.merge(Testing.layer(), capture(lines))))
  })
})
