/**
 * Maps whatever matrix-js-sdk throws onto core's `MatrixError`, at the boundary.
 *
 * Matched by shape, not `instanceof`: an app handing us its own client
 * (`layerFromClient`) may have loaded a different copy of matrix-js-sdk, and
 * then the classes are not ours.
 */
import { MatrixError, safeCause } from "@matrixrtc-effect/core"
import { Predicate } from "effect"

const numberField = (o: unknown, key: string): number | undefined =>
  Predicate.hasProperty(o, key) && typeof o[key] === "number" && Number.isFinite(o[key]) ? o[key] : undefined

const stringField = (o: unknown, key: string): string | undefined =>
  Predicate.hasProperty(o, key) && typeof o[key] === "string" ? o[key] : undefined

/**
 * `Retry-After` header (via the SDK, which also reads `retry_after_ms` for M_LIMIT_EXCEEDED), else the body field.
 * Not capped here: core's retry must see a wait it will not sit through to fail at once instead of waiting.
 */
const retryAfterOf = (e: unknown, body: unknown): number | undefined => {
  if (Predicate.hasProperty(e, "getRetryAfterMs") && Predicate.isFunction(e.getRetryAfterMs)) {
    try {
      const ms: unknown = e.getRetryAfterMs()
      if (typeof ms === "number" && Number.isFinite(ms)) return Math.max(0, ms)
    } catch {
      // The SDK throws on a malformed header; fall through to the body.
    }
  }
  return numberField(body, "retry_after_ms")
}

const errorName = (e: unknown): string | undefined =>
  e instanceof Error ? e.name : stringField(e, "name")

/** Any rejection of a matrix-js-sdk call → core `MatrixError` (status, errcode, error, full body, retry-after). */
export const toMatrixError = (e: unknown): MatrixError => {
  if (e instanceof MatrixError) return e
  const name = errorName(e)
  const cause = safeCause(e)
  // The SDK throws these before sending anything when `/versions` lacks msc4140 / msc4354; they set `name`.
  if (name === "UnsupportedDelayedEventsEndpointError" || name === "UnsupportedStickyEventsEndpointError") {
    return new MatrixError({ reason: "Unsupported", error: cause.message, cause })
  }
  const status = numberField(e, "httpStatus")
  if (status !== undefined) {
    const body: unknown = Predicate.hasProperty(e, "data") ? e.data : undefined
    const errcode = stringField(e, "errcode") ?? stringField(body, "errcode")
    const error = stringField(e, "error") ?? stringField(body, "error")
    const retryAfterMs = retryAfterOf(e, body)
    return new MatrixError({
      reason: "Http",
      status,
      ...(errcode !== undefined ? { errcode } : {}),
      ...(error !== undefined ? { error } : {}),
      ...(body !== undefined && Predicate.isObject(body) && Object.keys(body).length > 0 ? { body } : {}),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      cause
    })
  }
  if (name === "TimeoutError") return new MatrixError({ reason: "Timeout", cause })
  // ConnectionError (fetch failed), AbortError and anything unexpected: the request did not get an answer.
  return new MatrixError({ reason: "Transport", error: cause.message, cause })
}
