// Failures on the real stack, through the CLI: the exit code names the failure,
// the error is printed as JSON, and nothing is left behind (no membership, no
// SFU participant). Stopped services are restarted when each test ends.
import { LIVEKIT_PORT, type ServiceName, startService, stopService } from "@matrixrtc-effect/devstack"
import { startFaultProxy } from "@matrixrtc-effect/devstack/fault-proxy"
import { Effect } from "effect"
import { LiveKitNaming } from "@matrixrtc-effect/core"
import { assert, describe, it } from "@effect/vitest"
import {
  type CliEvent,
  freshDeviceId,
  legacyIdentity,
  listIdentities,
  liveMembershipsOf,
  loginArgs,
  spawnCli,
  stack,
  userAt
} from "./e2e-helpers.ts"

const quiet = { log: () => {} }

/** Where each service answers; used to make sure a stopped one really is gone. */
const probeUrl = (name: ServiceName): string => {
  const s = stack()
  return name === "auth" ? `${s.authServiceUrl}/healthz` : name === "livekit" ? `${s.livekitHttpUrl}/` : `${s.homeserverUrl}/health`
}

const answers = (url: string) =>
  Effect.promise(() => fetch(url, { signal: AbortSignal.timeout(2_000) }).then(() => true, () => false))

/**
 * Stops a stack service for the rest of the scope; it is started again (and
 * ready) when the scope closes. Fails if something still answers on the
 * service's port (then this test would prove nothing).
 */
const withServiceStopped = (name: ServiceName) =>
  Effect.gen(function*() {
    yield* Effect.acquireRelease(
      Effect.promise(() => stopService(name, quiet)),
      () => Effect.promise(() => startService(name, quiet))
    )
    if (yield* answers(probeUrl(name))) {
      return yield* Effect.fail(new Error(`${name} still answers at ${probeUrl(name)} after stopService: a process the devstack does not track holds its port`))
    }
  })

const errorOf = (e: CliEvent) => e["error"] as { _tag: string; reason?: string; errcode?: string; status?: number; message: string }

/** Runs `matrixrtc join` to its end; returns the exit code, the error event and who it joined as. */
const failingJoin = (roomId: string, extra: { readonly accessToken?: string } = {}) =>
  Effect.gen(function*() {
    const s = stack()
    const user = userAt(s, 2)
    const deviceId = freshDeviceId("fail")
    const login = extra.accessToken === undefined
      ? loginArgs(s, user, deviceId)
      : { args: ["--homeserver", s.homeserverUrl], env: { MATRIXRTC_ACCESS_TOKEN: extra.accessToken } }
        // --duration: if the join unexpectedly succeeds, the CLI still ends (with exit 0, which fails the test clearly).
    const proc = yield* spawnCli(["join", ...login.args, "--room", roomId, "--duration", "20", "--json"], login.env)
    const exit = yield* proc.waitExit(60_000)
    // The exit event can overtake the last stdout lines; the error line is the last one printed.
    const error = yield* proc.waitForEvent((e) => e.event === "error", 2_000, "the error event").pipe(
      Effect.catchAll(() => Effect.succeed({ event: "error", error: { _tag: "none", message: "no error event printed" } } as CliEvent))
    )
    const joinedEver = (yield* proc.events.get).some((e) => e.event === "joined")
    return {
      s,
      user,
      deviceId,
      code: exit.code,
      error: errorOf(error),
      joinedEver,
      stderr: proc.stderr()
    }
  })

/** No live call membership of our device under any state key: never written, or ended (`{}`). */
const assertNoMembership = (r: Effect.Effect.Success<ReturnType<typeof failingJoin>>, roomId: string) =>
  Effect.gen(function*() {
    assert.deepStrictEqual(yield* liveMembershipsOf(r.s, userAt(r.s, 3), roomId, r.user.userId, r.deviceId), [], "membership left behind")
  })

/** Our identity is not in the LiveKit room of `roomId`. */
const assertNotOnSfu = (r: Effect.Effect.Success<ReturnType<typeof failingJoin>>, roomId: string) =>
  Effect.gen(function*() {
    const roomName = yield* LiveKitNaming.liveKitRoomName(roomId, LiveKitNaming.legacySlotId)
    assert.notInclude(yield* listIdentities(r.s, roomName), legacyIdentity(r.user.userId, r.deviceId))
  })

