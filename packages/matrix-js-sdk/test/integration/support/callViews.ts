// What the real-Synapse interop tests share: requests as a stack user, a room of the test's own, and alice's two
// views of that room's call on one matrix-js-sdk client (our fold over the adapter, and its MatrixRTCSession).
import { type CallMember, CallMembers, type Ids, MatrixClient } from "@matrixrtc-effect/core"
import { matrixRequest, type StackInfo, type StackUser } from "@matrixrtc-effect/devstack"
import { Effect, Queue, Redacted, Stream } from "effect"
import * as sdk from "matrix-js-sdk"
import type { CallMembership } from "matrix-js-sdk/lib/matrixrtc/CallMembership.js"
import { MatrixRTCSessionEvent } from "matrix-js-sdk/lib/matrixrtc/index.js"
import { layerLogin, MatrixSdkClient } from "../../../src/index.ts"

/** `user`'s own stack device as the adapter's layer (no test services: these tests run on the real clock). */
export const loggedIn = (stack: StackInfo, user: StackUser) =>
  layerLogin({
    homeserverUrl: stack.homeserverUrl,
    accessToken: Redacted.make(user.accessToken),
    userId: user.userId,
    deviceId: user.deviceId
  })

/** A client-server request as `user`. */
export const as = (stack: StackInfo, user: StackUser, method: string, path: string, body?: unknown) =>
  Effect.promise(() =>
    matrixRequest(method, path, {
      baseUrl: stack.homeserverUrl,
      accessToken: user.accessToken,
      ...(method === "GET" ? {} : { body: body ?? {} })
    })
  )

/**
 * A room `owner` creates (with `createRoom` options) and `guest` joins; both leave and forget it when the scope
 * closes, since the stack lives on between runs and the users' syncs should not grow with every run.
 */
export const freshRoom = (stack: StackInfo, owner: StackUser, guest: StackUser, createRoom: Record<string, unknown>) =>
  Effect.gen(function*() {
    const { room_id } = yield* Effect.promise(() =>
      matrixRequest<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", {
        baseUrl: stack.homeserverUrl,
        accessToken: owner.accessToken,
        body: createRoom
      })
    )
    const roomId = room_id as Ids.RoomId
    const roomPath = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`
    yield* Effect.addFinalizer(() =>
      Effect.forEach([guest, owner], (u) =>
        Effect.ignore(Effect.all([as(stack, u, "POST", `${roomPath}/leave`), as(stack, u, "POST", `${roomPath}/forget`)])), {
        discard: true
      }))
    yield* as(stack, guest, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`)
    return { roomId, roomPath }
  })

/** The first list from `q` that `ok` accepts (lists may pass through others on the way), within 20 s. */
export const until = <A>(q: Queue.Queue<ReadonlyArray<A>>, ok: (list: ReadonlyArray<A>) => boolean, what: string) =>
  Queue.take(q).pipe(
    Effect.repeat({ until: ok }),
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`never saw ${what}`) })
  )

/** Every list our fold emits (`ours`), and MatrixRTCSession's memberships on every change (`theirs`). */
export const callViews = (roomId: Ids.RoomId) =>
  Effect.gen(function*() {
    const mx = yield* MatrixClient
    const client = yield* MatrixSdkClient
    const ours = yield* Queue.unbounded<ReadonlyArray<CallMember>>()
    yield* CallMembers.changes(mx.callMemberEvents(roomId)).pipe(
      Stream.runForEach((list) => Queue.offer(ours, list)),
      Effect.forkScoped
    )
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
    }).pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("the client never saw the room") }))
    const session = client.matrixRTC.getRoomSession(room)
    const theirs = yield* Queue.unbounded<ReadonlyArray<CallMembership>>()
    const onChange = () => Queue.unsafeOffer(theirs, [...session.memberships])
    yield* Effect.acquireRelease(
      Effect.sync(() => session.on(MatrixRTCSessionEvent.MembershipsChanged, onChange)),
      () => Effect.sync(() => session.off(MatrixRTCSessionEvent.MembershipsChanged, onChange))
    )
    onChange()
    return { ours, theirs }
  })
