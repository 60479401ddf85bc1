// The example web app next to the demo call, so a browser can join the same room.
// The browser package provides the server (`serveExample`); it is imported by path
// because @matrixrtc-effect/browser depends on this package, not the other way round.
import type { StackInfo, StackUser } from "@matrixrtc-effect/devstack"
import { Effect, type Scope } from "effect"
import { serveExample } from "../../browser/example/serve.ts"

/**
 * Serves the example for as long as the scope is open and returns the line to
 * print. The page is preconfigured for `user` (a stack user; the password goes
 * to the page in clear, which is fine only for this local stack). A failure to
 * build or serve is reported, not fatal: the demo call does not need the page.
 */
export const serve = (stack: StackInfo, user: StackUser): Effect.Effect<string, never, Scope.Scope> =>
  serveExample({
    config: { homeserverUrl: stack.homeserverUrl, user: user.userId, password: user.password, roomId: stack.roomId }
  }).pipe(
    Effect.map((server) => `example web app: ${server.url}  (logs in as ${user.userId}; press Join to enter the same call)`),
    Effect.catchAll((e) => Effect.succeed(`example web app not served: ${e.message}`))
  )
