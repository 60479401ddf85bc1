// The sticky (MSC4143/MSC4354) dialect between us and matrix-js-sdk 43 on the real Synapse, both ways: its
// MatrixRTCSession lists a membership we wrote, and we list one its StickyEventMembershipManager sent; each
// side drops the other's on the leave. The room is one of the test's own.
import { assert, layer } from "@effect/vitest"
import { type Ids, Membership } from "@matrixrtc-effect/core"
import { readStack } from "@matrixrtc-effect/devstack"
import type { StackUser } from "@matrixrtc-effect/devstack"
import { Effect, Option } from "effect"
import * as sdk from "matrix-js-sdk"
import { StickyEventMembershipManager } from "matrix-js-sdk/lib/matrixrtc/MembershipManager.js"
import * as support from "./support/callViews.ts"

const stack = readStack()
const [alice, bob] = stack.users as unknown as [StackUser, StackUser]
const run = `${Date.now()}`

const as = (user: StackUser, method: string, path: string, body?: unknown) => support.as(stack, user, method, path, body)

/** A room of the test's own with Bob in it, gone again (left and forgotten) when the scope closes. */
const freshRoom = support.freshRoom(stack, alice, bob, { preset: "public_chat" })

/**
 * Alice's two views of the room's call, on the one matrix-js-sdk client: our fold over the adapter, and
 * matrix-js-sdk's MatrixRTCSession (which reads sticky memberships by default).
 */
const views = (roomId: Ids.RoomId) =>
  Effect.map(support.callViews(roomId), ({ ours, theirs }) => {
    const ids = (l: ReadonlyArray<{ readonly memberId: string }>) => l.map((m) => m.memberId).join()
    /** Both views' first lists of exactly Bob's member `memberId` (or none, for `undefined`). */
    const bothShow = (memberId: string | undefined) =>
      Effect.all([
        support.until(ours, (l) => ids(l) === (memberId ?? ""), `our list of ${memberId}`),
        support.until(theirs, (l) => ids(l) === (memberId ?? ""), `matrix-js-sdk's list of ${memberId}`)
      ], { concurrency: "unbounded" })
    return { bothShow }
  })

layer(support.loggedIn(stack, alice), { timeout: "90 seconds", excludeTestServices: true })("sticky memberships between us and matrix-js-sdk 43 (real Synapse)", (it) => {
  it.effect("matrix-js-sdk lists the sticky membership we write, with our transport and LiveKit identity", () =>
    Effect.gen(function*() {
      const { roomId, roomPath } = yield* freshRoom
      const { bothShow } = yield* views(roomId)
      const memberId = `ours-${run}`
      const send = (content: Record<string, unknown>, txn: string) =>
        as(
          bob,
          "PUT",
          `${roomPath}/send/${Membership.StickyEventType}/${txn}?org.matrix.msc4354.sticky_duration_ms=${Membership.StickyDurationMs}`,
          content
        )
      yield* send(
        Membership.stickyContent({ userId: bob.userId, deviceId: bob.deviceId, memberId, livekitServiceUrl: stack.authServiceUrl }),
        `join-${run}`
      )
      const [[mine], [theirs]] = yield* bothShow(memberId)
      assert.strictEqual(mine!.dialect, "sticky")
      assert.strictEqual(theirs!.rtcBackendIdentity, mine!.rtcBackendIdentity)
      assert.deepStrictEqual(theirs!.getTransport(theirs!), { type: "livekit", livekit_service_url: stack.authServiceUrl })
      // The expiry the client worked out when the event came: within the hour the server gave it.
      const expiresAt = Option.getOrThrow(mine!.expiresAt)
      assert.isAbove(expiresAt, Date.now())
      assert.isAtMost(expiresAt, Date.now() + Membership.StickyDurationMs)

      yield* send(Membership.stickyLeaveContent(memberId), `leave-${run}`)
      yield* bothShow(undefined)
    }).pipe(Effect.scoped))

  it.effect("we list the sticky membership matrix-js-sdk's StickyEventMembershipManager sends, and drop it on its leave", () =>
    Effect.gen(function*() {
      const { roomId } = yield* freshRoom
      const { bothShow } = yield* views(roomId)
      // Bob's matrix-js-sdk: it only sends, so it needs no sync.
      const bobClient = sdk.createClient({
        baseUrl: stack.homeserverUrl,
        accessToken: bob.accessToken,
        userId: bob.userId,
        deviceId: bob.deviceId
      })
      const memberId = `theirs-${run}`
      const manager = new StickyEventMembershipManager(
        { callIntent: "audio" },
        new sdk.Room(roomId, bobClient, bob.userId),
        bobClient,
        { application: "m.call", id: "ROOM" },
        memberId
      )
      const transport = { type: "livekit", livekit_service_url: stack.authServiceUrl }
      yield* Effect.acquireRelease(
        Effect.sync(() => manager.join([transport], transport)),
        () => Effect.promise(() => manager.leave(5_000)).pipe(Effect.timeout("10 seconds"), Effect.ignore)
      )
      const [[mine]] = yield* bothShow(memberId)
      assert.strictEqual(mine!.userId, bob.userId)
      assert.strictEqual(mine!.deviceId, bob.deviceId)
      assert.strictEqual(mine!.dialect, "sticky")
      assert.deepStrictEqual(mine!.callIntent, Option.some("audio"))
      assert.deepStrictEqual(mine!.transports.map((t) => t.livekitServiceUrl), [stack.authServiceUrl])

      yield* Effect.promise(() => manager.leave(5_000))
      yield* bothShow(undefined)
    }).pipe(Effect.scoped))
})
