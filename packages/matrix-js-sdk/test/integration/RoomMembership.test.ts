// Members who leave the Matrix room drop out of the call, for us as for matrix-js-sdk's MatrixRTCSession, on the
// real Synapse. The room is one of the test's own: Bob leaves it and joins it again.
import { assert, layer } from "@effect/vitest"
import { Membership } from "@matrixrtc-effect/core"
import { readStack } from "@matrixrtc-effect/devstack"
import type { StackUser } from "@matrixrtc-effect/devstack"
import { Effect } from "effect"
import * as support from "./support/callViews.ts"

const stack = readStack()
const [alice, bob] = stack.users as unknown as [StackUser, StackUser]
const as = (user: StackUser, method: string, path: string, body?: unknown) => support.as(stack, user, method, path, body)

layer(support.loggedIn(stack, alice), { timeout: "60 seconds", excludeTestServices: true })("room membership and the call's members (real Synapse)", (it) => {
  it.effect("a member who leaves the room drops out of our list and matrix-js-sdk's, and is back on re-joining", () =>
    Effect.gen(function*() {
      const { roomId, roomPath } = yield* support.freshRoom(stack, alice, bob, {
        preset: "public_chat",
        power_level_content_override: { events: { [Membership.SessionEventType]: 0 } }
      })
      const bobKey = Membership.sessionStateKey(bob.userId, bob.deviceId, "11")
      yield* as(
        bob,
        "PUT",
        `${roomPath}/state/${Membership.SessionEventType}/${encodeURIComponent(bobKey)}`,
        Membership.sessionContent({ userId: bob.userId, deviceId: bob.deviceId, roomId, livekitServiceUrl: stack.authServiceUrl })
      )

      const { ours, theirs } = yield* support.callViews(roomId)
      const userIds = (list: ReadonlyArray<{ readonly userId?: string | undefined }>) => JSON.stringify(list.map((m) => m.userId ?? ""))
      /** Waits until both views list exactly the users `want` (each may pass through other lists on the way). */
      const bothShow = (want: ReadonlyArray<string>) =>
        Effect.all([
          support.until(ours, (l) => userIds(l) === JSON.stringify(want), `our list ${JSON.stringify(want)}`),
          support.until(theirs, (l) => userIds(l) === JSON.stringify(want), `matrix-js-sdk's list ${JSON.stringify(want)}`)
        ], { concurrency: "unbounded" })

      yield* bothShow([bob.userId])
      yield* as(bob, "POST", `${roomPath}/leave`)
      yield* bothShow([])
      // Bob's call membership is still in the room state: it is his room membership that counts.
      const state = yield* as(alice, "GET", `${roomPath}/state/${Membership.SessionEventType}/${encodeURIComponent(bobKey)}`)
        .pipe(Effect.map((c) => c as Record<string, unknown>))
      assert.strictEqual(state["device_id"], bob.deviceId)
      yield* as(bob, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`)
      yield* bothShow([bob.userId])

      yield* as(bob, "PUT", `${roomPath}/state/${Membership.SessionEventType}/${encodeURIComponent(bobKey)}`, {})
      yield* bothShow([])
    }).pipe(Effect.scoped))
})
