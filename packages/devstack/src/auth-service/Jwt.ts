/**
 * LiveKit access tokens as lk-jwt-service mints them (auth-service.md §2.4):
 * HS256, header `{"alg":"HS256","typ":"JWT"}`, claims `exp`, `iss`, `nbf`,
 * `sub`, `video` (keys sorted, as go-jose marshals its claim map), TTL 1 h.
 */
import { createHmac } from "node:crypto"
import { Redacted } from "effect"
import { goStringify } from "./GoJson.ts"

export const tokenTtlSeconds = 3600

export interface JoinTokenParams {
  readonly apiKey: string
  readonly apiSecret: Redacted.Redacted<string>
  readonly identity: string
  readonly room: string
  /** Seconds since the epoch. */
  readonly nowSeconds: number
}

const b64url = (s: string | Buffer) => Buffer.from(s).toString("base64url")

/** Builds the signed JWT; the result is a secret. */
export const mintJoinToken = (p: JoinTokenParams): Redacted.Redacted<string> => {
  const header = b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}")
  const claims = {
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
  }
  const signingInput = `${header}.${b64url(goStringify(claims))}`
  const signature = createHmac("sha256", Redacted.value(p.apiSecret)).update(signingInput).digest("base64url")
  return Redacted.make(`${signingInput}.${signature}`)
}
