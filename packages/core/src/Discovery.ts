/**
 * Finding the MatrixRTC auth service (matrixrtc-protocol.md §2.3,
 * auth-service.md §5.2): the homeserver's transports endpoint, then the legacy
 * `.well-known` key that older EC/EX builds still read, then a configured URL.
 */
import { Effect, Option, Schema } from "effect"
import { JwtFetchFailed } from "./CallError.ts"
import { MatrixClient } from "./MatrixClient.ts"
import type { MatrixError } from "./MatrixClient.ts"
import * as MatrixRetry from "./MatrixRetry.ts"

/** `isLivekitTransportConfig`: `type: "livekit"` with a (non-empty) auth-service base URL. */
export const LivekitTransportConfig = Schema.Struct({
  type: Schema.Literal("livekit"),
  livekit_service_url: Schema.NonEmptyTrimmedString
})
export type LivekitTransportConfig = typeof LivekitTransportConfig.Type

const TransportsResponse = Schema.Struct({ rtc_transports: Schema.Array(Schema.Unknown) })
const WellKnownFoci = Schema.Struct({ "org.matrix.msc4143.rtc_foci": Schema.Array(Schema.Unknown) })

const decodeTransport = Schema.decodeUnknownOption(LivekitTransportConfig)
const decodeTransports = Schema.decodeUnknownOption(TransportsResponse)
const decodeWellKnown = Schema.decodeUnknownOption(WellKnownFoci)

/** The first entry that is a usable LiveKit transport; other types and broken entries are skipped. */
export const firstLivekitTransport = (entries: ReadonlyArray<unknown>): Option.Option<LivekitTransportConfig> =>
  Option.firstSomeOf(entries.map((entry) => decodeTransport(entry)))

/** From `GET /_matrix/client/unstable/org.matrix.msc4143/rtc/transports`: `{"rtc_transports":[…]}`. */
export const fromTransportsResponse = (json: unknown): Option.Option<LivekitTransportConfig> =>
  Option.flatMap(decodeTransports(json), (r) => firstLivekitTransport(r.rtc_transports))

/** From `/.well-known/matrix/client`: `{"org.matrix.msc4143.rtc_foci":[…]}`. */
export const fromWellKnown = (json: unknown): Option.Option<LivekitTransportConfig> =>
  Option.flatMap(decodeWellKnown(json), (r) => firstLivekitTransport(r["org.matrix.msc4143.rtc_foci"]))

export type DiscoverySource = "transports" | "wellKnown" | "config"

export interface DiscoveredAuthService {
  readonly livekitServiceUrl: string
  readonly source: DiscoverySource
}

/** Why one discovery step gave nothing; collected into the final error's `cause`. */
export interface StepFailure {
  readonly step: DiscoverySource
  readonly reason: "RequestFailed" | "NoLivekitTransport" | "NotConfigured"
  readonly status?: number | undefined
  readonly errcode?: string | undefined
}

export interface DiscoveryConfig {
  /** Last resort, e.g. from app config (EC's `livekit.livekit_service_url`). */
  readonly configuredUrl?: string | undefined
  /**
   * Rate-limited transports/.well-known requests are retried this often (default 3), waiting as told within
   * `MatrixRetry`'s bounds; a wait beyond them ends the step.
   */
  readonly maxRateLimitRetries?: number | undefined
  /** Bound of each transports/.well-known request (default `MatrixRetry.DefaultRequestTimeoutMs`); then the next step. */
  readonly requestTimeoutMs?: number | undefined
}

/** Retries 429s like EC's discovery does; any other failure, a timeout too, ends the step. */
const step = (
  source: DiscoverySource,
  request: Effect.Effect<unknown, MatrixError>,
  read: (json: unknown) => Option.Option<LivekitTransportConfig>,
  config: DiscoveryConfig
): Effect.Effect<DiscoveredAuthService, StepFailure> =>
  MatrixRetry.withRetry(
    MatrixRetry.timeoutAfter(config.requestTimeoutMs ?? MatrixRetry.DefaultRequestTimeoutMs)(request),
    { maxRateLimitRetries: config.maxRateLimitRetries ?? 3, maxNetworkRetries: 0 }
  ).pipe(
    Effect.mapError((e): StepFailure => ({ step: source, reason: "RequestFailed", status: e.status, errcode: e.errcode })),
    Effect.flatMap((json) =>
      Option.match(read(json), {
        onNone: () => Effect.fail<StepFailure>({ step: source, reason: "NoLivekitTransport" }),
        onSome: (t) => Effect.succeed({ livekitServiceUrl: t.livekit_service_url, source })
      })
    ),
    Effect.tapError((f) => Effect.logDebug("auth service discovery step gave nothing", f))
  )

/**
 * The auth-service base URL for our homeserver. Fails with
 * `JwtFetchFailed({reason: "NoAuthService"})` whose `cause` lists every step's failure.
 */
export const discoverAuthService = Effect.fn("Discovery.discoverAuthService")(function*(config: DiscoveryConfig = {}) {
  const client = yield* MatrixClient
  const configured = Option.flatMap(Option.fromNullable(config.configuredUrl), (url) =>
    decodeTransport({ type: "livekit", livekit_service_url: url.trim() }))
  const fromConfig: Effect.Effect<DiscoveredAuthService, StepFailure> = Option.match(configured, {
    onNone: () => Effect.fail({ step: "config", reason: "NotConfigured" }),
    onSome: (t) => Effect.succeed({ livekitServiceUrl: t.livekit_service_url, source: "config" })
  })
  return yield* Effect.validateFirst(
    [
      step("transports", client.rtcTransports, fromTransportsResponse, config),
      step("wellKnown", client.wellKnown, fromWellKnown, config),
      fromConfig
    ],
    (attempt) => attempt
  ).pipe(
    Effect.mapError((steps) => new JwtFetchFailed({ reason: "NoAuthService", cause: { steps } })),
    Effect.tap((found) => Effect.annotateCurrentSpan("source", found.source))
  )
})
