// Members who leave the Matrix room drop out of the call, for us as for matrix-js-sdk's MatrixRTCSession, on the
// real Synapse. The room is one of the test's own: Bob leaves it and joins it again.
import { assert, layer } from "@effect/vitest"
import { CallMembers, Ids, MatrixClient, Membership } from "@matrixrtc-effect/core"
import { matrixRequest, readStack } from "@matrixrtc-effect/devstack"
import type { StackUser } from "@matrixrtc-effect/devstack"
import { Effect, Queue, Redacted, Stream } from "effect"
import * as sdk from "matrix-js-sdk"
import { MatrixRTCSessionEvent } from "matrix-js-sdk/lib/matrixrtc/index.js"
import { layerLogin, MatrixSdkClient } from "../../src/index.ts"

const stack = readStack()
const [alice, bob] = stack.users as unknown as [StackUser, StackUser]

const as = (user: StackUser, method: string, path: string, body?: unknown) =>
  Effect.promise(() =>
    matrixRequest(method, path, {
      baseUrl: stack.homeserverUrl,
      accessToken: user.accessToken,
      ...(method === "GET" ? {} : { body: body ?? {} })
    })
  )

layer(
  layerLogin({
    homeserverUrl: stack.homeserverUrl,
    accessToken: Redacted.make(alice.accessToken),
    userId: alice.userId,
    deviceId: alice.deviceId
  }),
  { timeout: "60 seconds", excludeTestServices: true }
)("room membership and the call's members (real Synapse)", (it) => {
  it.effect("a member who leaves the room drops out of our list and matrix-js-sdk's, and is back on re-joining", () =>
    Effect.gen(function*() {
      const mx = yield* MatrixClient
      const client = yield* MatrixSdkClient
      const { room_id } = yield* Effect.promise(() =>
        matrixRequest<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", {
          baseUrl: stack.homeserverUrl,
          accessToken: alice.accessToken,
          body: { preset: "public_chat", power_level_content_override: { events: { [Membership.SessionEventType]: 0 } } }
        })
      )
      const roomId = room_id as Ids.RoomId
      const roomPath = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`
      // The stack lives on between runs: the room goes, so that the users' syncs do not grow with every run.
      yield* Effect.addFinalizer(() =>
        Effect.forEach([bob, alice], (u) =>
          Effect.ignore(Effect.all([as(u, "POST", `${roomPath}/leave`), as(u, "POST", `${roomPath}/forget`)])), {
          discard: true
        }))
      yield* as(bob, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`)
      const bobKey = Membership.sessionStateKey(bob.userId, bob.deviceId, "11")
      yield* as(
        bob,
        "PUT",
        `${roomPath}/state/${Membership.SessionEventType}/${encodeURIComponent(bobKey)}`,
        Membership.sessionContent({ userId: bob.userId, deviceId: bob.deviceId, roomId, livekitServiceUrl: stack.authServiceUrl })
      )

      // Ours: every list the fold emits. Theirs: MatrixRTCSession's memberships on every change, on the same client.
      const ours = yield* Queue.unbounded<ReadonlyArray<string>>()
      yield* CallMembers.changes(mx.callMemberEvents(roomId)).pipe(
        Stream.runForEach((list) => Queue.offer(ours, list.map((m) => m.userId))),
        Effect.forkScoped
      )
      const theirs = yield* Queue.unbounded<ReadonlyArray<string>>()
      const room = yield* Effect.async<sdk.Room, Error>((resume) => {
        const known = client.getRoom(roomId)
        if (known !== null) return resume(Effect.succeed(known))
        const onRoom = (r: sdk.Room) => {
          if (r.roomId !== roomId) return
          client.off(sdk.ClientEvent.Room, onRoom)
          resume(Effect.succeed(r))
        }
        client.on(sdk.ClientEvent.Room, onRoom)
        return Effect.sync(() => client.off(sdk.ClientEvent.Room, onRoom))
      }).pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("alice's client never saw the room") }))
      const session = client.matrixRTC.getRoomSession(room)
      const onChange = () => Queue.unsafeOffer(theirs, session.memberships.map((m) => m.userId ?? ""))
      yield* Effect.acquireRelease(
        Effect.sync(() => session.on(MatrixRTCSessionEvent.MembershipsChanged, onChange)),
        () => Effect.sync(() => session.off(MatrixRTCSessionEvent.MembershipsChanged, onChange))
      )
      onChange()

      /** Waits until both views show `want` (each may pass through other lists on the way). */
      const bothShow = (want: ReadonlyArray<string>) =>
        Effect.all([ours, theirs].map((q) =>
          Queue.take(q).pipe(
            Effect.repeat({ until: (list) => JSON.stringify(list) === JSON.stringify(want) }),
            Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`never saw ${JSON.stringify(want)}`) })
          )
        ), { concurrency: "unbounded" })

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
