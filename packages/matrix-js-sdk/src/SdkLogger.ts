/**
 * matrix-js-sdk logging routed into Effect's logger, so the app's logger and
 * level decide what is shown (the SDK's own default prints debug lines to the
 * console). The SDK is chatty even at `warn` (e.g. "Adding default global
 * override push rule" on every start), and every failure that matters reaches
 * the caller as a typed `MatrixError`, so its lines are diagnostics: trace at
 * Trace, debug/info/warn at Debug, error at Warning. Every argument is scrubbed
 * of credentials before it is logged.
 */
import { scrubSecrets } from "@matrixrtc-effect/core"
import { Effect, FiberRef, LogLevel, Runtime } from "effect"
import type { Logger } from "matrix-js-sdk/lib/logger.js"
import { logger as sdkRootLogger } from "matrix-js-sdk/lib/logger.js"

const text = (m: unknown): string => {
  if (typeof m === "string") return scrubSecrets(m)
  if (m instanceof Error) return scrubSecrets(`${m.name}: ${m.message}`)
  try {
    return scrubSecrets(JSON.stringify(m))
  } catch {
    return scrubSecrets(String(m))
  }
}

/** A matrix-js-sdk `Logger` that logs through `runtime` (captured with `Effect.runtime()`). */
export const make = (runtime: Runtime.Runtime<never>, namespace = "matrix-js-sdk"): Logger => {
  const runSync = Runtime.runSync(runtime)
  const at =
    (level: LogLevel.LogLevel) =>
    (...msg: Array<unknown>): void =>
      // The SDK logs on every sync: format (and scrub) only lines the minimum level lets through.
      runSync(
        Effect.flatMap(FiberRef.get(FiberRef.currentMinimumLogLevel), (min) =>
          LogLevel.lessThan(level, min)
            ? Effect.void
            : Effect.logWithLevel(level, msg.map(text).join(" ")).pipe(Effect.annotateLogs("sdk", namespace)))
      )
  return {
    trace: at(LogLevel.Trace),
    debug: at(LogLevel.Debug),
    info: at(LogLevel.Debug),
    warn: at(LogLevel.Debug),
    error: at(LogLevel.Warning),
    getChild: (child) => make(runtime, `${namespace} ${child}`)
  }
}

type Level = "trace" | "debug" | "info" | "warn" | "error" | "silent"
const rank: Record<string, number> = { trace: 0, debug: 1, info: 2, log: 2, warn: 3, error: 4, silent: 5 }

/** The loglevel surface of the SDK's root logger (typed by the SDK as a plain `Logger`). */
interface Loglevel {
  methodFactory: (method: string, level: number, name: string) => (...msg: Array<unknown>) => void
  rebuild: () => void
}
let originalFactory: Loglevel["methodFactory"] | undefined

/**
 * The SDK's process-wide logger (MatrixRTC sessions, sync internals) ignores the
 * client's logger and prints to the console from debug up. This drops its lines
 * below `level`. It is global, so only a program's edge (a CLI) should call it;
 * child loggers the SDK created before the call (a few, at module load) keep
 * printing, those created later (every MatrixRTC session) follow it.
 */
export const setRootLevel = (level: Level): Effect.Effect<void> =>
  Effect.sync(() => {
    const root = sdkRootLogger as unknown as Loglevel
    const original = (originalFactory ??= root.methodFactory)
    root.methodFactory = (method, lvl, name) =>
      (rank[method] ?? 2) >= rank[level]! ? original(method, lvl, name) : () => {}
    root.rebuild()
  })
