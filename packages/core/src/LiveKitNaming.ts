/**
 * LiveKit room-name and participant-identity recipes of the MatrixRTC auth
 * service (lk-jwt-service ≥ v0.4.3; auth-service.md §2.3).
 *
 * - room  = unpadded standard base64 of SHA-256(JSON `[room_id, slot_id]`)
 * - ident = unpadded standard base64 of SHA-256(JSON `[user_id, device_id, member_id]`)
 * - legacy `/sfu/get` ident = `user_id + ":" + device_id` (plain)
 *
 * The JSON is `JSON.stringify` of a string array (compact). Go's `json.Marshal`
 * additionally escapes `<`, `>`, `&`, U+2028 and U+2029, so hashes differ from
 * the Go service only for ids containing those characters (the Rust port and
 * matrix-js-sdk agree with `JSON.stringify`).
 *
 * Platform-free: uses the Web Crypto `crypto.subtle` and `TextEncoder` globals,
 * typed locally because core compiles without DOM/Node types.
 */
import { Effect } from "effect"

interface SubtleDigest {
  digest(algorithm: "SHA-256", data: Uint8Array): Promise<ArrayBuffer>
}
interface Utf8Encoder {
  encode(input: string): Uint8Array
}
interface WebGlobals {
  readonly crypto: { readonly subtle: SubtleDigest }
  readonly TextEncoder: new () => Utf8Encoder
}

const webGlobals = (): WebGlobals => globalThis as unknown as WebGlobals

/** The slot Element Call uses, and the slot of legacy `/sfu/get` rooms. */
export const legacySlotId = "m.call#ROOM"

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

/** Standard-alphabet base64 without `=` padding. */
export const base64StdNoPad = (bytes: Uint8Array): string => {
  let out = ""
  let i = 0
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!
    out += alphabet[(n >> 18) & 63]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]! + alphabet[n & 63]!
  }
  const rest = bytes.length - i
  if (rest === 1) {
    const n = bytes[i]! << 16
    out += alphabet[(n >> 18) & 63]! + alphabet[(n >> 12) & 63]!
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8)
    out += alphabet[(n >> 18) & 63]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]!
  }
  return out
}

/** `base64StdNoPad(sha256(utf8(JSON.stringify(parts))))`: always 43 characters. */
export const hashJsonArray = (parts: ReadonlyArray<string>): Effect.Effect<string> =>
  Effect.promise(() => {
    const g = webGlobals()
    const data = new g.TextEncoder().encode(JSON.stringify(parts))
    return g.crypto.subtle.digest("SHA-256", data)
  }).pipe(Effect.map((digest) => base64StdNoPad(new Uint8Array(digest))))

/**
 * The recipes over a given digest of a JSON string array, one that answers as `hashJsonArray` does: for a
 * caller that must compute the names otherwise (the in-memory auth service hashes synchronously, see
 * `testing/Sha256.ts`) and still follow these recipes. The functions below are these over Web Crypto.
 */
export const recipes = <A>(hash: (parts: ReadonlyArray<string>) => A) => ({
  roomName: (roomId: string, slotId: string): A => hash([roomId, slotId]),
  identityHashed: (userId: string, deviceId: string, memberId: string): A => hash([userId, deviceId, memberId]),
  identityLegacy: (userId: string, deviceId: string): string => `${userId}:${deviceId}`
})

const webCrypto = recipes(hashJsonArray)

/** LiveKit room name for a Matrix room and MatrixRTC slot (`/get_token`, delegate; `/sfu/get` with slot `m.call#ROOM`). */
export const liveKitRoomName = (roomId: string, slotId: string): Effect.Effect<string> => webCrypto.roomName(roomId, slotId)

/** Hashed LiveKit identity used by `/get_token` and `/delegate_delayed_leave` (sticky dialect). */
export const liveKitIdentityHashed = (userId: string, deviceId: string, memberId: string): Effect.Effect<string> =>
  webCrypto.identityHashed(userId, deviceId, memberId)

/** Plain LiveKit identity used by legacy `/sfu/get` (state-event dialect): `@user:server:DEVICE`. */
export const liveKitIdentityLegacy = (userId: string, deviceId: string): Effect.Effect<string> =>
  Effect.succeed(webCrypto.identityLegacy(userId, deviceId))
