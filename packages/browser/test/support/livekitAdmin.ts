/**
 * Just enough of the LiveKit server API for the adapter tests: HS256 access
 * tokens signed with the stack's key, and RoomService CreateRoom/DeleteRoom
 * over Twirp (the auth service normally creates rooms; `auto_create` is off), and
 * RemoveParticipant to kick a client off the SFU.
 */
import { createHmac, randomBytes } from "node:crypto"
import type { StackInfo } from "@matrixrtc-effect/devstack"

const b64url = (v: string | Buffer) => Buffer.from(v).toString("base64url")

export const signToken = (
  key: string,
  secret: string,
  claims: { readonly sub?: string; readonly video: Record<string, unknown> },
  ttlSeconds = 600
): string => {
  const now = Math.floor(Date.now() / 1000)
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }))
  const payload = b64url(JSON.stringify({ iss: key, nbf: now - 5, exp: now + ttlSeconds, ...claims }))
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url")
  return `${header}.${payload}.${signature}`
}

export const joinToken = (stack: StackInfo, room: string, identity = `harness-${randomBytes(3).toString("hex")}`) =>
  signToken(stack.livekitApiKey, stack.livekitApiSecret, {
    sub: identity,
    video: { room, roomJoin: true, canPublish: true, canSubscribe: true }
  })

const roomService = async (
  stack: StackInfo,
  method: "CreateRoom" | "DeleteRoom" | "RemoveParticipant",
  room: string,
  body: Record<string, unknown> = { name: room }
) => {
  const token = signToken(stack.livekitApiKey, stack.livekitApiSecret, { video: { roomCreate: true, roomAdmin: true, room } })
  const res = await fetch(`${stack.livekitHttpUrl}/twirp/livekit.RoomService/${method}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ room, ...body })
  })
  if (!res.ok) throw new Error(`LiveKit ${method} ${room}: HTTP ${res.status} ${await res.text()}`)
}

export const createRoom = (stack: StackInfo, room: string) => roomService(stack, "CreateRoom", room)
export const deleteRoom = (stack: StackInfo, room: string) => roomService(stack, "DeleteRoom", room)
/** Kicks `identity` off the SFU (the client sees DisconnectReason PARTICIPANT_REMOVED). */
export const removeParticipant = (stack: StackInfo, room: string, identity: string) =>
  roomService(stack, "RemoveParticipant", room, { identity })
