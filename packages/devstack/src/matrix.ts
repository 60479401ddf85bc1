// Minimal Matrix client-server calls for provisioning and start-up checks (plain fetch).
import { createHmac } from "node:crypto"
import { homeserverUrl } from "./config.ts"

export class MatrixHttpError extends Error {
  readonly status: number
  readonly errcode: string | undefined
  constructor(method: string, path: string, status: number, body: unknown) {
    const b = (body ?? {}) as { errcode?: string; error?: string }
    // The path never carries secrets (tokens go in headers), so it is safe to show.
    super(`${method} ${path} -> ${status} ${b.errcode ?? ""} ${b.error ?? ""}`.trim())
    this.name = "MatrixHttpError"
    this.status = status
    this.errcode = b.errcode
  }
}

export const matrixRequest = async <A = Record<string, unknown>>(
  method: string,
  path: string,
  opts: { readonly accessToken?: string; readonly body?: unknown; readonly baseUrl?: string } = {}
): Promise<A> => {
  const headers: Record<string, string> = {}
  if (opts.accessToken !== undefined) headers["Authorization"] = `Bearer ${opts.accessToken}`
  if (opts.body !== undefined) headers["Content-Type"] = "application/json"
  const res = await fetch(`${opts.baseUrl ?? homeserverUrl}${path}`, {
    method,
    headers,
    ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
    signal: AbortSignal.timeout(30_000)
  })
  const text = await res.text()
  let json: unknown
  try {
    json = text === "" ? {} : JSON.parse(text)
  } catch {
    json = { error: text.slice(0, 200) }
  }
  if (!res.ok) throw new MatrixHttpError(method, path, res.status, json)
  return json as A
}

export interface RegisteredUser {
  readonly userId: string
  readonly password: string
  readonly accessToken: string
  readonly deviceId: string
}

/**
 * Registers a user through the shared-secret admin API (`/_synapse/admin/v1/register`):
 * GET a nonce, then POST with mac = hex HMAC-SHA1(secret, nonce\0user\0password\0notadmin).
 */
export const registerUser = async (opts: {
  readonly sharedSecret: string
  readonly username: string
  readonly password: string
  readonly admin?: boolean
  readonly displayname?: string
}): Promise<RegisteredUser> => {
  const { nonce } = await matrixRequest<{ nonce: string }>("GET", "/_synapse/admin/v1/register")
  const admin = opts.admin === true
  const mac = createHmac("sha1", opts.sharedSecret)
    .update(`${nonce}\0${opts.username}\0${opts.password}\0${admin ? "admin" : "notadmin"}`)
    .digest("hex")
  const res = await matrixRequest<{ user_id: string; access_token: string; device_id: string }>(
    "POST",
    "/_synapse/admin/v1/register",
    {
      body: {
        nonce,
        username: opts.username,
        password: opts.password,
        admin,
        mac,
        ...(opts.displayname === undefined ? {} : { displayname: opts.displayname })
      }
    }
  )
  return { userId: res.user_id, password: opts.password, accessToken: res.access_token, deviceId: res.device_id }
}

export const createRoom = async (accessToken: string, body: Record<string, unknown>): Promise<string> =>
  (await matrixRequest<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", { accessToken, body })).room_id

export const joinRoom = async (accessToken: string, roomId: string): Promise<void> => {
  await matrixRequest("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { accessToken, body: {} })
}

export const joinedMembers = async (accessToken: string, roomId: string): Promise<Array<string>> =>
  Object.keys(
    (
      await matrixRequest<{ joined: Record<string, unknown> }>(
        "GET",
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`,
        { accessToken }
      )
    ).joined
  )

export const whoami = async (accessToken: string): Promise<{ user_id: string; device_id?: string }> =>
  matrixRequest("GET", "/_matrix/client/v3/account/whoami", { accessToken })

export interface Credentials {
  readonly userId: string
  readonly accessToken: string
  readonly deviceId: string
}

/** Password login on a new device (its own access token), named `deviceName` in the device list. */
export const loginNewDevice = async (baseUrl: string, userId: string, password: string, deviceName: string): Promise<Credentials> => {
  const r = await matrixRequest<{ user_id?: string; access_token: string; device_id: string }>("POST", "/_matrix/client/v3/login", {
    baseUrl,
    body: {
      type: "m.login.password",
      identifier: { type: "m.id.user", user: userId },
      password,
      initial_device_display_name: deviceName
    }
  })
  return { userId: r.user_id ?? userId, accessToken: r.access_token, deviceId: r.device_id }
}

/** Logs a device out (its token stops working, Synapse drops its delayed events); failures are ignored. */
export const logoutDevice = (baseUrl: string, accessToken: string): Promise<void> =>
  matrixRequest("POST", "/_matrix/client/v3/logout", { baseUrl, accessToken, body: {} }).then(
    () => undefined,
    () => undefined
  )
