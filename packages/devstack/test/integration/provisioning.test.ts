// Provisioned users and rooms, and the stop/start helpers for single services.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CALL_MEMBER_EVENT, MatrixHttpError, matrixRequest, readStack, startService, status, stopService, type StackInfo } from "../../src/index.ts"
import { sfuGet, userAt } from "./helpers.ts"

let stack: StackInfo
beforeAll(() => {
  stack = readStack()
})

const sendCallMember = (roomId: string, i: number) => {
  const u = userAt(stack, i)
  const stateKey = `_${u.userId}_${u.deviceId}_m.call`
  return matrixRequest(
    "PUT",
    `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${CALL_MEMBER_EVENT}/${encodeURIComponent(stateKey)}`,
    { accessToken: u.accessToken, body: {} }
  )
}

describe("provisioned stack", () => {
  it("has at least 3 users, each with a working access token and device id", async () => {
    expect(stack.users.length).toBeGreaterThanOrEqual(3)
    for (const u of stack.users) {
      const me = await matrixRequest<{ user_id: string; device_id: string }>("GET", "/_matrix/client/v3/account/whoami", {
        accessToken: u.accessToken
      })
      expect(me).toMatchObject({ user_id: u.userId, device_id: u.deviceId })
    }
  })

  it("has every user joined to the three rooms", async () => {
    for (const roomId of [stack.roomId, stack.forbiddenRoomId, stack.encryptedRoomId]) {
      const res = await matrixRequest<{ joined: Record<string, unknown> }>(
        "GET",
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`,
        { accessToken: userAt(stack, 0).accessToken }
      )
      expect(Object.keys(res.joined).sort()).toEqual(stack.users.map((u) => u.userId).sort())
    }
  })

  it("lets a level-0 member send call.member in roomId and encryptedRoomId, but not in forbiddenRoomId", async () => {
    await expect(sendCallMember(stack.roomId, 1)).resolves.toHaveProperty("event_id")
    await expect(sendCallMember(stack.encryptedRoomId, 1)).resolves.toHaveProperty("event_id")
    const err = await sendCallMember(stack.forbiddenRoomId, 1).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(MatrixHttpError)
    expect((err as MatrixHttpError).status).toBe(403)
    expect((err as MatrixHttpError).errcode).toBe("M_FORBIDDEN")
  })

  it("has m.room.encryption only in encryptedRoomId", async () => {
    const token = userAt(stack, 0).accessToken
    const enc = await matrixRequest<{ algorithm: string }>(
      "GET",
      `/_matrix/client/v3/rooms/${encodeURIComponent(stack.encryptedRoomId)}/state/m.room.encryption/`,
      { accessToken: token }
    )
    expect(enc.algorithm).toBe("m.megolm.v1.aes-sha2")
    const none = await matrixRequest(
      "GET",
      `/_matrix/client/v3/rooms/${encodeURIComponent(stack.roomId)}/state/m.room.encryption/`,
      { accessToken: token }
    ).catch((e: unknown) => e)
    expect((none as MatrixHttpError).status).toBe(404)
  })
})

describe("stopService / startService", () => {
  afterAll(async () => {
    // Whatever happened, leave the auth service running for the other test files.
    await startService("auth")
  })

  it("stops the auth service (requests fail) and starts it again (requests succeed)", async () => {
    const alice = userAt(stack, 0)
    const pidBefore = status().auth
    expect(pidBefore).toBeTypeOf("number")

    await stopService("auth")
    expect(status().auth).toBeUndefined()
    await expect(fetch(`${stack.authServiceUrl}/healthz`)).rejects.toThrow()

    await startService("auth")
    expect(status().auth).toBeTypeOf("number")
    expect(status().auth).not.toBe(pidBefore)
    const res = await sfuGet(stack, alice)
    expect(res.status).toBe(200)
  })
})
