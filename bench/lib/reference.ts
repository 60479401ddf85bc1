/**
 * The reference path: a call joined the way Element Call does it on matrix-js-sdk
 * (auth-service.md §5.3–5.4, "compatibility" mode = EC's default):
 *
 *   1. transport discovery  `GET …/org.matrix.msc4143/rtc/transports` (`_unstable_getRTCTransports`)
 *   2. OpenID token         `getOpenIdToken()`
 *   3. LiveKit JWT          `POST <livekit_service_url>/sfu/get {room, openid_token, device_id}`
 *   4. `MatrixRTCSession.joinRTCSession(identity, [], transport, EC's config)` — the
 *      MembershipManager schedules the delayed leave, then sends the membership —
 *      and, in parallel, the LiveKit connect with the JWT from step 3 (`@livekit/rtc-node`,
 *      the Node counterpart of livekit-client).
 *   5. on `DelayIdChanged`, EC asks `/sfu/get` again with `delay_id`/`delay_timeout`/
 *      `delay_cs_api_url` to hand the delayed leave to the auth service (the answer is
 *      not used for the live connection).
 *
 * Leave = `leaveRoomSession()` and the LiveKit disconnect, together.
 */
import { Room as LiveKitRoom } from "@livekit/rtc-node"
import { randomUUID } from "node:crypto"
import type { MatrixClient } from "matrix-js-sdk"
import {
  type LivekitTransportConfig,
  MembershipManagerEvent,
  isLivekitTransportConfig
} from "matrix-js-sdk/lib/matrixrtc/index.js"

/** Element Call's MatrixRTC settings (EC `ConfigOptions.ts` DEFAULT_CONFIG + `LocalMember.ts`). */
export const EC_DELAYED_LEAVE_MS = 10_000
export const EC_JOIN_CONFIG = {
  delayedLeaveEventDelayMs: EC_DELAYED_LEAVE_MS,
  networkErrorRetryMs: 1_000,
  maximumNetworkErrorRetryCount: 11,
  manageMediaKeys: false
} as const

export interface ReferenceCall {
  readonly identity: string
  readonly roomName: string
  /** performance.now() when `room.connect` resolved. */
  readonly connectedAt: number
  readonly leave: () => Promise<void>
}

interface SfuGetAnswer {
  readonly url: string
  readonly jwt: string
}

const sfuGet = async (serviceUrl: string, body: Record<string, unknown>): Promise<SfuGetAnswer> => {
  const res = await fetch(`${serviceUrl.replace(/\/$/, "")}/sfu/get`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000)
  })
  const json = (await res.json()) as Partial<SfuGetAnswer>
  if (!res.ok || typeof json.url !== "string" || typeof json.jwt !== "string") {
    throw new Error(`/sfu/get failed: HTTP ${res.status}`)
  }
  return { url: json.url, jwt: json.jwt }
}

export interface ReferenceOptions {
  /** EC step 5: delegate the delayed leave to the auth service (default true). */
  readonly delegate?: boolean
}

export const referenceJoin = async (client: MatrixClient, roomId: string, options: ReferenceOptions = {}): Promise<ReferenceCall> => {
  const userId = client.getUserId()
  const deviceId = client.getDeviceId()
  const room = client.getRoom(roomId)
  if (userId === null || deviceId === null || room === null) throw new Error("reference: client not ready or not in the room")

  // 1. discovery
  const transports = await client._unstable_getRTCTransports()
  const transport = transports.find(isLivekitTransportConfig) as LivekitTransportConfig | undefined
  if (transport === undefined) throw new Error("reference: no livekit transport advertised")
  // 2. OpenID
  const openid = await client.getOpenIdToken()
  // 3. JWT
  const grant = await sfuGet(transport.livekit_service_url, { room: roomId, openid_token: openid, device_id: deviceId })

  // 4. membership (MatrixRTCSession) and LiveKit connect, in parallel
  const session = client.matrixRTC.getRoomSession(room)
  const onDelayId = (delayId: string | undefined) => {
    if (delayId === undefined || options.delegate === false) return
    // 5. EC re-requests a token with the delay id, with a fresh OpenID token; the JWT is ignored.
    void client
      .getOpenIdToken()
      .then((token) =>
        sfuGet(transport.livekit_service_url, {
          room: roomId,
          openid_token: token,
          device_id: deviceId,
          delay_id: delayId,
          delay_timeout: EC_DELAYED_LEAVE_MS,
          delay_cs_api_url: client.baseUrl
        })
      )
      .catch(() => undefined)
  }
  session.on(MembershipManagerEvent.DelayIdChanged, onDelayId)
  session.joinRTCSession(
    { userId, deviceId, memberId: randomUUID() },
    [],
    { ...transport, livekit_alias: roomId },
    EC_JOIN_CONFIG
  )
  const lk = new LiveKitRoom()
  try {
    await lk.connect(grant.url, grant.jwt, { autoSubscribe: true, dynacast: true })
  } catch (e) {
    session.off(MembershipManagerEvent.DelayIdChanged, onDelayId)
    await session.leaveRoomSession(5_000)
    throw e
  }
  const connectedAt = performance.now()
  const identity = lk.localParticipant?.identity ?? `${userId}:${deviceId}`
  const roomName = lk.name ?? ""
  return {
    identity,
    roomName,
    connectedAt,
    leave: async () => {
      session.off(MembershipManagerEvent.DelayIdChanged, onDelayId)
      await Promise.all([session.leaveRoomSession(10_000), lk.disconnect()])
    }
  }
}
