/**
 * Branded Matrix identifiers. They are validated once at the edge, so the rest
 * of the library can rely on their shape.
 */
import { Effect, ParseResult, Schema } from "effect"

// server_name: hostname or IP literal, optional port (Matrix spec, appendix "Server name").
const serverName = String.raw`(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?`

export const UserId = Schema.String.pipe(
  Schema.pattern(new RegExp(String.raw`^@[^:\s]+:${serverName}$`)),
  Schema.maxLength(255),
  Schema.brand("UserId")
)
export type UserId = typeof UserId.Type

// Room versions up to 11 carry the server (`!opaque:server`); from room version 12
// (MSC4291) the id is the hash of the create event, `!` + 43 unpadded url-safe
// base64 chars, with no server part. Synapse 1.163 creates v12 rooms by default.
export const RoomId = Schema.String.pipe(
  Schema.pattern(new RegExp(String.raw`^!(?:[^:\s]+:${serverName}|[A-Za-z0-9_-]{43})$`)),
  Schema.maxLength(255),
  Schema.brand("RoomId")
)
export type RoomId = typeof RoomId.Type

/** Device ids are opaque; they only must be non-empty and free of whitespace. */
export const DeviceId = Schema.String.pipe(
  Schema.pattern(/^\S+$/),
  Schema.maxLength(255),
  Schema.brand("DeviceId")
)
export type DeviceId = typeof DeviceId.Type

export class InvalidId extends Schema.TaggedError<InvalidId>()("InvalidId", {
  kind: Schema.Literal("UserId", "RoomId", "DeviceId"),
  value: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    return `invalid ${this.kind}: ${JSON.stringify(this.value)}`
  }
}

const decoder = <S extends Schema.Schema<any, string>>(kind: InvalidId["kind"], schema: S) => {
  const decode = Schema.decodeUnknown(schema)
  return (value: string): Effect.Effect<S["Type"], InvalidId> =>
    decode(value).pipe(
      Effect.mapError((e) => new InvalidId({ kind, value, cause: ParseResult.TreeFormatter.formatErrorSync(e) }))
    )
}

export const userId = decoder("UserId", UserId)
export const roomId = decoder("RoomId", RoomId)
export const deviceId = decoder("DeviceId", DeviceId)

/** The server part of a user id, as the auth service compares it with `matrix_server_name`. */
export const serverNameOf = (id: UserId): string => id.slice(id.indexOf(":") + 1)
