// The README's "Joining a call" example. It is type-checked by `tsc -b` (so the
// README cannot drift from the API) but not run; the e2e tests run the same
// calls against the real stack.
import { Call, Ids } from "@matrixrtc-effect/core"
import { NodeCall } from "@matrixrtc-effect/node"
import { Effect, Redacted, Stream } from "effect"

const program = Effect.gen(function*() {
  const roomId = yield* Ids.roomId("!abc:example.org")
  const call = yield* Call.join(roomId, { callIntent: "audio" })
  yield* Effect.log(`connected to ${call.connection.roomName} as ${call.connection.identity}`)
  yield* call.members.pipe(
    Stream.tap((members) => Effect.log(`${members.length} in the call`)),
    Stream.take(3),
    Stream.runDrain
  )
}).pipe(
  Effect.scoped // leaving = closing this scope: SFU first, then the membership
)

export const main = (token: string) =>
  program.pipe(
    Effect.provide(
      NodeCall.layer({
        matrix: { homeserverUrl: "https://matrix.example.org", accessToken: Redacted.make(token) }
      })
    ),
    // After `provide`: the layer's login fails too (NotAuthenticated for a dead token, MatrixError if unreachable).
    Effect.catchTags({
      InvalidId: (e) => Effect.logError(e.message),
      NotAuthenticated: (e) => Effect.logError(e.reason, e.message),
      JwtFetchFailed: (e) => Effect.logError(e.reason, e.errcode, e.message),
      MembershipFailed: (e) => Effect.logError(e.errcode, e.message),
      ConnectFailed: (e) => Effect.logError(e.reason, e.message),
      MatrixError: (e) => Effect.logError(e.message)
    }),
    Effect.runPromise
  )