describe("join failures on the real stack (CLI exit codes)", () => {
  it.scopedLive("bad access token → exit 3 NotAuthenticated", () =>
    Effect.gen(function*() {
      const s = stack()
      const r = yield* failingJoin(s.roomId, { accessToken: "syt_not_a_real_token_e2e" })
      assert.strictEqual(r.code, 3)
      assert.strictEqual(r.error._tag, "NotAuthenticated")
      assert.strictEqual(r.error.errcode, "M_UNKNOWN_TOKEN")
      // One clear line, no stack trace, and the token is not echoed.
      assert.match(r.stderr, /^error: the homeserver rejected the access token/m)
      assert.notMatch(r.stderr, /\n\s+at /)
      assert.notInclude(r.stderr, "syt_not_a_real_token_e2e")
    }), { timeout: 60_000 })

  it.scopedLive("forbidden room → exit 6 MembershipFailed M_FORBIDDEN, nothing stays connected", () =>
    Effect.gen(function*() {
      const s = stack()
      const r = yield* failingJoin(s.forbiddenRoomId)
      assert.strictEqual(r.code, 6, r.stderr)
      assert.strictEqual(r.error._tag, "MembershipFailed")
      assert.strictEqual(r.error.reason, "Forbidden")
      assert.strictEqual(r.error.errcode, "M_FORBIDDEN")
      assert.isFalse(r.joinedEver)
      yield* assertNoMembership(r, s.forbiddenRoomId)
      yield* assertNotOnSfu(r, s.forbiddenRoomId)
    }), { timeout: 60_000 })

  it.scopedLive("auth service stopped → exit 4 JwtFetchFailed, no membership", () =>
    Effect.gen(function*() {
      const s = stack()
      yield* withServiceStopped("auth")
      const r = yield* failingJoin(s.roomId)
      assert.strictEqual(r.code, 4, r.stderr)
      assert.strictEqual(r.error._tag, "JwtFetchFailed")
      assert.strictEqual(r.error.reason, "Unreachable")
      yield* assertNoMembership(r, s.roomId)
    }), { timeout: 120_000 })

  it.scopedLive("livekit-server stopped → the auth service cannot create the SFU room: exit 4, no membership", () =>
    Effect.gen(function*() {
      const s = stack()
      yield* withServiceStopped("livekit")
      const r = yield* failingJoin(s.roomId)
      assert.strictEqual(r.code, 4, r.stderr)
      assert.strictEqual(r.error._tag, "JwtFetchFailed")
      assert.strictEqual(r.error.status, 500)
      yield* assertNoMembership(r, s.roomId)
    }), { timeout: 120_000 })

  // With lk-jwt-service semantics the auth service creates the LiveKit room before it
  // answers, so a stopped livekit-server fails the JWT (above), never the connect. To
  // reach the connect failure on the real stack, a stand-in takes livekit-server's port
  // and answers only the auth service's CreateRoom; the client's signalling is refused.
  it.scopedLive("SFU refuses the client (livekit-server stopped, a stand-in answers CreateRoom) → exit 5 ConnectFailed, no membership", () =>
    Effect.gen(function*() {
      const s = stack()
      yield* withServiceStopped("livekit")
      const standIn = yield* Effect.acquireRelease(
        Effect.promise(() => startFaultProxy({ target: s.livekitHttpUrl, port: LIVEKIT_PORT })),
        (proxy) => Effect.promise(() => proxy.close())
      )
      standIn.addFault({
        method: "POST",
        path: /^\/twirp\/livekit\.RoomService\/CreateRoom/,
        action: { kind: "respond", status: 200, json: { sid: "RM_e2e_stand_in", name: "stand-in" } }
      })
      standIn.addFault({ path: /^\/rtc/, action: { kind: "refuse" } })
      const r = yield* failingJoin(s.roomId)
      assert.strictEqual(r.code, 5, r.stderr)
      assert.strictEqual(r.error._tag, "ConnectFailed")
      assert.isAbove(standIn.count({ path: /^\/rtc/ }), 0, "the client must have tried the SFU")
      assert.isFalse(r.joinedEver)
      yield* assertNoMembership(r, s.roomId)
    }), { timeout: 120_000 })
})
