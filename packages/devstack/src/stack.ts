// `up()` / `down()` for the whole stack, and `readStack()` for tests.
import { randomBytes } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import {
  LIVEKIT_API_KEY,
  LIVEKIT_API_SECRET,
  SERVER_NAME,
  authServiceUrl,
  homeserverUrl,
  livekitHttpUrl,
  livekitUrl
} from "./config.ts"
import { runChecks } from "./checks.ts"
import { ensureInstalled } from "./install.ts"
import { type RegisteredUser, whoami } from "./matrix.ts"
import { paths, stackDir } from "./paths.ts"
import { type PortSet, busyPorts, describePorts, pidAlive, readPidFile, runningFromPidFile, stopFromPidFile } from "./proc.ts"
import { provision } from "./provision.ts"
import {
  type ServiceName,
  ensureTemplate,
  prepareLivekitRun,
  prepareSynapseRun,
  serviceNames,
  serviceRunning,
  services,
  startService as startOne,
  stopOrphans,
  stopService as stopOne
} from "./services.ts"
import { type Log, StackError, formatMs, pollUntil, silentLog, stderrLog } from "./util.ts"

export type { ServiceName } from "./services.ts"
export type StackUser = RegisteredUser

/** Contents of `.stack/stack.json`. It holds secrets (tokens, passwords); never print it. */
export interface StackInfo {
  readonly homeserverUrl: string
  readonly serverName: string
  readonly authServiceUrl: string
  readonly livekitUrl: string
  readonly livekitHttpUrl: string
  readonly livekitApiKey: string
  readonly livekitApiSecret: string
  readonly registrationSharedSecret: string
  readonly roomId: string
  readonly forbiddenRoomId: string
  readonly encryptedRoomId: string
  readonly users: ReadonlyArray<StackUser>
  readonly startedAt: string
}

export interface UpResult {
  readonly stack: StackInfo
  /** True when every service was already running and the stack was only re-verified. */
  readonly wasRunning: boolean
  /** True when this call started a fresh stack (new data, users and rooms). */
  readonly fresh: boolean
  /** Services this call started. */
  readonly started: ReadonlyArray<ServiceName>
  readonly ms: number
}

export interface Options {
  readonly log?: Log
}

export interface UpOptions extends Options {
  /**
   * Who owns the stack afterwards. "user" (the CLI): test runs never stop it. "tests" (the
   * vitest global setup): the last test run using it stops it, if this call started it.
   * Unset: ownership is left as it is.
   */
  readonly owner?: "user" | "tests"
}

// ---------------------------------------------------------------------------------------
// A cross-process lock so that two `up`/`down` calls never interleave.

const lockOwner = join(paths.lockDir, "owner.json")

const lockAgeMs = (): number => {
  try {
    return Date.now() - statSync(paths.lockDir).mtimeMs
  } catch {
    return 0
  }
}

