/**
 * Running a program as a Node process: the edge shared by `bin.ts` and the demo.
 * Only these two entry points call it; library code never runs effects.
 */
import { Cause, Console, Effect, Exit, Fiber, Layer, Logger, LogLevel } from "effect"
import { Console as NodeConsole } from "node:console"

/** Exit codes of `matrixrtc` (also used by the demo). */
export const ExitCode = {
  Ok: 0,
  Failure: 1,
  Usage: 2,
  NotAuthenticated: 3,
  JwtFetchFailed: 4,
  ConnectFailed: 5,
  /** Also a membership refused mid-call (the call's `MembershipRejected` end). */
  MembershipFailed: 6,
  /** Our user is not, or no longer, joined to the room (`watch`'s `NotJoined`, the call's `RemovedFromRoom` end). */
  RemovedFromRoom: 7,
  /** A second Ctrl-C (or SIGTERM, SIGHUP) while leaving: we exit without waiting for the leave. */
  Forced: 130
} as const

/**
 * Library logs go to stderr so that stdout carries only the program's output
 * (one JSON object per line with `--json`). Warnings and up by default; the
 * CLI's built-in `--log-level` lowers it.
 */
export const loggerLayer: Layer.Layer<never> = Layer.merge(
  Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true, colors: "auto" })),
  Logger.minimumLogLevel(LogLevel.Warning)
)

/**
 * stdout belongs to the program (one JSON object per line with `--json`), but
 * matrix-js-sdk and other libraries chat through the global `console`. So the
 * program prints through a console of its own on the real streams, and the
 * global console's chatter is dropped, or sent to stderr with MATRIXRTC_DEBUG=1.
 * Failures that matter reach the program as typed errors and are printed by it.
 */
const isolateStdout = (): Console.Console => {
  const own = new NodeConsole({ stdout: process.stdout, stderr: process.stderr })
  const debug = process.env["MATRIXRTC_DEBUG"] !== undefined && process.env["MATRIXRTC_DEBUG"] !== ""
  const toStderr = (...args: ReadonlyArray<unknown>) => own.error(...args)
  const drop = () => {}
  for (const method of ["log", "info", "debug", "trace", "warn", "error"] as const) {
    globalThis.console[method] = debug ? toStderr : drop
  }
  const sync = (f: () => void) => Effect.sync(f)
  return {
    [Console.TypeId]: Console.TypeId,
    unsafe: own,
    assert: (condition, ...args) => sync(() => own.assert(condition, ...args)),
    clear: sync(() => own.clear()),
    count: (label) => sync(() => own.count(label)),
    countReset: (label) => sync(() => own.countReset(label)),
    debug: (...args) => sync(() => own.debug(...args)),
    dir: (item, options) => sync(() => own.dir(item, options)),
    dirxml: (...args) => sync(() => own.dirxml(...args)),
    error: (...args) => sync(() => own.error(...args)),
    group: (options) => sync(() => (options?.collapsed ? own.groupCollapsed(options.label) : own.group(options?.label))),
    groupEnd: sync(() => own.groupEnd()),
    info: (...args) => sync(() => own.info(...args)),
    log: (...args) => sync(() => own.log(...args)),
    table: (data, properties) => sync(() => own.table(data, properties as Array<string> | undefined)),
    time: (label) => sync(() => own.time(label)),
    timeEnd: (label) => sync(() => own.timeEnd(label)),
    timeLog: (label, ...args) => sync(() => own.timeLog(label, ...args)),
    trace: (...args) => sync(() => own.trace(...args)),
    warn: (...args) => sync(() => own.warn(...args))
  }
}

/**
 * What a forced exit leaves behind, for the line it prints: set by the program as it learns it (a joined call
 * knows how its membership will end without us). One per process, like the signal handlers that read it.
 */
let abandoned: string | undefined

/** Says what a second signal would abandon from now on (none: nothing worth naming). */
export const setAbandonedOnForce = (what: string | undefined): Effect.Effect<void> =>
  Effect.sync(() => {
    abandoned = what
  })

/** Ctrl-C, kill's default, and the terminal closing (an ssh session or terminal window that goes away). */
const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const

/**
 * Runs `program` (which yields the exit code) and exits the process with it.
 *
 * Ctrl-C, SIGTERM and SIGHUP interrupt the program, so every scope closes: a joined call
 * leaves (SFU first, then the membership) before the process ends; the exit code
 * is then the program's own (0 when it left cleanly). A second signal exits at once
 * (130), saying on stderr what it abandons.
 * We exit explicitly at the end because native LiveKit handles can keep Node alive.
 */
export const runMain = (program: Effect.Effect<number>): void => {
  const console = isolateStdout()
  const fiber = Effect.runFork(program.pipe(Effect.provide(loggerLayer), Effect.withConsole(console)))
  let signalled = false
  const onSignal = () => {
    if (signalled) {
      process.stderr.write(`leave abandoned${abandoned === undefined ? "" : `: ${abandoned}`}\n`, () => process.exit(ExitCode.Forced))
      return
    }
    signalled = true
    Effect.runFork(Fiber.interrupt(fiber))
  }
  for (const signal of signals) process.on(signal, onSignal)
  // A closed terminal (SIGHUP) or a reader that went away makes writes fail (EIO, EPIPE); unhandled, that error
  // would end the process before the leave. What can no longer be shown is dropped.
  for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {})
  fiber.addObserver((exit) => {
    for (const signal of signals) process.off(signal, onSignal)
    const code = Exit.match(exit, {
      onSuccess: (code) => code,
      onFailure: (cause) => {
        if (Cause.isInterruptedOnly(cause)) return ExitCode.Ok
        // A defect: one line, no stack, unless asked for (MATRIXRTC_DEBUG=1).
        const line = process.env["MATRIXRTC_DEBUG"] ? Cause.pretty(cause) : describeDefect(Cause.squash(cause))
        process.stderr.write(`error: ${line}\n`)
        return ExitCode.Failure
      }
    })
    // Let stdout/stderr drain before exiting (they are async when piped).
    process.stdout.write("", () => process.stderr.write("", () => process.exit(code)))
  })
}

const describeDefect = (u: unknown): string =>
  u instanceof Error ? u.message : typeof u === "string" ? u : "unexpected failure"
