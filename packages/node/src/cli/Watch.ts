/**
 * `matrixrtc watch`: the room's call members as they change, without joining.
 * Runs until Ctrl-C/SIGTERM (or the client stops).
 */
import { CallMembers, Ids, MatrixClient } from "@matrixrtc-effect/core"
import type { CallMember, MatrixError, NotAuthenticated } from "@matrixrtc-effect/core"
import { Effect, Stream } from "effect"
import type { Credentials } from "./Cli.ts"
import type { Output } from "./Output.ts"
import * as Render from "./Render.ts"
import * as Session from "./Session.ts"

export interface WatchOptions {
  readonly homeserver: string
  readonly credentials: Credentials
  readonly roomId: string
}

export const run = (options: WatchOptions, out: Output): Effect.Effect<void, Ids.InvalidId | NotAuthenticated | MatrixError> =>
  Effect.gen(function*() {
    const roomId = yield* Ids.roomId(options.roomId)
    yield* watch(roomId, out).pipe(Effect.provide(Session.layer(options.homeserver, options.credentials)))
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
