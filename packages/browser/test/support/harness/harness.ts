/**
 * Test page for the adapter alone: `window.harness.connect(url, jwt, timeoutMs)`
 * opens a `BrowserLiveKit` connection in a scope, records its states and
 * disconnect reasons, closes the scope and reports what happened as JSON.
 * The page is the edge here, so it runs effects itself.
 */
import { Cause, Deferred, Effect, Exit, Fiber, Option, Redacted, Stream } from "effect"
import * as BrowserLiveKit from "../../../src/BrowserLiveKit.ts"

export interface ConnectReport {
  readonly ok: boolean
  readonly elapsedMs: number
  readonly error?: { readonly tag: string; readonly reason: string; readonly status?: number; readonly message: string }
  readonly identity?: string
  readonly roomName?: string
  readonly states?: ReadonlyArray<string>
  readonly reasons?: ReadonlyArray<string>
  readonly currentWhileOpen?: boolean
  readonly currentAfterClose?: boolean
  readonly stateAfterClose?: string
}

const connect = async (url: string, jwt: string, timeoutMs: number): Promise<ConnectReport> => {
  const started = performance.now()
  const exit = await Effect.runPromiseExit(
    Effect.gen(function*() {
      const lk = yield* BrowserLiveKit.make()
      const states: Array<string> = []
      const reasons: Array<string> = []
      const opened = yield* Effect.scoped(
        Effect.gen(function*() {
          const conn = yield* lk.connect(url, Redacted.make(jwt), { timeoutMs })
          const stateSeen = yield* Deferred.make<void>()
          // Each watcher runs until what it waits for: the disconnect's reason, the final state.
          // The reasons watcher is forked first, and fibers start in the order they are forked,
          // so it has subscribed by the time the states watcher has passed on the current state.
          const watchers = [
            yield* Effect.fork(conn.disconnectReasons.pipe(
              Stream.tap((r) => Effect.sync(() => reasons.push(r))),
              Stream.take(1),
              Stream.runDrain
            )),
            yield* Effect.fork(conn.connectionStates.pipe(
              Stream.tap((s) => Effect.zipRight(Effect.sync(() => states.push(s)), Deferred.succeed(stateSeen, undefined))),
              Stream.takeUntil((s) => s === "disconnected"),
              Stream.runDrain
            ))
          ]
          yield* Deferred.await(stateSeen).pipe(Effect.timeout("5 seconds"), Effect.orDie)
          const currentWhileOpen = Option.isSome(yield* lk.connection)
          return { conn, watchers, currentWhileOpen }
        })
      )
      // The scope is closed: the adapter disconnected; the watchers end once they have seen it.
      yield* Fiber.joinAll(opened.watchers).pipe(Effect.timeout("5 seconds"), Effect.orDie)
      return {
        ok: true,
        elapsedMs: 0,
        identity: opened.conn.identity,
        roomName: opened.conn.roomName,
        states,
        reasons,
        currentWhileOpen: opened.currentWhileOpen,
        currentAfterClose: Option.isSome(yield* lk.connection),
        stateAfterClose: yield* opened.conn.connectionState
      } satisfies ConnectReport
    })
  )
  const elapsedMs = Math.round(performance.now() - started)
  if (Exit.isSuccess(exit)) return { ...exit.value, elapsedMs }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return { ok: false, elapsedMs, error: { tag: "Defect", reason: "", message: Cause.pretty(exit.cause) } }
  const e = failure.value
  return {
    ok: false,
    elapsedMs,
    error: { tag: e._tag, reason: e.reason, message: e.message, ...(e.status !== undefined ? { status: e.status } : {}) }
  }
}

Object.assign(globalThis, { harness: { connect } })
document.body.dataset["ready"] = "true"
