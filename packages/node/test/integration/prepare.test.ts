/**
 * `Call.prepare` on the real stack: a join made ready ahead of time (e.g. in a lobby)
 * sends nothing but the membership writes and the SFU connect when it is used, and a
 * prepared grant that LiveKit refuses (its room was closed meanwhile) is replaced by
 * a fresh one. Checked through the fault proxies' request logs, an independent `/sync`
 * observer and LiveKit's RoomService.
 */
import { Call, type Ids } from "@matrixrtc-effect/core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { assertClean, type Credentials, type Env, joined, type OurClient, type Proxies, setupEnv, teardownEnv, withScenario } from "./faults/harness.ts"

let env: Env | undefined
beforeAll(async () => {
  env = await setupEnv()
}, 60_000)
afterAll(async () => {
  if (env !== undefined) await teardownEnv(env)
})

const roomId = () => env!.stack.roomId as Ids.RoomId

/** Requests the join itself sent, by service, as `METHOD path` without the room/user parts. */
const requestsSince = (p: { nextSeq: () => number; requests: () => ReadonlyArray<{ seq: number; method: string; path: string }> }, since: number) =>
  p.requests().filter((r) => r.seq >= since && !r.path.endsWith("/sync")).map((r) => `${r.method} ${r.path}`)

/** Peers see the call (its membership, and `identity` on the SFU); after the leave nothing is left of it. */
const seenThenClean = async (
  { creds, ours, proxies }: { readonly creds: Credentials; readonly ours: OurClient; readonly proxies: Proxies },
  name: string,
  call: Call.Call,
  identity: string
) => {
  await env!.observer.waitMember(creds.userId, creds.deviceId, true, 10_000)
  expect(await env!.sfu.participants(call.connection.roomName)).toContain(identity)
  await ours.leave()
  await assertClean(env!, creds, name, { endedBy: { by: "us", hs: proxies.hs }, participantWithinMs: 5_000 })
}

describe("prepare, then join, on the real stack", () => {
  it("the join sends only the delayed leave, the membership and the SFU connect; peers see it; nothing is left", async () => {
    await withScenario(env!, "prepare", async (scenario) => {
      const { ours, proxies } = scenario
      const prepared = await ours.run(Call.prepare(roomId()))
      expect(proxies.auth.count({ method: "POST", path: /^\/sfu\/get/ })).toBe(1)
      // Nothing is visible yet: no call.member write of any kind (membership or delayed leave), no participant.
      expect(proxies.hs.count({ method: "PUT", path: /\/state\/org\.matrix\.msc3401\.call\.member\// })).toBe(0)
      expect(proxies.lk.count()).toBe(0)

      const [hs0, auth0, lk0] = [proxies.hs.nextSeq(), proxies.auth.nextSeq(), proxies.lk.nextSeq()]
      const call = joined(await ours.join({ prepared }))
      const hsRequests = requestsSince(proxies.hs, hs0)
      expect(hsRequests.some((r) => /openid|whoami|rtc\/transports|versions|capabilities/.test(r))).toBe(false)
      expect(hsRequests.filter((r) => r.startsWith("PUT ") && r.includes("call.member"))).toHaveLength(2) // delayed leave, membership
      expect(requestsSince(proxies.auth, auth0)).toEqual([])
      expect(requestsSince(proxies.lk, lk0)).toEqual(["GET /rtc/v1"])

      await seenThenClean(scenario, "prepare", call, prepared.grant.claims.identity)
    })
  }, 60_000)

  it("LiveKit closed the prepared room meanwhile: one fresh JWT, then connected; nothing is left", async () => {
    await withScenario(env!, "prepare-closed", async (scenario) => {
      const { ours, proxies } = scenario
      const prepared = await ours.run(Call.prepare(roomId()))
      // As LiveKit does on its own when nobody joins a room within its empty timeout.
      await env!.sfu.rooms.deleteRoom(prepared.grant.claims.room)

      const auth0 = proxies.auth.nextSeq()
      const lk0 = proxies.lk.nextSeq()
      const call = joined(await ours.join({ prepared }))
      expect(requestsSince(proxies.auth, auth0)).toEqual(["POST /sfu/get"])
      expect(requestsSince(proxies.lk, lk0).length).toBeGreaterThanOrEqual(2) // refused, then the fresh grant
      await seenThenClean(scenario, "prepare-closed", call, call.connection.identity)
    })
  }, 60_000)
})
