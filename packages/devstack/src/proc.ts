// Detached processes with pid files in `.stack/`, logs in `.stack/logs/`, and a bounded stop
// (SIGTERM to the process group, then SIGKILL). Linux only: liveness and listening ports are
// read from /proc.
import { spawn } from "node:child_process"
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import { pollUntil } from "./util.ts"

export interface PidRecord {
  readonly pid: number
  readonly service: string
  /** A string that must occur in /proc/<pid>/cmdline, so a recycled pid is not mistaken for ours. */
  readonly marker: string
  readonly startedAt: string
}

export const readPidFile = (file: string): PidRecord | undefined => {
  try {
    const rec = JSON.parse(readFileSync(file, "utf8")) as PidRecord
    return typeof rec.pid === "number" ? rec : undefined
  } catch {
    return undefined
  }
}

const procState = (pid: number): string | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // the state is the first field after the parenthesised command name
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
  } catch {
    return undefined
  }
}

/** True when `pid` exists and is not a zombie. */
export const pidAlive = (pid: number): boolean => {
  const state = procState(pid)
  return state !== undefined && state !== "Z" && state !== "X"
}

const cmdline = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ")
  } catch {
    return ""
  }
}

/** The pid record if the process it names is alive and still the process we started. */
export const runningFromPidFile = (file: string): PidRecord | undefined => {
  const rec = readPidFile(file)
  if (rec === undefined || !pidAlive(rec.pid)) return undefined
  return cmdline(rec.pid).includes(rec.marker) ? rec : undefined
}

/** Environment variable that tags every process the dev stack spawns: `<service>@<stack dir>`. */
export const TAG_VAR = "MATRIXRTC_DEVSTACK"

/**
 * Live processes carrying `MATRIXRTC_DEVSTACK=<tag>` in their environment: processes this dev
 * stack spawned (or their children) whose pid file was lost, e.g. after a crash or a race.
 */
export const findTagged = (tag: string): Array<number> => {
  const needle = `${TAG_VAR}=${tag}`
  const found: Array<number> = []
  let entries: Array<string>
  try {
    entries = readdirSync("/proc")
  } catch {
    return found
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue
    const pid = Number(e)
    if (pid === process.pid) continue
    try {
      if (readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(needle) && pidAlive(pid)) found.push(pid)
    } catch {
      // gone, or not ours to read
    }
  }
  return found
}

/** SIGTERM, then SIGKILL after `termTimeoutMs`, for each pid; true when all are gone. */
export const stopPids = async (pids: ReadonlyArray<number>, termTimeoutMs = 10_000): Promise<boolean> => {
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, sig)
      } catch {
        // already gone
      }
    }
  }
  const allGone = async (timeoutMs: number) =>
    (await pollUntil(async () => (pids.every((p) => !pidAlive(p)) ? true : undefined), { timeoutMs, intervalMs: 100 })) === true
  if (pids.length === 0) return true
  signal("SIGTERM")
  if (await allGone(termTimeoutMs)) return true
  signal("SIGKILL")
  return allGone(5_000)
}

export const spawnDetached = (opts: {
  readonly service: string
  readonly cmd: string
  readonly args: ReadonlyArray<string>
  readonly env: NodeJS.ProcessEnv
  readonly cwd: string
  readonly logPath: string
  readonly pidPath: string
  readonly marker: string
  readonly tag: string
}): PidRecord => {
  mkdirSync(dirname(opts.logPath), { recursive: true })
  const fd = openSync(opts.logPath, "a")
  const child = spawn(opts.cmd, opts.args, {
    cwd: opts.cwd,
    env: { ...opts.env, [TAG_VAR]: opts.tag },
    detached: true,
    stdio: ["ignore", fd, fd]
  })
  closeSync(fd)
  // Errors (e.g. ENOENT) surface through the readiness check and the log; don't crash the caller.
  child.on("error", () => {})
  child.unref()
  if (child.pid === undefined) throw new Error(`could not start ${opts.service} (${opts.cmd}); see ${opts.logPath}`)
  const rec: PidRecord = { pid: child.pid, service: opts.service, marker: opts.marker, startedAt: new Date().toISOString() }
  mkdirSync(dirname(opts.pidPath), { recursive: true })
  writeFileSync(opts.pidPath, `${JSON.stringify(rec)}\n`)
  return rec
}

