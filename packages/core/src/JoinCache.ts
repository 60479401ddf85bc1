/**
 * What the joins of one client can share for a while: the auth service that discovery found, what the
 * homeserver supports, and an OpenID token. With it in the context, a join after the first asks the
 * homeserver for none of them and its first request is the JWT; without it, every join asks again.
 *
 * An OpenID token is only reused for the auth service it was first sent to, so one token never reaches a
 * second relying party, and only while it has `openIdMarginMs` left. Failures are never kept.
 */
import { Clock, Context, Effect, Layer, Option, Ref } from "effect"
import type { OpenIdToken, ServerSupport, Session } from "./MatrixClient.ts"

/** One kind of cached value, by key, each with its own expiry. */
export interface Memo<A> {
  /** The value under `key` if it has not expired. */
  readonly get: (key: string) => Effect.Effect<Option.Option<A>>
  /** Keeps `value` under `key` for as long as the memo's lifetime gives it (nothing if that is not positive). */
  readonly set: (key: string, value: A) => Effect.Effect<void>
  readonly forget: (key: string) => Effect.Effect<void>
}

interface Entry<A> {
  readonly value: A
  readonly until: number
}

const makeMemo = <A>(lifetimeMs: (value: A) => number): Effect.Effect<Memo<A>> =>
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
          const lifetime = lifetimeMs(value)
          if (lifetime > 0) kept.set(key, { value, until: now + lifetime })
          else kept.delete(key)
          return kept
        })),
    forget: (key) =>
      Ref.update(ref, (entries) => {
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

export interface JoinCacheService {
  /** The auth-service base URL, by session and configured fallback URL. */
  readonly authServiceUrl: Memo<string>
  /** `/versions` + `/capabilities`, by session. */
  readonly serverSupport: Memo<ServerSupport>
  /** By session and the auth service it was sent to. */
  readonly openIdToken: Memo<OpenIdToken>
}

export class JoinCache extends Context.Tag("@matrixrtc-effect/core/JoinCache")<JoinCache, JoinCacheService>() {}

export const defaults = { factsTtlMs: 300_000, openIdMarginMs: 60_000 } as const

export const make = (options: JoinCacheOptions = {}): Effect.Effect<JoinCacheService> =>
  Effect.gen(function*() {
    const factsTtlMs = options.factsTtlMs ?? defaults.factsTtlMs
    const openIdMarginMs = options.openIdMarginMs ?? defaults.openIdMarginMs
    return {
      authServiceUrl: yield* makeMemo<string>(() => factsTtlMs),
      serverSupport: yield* makeMemo<ServerSupport>(() => factsTtlMs),
      openIdToken: yield* makeMemo<OpenIdToken>((t) => t.expiresIn * 1000 - openIdMarginMs)
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
