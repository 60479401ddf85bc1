/**
 * Independent observers of a call on the stack, shared by the benchmark and the tests:
 * a separate matrix-js-sdk client following the room's MatrixRTC session (what Element
 * Call's participants see), and LiveKit's RoomService API (what the SFU itself says).
 *
 * A subpath export of its own, so that importing the devstack does not load
 * matrix-js-sdk and the LiveKit server SDK.
 */
import { RoomServiceClient, ServerError } from "livekit-server-sdk"
import { ClientEvent, type MatrixClient, SyncState, createClient } from "matrix-js-sdk"
import { type CallMembership, type MatrixRTCSession, MatrixRTCSessionEvent } from "matrix-js-sdk/lib/matrixrtc/index.js"
import type { Credentials } from "./matrix.ts"

/** A matrix-js-sdk client that has finished its first sync. */
export const startSyncedClient = async (homeserverUrl: string, creds: Credentials, timeoutMs = 60_000): Promise<MatrixClient> => {
  const client = createClient({
    baseUrl: homeserverUrl,
    accessToken: creds.accessToken,
    userId: creds.userId,
    deviceId: creds.deviceId
  })
  // No fail-fast on SyncState.Error: matrix-js-sdk retries, and a benchmark over a shaped link may see one.
  let t: ReturnType<typeof setTimeout> | undefined
  let onSync: ((state: SyncState) => void) | undefined
  const synced = new Promise<void>((resolve, reject) => {
    t = setTimeout(() => reject(new Error(`${creds.userId}: no first sync within ${timeoutMs} ms`)), timeoutMs)
    onSync = (state: SyncState) => {
      if (state === SyncState.Prepared || state === SyncState.Syncing) resolve()
    }
    client.on(ClientEvent.Sync, onSync)
  })
  try {
    await client.startClient({ initialSyncLimit: 1, lazyLoadMembers: false })
    await synced
  } catch (e) {
    client.stopClient()
    // A start that failed leaves `synced` to its timer: nobody must be left to hear it reject.
    synced.catch(() => undefined)
    throw e
  } finally {
    clearTimeout(t)
    if (onSync !== undefined) client.off(ClientEvent.Sync, onSync)
  }
  return client
}

export interface RtcObserver {
  readonly client: MatrixClient
  readonly session: MatrixRTCSession
  readonly members: () => ReadonlyArray<CallMembership>
  /** Whether (userId, deviceId) is a member right now. */
  readonly isMember: (userId: string, deviceId: string) => boolean
  /**
   * Resolves with `performance.now()` at the first MembershipsChanged after which `pred`
   * holds; at once if it already does. Arm it before the action you time.
   */
  readonly waitUntil: (
    pred: (members: ReadonlyArray<CallMembership>) => boolean,
    timeoutMs: number,
    what: string,
    signal?: AbortSignal
  ) => Promise<number>
  /** `waitUntil` (userId, deviceId) is listed (`present`) or no longer listed (`!present`). */
  readonly when: (userId: string, deviceId: string, present: boolean, timeoutMs: number) => Promise<number>
  readonly stop: () => void
}

/** Whether (userId, deviceId) is among `members`. */
export const hasMember = (userId: string, deviceId: string) => (members: ReadonlyArray<CallMembership>): boolean =>
  members.some((m) => m.userId === userId && m.deviceId === deviceId)

/** A matrix-js-sdk client of `creds` (a member of `roomId`) following the room's MatrixRTC session. */
export const startRtcObserver = async (
  homeserverUrl: string,
  creds: Credentials,
  roomId: string,
  syncTimeoutMs?: number
): Promise<RtcObserver> => {
  const client = await startSyncedClient(homeserverUrl, creds, syncTimeoutMs)
  let session: MatrixRTCSession
  try {
    const room = client.getRoom(roomId)
    if (room === null) throw new Error(`observer ${creds.userId} is not joined to ${roomId}`)
    session = client.matrixRTC.getRoomSession(room)
    await session.initialMembershipCalculated
  } catch (e) {
    client.stopClient()
    throw e
  }
  const waitUntil: RtcObserver["waitUntil"] = (pred, timeoutMs, what, signal) => {
    if (signal?.aborted) return Promise.reject(signal.reason)
    if (pred(session.memberships)) return Promise.resolve(performance.now())
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(t)
        session.off(MatrixRTCSessionEvent.MembershipsChanged, onChange)
        signal?.removeEventListener("abort", onAbort)
      }
      // Runs inside matrix-js-sdk's emitter: a throwing predicate must reject this wait, not the SDK's emit.
      const onChange = () => {
        try {
          if (!pred(session.memberships)) return
        } catch (e) {
          done()
          return reject(e)
        }
        const at = performance.now()
        done()
        resolve(at)
      }
      const onAbort = () => {
        done()
        reject(signal!.reason)
      }
      const t = setTimeout(() => {
        done()
        reject(new Error(`observer: timed out after ${timeoutMs} ms waiting for ${what}`))
      }, timeoutMs)
      session.on(MatrixRTCSessionEvent.MembershipsChanged, onChange)
      signal?.addEventListener("abort", onAbort)
    })
  }
  return {
    client,
    session,
    members: () => session.memberships,
    isMember: (userId, deviceId) => hasMember(userId, deviceId)(session.memberships),
    waitUntil,
    when: (userId, deviceId, present, timeoutMs) =>
      waitUntil(
        (ms) => hasMember(userId, deviceId)(ms) === present,
        timeoutMs,
        `${userId}/${deviceId} ${present ? "present" : "gone"}`
      ),
    stop: () => client.stopClient()
  }
}

export interface Sfu {
  readonly rooms: RoomServiceClient
  /** Identities in `roomName`; none if the room does not exist (any more). */
  readonly participants: (roomName: string) => Promise<ReadonlyArray<string>>
  /** Names of the rooms that list `identity`. */
  readonly roomsWith: (identity: string) => Promise<Array<string>>
  /**
   * Resolves with `performance.now()` once `identity` is (or is no longer) listed in
   * `roomName`. The RoomService API has no push, so this polls every `intervalMs`,
   * bounded by `timeoutMs`.
   */
  readonly when: (roomName: string, identity: string, present: boolean, timeoutMs: number, intervalMs?: number) => Promise<number>
}

/** One RoomService client for all the questions asked of the SFU. */
export const sfuClient = (livekitHttpUrl: string, apiKey: string, apiSecret: string): Sfu => {
  const rooms = new RoomServiceClient(livekitHttpUrl, apiKey, apiSecret)
  const participants = async (roomName: string) => {
    try {
      return (await rooms.listParticipants(roomName)).map((p) => p.identity)
    } catch (e) {
      if (e instanceof ServerError && (e.code === "not_found" || e.status === 404)) return []
      throw e
    }
  }
  const roomsWith = async (identity: string) => {
    const found: Array<string> = []
    for (const room of await rooms.listRooms()) {
      if ((await participants(room.name)).includes(identity)) found.push(room.name)
    }
    return found
  }
  const when: Sfu["when"] = async (roomName, identity, present, timeoutMs, intervalMs = 20) => {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      const listed = (await participants(roomName)).includes(identity)
      if (listed === present) return performance.now()
      if (performance.now() > deadline) {
        throw new Error(`SFU: ${identity} still ${present ? "absent from" : "listed in"} ${roomName} after ${timeoutMs} ms`)
      }
      await new Promise((r) => setTimeout(r, intervalMs))
    }
  }
  return { rooms, participants, roomsWith, when }
}