const withLock = async <A>(log: Log, f: () => Promise<A>): Promise<A> => {
  mkdirSync(join(paths.lockDir, ".."), { recursive: true })
  let waitingLogged = false
  const got = await pollUntil(
    async () => {
      try {
        mkdirSync(paths.lockDir)
        writeFileSync(lockOwner, JSON.stringify({ pid: process.pid, service: "lock", marker: "", startedAt: new Date().toISOString() }))
        return true
      } catch {
        const ownerPid = readPidFile(lockOwner)?.pid
        const orphaned = ownerPid === undefined && lockAgeMs() > 30_000 // owner died before writing owner.json
        if ((ownerPid !== undefined && !pidAlive(ownerPid)) || orphaned) {
          rmSync(paths.lockDir, { recursive: true, force: true }) // stale lock of a dead process
          return undefined
        }
        if (!waitingLogged) {
          log(`waiting for another devstack command (pid ${ownerPid ?? "?"}) to finish`)
          waitingLogged = true
        }
        return undefined
      }
    },
    { timeoutMs: 15 * 60_000, intervalMs: 250 }
  )
  if (got !== true) {
    throw new StackError("lock", `could not take ${paths.lockDir}`, `if no devstack command is running, delete ${paths.lockDir}`)
  }
  try {
    return await f()
  } finally {
    rmSync(paths.lockDir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------

/** Reads `.stack/stack.json`. Throws a StackError telling how to start the stack if it is missing. */
/** The provisioned user number `i` (0 = alice, 1 = bob, …); throws when the stack has fewer. */
export const userAt = (stack: StackInfo, i: number): StackUser => {
  const u = stack.users[i]
  if (u === undefined) throw new Error(`stack has no user #${i}`)
  return u
}

/** A device id of its own for one test run, so that runs sharing the stack never share memberships. */
export const freshDeviceId = (label: string): string => `E2E${label.toUpperCase()}${randomBytes(4).toString("hex").toUpperCase()}`

export const readStack = (): StackInfo => {
  try {
    return JSON.parse(readFileSync(paths.stackJson, "utf8")) as StackInfo
  } catch {
    throw new StackError(
      "stack.json",
      `${paths.stackJson} not found: the local MatrixRTC stack is not up`,
      "run `npm run stack:up`, or run the tests through the integration vitest project (it starts the stack)"
    )
  }
}

const tryReadStack = (): StackInfo | undefined => {
  try {
    return readStack()
  } catch {
    return undefined
  }
}

/** Which services are running (pid alive and ours). */
export const status = (): Record<ServiceName, number | undefined> => ({
  livekit: serviceRunning("livekit")?.pid,
  synapse: serviceRunning("synapse")?.pid,
  auth: serviceRunning("auth")?.pid
})

const tokensValid = async (stack: StackInfo): Promise<boolean> => {
  for (const u of stack.users) {
    try {
      const me = await whoami(u.accessToken)
      if (me.user_id !== u.userId) return false
    } catch {
      return false
    }
  }
  return true
}

const fresh = async (log: Log): Promise<{ stack: StackInfo; started: Array<ServiceName> }> => {
  // Anything half-running from an earlier, broken run goes first.
  await stopAll(log)
  rmSync(paths.stackJson, { force: true })
  rmSync(testOwnedMarker, { force: true })
  rmSync(paths.logsDir, { recursive: true, force: true })
  mkdirSync(paths.logsDir, { recursive: true })

  await ensureInstalled(log)
  assertPortsFree()
  await ensureTemplate(log)

  const registrationSharedSecret = randomBytes(24).toString("base64url")
  prepareSynapseRun(registrationSharedSecret)
  prepareLivekitRun()

  await Promise.all([startOne("livekit", log), startOne("synapse", log)])
  await startOne("auth", log)

  const started = Date.now()
  const p = await provision(registrationSharedSecret)
  const first = p.users[0]
  if (first === undefined) throw new Error("provisioning created no users")
  await runChecks(first.accessToken)
  log(`provisioned ${p.users.length} users and 3 rooms, checks passed, in ${formatMs(Date.now() - started)}`)

  const stack: StackInfo = {
    homeserverUrl,
    serverName: SERVER_NAME,
    authServiceUrl,
    livekitUrl,
    livekitHttpUrl,
    livekitApiKey: LIVEKIT_API_KEY,
    livekitApiSecret: LIVEKIT_API_SECRET,
    registrationSharedSecret,
    roomId: p.roomId,
    forbiddenRoomId: p.forbiddenRoomId,
    encryptedRoomId: p.encryptedRoomId,
    users: p.users,
    startedAt: new Date().toISOString()
  }
  writeFileSync(paths.stackJson, `${JSON.stringify(stack, null, 2)}\n`, { mode: 0o600 })
  return { stack, started: [...serviceNames] }
}

const allPorts: PortSet = {
  tcp: serviceNames.flatMap((n) => services[n].ports.tcp),
  udp: serviceNames.flatMap((n) => services[n].ports.udp)
}

const assertPortsFree = (): void => {
  const busy = busyPorts(allPorts)
  if (busy.tcp.length > 0 || busy.udp.length > 0) {
    throw new StackError(
      "ports",
      `cannot start the stack: ${describePorts(busy)} already in use by processes this stack did not start`,
      "stop whatever listens there (find it with `ss -ltnup`), e.g. a stack started from another checkout"
    )
  }
}

/**
 * Brings the stack up and waits until it is ready and verified. Idempotent: if it is already
 * up, only restarts what is missing, re-runs the checks and returns the existing stack.json.
 */
export const up = (opts: UpOptions = {}): Promise<UpResult> => {
  const log = opts.log ?? stderrLog
  return withLock(log, async () => {
    const r = await upUnlocked(log)
    if (opts.owner === "user") rmSync(testOwnedMarker, { force: true })
    if (opts.owner === "tests" && r.fresh) writeFileSync(testOwnedMarker, `${process.pid}\n`)
    return r
  })
}

const upUnlocked = async (log: Log): Promise<UpResult> => {
  const t0 = Date.now()
  {
    const existing = tryReadStack()
    const running = serviceNames.filter((n) => serviceRunning(n) !== undefined)
    // Reuse only if Synapse (which holds the users and rooms) is still the one stack.json describes.
    if (existing !== undefined && running.includes("synapse") && existsSync(paths.livekitConfig)) {
      const missing = serviceNames.filter((n) => !running.includes(n))
      for (const n of missing) await startOne(n, log)
      for (const n of running) await startOne(n, log) // re-probes; returns at once when healthy
      if (await tokensValid(existing)) {
        const first = existing.users[0]
        if (first !== undefined) await runChecks(first.accessToken)
        return { stack: existing, wasRunning: missing.length === 0, fresh: false, started: missing, ms: Date.now() - t0 }
      }
      log("stack.json does not match the running Synapse; starting a fresh stack")
    }
    let result: { stack: StackInfo; started: Array<ServiceName> }
    try {
      result = await fresh(log)
    } catch (e) {
      // Leave nothing half-started behind; the logs in .stack/logs stay for diagnosis.
      await stopAll(silentLog).catch(() => {})
      throw e
    }
    const { stack, started } = result
    return { stack, wasRunning: false, fresh: true, started, ms: Date.now() - t0 }
  }
}

const stopAll = async (log: Log): Promise<void> => {
  // Auth first (it talks to the others), then LiveKit and Synapse together.
  await stopOne("auth", log)
  await Promise.all([stopOne("livekit", log), stopOne("synapse", log)])
  // An interrupted template build may have left a Synapse behind.
  await stopFromPidFile(join(paths.templateBuildDir, "synapse.pid"))
  await stopOrphans("synapse-template", log)
}

/** Stops every service of the stack and waits until no process and no port is left. */
export const down = (opts: Options = {}): Promise<void> => {
  const log = opts.log ?? stderrLog
  return withLock(log, () => downUnlocked(log))
}

const downUnlocked = async (log: Log): Promise<void> => {
  await stopAll(log)
  rmSync(paths.stackJson, { force: true })
  rmSync(testOwnedMarker, { force: true })
  const left = serviceNames.filter((n) => runningFromPidFile(join(stackDir, `${n}.pid`)) !== undefined)
  if (left.length > 0) throw new StackError("down", `still running: ${left.join(", ")}`, "kill them by hand")
}

// ---------------------------------------------------------------------------------------
// Test-run leases: several vitest runs on one checkout share one stack; the last one out
// stops it, and only if a test run (not `npm run stack:up`) started it.

const leasesDir = join(stackDir, "leases")
const testOwnedMarker = join(stackDir, "started-by-tests")

/** Pids of live processes holding a test-run lease on the stack. */
export const activeLeases = (): Array<number> => {
  let names: Array<string>
  try {
    names = readdirSync(leasesDir)
  } catch {
    return []
  }
  return names
    .map(Number)
    .filter((pid) => {
      if (Number.isInteger(pid) && pidAlive(pid)) return true
      rmSync(join(leasesDir, String(pid)), { force: true })
      return false
    })
}

/** Brings the stack up for a test run and records that this process uses it. */
export const acquireTestLease = (opts: Options = {}): Promise<UpResult> => {
  const log = opts.log ?? stderrLog
  return withLock(log, async () => {
    const r = await upUnlocked(log)
    if (r.fresh) writeFileSync(testOwnedMarker, `${process.pid}\n`)
    mkdirSync(leasesDir, { recursive: true })
    writeFileSync(join(leasesDir, String(process.pid)), "")
    return r
  })
}

/**
 * Ends this process's lease. Stops the stack when no other live test run holds a lease and a
 * test run started it; returns what happened.
 */
export const releaseTestLease = (opts: Options = {}): Promise<"stopped" | "in use" | "owned by user"> => {
  const log = opts.log ?? stderrLog
  return withLock(log, async () => {
    rmSync(join(leasesDir, String(process.pid)), { force: true })
    if (activeLeases().length > 0) return "in use"
    if (!existsSync(testOwnedMarker)) return "owned by user"
    await downUnlocked(log)
    return "stopped"
  })
}

/** True when the stack was started by a test run (and not adopted by `npm run stack:up`). */
export const startedByTests = (): boolean => existsSync(testOwnedMarker)

/** Human-readable summary without secrets. */
export const describeStack = (stack: StackInfo): string =>
  [
    "MatrixRTC dev stack is up:",
    `  Synapse       ${stack.homeserverUrl}   (server_name ${stack.serverName}; logs .stack/logs/synapse.log)`,
    `  LiveKit       ${stack.livekitUrl}   (API key ${stack.livekitApiKey}; logs .stack/logs/livekit.log)`,
    `  auth service  ${stack.authServiceUrl}   (logs .stack/logs/auth.log)`,
    `  users         ${stack.users.map((u) => `${u.userId} (device ${u.deviceId})`).join(", ")}`,
    `  roomId          ${stack.roomId}   (call.member at 0)`,
    `  forbiddenRoomId ${stack.forbiddenRoomId}   (call.member needs 50)`,
    `  encryptedRoomId ${stack.encryptedRoomId}   (m.room.encryption)`,
    `  passwords, access tokens, secrets: ${paths.stackJson}`
  ].join("\n")

/** Starts one service again (e.g. after `stopService`) and waits until it is ready. */
export const startService = (name: ServiceName, opts: Options = {}): Promise<void> => {
  const log = opts.log ?? stderrLog
  return withLock(log, () => startOne(name, log))
}

/** Stops one service (e.g. to provoke failures); waits until its process and ports are gone. */
export const stopService = (name: ServiceName, opts: Options = {}): Promise<void> => {
  const log = opts.log ?? stderrLog
  return withLock(log, () => stopOne(name, log))
}
