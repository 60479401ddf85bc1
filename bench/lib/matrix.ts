// matrix-js-sdk clients for the benchmark: the observer and the reference path's client.
import { ClientEvent, type MatrixClient, SyncState, createClient } from "matrix-js-sdk"
import {
  type CallMembership,
  type MatrixRTCSession,
  MatrixRTCSessionEvent
} from "matrix-js-sdk/lib/matrixrtc/index.js"

import type { Credentials } from "@matrixrtc-effect/devstack"
export { type Credentials, loginNewDevice, logoutDevice as logout } from "@matrixrtc-effect/devstack"

/** A matrix-js-sdk client that has finished its first sync (SyncState.Prepared). */
export const startSyncedClient = async (homeserverUrl: string, creds: Credentials, timeoutMs = 60_000): Promise<MatrixClient> => {
  const client = createClient({
    baseUrl: homeserverUrl,
    accessToken: creds.accessToken,
    userId: creds.userId,
    deviceId: creds.deviceId
  })
  const prepared = new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${creds.userId}: no first sync within ${timeoutMs} ms`)), timeoutMs)
    const onSync = (state: SyncState) => {
      if (state === SyncState.Prepared || state === SyncState.Syncing) {
        clearTimeout(t)
        client.off(ClientEvent.Sync, onSync)
        resolve()
      }
    }
    client.on(ClientEvent.Sync, onSync)
  })
  await client.startClient({ initialSyncLimit: 1, lazyLoadMembers: false })
  await prepared
  return client
}

/**
 * An independent observer: a separate matrix-js-sdk client that follows the room's
 * MatrixRTC session through sync, exactly as Element Call's participants see it.
 */
export interface Observer {
  readonly session: MatrixRTCSession
  /** Whether (userId, deviceId) is a member right now. */
  readonly isMember: (userId: string, deviceId: string) => boolean
  /**
   * Resolves with `performance.now()` at the first MembershipsChanged after which
   * (userId, deviceId) is present (`present`) or absent (`!present`); at once if it already is.
   * Arm it before the action you time.
   */
  readonly when: (userId: string, deviceId: string, present: boolean, timeoutMs: number) => Promise<number>
  readonly members: () => ReadonlyArray<CallMembership>
  readonly stop: () => void
}

export const startObserver = async (homeserverUrl: string, creds: Credentials, roomId: string): Promise<Observer> => {
  const client = await startSyncedClient(homeserverUrl, creds)
  const room = client.getRoom(roomId)
  if (room === null) throw new Error(`observer ${creds.userId} is not joined to ${roomId}`)
  const session = client.matrixRTC.getRoomSession(room)
  await session.initialMembershipCalculated
  const isMember = (userId: string, deviceId: string) =>
    session.memberships.some((m) => m.userId === userId && m.deviceId === deviceId)
  const when: Observer["when"] = (userId, deviceId, present, timeoutMs) => {
    if (isMember(userId, deviceId) === present) return Promise.resolve(performance.now())
    return new Promise((resolve, reject) => {
      const onChange = () => {
        if (isMember(userId, deviceId) === present) {
          const at = performance.now()
          clearTimeout(t)
          session.off(MatrixRTCSessionEvent.MembershipsChanged, onChange)
          resolve(at)
        }
      }
      const t = setTimeout(() => {
        session.off(MatrixRTCSessionEvent.MembershipsChanged, onChange)
        reject(new Error(`observer: ${userId}/${deviceId} not ${present ? "present" : "gone"} within ${timeoutMs} ms`))
      }, timeoutMs)
      session.on(MatrixRTCSessionEvent.MembershipsChanged, onChange)
    })
  }
  return {
    session,
    isMember,
    when,
    members: () => session.memberships,
    stop: () => client.stopClient()
  }
}