const signalGroup = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pid, signal)
  } catch {
    try {
      process.kill(pid, signal)
    } catch {
      // already gone
    }
  }
}

/**
 * Stops the process named by the pid file: SIGTERM to its process group, wait up to
 * `termTimeoutMs` for it to exit, then SIGKILL and wait again. Removes the pid file.
 * Returns false if the process still exists afterwards.
 */
export const stopFromPidFile = async (
  file: string,
  opts: { readonly termTimeoutMs?: number; readonly killTimeoutMs?: number } = {}
): Promise<boolean> => {
  const rec = runningFromPidFile(file)
  if (rec !== undefined) {
    signalGroup(rec.pid, "SIGTERM")
    const exited = await pollUntil(async () => (pidAlive(rec.pid) ? undefined : true), {
      timeoutMs: opts.termTimeoutMs ?? 15_000,
      intervalMs: 100
    })
    if (exited === undefined) {
      signalGroup(rec.pid, "SIGKILL")
      const killed = await pollUntil(async () => (pidAlive(rec.pid) ? undefined : true), {
        timeoutMs: opts.killTimeoutMs ?? 5_000,
        intervalMs: 100
      })
      if (killed === undefined) return false
    }
  }
  rmSync(file, { force: true })
  return true
}

// ---------------------------------------------------------------------------------------
// Listening sockets from /proc/net/{tcp,tcp6,udp,udp6}.

const TCP_LISTEN = "0A"

const socketsOn = (file: string, onlyListen: boolean): Set<number> => {
  const ports = new Set<number>()
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch {
    return ports
  }
  for (const line of text.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/)
    const local = cols[1]
    const state = cols[3]
    if (local === undefined || state === undefined) continue
    if (onlyListen && state !== TCP_LISTEN) continue
    const port = parseInt(local.slice(local.lastIndexOf(":") + 1), 16)
    if (!Number.isNaN(port)) ports.add(port)
  }
  return ports
}

/** TCP ports in LISTEN state (any address), as seen by this network namespace. */
export const listeningTcpPorts = (): Set<number> =>
  new Set([...socketsOn("/proc/net/tcp", true), ...socketsOn("/proc/net/tcp6", true)])

/** UDP ports with a bound socket. */
export const boundUdpPorts = (): Set<number> =>
  new Set([...socketsOn("/proc/net/udp", false), ...socketsOn("/proc/net/udp6", false)])

export interface PortSet {
  readonly tcp: ReadonlyArray<number>
  readonly udp: ReadonlyArray<number>
}

/** The subset of `ports` that is currently in use. */
export const busyPorts = (ports: PortSet): PortSet => {
  const tcp = listeningTcpPorts()
  const udp = boundUdpPorts()
  return { tcp: ports.tcp.filter((p) => tcp.has(p)), udp: ports.udp.filter((p) => udp.has(p)) }
}

export const describePorts = (ports: PortSet): string =>
  [...ports.tcp.map((p) => `tcp/${p}`), ...ports.udp.map((p) => `udp/${p}`)].join(", ")

export const portsFree = (ports: PortSet): boolean => {
  const busy = busyPorts(ports)
  return busy.tcp.length === 0 && busy.udp.length === 0
}

/** Waits until none of `ports` is in use. */
export const waitPortsFree = async (ports: PortSet, timeoutMs: number): Promise<boolean> =>
  (await pollUntil(async () => (portsFree(ports) ? true : undefined), { timeoutMs, intervalMs: 100 })) === true

/** Last `n` lines of a log file, for error messages. */
export const tailFile = (file: string, n = 20): string => {
  try {
    const lines = readFileSync(file, "utf8").trimEnd().split("\n")
    return lines.slice(-n).join("\n")
  } catch {
    return "(no log)"
  }
}
