/**
 * An independent observer of a room's call memberships for the fault suite: a plain
 * `/sync` long-poll loop (no matrix-js-sdk, none of our code) that keeps the room's
 * `org.matrix.msc3401.call.member` state and tells waiters when it changes.
 *
 * The loop is bounded: it stops on `stop()`, and by itself after `maxLifetimeMs`.
 */

import { CALL_MEMBER_EVENT } from "@matrixrtc-effect/devstack"
import { Schema } from "effect"

export interface MemberState {
  readonly sender: string
  readonly content: Record<string, unknown>
}

interface SyncEvent {
  readonly type: string
  readonly state_key?: string
  readonly sender: string
  readonly content: Record<string, unknown>
}

interface SyncResponse {
  readonly next_batch: string
  readonly rooms?: {
    readonly join?: Record<string, { readonly state?: { events?: Array<SyncEvent> }; readonly timeline?: { events?: Array<SyncEvent> } }>
  }
}

export interface RoomObserver {
  /** Current call.member state: state key → sender + content (`{}` = left). */
  readonly state: () => ReadonlyMap<string, MemberState>
  /** Non-empty memberships of (userId, deviceId). */
  readonly membershipsOf: (userId: string, deviceId: string) => ReadonlyArray<string>
  /** Resolves once `pred()` holds (checked now and after every sync); rejects after `timeoutMs`. */
  readonly waitUntil: (pred: () => boolean, timeoutMs: number, what: string) => Promise<void>
  /** Resolves once (userId, deviceId) has (present) or has no (absent) membership in the room. */
  readonly waitMember: (userId: string, deviceId: string, present: boolean, timeoutMs: number) => Promise<void>
  /**
   * Resolves once this observer has seen a membership of (userId, deviceId) and then seen it end. An observer
   * that has not caught up with the membership yet would otherwise report "absent" at once.
   */
  readonly waitGone: (userId: string, deviceId: string, timeoutMs: number) => Promise<void>
  /** How many times a membership of (userId, deviceId) has ended so far (counted per event, not per sync). */
  readonly endsOf: (userId: string, deviceId: string) => number
  readonly stop: () => void
}

const filter = (roomId: string) =>
  JSON.stringify({
    presence: { not_types: ["*"] },
    account_data: { not_types: ["*"] },
    room: {
      rooms: [roomId],
      state: { types: [CALL_MEMBER_EVENT] },
      timeline: { types: [CALL_MEMBER_EVENT], limit: 100 },
      ephemeral: { not_types: ["*"] },
      account_data: { not_types: ["*"] }
    }
  })

/** Whether a call.member state entry is a live membership of (userId, deviceId). */
const isMembershipOf = (stateKey: string, m: MemberState, userId: string, deviceId: string): boolean =>
  Object.keys(m.content).length > 0 &&
  m.sender === userId &&
  (m.content["device_id"] === deviceId || stateKey.includes(`${userId}_${deviceId}_`))

const RoomState = Schema.Array(
  Schema.Struct({
    type: Schema.String,
    state_key: Schema.optional(Schema.String),
    sender: Schema.String,
    content: Schema.Record({ key: Schema.String, value: Schema.Unknown })
  })
)

/**
 * State keys of the live call memberships of (userId, deviceId), read from the homeserver's current room state
 * (no sync lag), whatever the state key's form: every call.member state event is looked at.
 */
export const liveMemberships = async (
  homeserverUrl: string,
  accessToken: string,
  roomId: string,
  userId: string,
  deviceId: string
): Promise<Array<string>> => {
  const res = await fetch(`${homeserverUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`, {
    headers: { authorization: `Bearer ${accessToken}` }
  })
  if (!res.ok) throw new Error(`GET room state: HTTP ${res.status}`)
  return Schema.decodeUnknownSync(RoomState)(await res.json())
    .filter((e) => e.type === CALL_MEMBER_EVENT && e.state_key !== undefined && isMembershipOf(e.state_key, e, userId, deviceId))
    .map((e) => e.state_key!)
}

