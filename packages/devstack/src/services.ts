// The three services of the stack: how each is started, probed and stopped.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import {
  AUTH_PORT,
  LIVEKIT_PORT,
  LIVEKIT_TCP_PORT,
  LIVEKIT_UDP_PORT,
  SERVER_NAME,
  SYNAPSE_PORT,
  authServiceEnv,
  authServiceUrl,
  homeserverConfig,
  homeserverUrl,
  livekitConfig,
  livekitHttpUrl
} from "./config.ts"
import { SYNAPSE_VERSION, logFile, paths, pidFile, repoRoot, stackDir } from "./paths.ts"
import {
  type PidRecord,
  type PortSet,
  busyPorts,
  describePorts,
  findTagged,
  stopPids,
  pidAlive,
  runningFromPidFile,
  spawnDetached,
  stopFromPidFile,
  tailFile,
  waitPortsFree
} from "./proc.ts"
import { type Log, StackError, formatMs, pollUntil, tryFetch } from "./util.ts"

export type ServiceName = "livekit" | "synapse" | "auth"
export const serviceNames: ReadonlyArray<ServiceName> = ["livekit", "synapse", "auth"]

interface ServiceDef {
  readonly name: ServiceName
  readonly title: string
  readonly url: string
  readonly ports: PortSet
  readonly readyTimeoutMs: number
  /** Resolves true when the service answers its readiness probe. */
  readonly probe: () => Promise<boolean>
  readonly command: () => {
    readonly cmd: string
    readonly args: ReadonlyArray<string>
    readonly env: NodeJS.ProcessEnv
    readonly marker: string
  }
  readonly fix: string
}

const textIs = async (url: string, expected: string | undefined): Promise<boolean> => {
  const res = await tryFetch(url, {}, 2000)
  if (res === undefined || res.status !== 200) return false
  const body = await res.text()
  return expected === undefined || body.trim() === expected
}

const synapseConfigPath = join(paths.synapseDir, "homeserver.yaml")
const synapseDataDir = join(paths.synapseDir, "data")

/**
 * Environment for children: inherit, but without an npm nodedir setting (pnpm does not know
 * it) and without proxy settings: the stack talks loopback only, and a machine's proxy would
 * otherwise carry Synapse's (and, with NODE_USE_ENV_PROXY, the auth service's) requests.
 */
export const childEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra }
  for (const key of Object.keys(env)) {
    if (key === "npm_config_nodedir" || key === "NODE_USE_ENV_PROXY" || /^(http|https|all|no)_proxy$/i.test(key)) delete env[key]
  }
  return env
}

export const services: Record<ServiceName, ServiceDef> = {
  livekit: {
    name: "livekit",
    title: "livekit-server",
    url: livekitHttpUrl,
    ports: { tcp: [LIVEKIT_PORT, LIVEKIT_TCP_PORT], udp: [LIVEKIT_UDP_PORT] },
    readyTimeoutMs: 30_000,
    probe: () => textIs(`${livekitHttpUrl}/`, "OK"),
    command: () => ({
      cmd: paths.livekitBinary,
      args: ["--config", paths.livekitConfig],
      env: childEnv(),
      marker: paths.livekitBinary
    }),
    fix: `see ${logFile("livekit")}; check that ports ${LIVEKIT_PORT}/${LIVEKIT_TCP_PORT} (tcp) and ${LIVEKIT_UDP_PORT} (udp) are free`
  },
  synapse: {
    name: "synapse",
    title: "Synapse",
    url: homeserverUrl,
    ports: { tcp: [SYNAPSE_PORT], udp: [] },
    readyTimeoutMs: 180_000,
    probe: () => textIs(`${homeserverUrl}/health`, "OK"),
    command: () => ({
      cmd: paths.synapsePython,
      args: ["-m", "synapse.app.homeserver", "-c", synapseConfigPath],
      env: childEnv(),
      marker: synapseConfigPath
    }),
    fix: `see ${logFile("synapse")}; check that port ${SYNAPSE_PORT} is free and the config ${synapseConfigPath} is valid`
  },
  auth: {
    name: "auth",
    title: "auth service",
    url: authServiceUrl,
    ports: { tcp: [AUTH_PORT], udp: [] },
    readyTimeoutMs: 30_000,
    probe: () => textIs(`${authServiceUrl}/healthz`, undefined),
    command: () => ({
      cmd: process.execPath,
      args: [paths.authServiceEntry],
      env: childEnv(authServiceEnv()),
      marker: paths.authServiceEntry
    }),
    fix: `see ${logFile("auth")}; check that port ${AUTH_PORT} is free and ${paths.authServiceEntry} starts with the LIVEKIT_* env vars`
  }
}

