// The access token stops working mid-call (the user deletes the device elsewhere): the heartbeat's next request
// gets 401 M_UNKNOWN_TOKEN, core ends the call (CallEnd "TokenRejected": SFU first, then the membership attempt),
// and `matrixrtc join` exits with NotAuthenticated's code 3 instead of running on invisible. Afterwards neither
// LiveKit nor matrix-js-sdk shows anything of the device.
import { dispose } from "@livekit/rtc-node"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  freshDeviceId,
  hasMember,
  legacyIdentity,
  livekitObserver,
  rtcObserver,
  spawnJoin,
  stack,
  userAt
} from "./e2e-helpers.ts"
import type { StackInfo, StackUser } from "@matrixrtc-effect/devstack"

afterAll(() => dispose())

/** Deletes `user`'s device `deviceId` with the user's own password (user-interactive auth), from another session. */
const deleteDevice = (s: StackInfo, user: StackUser, deviceId: string) =>
  Effect.tryPromise(async () => {
    const url = `${s.homeserverUrl}/_matrix/client/v3/devices/${encodeURIComponent(deviceId)}`
    const headers = { Authorization: `Bearer ${user.accessToken}`, "Content-Type": "application/json" }
    const first = await fetch(url, { method: "DELETE", headers, body: "{}" })
    const { session } = (await first.json()) as { session?: string }
    const auth = { type: "m.login.password", identifier: { type: "m.id.user", user: user.userId }, password: user.password, session }
    const second = await fetch(url, { method: "DELETE", headers, body: JSON.stringify({ auth }) })
    if (!second.ok) throw new Error(`deleting the device: HTTP ${second.status} ${await second.text()}`)
  })

describe("the access token dies mid-call", () => {
  it.scopedLive("the CLI leaves the SFU, exits 3 (NotAuthenticated), and the membership is gone", () =>
    Effect.gen(function*() {
      const s = stack()
      const alice = userAt(s, 0)
      const deviceId = freshDeviceId("revoked")
      const identity = legacyIdentity(alice.userId, deviceId)
      const observer = yield* rtcObserver(s, userAt(s, 3), s.roomId)
      const proc = yield* spawnJoin(s, alice, deviceId)
      const joined = yield* proc.waitForEvent((e) => e.event === "joined", 30_000, "joined")
      const sfu = yield* livekitObserver(s, joined["livekitRoom"] as string)
      yield* sfu.waitUntil((ids) => ids.has(identity), 15_000, "the LiveKit observer to see the participant")
      yield* observer.waitUntil(hasMember(alice.userId, deviceId), 20_000, "matrix-js-sdk to list the membership")

      yield* deleteDevice(s, alice, deviceId)

      const exit = yield* proc.waitExit(30_000)
      assert.strictEqual(exit.code, 3, proc.stderr())
      const events = yield* proc.events.get
      // it says how it left: the SFU it left itself, the membership is left to its delayed leave
      assert.deepStrictEqual(events.filter((e) => e.event === "left").map((e) => e["end"]), ["TokenRejected"])
      const last = events.at(-1)
      assert.strictEqual(last?.event, "error", JSON.stringify(last))
      const error = last?.["error"] as Record<string, unknown> | undefined
      assert.strictEqual(error?.["_tag"], "NotAuthenticated", JSON.stringify(last))
      assert.strictEqual(error?.["reason"], "TokenRejected", JSON.stringify(last))
      // It left the SFU itself; the membership it could no longer end goes with the delayed leave (8 s).
      yield* sfu.waitUntil((ids) => !ids.has(identity), 10_000, "the participant to leave the SFU")
      yield* observer.waitUntil((ms) => !hasMember(alice.userId, deviceId)(ms), 20_000, "the membership to end")
    }), { timeout: 120_000 })
})
