// Users and rooms of a fresh stack, created through Synapse's admin and client APIs.
import { randomBytes } from "node:crypto"
import { createRoom, joinRoom, joinedMembers, type RegisteredUser, registerUser } from "./matrix.ts"

export const CALL_MEMBER_EVENT = "org.matrix.msc3401.call.member"
export const USERNAMES = ["alice", "bob", "carol", "dave"] as const

export interface Provisioned {
  readonly users: ReadonlyArray<RegisteredUser>
  /** Call room: Element Call's power levels, call.member needs 0; all users joined. */
  readonly roomId: string
  /** call.member needs 50; all users joined at level 0 (creator excluded: 100). */
  readonly forbiddenRoomId: string
  /** m.room.encryption (megolm) + EC power levels; all users joined. */
  readonly encryptedRoomId: string
}

/** Element Call's createRoom power-level override (local-stack.md §2), with call.member at `callMemberLevel`. */
export const ecPowerLevels = (callMemberLevel: number): Record<string, unknown> => ({
  invite: 100,
  kick: 100,
  ban: 100,
  redact: 50,
  state_default: callMemberLevel === 0 ? 0 : 50,
  events_default: 0,
  users_default: 0,
  events: {
    "m.room.power_levels": 100,
    "m.room.history_visibility": 100,
    "m.room.tombstone": 100,
    "m.room.encryption": 100,
    "m.room.name": 50,
    "m.room.message": 0,
    "m.room.encrypted": 50,
    "m.sticker": 50,
    [CALL_MEMBER_EVENT]: callMemberLevel
  }
  // `users` is left out on purpose: Synapse keeps its default (creator at 100). Listing the
  // creator would be rejected in room versions where creators are implicit (v12).
})

const password = (): string => randomBytes(18).toString("base64url")

export const provision = async (sharedSecret: string): Promise<Provisioned> => {
  const users: Array<RegisteredUser> = []
  for (const username of USERNAMES) {
    users.push(await registerUser({ sharedSecret, username, password: password(), displayname: username }))
  }
  const [creator, ...others] = users
  if (creator === undefined) throw new Error("no users")
  const invite = others.map((u) => u.userId)

  const makeRoom = async (name: string, callMemberLevel: number, encrypted: boolean): Promise<string> => {
    const roomId = await createRoom(creator.accessToken, {
      name,
      visibility: "private",
      preset: "private_chat",
      invite,
      power_level_content_override: ecPowerLevels(callMemberLevel),
      ...(encrypted
        ? { initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }] }
        : {})
    })
    for (const u of others) await joinRoom(u.accessToken, roomId)
    const joined = new Set(await joinedMembers(creator.accessToken, roomId))
    const missing = users.filter((u) => !joined.has(u.userId))
    if (missing.length > 0) throw new Error(`room ${name}: ${missing.map((u) => u.userId).join(", ")} not joined`)
    return roomId
  }

  const roomId = await makeRoom("devstack call room", 0, false)
  const forbiddenRoomId = await makeRoom("devstack forbidden room", 50, false)
  const encryptedRoomId = await makeRoom("devstack encrypted room", 0, true)
  return { users, roomId, forbiddenRoomId, encryptedRoomId }
}
