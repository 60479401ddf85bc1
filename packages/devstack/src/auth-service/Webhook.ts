/**
 * LiveKit's webhook deliveries to `/sfu_webhook` (auth-service.md §1.5):
 * `Authorization` is a raw HS256 JWT by the API key (`iss`), whose `sha256`
 * claim is the padded standard base64 SHA-256 of the body.
 */
import { Clock, Effect, Either, Option, Schema } from "effect"
import { createHash } from "node:crypto"
import * as Jwt from "./Jwt.ts"
import { AuthServiceSettings } from "./Settings.ts"

export interface WebhookEvent {
  readonly event: string
  readonly room: string
  readonly identity: string
  /** Protobuf enum name, e.g. `CLIENT_INITIATED` (numbers are mapped for 1 only). */
  readonly disconnectReason: string
}

const WebhookBody = Schema.parseJson(Schema.Struct({
  event: Schema.optional(Schema.String),
  room: Schema.optional(Schema.NullOr(Schema.Struct({ name: Schema.optional(Schema.String) }))),
  participant: Schema.optional(Schema.NullOr(Schema.Struct({
    identity: Schema.optional(Schema.String),
    disconnectReason: Schema.optional(Schema.Union(Schema.String, Schema.Number))
  })))
}))
const WebhookClaims = Schema.parseJson(Schema.Struct({
  iss: Schema.String,
  sha256: Schema.String,
  nbf: Schema.optional(Schema.Number),
  exp: Schema.optional(Schema.Number)
}))
const decodeWebhookBody = Schema.decodeUnknownEither(WebhookBody)
const decodeWebhookClaims = Schema.decodeUnknownEither(WebhookClaims)

/** Clock skew accepted on the webhook token's `nbf`/`exp`. */
const leewaySeconds = 60

/** Checks a delivery; fails with the reason (for logs) when it is not LiveKit's. */
export const makeVerifier = Effect.gen(function*() {
  const settings = yield* AuthServiceSettings
  return (body: string, authorization: Option.Option<string>): Effect.Effect<WebhookEvent, string> =>
    Effect.gen(function*() {
      const jwt = yield* Option.match(authorization, {
        onNone: () => Effect.fail("authorization header is empty"),
        onSome: (a) => Effect.succeed(a.trim())
      })
      const claims = yield* Jwt.verify(settings.apiSecret, jwt).pipe(
        Either.flatMap((json) => Either.mapLeft(decodeWebhookClaims(json), () => "malformed claims"))
      )
      if (claims.iss !== settings.apiKey) return yield* Effect.fail("unexpected issuer")
      const now = (yield* Clock.currentTimeMillis) / 1000
      if (claims.nbf !== undefined && claims.nbf > now + leewaySeconds) return yield* Effect.fail("token not yet valid")
      if (claims.exp !== undefined && claims.exp < now - leewaySeconds) return yield* Effect.fail("token expired")
      if (claims.sha256 !== createHash("sha256").update(body, "utf8").digest("base64")) {
        return yield* Effect.fail("sha256 checksum of body does not match")
      }
      const ev = yield* Either.mapLeft(decodeWebhookBody(body), () => "malformed body")
      const reason = ev.participant?.disconnectReason
      return {
        event: ev.event ?? "",
        room: ev.room?.name ?? "",
        identity: ev.participant?.identity ?? "",
        disconnectReason: reason === 1 ? "CLIENT_INITIATED" : String(reason ?? "")
      }
    })
})
