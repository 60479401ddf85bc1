// (b) A JWT minted by the auth service works on the real livekit-server: a participant
// connects with it and RoomService sees it in the hashed room under `@user:localhost:DEVICE`.
import { Room, dispose } from "@livekit/rtc-node"
import { AccessToken, RoomServiceClient } from "livekit-server-sdk"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { readStack, type StackInfo } from "../../src/index.ts"
import { hashParts, sfuGet, userAt } from "./helpers.ts"

let stack: StackInfo
let rooms: RoomServiceClient
beforeAll(() => {
  stack = readStack()
  rooms = new RoomServiceClient(stack.livekitHttpUrl, stack.livekitApiKey, stack.livekitApiSecret)
})
afterAll(async () => {
  await dispose()
})

const pollFor = async <A>(probe: () => Promise<A | undefined>, timeoutMs: number): Promise<A | undefined> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v !== undefined || Date.now() > deadline) return v
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe("JWT from the auth service on the real livekit-server", () => {
  it("connects a participant that RoomService lists in the expected room with the expected identity", async () => {
    const bob = userAt(stack, 1)
    const res = await sfuGet(stack, bob)
    expect(res.status).toBe(200)
    const expectedRoom = hashParts([stack.roomId, "m.call#ROOM"])
    const expectedIdentity = `${bob.userId}:${bob.deviceId}`
    expect(expectedIdentity).toMatch(/^@bob:localhost:[A-Z]+$/)

    // auto_create is off: the auth service created the room for the full-access user.
    expect((await rooms.listRooms([expectedRoom])).map((r) => r.name)).toEqual([expectedRoom])

    const room = new Room()
    try {
      // Watch RoomService while connecting: the signalling join (which checks the JWT) happens
      // before ICE, so a failed media connection is reported separately from a refused JWT.
      const connecting = room
        .connect(res.json["url"] as string, res.json["jwt"] as string, { autoSubscribe: false, dynacast: false })
        .then(
          () => undefined,
          (e: unknown) => e
        )
      const seen = await pollFor(async () => {
        const ps = await rooms.listParticipants(expectedRoom)
        return ps.find((p) => p.identity === expectedIdentity)
      }, 15_000)
      expect(seen?.identity, "RoomService never listed the participant: livekit-server did not accept the JWT").toBe(expectedIdentity)

      const connectError = await connecting
      expect(
        connectError,
        "livekit-server accepted the JWT, but the WebRTC connection did not complete " +
          "(seen in a network namespace with only `lo`: the client side needs a non-loopback interface address)"
      ).toBeUndefined()
      expect(room.localParticipant?.identity).toBe(expectedIdentity)
      expect(room.name).toBe(expectedRoom)
    } finally {
      await room.disconnect()
    }
    const gone = await pollFor(async () => {
      const ps = await rooms.listParticipants(expectedRoom).catch(() => [])
      return ps.some((p) => p.identity === expectedIdentity) ? undefined : true
    }, 15_000)
    expect(gone).toBe(true)
  })

  it("refuses a JWT for the same identity and room that is not signed with the stack's secret", async () => {
    const bob = userAt(stack, 1)
    const expectedRoom = hashParts([stack.roomId, "m.call#ROOM"])
    const forged = new AccessToken(stack.livekitApiKey, "not-the-secret-but-at-least-32-characters", {
      identity: `${bob.userId}:${bob.deviceId}-forged`
    })
    forged.addGrant({ roomJoin: true, room: expectedRoom, canPublish: true, canSubscribe: true })
    const room = new Room()
    try {
      const err = await room
        .connect(stack.livekitUrl, await forged.toJwt(), { autoSubscribe: false, dynacast: false })
        .then(
          () => undefined,
          (e: unknown) => e
        )
      expect(err).toBeInstanceOf(Error)
      const ps = await rooms.listParticipants(expectedRoom).catch(() => [])
      expect(ps.map((p) => p.identity)).not.toContain(`${bob.userId}:${bob.deviceId}-forged`)
    } finally {
      await room.disconnect()
    }
  })
})
