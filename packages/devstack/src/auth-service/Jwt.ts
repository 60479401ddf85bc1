/**
 * HS256 JWTs under the LiveKit API secret: the join tokens the service mints
 * (auth-service.md §2.4) and the tokens LiveKit signs its webhooks with (§1.5).
 *
 * Join tokens are what lk-jwt-service mints: header `{"alg":"HS256","typ":"JWT"}`,
 * claims `exp`, `iss`, `nbf`, `sub`, `video` (keys sorted, as go-jose marshals
 * its claim map), TTL 1 h.
 */
import { createHmac, timingSafeEqual } from "node:crypto"
import { Either, Redacted } from "effect"
import { goStringify } from "./GoJson.ts"

export const tokenTtlSeconds = 3600

const b64url = (s: string | Buffer) => Buffer.from(s).toString("base64url")
const fromB64url = (s: string) => Buffer.from(s, "base64url").toString("utf8")
const hs256 = (secret: Redacted.Redacted<string>, signingInput: string) =>
  createHmac("sha256", Redacted.value(secret)).update(signingInput).digest()

const header = b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}")

/** Signs the claims (already JSON); the result is a secret. */
export const sign = (secret: Redacted.Redacted<string>, claimsJson: string): Redacted.Redacted<string> => {
  const signingInput = `${header}.${b64url(claimsJson)}`
  return Redacted.make(`${signingInput}.${b64url(hs256(secret, signingInput))}`)
}

/** The claims JSON of an HS256 token whose signature `secret` made; otherwise why not (for logs). */
export const verify = (secret: Redacted.Redacted<string>, jwt: string): Either.Either<string, string> => {
  const [h, p, sig] = jwt.split(".")
  if (h === undefined || p === undefined || sig === undefined) return Either.left("malformed JWT")
  let alg: unknown
  try {
    alg = (JSON.parse(fromB64url(h)) as { alg?: unknown } | null)?.alg
  } catch {
    return Either.left("malformed JWT header")
  }
  if (alg !== "HS256") return Either.left("unexpected JWT alg")
  const expected = hs256(secret, `${h}.${p}`)
  const given = Buffer.from(sig, "base64url")
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return Either.left("bad signature")
  return Either.right(fromB64url(p))
}

export interface JoinTokenParams {
  readonly apiKey: string
  readonly apiSecret: Redacted.Redacted<string>
  readonly identity: string
  readonly room: string
  /** Seconds since the epoch. */
  readonly nowSeconds: number
}

/** The LiveKit join token of §2.4. */
export const mintJoinToken = (p: JoinTokenParams): Redacted.Redacted<string> =>
  sign(
    p.apiSecret,
    goStringify({
      exp: p.nowSeconds + tokenTtlSeconds,
      iss: p.apiKey,
      nbf: p.nowSeconds,
      sub: p.identity,
      video: {
        canPublish: true,
        canSubscribe: true,
        canUpdateOwnMetadata: true,
        room: p.room,
        roomJoin: true
      }
    })
  )
