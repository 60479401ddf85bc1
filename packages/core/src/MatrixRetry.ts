/**
 * The bounded retry of one homeserver request (matrixrtc-protocol.md §3.5), shared by every step of a call
 * that talks to the homeserver: a rate limit waits as told, a network error or 5xx backs off, anything else
 * is final.
 */
import { Effect } from "effect"
import type { MatrixError } from "./MatrixClient.ts"
import * as MatrixErrors from "./MatrixErrors.ts"

const maxRateLimitRetries = 10
const maxNetworkRetries = 5
const networkBackoff = (attempt: number) => Math.min(500 * 2 ** attempt, 5_000)

/** 429 waits `retry_after` (up to 10 times); network errors and 5xx back off (up to 5 times); others are final. */
export const withRetry = <A, R>(eff: Effect.Effect<A, MatrixError, R>): Effect.Effect<A, MatrixError, R> => {
  const loop = (rate: number, net: number): Effect.Effect<A, MatrixError, R> =>
    Effect.catchTag(eff, "MatrixError", (e) => {
      const kind = MatrixErrors.classify(e)
      if (kind._tag === "RateLimited" && rate < maxRateLimitRetries) {
        return Effect.logDebug(`rate limited; retrying in ${kind.waitMs} ms`, e.message).pipe(
          Effect.zipRight(Effect.sleep(kind.waitMs)),
          Effect.zipRight(loop(rate + 1, net))
        )
      }
      if (kind._tag === "Transient" && net < maxNetworkRetries) {
        const wait = networkBackoff(net)
        return Effect.logDebug(`request failed; retrying in ${wait} ms`, e.message).pipe(
          Effect.zipRight(Effect.sleep(wait)),
          Effect.zipRight(loop(rate, net + 1))
        )
      }
      return Effect.fail(e)
    })
  return loop(0, 0)
}

/** The access token is dead (401, M_UNKNOWN_TOKEN, M_MISSING_TOKEN). */
export const isTokenRejected = (e: MatrixError): boolean => MatrixErrors.classify(e)._tag === "UnknownToken"