export const serviceRunning = (name: ServiceName): PidRecord | undefined => runningFromPidFile(pidFile(name))

/** The tag in the environment of every process started for `service` by this checkout's stack. */
export const serviceTag = (service: string): string => `${service}@${stackDir}`

/** Stops processes of this stack's `service` that no pid file tracks (lost after a crash or a race). */
export const stopOrphans = async (service: string, log: Log): Promise<void> => {
  const tracked = runningFromPidFile(pidFile(service))?.pid
  const orphans = findTagged(serviceTag(service)).filter((pid) => pid !== tracked)
  if (orphans.length === 0) return
  log(`stopping untracked ${service} process(es) of this stack: ${orphans.join(", ")}`)
  if (!(await stopPids(orphans))) {
    throw new StackError(`stop:${service}`, `untracked ${service} processes ${orphans.join(", ")} did not exit`, `kill them by hand: kill -9 ${orphans.join(" ")}`)
  }
}

/** Starts one service (if not already running) and waits until its readiness probe passes. */
export const startService = async (name: ServiceName, log: Log): Promise<void> => {
  const def = services[name]
  if (serviceRunning(name) !== undefined) {
    if (await def.probe()) return
    // Our process is alive but not answering yet (e.g. started by a concurrent caller): wait for it.
  } else {
    if (name === "auth" && !existsSync(paths.authServiceEntry)) {
      throw new StackError(
        "start:auth",
        `the auth service entry ${paths.authServiceEntry} does not exist`,
        "the auth service lives in packages/devstack/src/auth-service/main.ts; make sure it is checked out"
      )
    }
    if (name === "synapse" && !existsSync(synapseConfigPath)) {
      throw new StackError("start:synapse", `no generated config at ${synapseConfigPath}`, "run `npm run stack:up` to generate it")
    }
    await stopOrphans(name, log)
    if (!(await waitPortsFree(def.ports, 5_000))) {
      const busy = busyPorts(def.ports)
      throw new StackError(
        `start:${name}`,
        `${def.title} cannot start: ${describePorts(busy)} already in use by a process this stack did not start`,
        `stop whatever listens there (e.g. \`ss -ltnup\` to find it), or run \`npm run stack:down\` if it is a stale stack`
      )
    }
    const { cmd, args, env, marker } = def.command()
    log(`starting ${def.title} (log: ${logFile(name)})`)
    spawnDetached({ service: name, cmd, args, env, cwd: repoRoot, logPath: logFile(name), pidPath: pidFile(name), marker, tag: serviceTag(name) })
  }
  const started = Date.now()
  const ready = await pollUntil(
    async () => {
      if (await def.probe()) return true
      if (serviceRunning(name) === undefined) return false // exited: stop polling
      return undefined
    },
    { timeoutMs: def.readyTimeoutMs, intervalMs: 150 }
  )
  if (ready !== true) {
    const why = ready === false ? "exited before it became ready" : `not ready after ${formatMs(def.readyTimeoutMs)}`
    await stopFromPidFile(pidFile(name))
    throw new StackError(
      `ready:${name}`,
      `${def.title} ${why}. Last log lines:\n${tailFile(logFile(name))}`,
      def.fix
    )
  }
  log(`${def.title} ready at ${def.url} after ${formatMs(Date.now() - started)}`)
}

/** Stops one service and waits until its process is gone and its ports are free. */
export const stopService = async (name: ServiceName, log: Log): Promise<void> => {
  const def = services[name]
  const rec = serviceRunning(name)
  if (rec !== undefined) log(`stopping ${def.title} (pid ${rec.pid})`)
  const stopped = await stopFromPidFile(pidFile(name))
  if (!stopped) {
    throw new StackError(`stop:${name}`, `${def.title} (pid ${rec?.pid}) did not exit after SIGTERM and SIGKILL`, `kill it by hand: kill -9 ${rec?.pid}`)
  }
  const hadOrphans = findTagged(serviceTag(name)).length > 0
  await stopOrphans(name, log)
  if ((rec !== undefined || hadOrphans) && !(await waitPortsFree(def.ports, 10_000))) {
    throw new StackError(
      `stop:${name}`,
      `${def.title} exited but ${describePorts(busyPorts(def.ports))} is still in use`,
      "find the listener with `ss -ltnup` and stop it"
    )
  }
}

