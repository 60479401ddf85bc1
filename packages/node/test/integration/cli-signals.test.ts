// The `matrixrtc` process on the real stack: how it ends on signals, and the errors it can only find out from the
// homeserver.
// - SIGHUP (the terminal closed) leaves like Ctrl-C: SFU, then the membership, `left`, exit 0;
// - a second signal while leaving exits 130 at once and says that the delayed leave ends the membership, which it
//   then does;
// - `watch` on a room the user is not joined to fails with NotJoined (exit 7) after the first sync, instead of
//   waiting forever;
// - `--device-id` with an access token of another device is a usage error (exit 2).
// The joins use a device logged in for the test (logged out at the end); the observers read as dave.
import { dispose } from "@livekit/rtc-node"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { hasMember, loginFresh, rtcObserver, spawnCli, stack, userAt } from "./e2e-helpers.ts"
import type { StackInfo, StackUser } from "@matrixrtc-effect/devstack"

afterAll(() => dispose())

/** `matrixrtc join --json` with an access token (in the environment, not argv). */
const joinWithToken = (s: StackInfo, user: StackUser) =>
  spawnCli(["join", "--homeserver", s.homeserverUrl, "--room", s.roomId, "--json"], { MATRIXRTC_ACCESS_TOKEN: user.accessToken })

/** The server part of a user id (room ids of room version 12 have none). */
const serverName = (userId: string) => userId.slice(userId.indexOf(":") + 1)

describe("matrixrtc on signals", () => {
  it.scopedLive("SIGHUP leaves the call like Ctrl-C: left, exit 0, the membership gone", () =>
    Effect.gen(function*() {
      const s = stack()
      const dave = yield* loginFresh(s, userAt(s, 3), "cli-signals SIGHUP")
      const observer = yield* rtcObserver(s, userAt(s, 3), s.roomId)
      const proc = yield* joinWithToken(s, dave)
      yield* proc.waitForEvent((e) => e.event === "joined", 30_000, "joined")
      yield* observer.waitUntil(hasMember(dave.userId, dave.deviceId), 20_000, "matrix-js-sdk to list the membership")

      yield* Effect.all([
        observer.waitUntil((ms) => !hasMember(dave.userId, dave.deviceId)(ms), 15_000, "the membership to end"),
        proc.kill("SIGHUP")
      ], { concurrency: "unbounded" })
      const left = yield* proc.waitForEvent((e) => e.event === "left", 10_000, "left")
      assert.strictEqual(left["end"], "Left")
      const exit = yield* proc.waitExit(10_000)
      assert.strictEqual(exit.code, 0, proc.stderr())
    }), { timeout: 90_000 })

  it.scopedLive("a second signal while leaving exits 130 and says the delayed leave ends the membership, which it does", () =>
    Effect.gen(function*() {
      const s = stack()
      const dave = yield* loginFresh(s, userAt(s, 3), "cli-signals forced")
      const observer = yield* rtcObserver(s, userAt(s, 3), s.roomId)
      const proc = yield* joinWithToken(s, dave)
      const joined = yield* proc.waitForEvent((e) => e.event === "joined", 30_000, "joined")
      assert.isTrue(joined["delayedLeave"], "the stack supports MSC4140")
      const delayMs = joined["delayMs"] as number
      yield* observer.waitUntil(hasMember(dave.userId, dave.deviceId), 20_000, "matrix-js-sdk to list the membership")

      // Two signals of one kind sent back to back can merge into one (standard signals do not queue), and waiting
      // in between would race the leave; a SIGTERM after the SIGINT is a second signal for sure.
      yield* Effect.sync(() => {
        proc.child.kill("SIGINT")
        proc.child.kill("SIGTERM")
      })
      const exit = yield* proc.waitExit(10_000)
      assert.strictEqual(exit.code, 130, proc.stderr())
      assert.include(proc.stderr(), `leave abandoned: the membership ends by its delayed leave within ${Math.ceil(delayMs / 1000)} s`)
      const events = yield* proc.events.get
      assert.notInclude(events.map((e) => e.event), "left")
      // As it said: the homeserver's delayed leave ends it.
      yield* observer.waitUntil((ms) => !hasMember(dave.userId, dave.deviceId)(ms), delayMs + 5_000, "the delayed leave to end the membership")
    }), { timeout: 90_000 })
})

describe("matrixrtc errors only the homeserver can tell", () => {
  it.scopedLive("watch on a room the user is not joined to fails with NotJoined, exit 7, after the first sync", () =>
    Effect.gen(function*() {
      const s = stack()
      const roomId = `!nosuchroom:${serverName(userAt(s, 3).userId)}`
      const proc = yield* spawnCli(
        ["watch", "--homeserver", s.homeserverUrl, "--room", roomId, "--json"],
        { MATRIXRTC_ACCESS_TOKEN: userAt(s, 3).accessToken }
      )
      const exit = yield* proc.waitExit(40_000)
      assert.strictEqual(exit.code, 7, proc.stderr())
      const events = yield* proc.events.get
      assert.deepStrictEqual(events.map((e) => e.event), ["error"])
      assert.include(events[0]!["error"] as object, { _tag: "NotJoined", roomId })
      assert.include(proc.stderr(), `error: not joined to ${roomId}`)
    }), { timeout: 60_000 })

  it.scopedLive("--device-id that is not the access token's device is a usage error (exit 2)", () =>
    Effect.gen(function*() {
      const s = stack()
      const dave = userAt(s, 3)
      const proc = yield* spawnCli(
        ["watch", "--homeserver", s.homeserverUrl, "--room", s.roomId, "--device-id", "NOTTHISDEVICE", "--json"],
        { MATRIXRTC_ACCESS_TOKEN: dave.accessToken }
      )
      const exit = yield* proc.waitExit(40_000)
      assert.strictEqual(exit.code, 2, proc.stderr())
      const events = yield* proc.events.get
      assert.deepStrictEqual(events.map((e) => e.event), ["error"])
      assert.strictEqual((events[0]!["error"] as { _tag: string })._tag, "UsageError")
      assert.include(proc.stderr(), "--device-id NOTTHISDEVICE is not the access token's device")
    }), { timeout: 60_000 })
})
