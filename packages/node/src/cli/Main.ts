/**
 * Running a program as a Node process: the edge shared by `bin.ts` and the demo.
 * Only these two entry points call it; library code never runs effects.
 */
import { Cause, Effect, Exit, Fiber, Layer, Logger, LogLevel } from "effect"

/** Exit codes of `matrixrtc` (also used by the demo). */
export const ExitCode = {
  Ok: 0,
  Failure: 1,
  Usage: 2,
  NotAuthenticated: 3,
  JwtFetchFailed: 4,
  ConnectFailed: 5,
  MembershipFailed: 6,
  /** A second Ctrl-C while leaving: we exit without waiting for the leave. */
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
 * Runs `program` (which yields the exit code) and exits the process with it.
 *
 * Ctrl-C and SIGTERM interrupt the program, so every scope closes: a joined call
 * leaves (SFU first, then the membership) before the process ends; the exit code
 * is then the program's own (0 when it left cleanly). A second signal exits at once.
 * We exit explicitly at the end because native LiveKit handles can keep Node alive.
 */
export const runMain = (program: Effect.Effect<number>): void => {
  const fiber = Effect.runFork(program.pipe(Effect.provide(loggerLayer)))
  let signalled = false
  const onSignal = () => {
    if (signalled) process.exit(ExitCode.Forced)
    signalled = true
    Effect.runFork(Fiber.interrupt(fiber))
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  fiber.addObserver((exit) => {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
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