// ---------------------------------------------------------------------------------------
// Synapse data: config generation per run and the template database.

const templateMarkerText = `matrix-synapse==${SYNAPSE_VERSION} server_name=${SERVER_NAME}`

const templateFiles = (dir: string): Array<string> =>
  existsSync(dir) ? readdirSync(dir).filter((f) => f === "signing.key" || f.startsWith("homeserver.db")) : []

export const templateReady = (): boolean => {
  try {
    return (
      readFileSync(paths.templateMarker, "utf8").trim() === templateMarkerText &&
      templateFiles(paths.templateDir).includes("homeserver.db") &&
      templateFiles(paths.templateDir).includes("signing.key")
    )
  } catch {
    return false
  }
}

/**
 * Builds the template DB once: Synapse on an empty sqlite DB creates the schema (the slow
 * part, tens of seconds), we wait for /health, stop it, and keep homeserver.db + signing.key.
 */
export const ensureTemplate = async (log: Log): Promise<void> => {
  if (templateReady()) return
  const started = Date.now()
  const build = paths.templateBuildDir
  rmSync(build, { recursive: true, force: true })
  mkdirSync(join(build, "data"), { recursive: true })
  const config = join(build, "homeserver.yaml")
  writeFileSync(
    config,
    homeserverConfig({ dataDir: join(build, "data"), registrationSharedSecret: "template-build-only" })
  )
  const busy = busyPorts(services.synapse.ports)
  if (busy.tcp.length > 0) {
    throw new StackError(
      "template:synapse",
      `cannot build the Synapse template DB: tcp/${SYNAPSE_PORT} is in use`,
      "stop whatever listens on 127.0.0.1:8008 (or run `npm run stack:down`)"
    )
  }
  const pidPath = join(build, "synapse.pid")
  const logPath = join(build, "synapse.log")
  log(`building the Synapse template DB (first run only; log: ${logPath})`)
  spawnDetached({
    service: "synapse-template",
    cmd: paths.synapsePython,
    args: ["-m", "synapse.app.homeserver", "-c", config],
    env: childEnv(),
    cwd: repoRoot,
    logPath,
    pidPath,
    marker: config,
    tag: serviceTag("synapse-template")
  })
  const ready = await pollUntil(
    async () => {
      if (await services.synapse.probe()) return true
      return runningFromPidFile(pidPath) === undefined ? false : undefined
    },
    { timeoutMs: 300_000, intervalMs: 250 }
  )
  const rec = runningFromPidFile(pidPath)
  const stopped = await stopFromPidFile(pidPath, { termTimeoutMs: 30_000 })
  if (ready !== true || !stopped || (rec !== undefined && pidAlive(rec.pid))) {
    throw new StackError(
      "template:synapse",
      `Synapse did not come up on an empty DB. Last log lines:\n${tailFile(logPath)}`,
      `see ${logPath}; delete ${build} and retry`
    )
  }
  await waitPortsFree(services.synapse.ports, 10_000)
  rmSync(paths.templateDir, { recursive: true, force: true })
  mkdirSync(paths.templateDir, { recursive: true })
  for (const f of templateFiles(join(build, "data"))) copyFileSync(join(build, "data", f), join(paths.templateDir, f))
  writeFileSync(paths.templateMarker, `${templateMarkerText}\n`)
  rmSync(build, { recursive: true, force: true })
  log(`Synapse template DB built in ${formatMs(Date.now() - started)}`)
}

/** Fresh Synapse data for this run: config + a copy of the template DB and signing key. */
export const prepareSynapseRun = (registrationSharedSecret: string): void => {
  rmSync(paths.synapseDir, { recursive: true, force: true })
  mkdirSync(join(synapseDataDir, "media_store"), { recursive: true })
  for (const f of templateFiles(paths.templateDir)) copyFileSync(join(paths.templateDir, f), join(synapseDataDir, f))
  writeFileSync(synapseConfigPath, homeserverConfig({ dataDir: synapseDataDir, registrationSharedSecret }), { mode: 0o600 })
}

export const prepareLivekitRun = (): void => {
  writeFileSync(paths.livekitConfig, livekitConfig(), { mode: 0o600 })
}
