/**
 * Test page for the adapter alone: `window.harness.connect(url, jwt, timeoutMs)`
 * opens a `BrowserLiveKit` connection in a scope, records its states and
 * disconnect reasons, closes the scope and reports what happened as JSON.
 * The page is the edge here, so it runs effects itself.
 */
import { Cause, Effect, Exit, Fiber, Option, Redacted, Stream } from "effect"
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
          const watchers = [
            yield* Effect.fork(Stream.runForEach(conn.connectionStates, (s) => Effect.sync(() => states.push(s)))),
            yield* Effect.fork(Stream.runForEach(conn.disconnectReasons, (r) => Effect.sync(() => reasons.push(r))))
          ]
          yield* Effect.sleep("100 millis")
          const currentWhileOpen = Option.isSome(yield* lk.connection)
          return { conn, watchers, currentWhileOpen }
        })
      )
      // The scope is closed: the adapter disconnected; give the watchers a moment to see it.
      yield* Effect.sleep("300 millis")
      yield* Fiber.interruptAll(opened.watchers)
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