export const startRoomObserver = async (
  homeserverUrl: string,
  accessToken: string,
  roomId: string,
  opts: { readonly maxLifetimeMs?: number } = {}
): Promise<RoomObserver> => {
  const state = new Map<string, MemberState>()
  // (userId, deviceId) pairs that ever had a live membership, from every event applied (a sync batch that holds
  // both a membership and its end still counts).
  const everLive = new Set<string>()
  const ends = new Map<string, number>()
  const pair = (userId: string, deviceId: string) => `${userId}\n${deviceId}`
  const listeners = new Set<() => void>()
  const controller = new AbortController()
  const deadline = Date.now() + (opts.maxLifetimeMs ?? 20 * 60_000)
  let stopped = false

  const apply = (res: SyncResponse) => {
    const room = res.rooms?.join?.[roomId]
    if (room === undefined) return
    for (const e of [...(room.state?.events ?? []), ...(room.timeline?.events ?? [])]) {
      if (e.type !== CALL_MEMBER_EVENT || e.state_key === undefined) continue
      const m = { sender: e.sender, content: e.content }
      const before = state.get(e.state_key)
      state.set(e.state_key, m)
      const device = m.content["device_id"]
      if (Object.keys(m.content).length > 0 && typeof device === "string") everLive.add(pair(m.sender, device))
      const endedDevice = before?.content["device_id"]
      if (before !== undefined && Object.keys(m.content).length === 0 && typeof endedDevice === "string") {
        const k = pair(before.sender, endedDevice)
        ends.set(k, (ends.get(k) ?? 0) + 1)
      }
    }
    for (const l of [...listeners]) l()
  }

  const sync = async (since: string | undefined): Promise<SyncResponse> => {
    const q = new URLSearchParams({ filter: filter(roomId), timeout: since === undefined ? "0" : "5000" })
    if (since !== undefined) q.set("since", since)
    else q.set("full_state", "true")
    const res = await fetch(`${homeserverUrl}/_matrix/client/v3/sync?${q}`, {
      headers: { authorization: `Bearer ${accessToken}` },
      signal: AbortSignal.any([controller.signal, AbortSignal.timeout(20_000)])
    })
    if (!res.ok) throw new Error(`observer /sync: HTTP ${res.status}`)
    return (await res.json()) as SyncResponse
  }

  const first = await sync(undefined)
  apply(first)
  let since = first.next_batch
  void (async () => {
    while (!stopped && Date.now() < deadline) {
      try {
        const res = await sync(since)
        since = res.next_batch
        apply(res)
      } catch {
        if (stopped) break
        // Homeserver briefly unavailable: try again shortly (bounded by the lifetime).
        await new Promise((r) => setTimeout(r, 250))
      }
    }
  })()

  const membershipsOf = (userId: string, deviceId: string) =>
    [...state.entries()].filter(([k, m]) => isMembershipOf(k, m, userId, deviceId)).map(([k]) => k)

  const waitUntil: RoomObserver["waitUntil"] = (pred, timeoutMs, what) =>
    pred()
      ? Promise.resolve()
      : new Promise((resolve, reject) => {
          const check = () => {
            if (pred()) {
              clearTimeout(t)
              listeners.delete(check)
              resolve()
            }
          }
          const t = setTimeout(() => {
            listeners.delete(check)
            reject(new Error(`observer: ${what} not seen within ${timeoutMs} ms`))
          }, timeoutMs)
          listeners.add(check)
        })

  return {
    state: () => state,
    membershipsOf,
    waitUntil,
    waitMember: (userId, deviceId, present, timeoutMs) =>
      waitUntil(
        () => (membershipsOf(userId, deviceId).length > 0) === present,
        timeoutMs,
        `${userId}/${deviceId} ${present ? "present" : "absent"}`
      ),
    waitGone: (userId, deviceId, timeoutMs) =>
      waitUntil(
        () => everLive.has(pair(userId, deviceId)) && membershipsOf(userId, deviceId).length === 0,
        timeoutMs,
        `${userId}/${deviceId} seen in the call and then gone`
      ),
    endsOf: (userId, deviceId) => ends.get(pair(userId, deviceId)) ?? 0,
    stop: () => {
      stopped = true
      controller.abort()
    }
  }
}
