/**
 * What a failed homeserver request means for the call lifecycle
 * (matrixrtc-protocol.md §3.1, §3.5). Pure: the lifecycle decides what to do.
 * One entry point, `classify`: callers match on the kind it returns, so an
 * error is read once however many cases a caller tells apart.
 *
 * Order matters: MSC4140's "delay too long" comes as 400 or 403 and under
 * `M_UNKNOWN`, so it is recognised before the generic status rules.
 */
import { Data, Option, Schema } from "effect"
import type { MatrixError } from "./MatrixClient.ts"

/** JS-SDK's wait when a rate-limit answer names no delay. */
export const DefaultRateLimitWaitMs = 5_000

export type MatrixErrorKind = Data.TaggedEnum<{
  /**
   * 429 / `M_LIMIT_EXCEEDED`: retry the same action after `waitMs`, which is what the server asked, however long:
   * whether to wait that long is the caller's call (`MatrixRetry` gives up on a wait beyond its bounds).
   */
  RateLimited: { readonly waitMs: number }
  /** MSC4140 delay above the server maximum: lower the delay to `maxDelayMs` (if given) and retry. */
  MaxDelayExceeded: { readonly maxDelayMs: Option.Option<number> }
  /** The server lacks the feature/endpoint (`reason: "Unsupported"`, `M_UNRECOGNIZED`). */
  Unsupported: {}
  /** 404 / `M_NOT_FOUND`, e.g. a delayed event the server already sent or forgot. */
  NotFound: {}
  /** 403 `M_FORBIDDEN`, e.g. missing power level for the call-member state event. */
  Forbidden: {}
  /** 401 `M_UNKNOWN_TOKEN` / `M_MISSING_TOKEN`: the session is gone. */
  UnknownToken: {}
  /** Network failure, local timeout or 5xx: retry after a pause. */
  Transient: {}
  Other: {}
}>
export const MatrixErrorKind = Data.taggedEnum<MatrixErrorKind>()

const Body = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const decodeBody = Schema.decodeUnknownOption(Body)
const decodeString = Schema.decodeUnknownOption(Schema.String)
const decodeDelay = Schema.decodeUnknownOption(Schema.NonNegative)

/** What `classify` reads of an error, each part once. */
interface Parts {
  readonly error: MatrixError
  readonly body: Readonly<Record<string, unknown>>
  /** From the parsed field or, failing that, from the raw body. */
  readonly errcode: string | undefined
}

const field = <A>(body: Parts["body"], key: string, decode: (u: unknown) => Option.Option<A>): Option.Option<A> =>
  key in body ? decode(body[key]) : Option.none()

const maxDelayErrcodes = new Set(["M_MAX_DELAY_EXCEEDED", "ORG.MATRIX.MSC4140_MAX_DELAY_EXCEEDED"])

/**
 * Every shape of MSC4140's "delay too long" seen in JS-SDK, the MSC and Synapse:
 * - `M_UNKNOWN` + `org.matrix.msc4140.errcode: M_MAX_DELAY_EXCEEDED` + `org.matrix.msc4140.max_delay`;
 * - `ORG.MATRIX.MSC4140_MAX_DELAY_EXCEEDED` + `org.matrix.msc4140.max_delay` (unstable MSC text);
 * - `M_MAX_DELAY_EXCEEDED` + `max_delay` (stable MSC text).
 */
const isMaxDelayExceeded = ({ body, errcode }: Parts): boolean =>
  (errcode !== undefined && maxDelayErrcodes.has(errcode)) ||
  Option.exists(field(body, "org.matrix.msc4140.errcode", decodeString), (c) => maxDelayErrcodes.has(c))

/** The server maximum in ms, when the max-delay error names one. */
const maxDelayMs = ({ body }: Parts): Option.Option<number> =>
  Option.orElse(field(body, "org.matrix.msc4140.max_delay", decodeDelay), () => field(body, "max_delay", decodeDelay))

/** `retryAfterMs` (header-merged by the adapter), else body `retry_after_ms`, else 5 000 ms. */
const rateLimitWaitMs = ({ body, error }: Parts): number =>
  Option.getOrElse(
    Option.orElse(
      Option.flatMap(Option.fromNullable(error.retryAfterMs), decodeDelay),
      () => field(body, "retry_after_ms", decodeDelay)
    ),
    () => DefaultRateLimitWaitMs
  )

export const classify = (error: MatrixError): MatrixErrorKind => {
  const body = Option.getOrElse(decodeBody(error.body), () => ({}))
  const code = error.errcode ?? Option.getOrUndefined(field(body, "errcode", decodeString))
  const parts: Parts = { error, body, errcode: code }
  if (isMaxDelayExceeded(parts)) return MatrixErrorKind.MaxDelayExceeded({ maxDelayMs: maxDelayMs(parts) })
  if (error.status === 429 || code === "M_LIMIT_EXCEEDED") {
    return MatrixErrorKind.RateLimited({ waitMs: rateLimitWaitMs(parts) })
  }
  if (error.reason === "Unsupported" || code === "M_UNRECOGNIZED") return MatrixErrorKind.Unsupported()
  if (error.reason === "Transport" || error.reason === "Timeout") return MatrixErrorKind.Transient()
  if (code === "M_UNKNOWN_TOKEN" || code === "M_MISSING_TOKEN" || error.status === 401) {
    return MatrixErrorKind.UnknownToken()
  }
  if (code === "M_NOT_FOUND" || error.status === 404) return MatrixErrorKind.NotFound()
  if (code === "M_FORBIDDEN" || error.status === 403) return MatrixErrorKind.Forbidden()
  if (error.status !== undefined && error.status >= 500) return MatrixErrorKind.Transient()
  return MatrixErrorKind.Other()
}
