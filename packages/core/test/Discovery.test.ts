import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option, Ref, TestClock } from "effect"
import type { JwtFetchFailed } from "../src/CallError.ts"
import * as Discovery from "../src/Discovery.ts"
import { MatrixClient, MatrixError } from "../src/MatrixClient.ts"
import type { MatrixClientService } from "../src/MatrixClient.ts"

const url = "https://rtc.example.org/livekit/jwt"

const client = (partial: Partial<MatrixClientService>): MatrixClientService =>
  ({
    rtcTransports: Effect.fail(new MatrixError({ reason: "Http", status: 404, errcode: "M_UNRECOGNIZED" })),
    wellKnown: Effect.fail(new MatrixError({ reason: "Http", status: 404 })),
    ...partial
  }) as MatrixClientService

const discover = (partial: Partial<MatrixClientService>, config: Discovery.DiscoveryConfig = {}) =>
  Discovery.discoverAuthService(config).pipe(Effect.provideService(MatrixClient, client(partial)))

describe("Discovery: decoding", () => {
  it("first usable livekit transport from the transports endpoint", () => {
    const json = {
      rtc_transports: [
        { type: "other", livekit_service_url: "https://x" },
        { type: "livekit" },
        { type: "livekit", livekit_service_url: 5 },
        { type: "livekit", livekit_service_url: "" },
        "junk",
        { type: "livekit", livekit_service_url: url, extra: true },
        { type: "livekit", livekit_service_url: "https://second" }
      ]
    }
    assert.deepStrictEqual(
      Option.map(Discovery.fromTransportsResponse(json), (t) => t.livekit_service_url),
      Option.some(url)
    )
    assert.isTrue(Option.isNone(Discovery.fromTransportsResponse({ rtc_transports: [] })))
    assert.isTrue(Option.isNone(Discovery.fromTransportsResponse({ rtc_transports: {} })))
    assert.isTrue(Option.isNone(Discovery.fromTransportsResponse(null)))
  })

  it(".well-known org.matrix.msc4143.rtc_foci", () => {
    const wk = { "m.homeserver": { base_url: "https://hs" }, "org.matrix.msc4143.rtc_foci": [{ type: "livekit", livekit_service_url: url }] }
    assert.deepStrictEqual(Option.map(Discovery.fromWellKnown(wk), (t) => t.livekit_service_url), Option.some(url))
    assert.isTrue(Option.isNone(Discovery.fromWellKnown({ "m.homeserver": {} })))
  })
})

describe("Discovery: discoverAuthService", () => {
  it.effect("transports endpoint first", () =>
    Effect.gen(function*() {
      const found = yield* discover({
        rtcTransports: Effect.succeed({ rtc_transports: [{ type: "livekit", livekit_service_url: url }] }),
        wellKnown: Effect.succeed({ "org.matrix.msc4143.rtc_foci": [{ type: "livekit", livekit_service_url: "https://wk" }] })
      }, { configuredUrl: "https://config" })
      assert.deepStrictEqual(found, { livekitServiceUrl: url, source: "transports" })
    }))

  it.effect("falls back to .well-known, then to the configured URL", () =>
    Effect.gen(function*() {
      const wk = yield* discover({
        rtcTransports: Effect.succeed({ rtc_transports: [] }),
        wellKnown: Effect.succeed({ "org.matrix.msc4143.rtc_foci": [{ type: "livekit", livekit_service_url: "https://wk" }] })
      })
      assert.deepStrictEqual(wk, { livekitServiceUrl: "https://wk", source: "wellKnown" })
      const cfg = yield* discover({}, { configuredUrl: "https://config" })
      assert.deepStrictEqual(cfg, { livekitServiceUrl: "https://config", source: "config" })
    }))

  it.effect("nothing anywhere: NoAuthService, with every step's failure in the cause", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(discover({ wellKnown: Effect.succeed({}) }))
      const e: JwtFetchFailed = error
      assert.strictEqual(e.reason, "NoAuthService")
      assert.deepStrictEqual(e.cause, {
        steps: [
          { step: "transports", reason: "RequestFailed", status: 404, errcode: "M_UNRECOGNIZED" },
          { step: "wellKnown", reason: "NoLivekitTransport" },
          { step: "config", reason: "NotConfigured" }
        ]
      })
    }))

  it.effect("rate-limited transports requests are retried after the advised wait (TestClock)", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make(0)
      const rtcTransports = Ref.updateAndGet(calls, (n) => n + 1).pipe(
        Effect.flatMap((n) =>
          n < 3
            ? Effect.fail(new MatrixError({ reason: "Http", status: 429, errcode: "M_LIMIT_EXCEEDED", retryAfterMs: 2_000 }))
            : Effect.succeed({ rtc_transports: [{ type: "livekit", livekit_service_url: url }] })
        )
      )
      const fiber = yield* Effect.fork(discover({ rtcTransports }))
      yield* TestClock.adjust(1_999)
      assert.strictEqual(yield* Ref.get(calls), 1)
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* Ref.get(calls), 2)
      yield* TestClock.adjust(2_000)
      const found = yield* Fiber.join(fiber)
      assert.strictEqual(found.source, "transports")
      assert.strictEqual(yield* Ref.get(calls), 3)
    }))

  it.effect("a rate limit asking for 30 days is not waited for: the step ends at once and the next one is tried", () =>
    Effect.gen(function*() {
      const found = yield* discover({
        rtcTransports: Effect.fail(
          new MatrixError({ reason: "Http", status: 429, errcode: "M_LIMIT_EXCEEDED", retryAfterMs: 30 * 24 * 3600 * 1000 })
        ),
        wellKnown: Effect.succeed({ "org.matrix.msc4143.rtc_foci": [{ type: "livekit", livekit_service_url: url }] })
      })
      assert.deepStrictEqual(found, { livekitServiceUrl: url, source: "wellKnown" })
    }))

  it.effect("a transports endpoint that never answers ends its step after requestTimeoutMs; .well-known is asked", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(discover({
        rtcTransports: Effect.never,
        wellKnown: Effect.succeed({ "org.matrix.msc4143.rtc_foci": [{ type: "livekit", livekit_service_url: url }] })
      }, { requestTimeoutMs: 3_000 }))
      yield* TestClock.adjust(3_000)
      assert.deepStrictEqual(yield* Fiber.join(fiber), { livekitServiceUrl: url, source: "wellKnown" })
    }))

  it.effect("neither endpoint answering: NoAuthService once both have timed out (default 10 s each)", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(discover({ rtcTransports: Effect.never, wellKnown: Effect.never }))
      yield* TestClock.adjust(10_000)
      yield* TestClock.adjust(10_000)
      const e = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(e.reason, "NoAuthService")
    }))
})
