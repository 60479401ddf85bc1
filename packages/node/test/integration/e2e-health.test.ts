// A `matrixrtc join` whose delayed-leave restarts stop reaching the homeserver: the homeserver's delayed leave
// ends the membership, matrix-js-sdk's MatrixRTCSession drops the member, and the CLI says so (`health`
// ProbablyLeft); once the homeserver answers again, the membership is published again, matrix-js-sdk lists the
// member again, and the CLI says that too (`health` Live). Then SIGTERM leaves cleanly.
import { assert, describe, it } from "@effect/vitest"
import { startFaultProxy } from "@matrixrtc-effect/devstack/fault-proxy"
import { Effect } from "effect"
import { freshDeviceId, hasMember, loginArgs, rtcObserver, spawnCli, stack, userAt } from "./e2e-helpers.ts"

describe("membership health through the CLI", () => {
  it.scopedLive("restarts cut off past the delay: ProbablyLeft, gone for matrix-js-sdk; back: Live, listed again", () =>
    Effect.gen(function*() {
      const s = stack()
      const user = userAt(s, 1)
      const deviceId = freshDeviceId("health")
      const hs = yield* Effect.acquireRelease(
        Effect.promise(() => startFaultProxy({ target: s.homeserverUrl })),
        (p) => Effect.promise(() => p.close())
      )
      const observer = yield* rtcObserver(s, userAt(s, 3), s.roomId)
      const login = loginArgs({ ...s, homeserverUrl: hs.url }, user, deviceId)
      const proc = yield* spawnCli(["join", ...login.args, "--room", s.roomId, "--duration", "120", "--json"], login.env)
      yield* proc.waitForEvent((e) => e.event === "joined", 30_000, "joined")
      yield* observer.waitUntil(hasMember(user.userId, deviceId), 20_000, "matrix-js-sdk to list the member")

      // Every restart of the delayed leave is held by the proxy; the homeserver's timer runs out (8 s).
      const cut = hs.addFault({ method: "POST", path: /delayed_events\/[^/]+\/restart|delayed_events\/[^/?]+$/, action: { kind: "hang" } })
      yield* proc.waitForEvent((e) => e.event === "health" && e["health"] === "ProbablyLeft", 20_000, "health ProbablyLeft")
      yield* observer.waitUntil((ms) => !hasMember(user.userId, deviceId)(ms), 15_000, "matrix-js-sdk to drop the member")

      cut.remove()
      yield* proc.waitForEvent((e) => e.event === "health" && e["health"] === "Live", 30_000, "health Live")
      yield* observer.waitUntil(hasMember(user.userId, deviceId), 20_000, "matrix-js-sdk to list the member again")
      const healths = (yield* proc.events.get).filter((e) => e.event === "health").map((e) => e["health"])
      assert.deepStrictEqual(healths, ["ProbablyLeft", "Live"])

      yield* proc.kill("SIGTERM")
      const exit = yield* proc.waitExit(20_000)
      assert.strictEqual(exit.code, 0, proc.stderr())
      yield* observer.waitUntil((ms) => !hasMember(user.userId, deviceId)(ms), 15_000, "the membership to end")
    }), 150_000)
})
