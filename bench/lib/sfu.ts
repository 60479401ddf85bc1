// What the SFU itself says: LiveKit's RoomService API (server SDK).
import { RoomServiceClient } from "livekit-server-sdk"

export interface Sfu {
  readonly participants: (roomName: string) => Promise<ReadonlyArray<string>>
  /**
   * Resolves with `performance.now()` once `identity` is (or is no longer) listed in
   * `roomName`. The RoomService API has no push, so this polls every `intervalMs`
   * (benchmarks only), bounded by `timeoutMs`.
   */
  readonly when: (roomName: string, identity: string, present: boolean, timeoutMs: number, intervalMs?: number) => Promise<number>
}

export const sfuClient = (livekitHttpUrl: string, apiKey: string, apiSecret: string): Sfu => {
  const rs = new RoomServiceClient(livekitHttpUrl, apiKey, apiSecret)
  const participants = async (roomName: string) => {
    try {
      return (await rs.listParticipants(roomName)).map((p) => p.identity)
    } catch (e) {
      // A room that no longer exists has no participants.
      if (String(e).includes("not_found") || String(e).includes("does not exist")) return []
      throw e
    }
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
  return { participants, when }
}
