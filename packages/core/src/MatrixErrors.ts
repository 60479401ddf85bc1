/**
 * What a failed homeserver request means for the call lifecycle
 * (matrixrtc-protocol.md §3.1, §3.5). Pure: the lifecycle decides what to do.
 *
 * Order matters: MSC4140's "delay too long" comes as 400 or 403 and under
 * `M_UNKNOWN`, so it is recognised before the generic status rules.
 */
import { Data, Option, Schema } from "effect"
import type { MatrixError } from "./MatrixClient.ts"

/** JS-SDK's wait when a rate-limit answer names no delay. */
export const DefaultRateLimitWaitMs = 5_000

export type MatrixErrorKind = Data.TaggedEnum<{
  /** 429 / `M_LIMIT_EXCEEDED`: retry the same action after `waitMs`. */
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

const bodyField = <A>(error: MatrixError, key: string, decode: (u: unknown) => Option.Option<A>): Option.Option<A> =>
  Option.flatMap(decodeBody(error.body), (body) => (key in body ? decode(body[key]) : Option.none()))

/** The errcode, from the parsed field or, failing that, from the raw body. */
export const errcode = (error: MatrixError): Option.Option<string> =>
  Option.orElse(Option.fromNullable(error.errcode), () => bodyField(error, "errcode", decodeString))

const maxDelayErrcodes = new Set(["M_MAX_DELAY_EXCEEDED", "ORG.MATRIX.MSC4140_MAX_DELAY_EXCEEDED"])

/**
 * Every shape of MSC4140's "delay too long" seen in JS-SDK, the MSC and Synapse:
 * - `M_UNKNOWN` + `org.matrix.msc4140.errcode: M_MAX_DELAY_EXCEEDED` + `org.matrix.msc4140.max_delay`;
 * - `ORG.MATRIX.MSC4140_MAX_DELAY_EXCEEDED` + `org.matrix.msc4140.max_delay` (unstable MSC text);
 * - `M_MAX_DELAY_EXCEEDED` + `max_delay` (stable MSC text).
 * Returns the server maximum in ms when it names one.
 */
export const maxDelayExceeded = (error: MatrixError): Option.Option<{ readonly maxDelayMs: Option.Option<number> }> => {
  const code = errcode(error)
  const unstableCode = bodyField(error, "org.matrix.msc4140.errcode", decodeString)
  const matches = Option.exists(code, (c) => maxDelayErrcodes.has(c)) ||
    Option.exists(unstableCode, (c) => maxDelayErrcodes.has(c))
  if (!matches) return Option.none()
  const maxDelayMs = Option.orElse(
    bodyField(error, "org.matrix.msc4140.max_delay", decodeDelay),
    () => bodyField(error, "max_delay", decodeDelay)
  )
  return Option.some({ maxDelayMs })
}

export const isRateLimited = (error: MatrixError): boolean =>
  error.status === 429 || Option.contains(errcode(error), "M_LIMIT_EXCEEDED")

/** `retryAfterMs` (header-merged by the adapter), else body `retry_after_ms`, else 5 000 ms. */
export const rateLimitWaitMs = (error: MatrixError): number =>
  Option.getOrElse(
    Option.orElse(
      Option.flatMap(Option.fromNullable(error.retryAfterMs), decodeDelay),
      () => bodyField(error, "retry_after_ms", decodeDelay)
    ),
    () => DefaultRateLimitWaitMs
  )

export const classify = (error: MatrixError): MatrixErrorKind => {
  const maxDelay = maxDelayExceeded(error)
  if (Option.isSome(maxDelay)) return MatrixErrorKind.MaxDelayExceeded(maxDelay.value)
  if (isRateLimited(error)) return MatrixErrorKind.RateLimited({ waitMs: rateLimitWaitMs(error) })
  const code = Option.getOrUndefined(errcode(error))
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

export const isNotFound = (error: MatrixError): boolean => classify(error)._tag === "NotFound"
export const isTransient = (error: MatrixError): boolean => classify(error)._tag === "Transient"
export const isUnknownToken = (error: MatrixError): boolean => classify(error)._tag === "UnknownToken"
export const isForbidden = (error: MatrixError): boolean => classify(error)._tag === "Forbidden"
