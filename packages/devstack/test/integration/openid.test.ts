// (a) OpenID with the real Synapse: the auth service accepts a real token and rejects a forged
// one and one presented for another user.
import { randomBytes } from "node:crypto"
import { TokenVerifier } from "livekit-server-sdk"
import { beforeAll, describe, expect, it } from "vitest"
import { readStack, type StackInfo, type StackUser } from "../../src/index.ts"
import { decodeJwtPayload, hashParts, postAuth, requestOpenIdToken, sfuGet, userAt } from "./helpers.ts"

let stack: StackInfo

/** `/get_token` with `owner`'s real OpenID token and a member claiming to be `claimed`. */
const getToken = async (owner: StackUser, claimed: StackUser, memberId: string) =>
  postAuth(stack, "/get_token", {
    room_id: stack.roomId,
    slot_id: "m.call#ROOM",
    openid_token: await requestOpenIdToken(owner),
    member: { id: memberId, claimed_user_id: claimed.userId, claimed_device_id: claimed.deviceId }
  })
beforeAll(() => {
  stack = readStack()
})

describe("auth service against the real Synapse", () => {
  it("accepts a real OpenID token on /sfu/get and mints a LiveKit JWT for that user and device", async () => {
    const alice = userAt(stack, 0)
    const openid = await requestOpenIdToken(alice)
    expect(openid.matrix_server_name).toBe(stack.serverName)

    const res = await sfuGet(stack, alice, openid)
    expect(res.status).toBe(200)
    expect(res.json["url"]).toBe(stack.livekitUrl)
    const jwt = res.json["jwt"] as string

    // Signed with the stack's LiveKit secret, for the expected identity and room.
    const claims = await new TokenVerifier(stack.livekitApiKey, stack.livekitApiSecret).verify(jwt)
    expect(claims.sub).toBe(`${alice.userId}:${alice.deviceId}`)
    expect(claims.video?.room).toBe(hashParts([stack.roomId, "m.call#ROOM"]))
    expect(claims.video?.roomJoin).toBe(true)
    expect(decodeJwtPayload(jwt)["iss"]).toBe(stack.livekitApiKey)
  })

  it("rejects a forged OpenID token with 401 M_UNAUTHORIZED", async () => {
    const alice = userAt(stack, 0)
    const forged = {
      access_token: randomBytes(18).toString("base64url"),
      token_type: "Bearer",
      matrix_server_name: stack.serverName,
      expires_in: 3600
    }
    const res = await sfuGet(stack, alice, forged)
    expect(res.status).toBe(401)
    expect(res.json["errcode"]).toBe("M_UNAUTHORIZED")
    expect(res.json["jwt"]).toBeUndefined()
  })

  it("accepts /get_token when claimed_user_id is the token's owner", async () => {
    const alice = userAt(stack, 0)
    const res = await getToken(alice, alice, "member-alice")
    expect(res.status).toBe(200)
    const payload = decodeJwtPayload(res.json["jwt"] as string)
    expect(payload["sub"]).toBe(hashParts([alice.userId, alice.deviceId, "member-alice"]))
  })

  it("rejects /get_token with alice's real token but claimed_user_id of bob (401 M_UNAUTHORIZED)", async () => {
    const alice = userAt(stack, 0)
    const bob = userAt(stack, 1)
    const res = await getToken(alice, bob, "member-bob")
    expect(res.status).toBe(401)
    expect(res.json["errcode"]).toBe("M_UNAUTHORIZED")
    expect(res.json["jwt"]).toBeUndefined()
  })
})
