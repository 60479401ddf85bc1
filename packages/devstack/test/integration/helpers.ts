// Shared helpers of the devstack integration tests (real Synapse, livekit-server, auth service).
import { createHash } from "node:crypto"
import { matrixRequest, type StackInfo, type StackUser } from "../../src/index.ts"

export interface OpenIdToken {
  readonly access_token: string
  readonly token_type: string
  readonly matrix_server_name: string
  readonly expires_in: number
}

/** A fresh OpenID token from the real Synapse (`/openid/request_token`). */
export const requestOpenIdToken = (user: StackUser): Promise<OpenIdToken> =>
  matrixRequest<OpenIdToken>("POST", `/_matrix/client/v3/user/${encodeURIComponent(user.userId)}/openid/request_token`, {
    accessToken: user.accessToken,
    body: {}
  })

export const postAuth = async (
  stack: StackInfo,
  path: string,
  body: unknown
): Promise<{ readonly status: number; readonly json: Record<string, unknown> }> => {
  const res = await fetch(`${stack.authServiceUrl}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000)
  })
  const text = await res.text()
  return { status: res.status, json: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) }
}

/** `/sfu/get` for `user` in the stack's room, with a fresh OpenID token unless one is given. */
export const sfuGet = async (stack: StackInfo, user: StackUser, openid?: OpenIdToken) =>
  postAuth(stack, "/sfu/get", {
    room: stack.roomId,
    openid_token: openid ?? await requestOpenIdToken(user),
    device_id: user.deviceId
  })

/** lk-jwt-service hash recipe: unpadded standard base64 of SHA-256 over the compact JSON array. */
export const hashParts = (parts: ReadonlyArray<string>): string =>
  createHash("sha256").update(JSON.stringify(parts)).digest("base64").replace(/=+$/, "")

export const decodeJwtPayload = (jwt: string): Record<string, unknown> => {
  const [, payload] = jwt.split(".")
  if (payload === undefined) throw new Error("not a JWT")
  return JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>
}

export { userAt } from "../../src/index.ts"
