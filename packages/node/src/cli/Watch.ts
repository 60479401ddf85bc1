/**
 * `matrixrtc watch`: the room's call members as they change, without joining.
 * Runs until Ctrl-C/SIGTERM/SIGHUP (or the client stops). A room we are not joined to is `NotJoined`
 * (exit 7) once the first sync is in: the client would otherwise wait for its events forever.
 */
import { CallMembers, Ids, MatrixClient } from "@matrixrtc-effect/core"
import type { CallMember, MatrixError, NotAuthenticated } from "@matrixrtc-effect/core"
import { MatrixSdkClient } from "@matrixrtc-effect/matrix-js-sdk"
import { Effect, Stream } from "effect"
import type { Credentials } from "./Cli.ts"
import { NotJoined, type UsageError } from "./Errors.ts"
import type { Output } from "./Output.ts"
import * as Render from "./Render.ts"
import * as Session from "./Session.ts"

export interface WatchOptions {
  readonly homeserver: string
  readonly credentials: Credentials
  readonly roomId: string
}

export const run = (
  options: WatchOptions,
  out: Output
): Effect.Effect<void, Ids.InvalidId | NotAuthenticated | MatrixError | UsageError | NotJoined> =>
  Effect.gen(function*() {
    const roomId = yield* Ids.roomId(options.roomId)
    yield* Session.afterLogin(options.credentials, out).pipe(
      Effect.zipRight(joinedTo(roomId)),
      Effect.zipRight(watch(roomId, out)),
      Effect.provide(Session.layer(options.homeserver, options.credentials))
    )
  })

/** Whether the first sync (the session layer waits for it) lists the room as joined. */
const joinedTo = (roomId: Ids.RoomId): Effect.Effect<void, NotJoined, MatrixSdkClient> =>
  Effect.flatMap(MatrixSdkClient, (client) => {
    const room = client.getRoom(roomId)
    const membership = room?.getMyMembership()
    return membership === "join"
      ? Effect.void
      : Effect.fail(new NotJoined({ roomId, ...(membership !== undefined && membership !== "" ? { membership } : {}) }))
  })

const watch = (roomId: Ids.RoomId, out: Output) =>
  Effect.gen(function*() {
    const mx = yield* MatrixClient
    yield* out.event("watching", { roomId }, `watching call members of ${roomId} (Ctrl-C to stop)`)
    yield* CallMembers.changes(mx.callMemberEvents(roomId)).pipe(
      Stream.runFoldEffect([] as ReadonlyArray<CallMember>, (before, members) => {
        const change = Render.memberChange(before, members)
        return out.event("member", change.fields, [...change.lines, `  ${Render.memberSummary(members)}`].join("\n"))
          .pipe(Effect.as(members))
      })
    )
  })
