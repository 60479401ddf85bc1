/**
 * What the joins of one client can share for a while: the auth service that discovery found, what the
 * homeserver supports, and an OpenID token. With it in the context, a join after the first asks the
 * homeserver for none of them and its first request is the JWT; without it, every join asks again.
 *
 * A service and a token are kept only once they got a JWT, and failures never are. An OpenID token is only
 * reused for the auth service it got a JWT from, so one token never reaches a second relying party, and only
 * while it has `openIdMarginMs` left. Element Call asks for a new token per request; Synapse's tokens are good
 * for an hour and any number of uses, and a service that refuses a kept token gets a new one (Grant.ts).
 */
import { Clock, Context, Effect, Layer, Option, Ref } from "effect"
import type { OpenIdToken, ServerSupport, Session } from "./MatrixClient.ts"

/** One kind of cached value, by key, each with its own expiry. */
export interface Memo<A> {
  /** The value under `key` if it has not expired. */
  readonly get: (key: string) => Effect.Effect<Option.Option<A>>
  /** Keeps `value` under `key` until the memo's expiry for it (nothing if that has passed already). */
  readonly set: (key: string, value: A) => Effect.Effect<void>
  /** Drops the entry under `key`; with `only`, just when the entry still is the one `only` accepts. */
  readonly forget: (key: string, only?: (value: A) => boolean) => Effect.Effect<void>
}

interface Entry<A> {
  readonly value: A
  readonly until: number
}

/** `expiresAt(value, now)`: the clock time until which a value set at `now` is kept. */
const makeMemo = <A>(expiresAt: (value: A, now: number) => number): Effect.Effect<Memo<A>> =>
  Effect.map(Ref.make<ReadonlyMap<string, Entry<A>>>(new Map()), (ref) => ({
    get: (key) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.map(Ref.get(ref), (entries) =>
          Option.filter(Option.fromNullable(entries.get(key)), (e) => e.until > now).pipe(Option.map((e) => e.value)))),
    set: (key, value) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.update(ref, (entries) => {
          // Dropping what has expired on every write keeps a long-lived process from collecting dead sessions.
          const kept = new Map([...entries].filter(([, e]) => e.until > now))
          const until = expiresAt(value, now)
          if (until > now) kept.set(key, { value, until })
          else kept.delete(key)
          return kept
        })),
    forget: (key, only) =>
      Ref.update(ref, (entries) => {
        const entry = entries.get(key)
        if (entry === undefined || (only !== undefined && !only(entry.value))) return entries
        const kept = new Map(entries)
        kept.delete(key)
        return kept
      })
  }))

export interface JoinCacheOptions {
  /** How long discovery's answer and the server's support are reused (ms, default 300 000). */
  readonly factsTtlMs?: number | undefined
  /** An OpenID token is reused until this long before it expires (ms, default 60 000). */
  readonly openIdMarginMs?: number | undefined
}

/** An OpenID token and when the homeserver issued it (its `expires_in` counts from then). */
export interface IssuedOpenIdToken {
  readonly token: OpenIdToken
  readonly receivedAt: number
}

export interface JoinCacheService {
  /** The auth-service base URL, by session and configured fallback URL. */
  readonly authServiceUrl: Memo<string>
  /** `/versions` + `/capabilities`, by session. */
  readonly serverSupport: Memo<ServerSupport>
  /** By session and the auth service it got a JWT from. */
  readonly openIdToken: Memo<IssuedOpenIdToken>
}

export class JoinCache extends Context.Tag("@matrixrtc-effect/core/JoinCache")<JoinCache, JoinCacheService>() {}

export const defaults = { factsTtlMs: 300_000, openIdMarginMs: 60_000 } as const

export const make = (options: JoinCacheOptions = {}): Effect.Effect<JoinCacheService> =>
  Effect.gen(function*() {
    const factsTtlMs = options.factsTtlMs ?? defaults.factsTtlMs
    const openIdMarginMs = options.openIdMarginMs ?? defaults.openIdMarginMs
    return {
      authServiceUrl: yield* makeMemo<string>((_, now) => now + factsTtlMs),
      serverSupport: yield* makeMemo<ServerSupport>((_, now) => now + factsTtlMs),
      openIdToken: yield* makeMemo<IssuedOpenIdToken>((t) => t.receivedAt + t.token.expiresIn * 1000 - openIdMarginMs)
    }
  })

/** A cache of its own per layer: share the layer to share the cache. */
export const layer = (options: JoinCacheOptions = {}): Layer.Layer<JoinCache> => Layer.effect(JoinCache, make(options))

/**
 * For a platform layer's `joinCache` setting: a cache with these options, or with `false` one that never
 * keeps anything (so the layer's type does not change with the setting).
 */
export const layerOrNone = (options: JoinCacheOptions | false | undefined): Layer.Layer<JoinCache> =>
  options === false ? layer({ factsTtlMs: 0, openIdMarginMs: Number.POSITIVE_INFINITY }) : layer(options)

/** The key part that tells sessions apart: another user, device or homeserver never sees our entries. */
export const sessionKey = (s: Session): string => JSON.stringify([s.homeserverUrl, s.userId, s.deviceId])
