// Small helpers shared by the dev stack modules: logging, running commands, polling.
import { spawn } from "node:child_process"
import { mkdirSync, openSync, closeSync } from "node:fs"
import { dirname } from "node:path"

export type Log = (message: string) => void

/** Default logger: one line on stderr. Never pass secrets to it. */
export const stderrLog: Log = (message) => {
  process.stderr.write(`[devstack] ${message}\n`)
}

export const silentLog: Log = () => {}

/** A failure of the dev stack that says what failed and how to fix it. */
export class StackError extends Error {
  readonly check: string
  readonly fix: string
  constructor(check: string, message: string, fix: string) {
    super(`[${check}] ${message}\n  how to fix: ${fix}`)
    this.name = "StackError"
    this.check = check
    this.fix = fix
  }
}

/** Runs a command to completion with stdout+stderr appended to `logPath`. Rejects on a non-zero exit. */
export const runLogged = (
  cmd: string,
  args: ReadonlyArray<string>,
  opts: { readonly logPath: string; readonly env?: NodeJS.ProcessEnv; readonly cwd?: string }
): Promise<void> =>
  new Promise((resolve, reject) => {
    mkdirSync(dirname(opts.logPath), { recursive: true })
    const fd = openSync(opts.logPath, "a")
    const child = spawn(cmd, args, {
      stdio: ["ignore", fd, fd],
      env: opts.env ?? process.env,
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd })
    })
    closeSync(fd)
    child.on("error", reject)
    child.on("exit", (code, signal) => {
      if (code === 0) resolve()
      else reject(new Error(`${cmd} ${args.join(" ")} exited with ${code ?? signal}; see ${opts.logPath}`))
    })
  })

export const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Polls `probe` every `intervalMs` until it returns a non-undefined value or `timeoutMs` passes.
 * Returns the value, or undefined on timeout. The interval is a polling period, not a synchronisation sleep.
 */
export const pollUntil = async <A>(
  probe: () => Promise<A | undefined>,
  opts: { readonly timeoutMs: number; readonly intervalMs?: number }
): Promise<A | undefined> => {
  const deadline = Date.now() + opts.timeoutMs
  const interval = opts.intervalMs ?? 200
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() >= deadline) return undefined
    await delay(interval)
  }
}

/** fetch with a per-request timeout; network errors become `undefined`. */
export const tryFetch = async (url: string, init: RequestInit = {}, timeoutMs = 3000): Promise<Response | undefined> => {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) })
  } catch {
    return undefined
  }
}

export const formatMs = (ms: number): string => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`)
