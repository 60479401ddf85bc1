/**
 * The bounded retry of one homeserver request (matrixrtc-protocol.md §3.5), shared by every step of a call
 * that talks to the homeserver: a rate limit waits as told, a network error or 5xx backs off, anything else
 * is final. Bounded in count and in time: a server asking for a longer wait than a caller can sit through gets
 * its rate-limit error back at once instead (Effect's clock would not even fire a sleep beyond 2^31-1 ms).
 */
import { Clock, Effect } from "effect"
import { MatrixError } from "./MatrixClient.ts"
import * as MatrixErrors from "./MatrixErrors.ts"

/** Bound of one homeserver request when the caller names none (the join's `requestTimeoutMs` default). */
export const DefaultRequestTimeoutMs = 10_000
/** The longest single wait `withRetry` sits through by default; a rate limit asking for more is final. */
export const DefaultMaxWaitMs = 30_000
/** By default no wait of `withRetry` ends later than this after its first attempt started. */
export const DefaultBudgetMs = 60_000

export interface RetryOptions {
  /** Rate-limited attempts retried (default 10, as JS-SDK). */
  readonly maxRateLimitRetries?: number | undefined
  /** Network errors, local timeouts and 5xx retried (default 5). */
  readonly maxNetworkRetries?: number | undefined
  /** The longest single wait (default `DefaultMaxWaitMs`); an error asking for more is final. */
  readonly maxWaitMs?: number | undefined
  /**
   * No wait is started that would end later than this after the first attempt (default `DefaultBudgetMs`); the
   * error that asked for it is then final. Each attempt is bounded by its own timeout, not by this.
   */
  readonly budgetMs?: number | undefined
}

const networkBackoff = (attempt: number) => Math.min(500 * 2 ** attempt, 5_000)

/**
 * 429 waits `retry_after` (up to 10 times); network errors and 5xx back off (up to 5 times); others are final.
 * Waits are bounded one by one and in total (see `RetryOptions`).
 */
export const withRetry = <A, R>(
  eff: Effect.Effect<A, MatrixError, R>,
  options: RetryOptions = {}
): Effect.Effect<A, MatrixError, R> => {
  const maxRate = options.maxRateLimitRetries ?? 10
  const maxNet = options.maxNetworkRetries ?? 5
  const maxWaitMs = options.maxWaitMs ?? DefaultMaxWaitMs
  const budgetMs = options.budgetMs ?? DefaultBudgetMs
  return Effect.flatMap(Clock.currentTimeMillis, (startedAt) => {
    const loop = (rate: number, net: number): Effect.Effect<A, MatrixError, R> =>
      Effect.catchTag(eff, "MatrixError", (e) => {
        const kind = MatrixErrors.classify(e)
        const next = kind._tag === "RateLimited" && rate < maxRate
          ? { wait: kind.waitMs, what: "rate limited", then: () => loop(rate + 1, net) }
          : kind._tag === "Transient" && net < maxNet
          ? { wait: networkBackoff(net), what: "request failed", then: () => loop(rate, net + 1) }
          : undefined
        if (next === undefined) return Effect.fail(e)
        return Effect.flatMap(Clock.currentTimeMillis, (now) =>
          next.wait > maxWaitMs || now + next.wait > startedAt + budgetMs
            ? Effect.zipRight(
              Effect.logDebug(`${next.what}; not waiting ${next.wait} ms (longer than this request may take)`, e.message),
              Effect.fail(e)
            )
            : Effect.logDebug(`${next.what}; retrying in ${next.wait} ms`, e.message).pipe(
              Effect.zipRight(Effect.sleep(next.wait)),
              Effect.zipRight(next.then())
            ))
      })
    return loop(0, 0)
  })
}

/** Fails `eff` with `MatrixError({reason: "Timeout"})` (a transient error) when it has not answered within `ms`. */
export const timeoutAfter = (ms: number, error = "no answer in time") =>
<A, E, R>(eff: Effect.Effect<A, E, R>): Effect.Effect<A, E | MatrixError, R> =>
  Effect.timeoutFail(eff, { duration: ms, onTimeout: () => new MatrixError({ reason: "Timeout", error }) })

/** The access token is dead (401, M_UNKNOWN_TOKEN, M_MISSING_TOKEN). */
export const isTokenRejected = (e: MatrixError): boolean => MatrixErrors.classify(e)._tag === "UnknownToken"
