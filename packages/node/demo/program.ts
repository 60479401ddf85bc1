// `npm run demo`: the whole thing on this machine, end to end.
//
// 1. starts the local stack (Synapse + livekit-server + auth service; installs them on first run);
// 2. serves the example web app, so a browser can join the same call;
// 3. joins two Node participants into the stack's room, alice playing a tone;
// 4. shows the live member table (bob's view: who is in the call, who is on the SFU,
//    the level of the audio he receives);
// 5. after --seconds (default 20) or Ctrl-C, both leave; the room state then shows
//    that their memberships are gone.
//
// The stack keeps running afterwards (`npm run stack:down` stops it).
//
// Started by demo.ts, which sets up the environment before this module loads.
import type { Call, Ids } from "@matrixrtc-effect/core"
import { describeStack, matrixRequest, type StackInfo, type StackUser, up } from "@matrixrtc-effect/devstack"
import { Console, Deferred, Duration, Effect, Fiber, Redacted } from "effect"
import { parseArgs } from "node:util"
import * as Join from "../src/cli/Join.ts"
import { runMain } from "../src/cli/Main.ts"
import * as Output from "../src/cli/Output.ts"
import * as NodeCall from "../src/NodeCall.ts"
import type { NodeConnection } from "../src/NodeLiveKit.ts"
import * as Web from "./web.ts"

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "20" }, "no-web": { type: "boolean", default: false } },
  strict: true
})
const seconds = Number(values.seconds)
if (!Number.isFinite(seconds) || seconds <= 0) {
  process.stderr.write("usage: npm run demo -- [--seconds N] [--no-web]\n")
  process.exit(2)
}

const stderrLog = (line: string) => void process.stderr.write(`[devstack] ${line}\n`)

const userAt = (stack: StackInfo, i: number): StackUser => {
  const u = stack.users[i]
  if (u === undefined) throw new Error(`the stack has no user #${i}`)
  return u
}

interface Joined {
  readonly name: string
  readonly call: Call.Call
  readonly conn: NodeConnection
  readonly own: Call.OwnMembership
}

/**
 * One Node participant for as long as `stop` is open: its own login (a demo
 * device), its own NodeCall layer, the call joined, optionally a tone. Leaving
 * is the closing of its scope: SFU first, then the membership.
 */
const participant = (
  stack: StackInfo,
  user: StackUser,
  options: { readonly name: string; readonly toneHz?: number },
  out: Output.Output,
  ready: Deferred.Deferred<Joined, unknown>,
  stop: Deferred.Deferred<void>
) =>
  Effect.scoped(
    Effect.gen(function*() {
      const { call, conn, own } = yield* Join.joinCall(stack.roomId as Ids.RoomId)
      if (options.toneHz !== undefined) yield* Join.publish(conn, { _tag: "Tone", frequencyHz: options.toneHz }, out)
      yield* Deferred.succeed(ready, { name: options.name, call, conn, own })
      yield* Deferred.await(stop)
    })
  ).pipe(
    Effect.tapError((e) => Deferred.fail(ready, e)),
    Effect.provide(
      NodeCall.layer({
        matrix: {
          homeserverUrl: stack.homeserverUrl,
          user: user.userId,
          password: Redacted.make(user.password),
          deviceId: `DEMO_${options.name.toUpperCase()}`,
          initialDeviceDisplayName: "matrixrtc demo"
        }
      })
    )
  )

/** Reads the call.member state of each participant from the homeserver, as a third user sees it. */
const showMembershipsGone = (stack: StackInfo, joined: ReadonlyArray<Joined>) =>
  Effect.gen(function*() {
    const observer = userAt(stack, 3)
    for (const j of joined) {
      const key = j.own.stateKey ?? ""
      const content = yield* Effect.tryPromise({
        try: () =>
          matrixRequest<Record<string, unknown>>(
          "GET",
          `/_matrix/client/v3/rooms/${encodeURIComponent(stack.roomId)}/state/${j.own.eventType}/${encodeURIComponent(key)}`,
            { accessToken: observer.accessToken }
          ),
        catch: (e) => e
      }).pipe(Effect.catchAll((e) => Effect.succeed({ unreadable: Output.errorMessage(e) })))
      const gone = Object.keys(content).length === 0
      yield* Console.log(
        `  ${j.name}: ${j.own.eventType} state "${key}" is ${JSON.stringify(content)} → ${gone ? "membership gone" : "STILL PRESENT"}`
      )
    }
  })

const program = Effect.gen(function*() {
  yield* Console.log(`starting the local MatrixRTC stack (first run installs Synapse and livekit-server; this can take minutes)…`)
  // StackError messages already say what failed and how to fix it.
  const started = yield* Effect.tryPromise({ try: () => up({ log: stderrLog }), catch: (e) => e })
  const stack = started.stack
  yield* Console.log(describeStack(stack))

  if (!values["no-web"]) yield* Web.serve(stack, userAt(stack, 2)).pipe(Effect.flatMap(Console.log))

  const alice = userAt(stack, 0)
  const bob = userAt(stack, 1)
  const out = Output.make({ json: false, secrets: stack.users.flatMap((u) => [u.accessToken, u.password]) })
  const stop = yield* Deferred.make<void>()
  const readyA = yield* Deferred.make<Joined, unknown>()
  const readyB = yield* Deferred.make<Joined, unknown>()
  const joined: Array<Joined> = []

  yield* Effect.scoped(
    Effect.gen(function*() {
      const fibers = [
        yield* Effect.forkScoped(participant(stack, alice, { name: "alice", toneHz: 440 }, out, readyA, stop)),
        yield* Effect.forkScoped(participant(stack, bob, { name: "bob" }, out, readyB, stop))
      ]
      for (const ready of [readyA, readyB]) {
        const j = yield* Deferred.await(ready)
        joined.push(j)
        yield* Console.log(
          `${j.name} joined as ${j.call.session.userId} (${j.call.session.deviceId}), LiveKit identity ${j.conn.identity}`
        )
      }
      yield* Console.log(`\nlive view from bob's side for ${seconds} s (Ctrl-C to leave early):`)
      yield* Join.show(joined[1]!.call, joined[1]!.conn, out)
      yield* Effect.sleep(Duration.seconds(seconds))
      yield* Console.log("\ntime is up: leaving (SFU first, then the membership)…")
      yield* Deferred.succeed(stop, undefined)
      yield* Fiber.joinAll(fibers)
    })
  ).pipe(
    // Also after Ctrl-C: by now both scopes are closed, i.e. both have left.
    Effect.ensuring(
      Effect.gen(function*() {
        if (joined.length === 0) return
        yield* Console.log("both left; the room state now says:")
        yield* showMembershipsGone(stack, joined)
      })
    )
  )
  yield* Console.log("done. The stack is still running: `npm run stack:down` stops it.")
  return 0
})

runMain(
  program.pipe(
    // The web app server lives as long as the demo.
    Effect.scoped,
    Effect.catchAll((e) => Console.error(`demo failed: ${Output.errorMessage(e)}`).pipe(Effect.as(1)))
  )
)
