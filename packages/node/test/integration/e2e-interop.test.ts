// Interop with matrix-js-sdk's own MatrixRTCSession, both directions:
// 1. it lists a `matrixrtc join` participant as an active member with a usable
//    LiveKit transport and the LiveKit identity the SFU knows it by;
// 2. our Call (through `matrixrtc join`) lists a participant that joined with
//    matrix-js-sdk's `joinRTCSession`.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { isLivekitTransportConfig } from "matrix-js-sdk/lib/matrixrtc/index.js"
import {
  type CliEvent,
  freshDeviceId,
  hasMember,
  loginFresh,
  rtcObserver,
  spawnJoin,
  stack,
  userAt
} from "./e2e-helpers.ts"

const membersOf = (e: CliEvent) => e["members"] as ReadonlyArray<{ userId: string; deviceId: string; rtcBackendIdentity: string }>

describe("interop with matrix-js-sdk MatrixRTCSession", () => {
  it.scopedLive("matrix-js-sdk lists our participant with a usable LiveKit transport and our LiveKit identity", () =>
    Effect.gen(function*() {
      const s = stack()
      const alice = userAt(s, 0)
      const deviceId = freshDeviceId("interop-ours")
      const observer = yield* rtcObserver(s, userAt(s, 3), s.roomId)
      const proc = yield* spawnJoin(s, alice, deviceId)
      const joined = yield* proc.waitForEvent((e) => e.event === "joined", 30_000, "joined")

      yield* observer.waitUntil(hasMember(alice.userId, deviceId), 20_000, "matrix-js-sdk to list our membership")
      const m = Option.getOrThrow(yield* observer.find(alice.userId, deviceId))
      assert.isFalse(m.isExpired())
      assert.strictEqual(m.rtcBackendIdentity, joined["livekitIdentity"])
      const oldest = observer.session.getOldestMembership()
      assert.isDefined(oldest)
      const transport = m.getTransport(oldest!)
      assert.isDefined(transport)
      assert.isTrue(isLivekitTransportConfig(transport!), `usable LiveKit transport: ${JSON.stringify(transport)}`)
      assert.strictEqual((transport as unknown as { livekit_service_url: string }).livekit_service_url, s.authServiceUrl)

      yield* proc.kill("SIGTERM")
      yield* proc.waitExit(15_000)
      yield* observer.waitUntil((ms) => !hasMember(alice.userId, deviceId)(ms), 15_000, "matrix-js-sdk to drop our membership")
    }), { timeout: 90_000 })

  it.scopedLive("our Call lists a participant that joined with matrix-js-sdk's joinRTCSession", () =>
    Effect.gen(function*() {
      const s = stack()
      // The matrix-js-sdk peer: carol on a device of her own, joined through MatrixRTCSession.
      const carol = yield* loginFresh(s, userAt(s, 2), "interop-sdk")
      const peer = yield* rtcObserver(s, carol, s.roomId)
      const transport = { type: "livekit", livekit_service_url: s.authServiceUrl, livekit_alias: s.roomId }
      yield* Effect.acquireRelease(
        Effect.sync(() =>
          peer.session.joinRTCSession(
            { userId: carol.userId, deviceId: carol.deviceId, memberId: `${carol.userId}:${carol.deviceId}` },
            [transport],
            transport
          )
        ),
        () => Effect.promise(() => peer.session.leaveRoomSession(5_000))
      )

      const bob = userAt(s, 1)
      const proc = yield* spawnJoin(s, bob, freshDeviceId("interop-ours"))
      yield* proc.waitForEvent((e) => e.event === "joined", 30_000, "joined")
      const listed = yield* proc.waitForEvent(
        (e) => e.event === "member" && membersOf(e).some((m) => m.userId === carol.userId && m.deviceId === carol.deviceId),
        20_000,
        "our Call to list the matrix-js-sdk participant"
      )
      const carolAsMember = membersOf(listed).find((m) => m.deviceId === carol.deviceId)!
      // What peers must connect to on LiveKit: the same identity matrix-js-sdk computes for itself.
      const sdkView = Option.getOrThrow(yield* peer.find(carol.userId, carol.deviceId))
      assert.strictEqual(carolAsMember.rtcBackendIdentity, sdkView.rtcBackendIdentity)

      // And when the matrix-js-sdk peer leaves, our Call drops it.
      yield* Effect.promise(() => peer.session.leaveRoomSession(5_000))
      yield* proc.waitForEvent(
        (e) =>
          e.event === "member" &&
          (e["left"] as ReadonlyArray<{ deviceId: string }>).some((m) => m.deviceId === carol.deviceId),
        20_000,
        "our Call to drop the matrix-js-sdk participant after it left"
      )
      yield* proc.kill("SIGTERM")
      assert.strictEqual((yield* proc.waitExit(15_000)).code, 0)
    }), { timeout: 90_000 })
})
