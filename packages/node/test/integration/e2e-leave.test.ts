// Leaving, cleanly and not:
// - SIGTERM: the participant leaves the SFU first, then its membership ends;
//   afterwards neither matrix-js-sdk nor LiveKit shows anything of it;
// - SIGKILL mid-call: nobody leaves, so the homeserver's delayed leave (MSC4140)
//   must end the membership within delay + 5 s.
import { dispose } from "@livekit/rtc-node"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  callMemberState,
  freshDeviceId,
  hasMember,
  legacyIdentity,
  listIdentities,
  livekitObserver,
  rtcObserver,
  spawnJoin,
  stack,
  userAt
} from "./e2e-helpers.ts"

// The hidden LiveKit observer runs rtc-node in this worker; its native runtime must be released.
afterAll(() => dispose())

describe("leaving the call on the real stack", () => {
  it.scopedLive("SIGTERM: SFU participant gone before the membership, then nothing left anywhere", () =>
    Effect.gen(function*() {
      const s = stack()
      const alice = userAt(s, 0)
      const deviceId = freshDeviceId("leave")
      const identity = legacyIdentity(alice.userId, deviceId)
      const observer = yield* rtcObserver(s, userAt(s, 3), s.roomId)
      const proc = yield* spawnJoin(s, alice, deviceId, ["--tone", "300"])
      const joined = yield* proc.waitForEvent((e) => e.event === "joined", 30_000, "joined")
      const roomName = joined["livekitRoom"] as string
      const stateKey = joined["membershipStateKey"] as string

      const sfu = yield* livekitObserver(s, roomName)
      yield* sfu.waitUntil((ids) => ids.has(identity), 15_000, "the LiveKit observer to see the participant")
      yield* observer.waitUntil(hasMember(alice.userId, deviceId), 20_000, "matrix-js-sdk to list the membership")

      // Both observers watch from before the signal.
      const [sfuGoneAt] = yield* Effect.all([
        sfu.waitUntil((ids) => !ids.has(identity), 15_000, "the participant to leave LiveKit"),
        observer.waitUntil((ms) => !hasMember(alice.userId, deviceId)(ms), 15_000, "the membership to end"),
        proc.kill("SIGTERM")
      ], { concurrency: "unbounded" })

      yield* proc.waitForEvent((e) => e.event === "left", 10_000, "left")
      assert.strictEqual((yield* proc.waitExit(10_000)).code, 0)
      // The room state says so too: the state key now holds `{}`.
      const leave = yield* callMemberState(s, userAt(s, 3), s.roomId, stateKey)
      assert.deepStrictEqual(leave.content, {})
      // The order on one clock: the LiveKit observer heard of the departure (after the SFU handled it) no later
      // than the homeserver stamped the leave event (after it received the request). Comparing when two observers
      // noticed would hide a reversed order smaller than the /sync observer's lag.
      console.log(`leave: SFU participant gone ${leave.originServerTs - sfuGoneAt} ms before the leave event was stamped`)
      assert.isAtMost(sfuGoneAt, leave.originServerTs, "the SFU participant must be gone before the membership ends")
      // And LiveKit's own API lists no participant of ours.
      assert.notInclude(yield* listIdentities(s, roomName), identity)
    }), { timeout: 90_000 })

  it.scopedLive("SIGKILL mid-call: the delayed leave ends the membership within delay + 5 s", () =>
    Effect.gen(function*() {
      const s = stack()
      const bob = userAt(s, 1)
      const deviceId = freshDeviceId("crash")
      const observer = yield* rtcObserver(s, userAt(s, 3), s.roomId)
      const proc = yield* spawnJoin(s, bob, deviceId)
      const joined = yield* proc.waitForEvent((e) => e.event === "joined", 30_000, "joined")
      assert.isTrue(joined["delayedLeave"], "the stack supports MSC4140, so a delayed leave must be scheduled")
      const delayMs = joined["delayMs"] as number
      yield* observer.waitUntil(hasMember(bob.userId, deviceId), 20_000, "matrix-js-sdk to list the membership")

      const killedAt = performance.now()
      const [goneAt] = yield* Effect.all([
        observer.waitUntil((ms) => !hasMember(bob.userId, deviceId)(ms), delayMs + 5_000, "the delayed leave to end the membership"),
        proc.kill("SIGKILL")
      ], { concurrency: "unbounded" })
      const exit = yield* proc.waitExit(5_000)
      assert.strictEqual(exit.signal, "SIGKILL")
      console.log(`crash: membership gone ${Math.round(goneAt - killedAt)} ms after SIGKILL (delay ${delayMs} ms)`)
      assert.isAtMost(goneAt - killedAt, delayMs + 5_000)
      const state = yield* callMemberState(s, userAt(s, 3), s.roomId, joined["membershipStateKey"] as string)
      assert.deepStrictEqual(state.content, {})
    }), { timeout: 90_000 })
})
