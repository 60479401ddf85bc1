// Installers for the two external programs of the stack. Both are idempotent: a marker
// file describing what was installed is written last, and a second call with a matching
// marker in place does nothing (no pip, no go).
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { LIVEKIT_MODULE, LIVEKIT_VERSION, SYNAPSE_VERSION, paths, pidFile, toolsDir } from "./paths.ts"
import { runningFromPidFile, tailFile } from "./proc.ts"
import { type Log, StackError, formatMs, runLogged } from "./util.ts"

const installLog = (name: string): string => join(toolsDir, "logs", `install-${name}.log`)

const readMarker = (file: string): string | undefined => {
  try {
    return readFileSync(file, "utf8").trim()
  } catch {
    return undefined
  }
}

/**
 * What the Synapse venv was built from. The constraints' hash makes an edited constraints file
 * reinstall; the Python version makes an in-place Python upgrade (which leaves the venv's
 * site-packages behind, for another minor version or built against another ABI) reinstall.
 */
export const synapseMarkerText = (constraints: string | Buffer, pythonVersion: string): string =>
  `matrix-synapse==${SYNAPSE_VERSION} constraints=sha256:${createHash("sha256").update(constraints).digest("hex").slice(0, 16)} python=${pythonVersion}`

const livekitMarkerText = `${LIVEKIT_MODULE}@v${LIVEKIT_VERSION}`

/** `major.minor.patch` of a Python interpreter, or undefined when it does not run. */
const pythonVersion = (python: string): string | undefined => {
  try {
    return execFileSync(python, ["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"]
    }).trim()
  } catch {
    return undefined
  }
}

export const synapseInstalled = (): boolean => {
  const marker = readMarker(paths.synapseMarker)
  if (marker === undefined) return false
  const version = pythonVersion(paths.synapsePython)
  return version !== undefined && marker === synapseMarkerText(readFileSync(paths.synapseConstraints), version)
}

// Only the module and version decide what `go install` builds: the env below only says where
// modules come from (checked against go.sum either way) and where caches go, so it is not
// part of the marker.
export const livekitInstalled = (): boolean =>
  existsSync(paths.livekitBinary) && readMarker(paths.livekitMarker) === livekitMarkerText

const DEFAULT_GOPROXY = "https://proxy.golang.org"

/**
 * The machine's GOPROXY without `direct`: CI reaches package registries only, and a proxy
 * miss falling back to a VCS clone would fail there after a long timeout, or pass here
 * and hide that.
 */
export const goProxyWithoutDirect = (goproxy: string): string => {
  const kept = goproxy
    .split(/(?=[,|])/)
    .filter((entry) => entry.replace(/^[,|]/, "").trim() !== "direct")
    .join("")
    .replace(/^[,|]/, "")
  return kept === "" ? DEFAULT_GOPROXY : kept
}

/** The environment of `go install` and `go clean`: caches in `.tools/go/`, nothing from the machine's GOFLAGS. */
export const goInstallEnv = (base: NodeJS.ProcessEnv, goproxy: string): NodeJS.ProcessEnv => ({
  ...base,
  GOBIN: paths.gobin,
  GOMODCACHE: paths.goModCache,
  GOCACHE: paths.goBuildCache,
  // Replaces the machine's GOFLAGS (an empty value would fall back to the go env file's).
  // -modcacherw: Go makes module files read-only, which would make `rm -rf .tools` fail for non-root users.
  GOFLAGS: "-modcacherw",
  GOPROXY: goProxyWithoutDirect(goproxy),
  // findGo checked the version: never download another toolchain.
  GOTOOLCHAIN: "local"
})

/** A StackError for a failed install step, with the end of its log. */
const installError = (check: string, what: string, e: unknown, logPath: string, fix: string): StackError =>
  new StackError(check, `${what} failed: ${(e as Error).message}. Last log lines:\n${tailFile(logPath)}`, fix)

const findPython = (): string => {
  const candidates = [process.env["DEVSTACK_PYTHON"], "python3", "python"].filter((c): c is string => !!c)
  for (const cmd of candidates) {
    try {
      const out = execFileSync(cmd, ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"], { encoding: "utf8" })
      const [major, minor] = out.trim().split(".").map(Number)
      if (major === 3 && (minor ?? 0) >= 10) return cmd
    } catch {
      // try the next candidate
    }
  }
  throw new StackError(
    "install:python",
    "no Python >= 3.10 found (tried $DEVSTACK_PYTHON, python3, python)",
    "install Python 3.10+ (e.g. `apt-get install python3 python3-venv`) or set DEVSTACK_PYTHON to its path"
  )
}

const findGo = (): string => {
  const candidates = [process.env["DEVSTACK_GO"], "go", "/usr/local/go/bin/go"].filter((c): c is string => !!c)
  for (const cmd of candidates) {
    try {
      const out = execFileSync(cmd, ["env", "GOVERSION"], { encoding: "utf8" }).trim()
      const m = /^go(\d+)\.(\d+)/.exec(out)
      if (m && (Number(m[1]) > 1 || Number(m[2]) >= 26)) return cmd
    } catch {
      // try the next candidate
    }
  }
  throw new StackError(
    "install:go",
    "no Go >= 1.26 found (tried $DEVSTACK_GO, go, /usr/local/go/bin/go); livekit-server v1.13.5 needs go 1.26",
    "install Go 1.26+ and put it on PATH, or set DEVSTACK_GO to the go binary"
  )
}

/**
 * pip-installs the pinned matrix-synapse, its dependencies held by synapse-constraints.txt, into
 * `.tools/synapse-venv` unless already there.
 */
export const ensureSynapse = async (log: Log): Promise<{ readonly installed: boolean; readonly ms: number }> => {
  if (synapseInstalled()) return { installed: false, ms: 0 }
  // A changed marker (new constraints, another Python) must not delete the venv under a running Synapse.
  const running = runningFromPidFile(pidFile("synapse"))
  if (running !== undefined) {
    throw new StackError(
      "install:synapse",
      `the Synapse venv is out of date (${paths.synapseMarker} names other constraints, Python or version), but this stack's Synapse (pid ${running.pid}) runs from it`,
      "when no test run uses the stack, `npm run stack:down`; the next start reinstalls Synapse"
    )
  }
  const started = Date.now()
  const python = findPython()
  log(`installing matrix-synapse==${SYNAPSE_VERSION} into ${paths.synapseVenv} (log: ${installLog("synapse")})`)
  rmSync(paths.synapseVenv, { recursive: true, force: true })
  const logPath = installLog("synapse")
  const constraints = readFileSync(paths.synapseConstraints)
  const pipArgs = ["install", "--disable-pip-version-check", "--no-input", "-c", paths.synapseConstraints, `matrix-synapse==${SYNAPSE_VERSION}`]
  try {
    let venvHasPip = true
    try {
      await runLogged(python, ["-m", "venv", paths.synapseVenv], { logPath })
    } catch {
      // Debian without python3-venv has no ensurepip: make the venv without pip and drive the
      // system pip into it (pip >= 22.3 has --python).
      rmSync(paths.synapseVenv, { recursive: true, force: true })
      await runLogged(python, ["-m", "venv", "--without-pip", paths.synapseVenv], { logPath })
      venvHasPip = false
    }
    await (venvHasPip
      ? runLogged(paths.synapsePython, ["-m", "pip", ...pipArgs], { logPath })
      : runLogged(python, ["-m", "pip", "--python", paths.synapsePython, ...pipArgs], { logPath }))
  } catch (e) {
    throw installError(
      "install:synapse",
      `pip install of matrix-synapse==${SYNAPSE_VERSION}`,
      e,
      logPath,
      "check network access to PyPI and the log; on Debian you may need `apt-get install python3-venv`"
    )
  }
  const version = pythonVersion(paths.synapsePython)
  if (version === undefined) {
    throw new StackError("install:synapse", `${paths.synapsePython} does not run after the install`, `see ${logPath}; delete ${paths.synapseVenv} and retry`)
  }
  writeFileSync(paths.synapseMarker, `${synapseMarkerText(constraints, version)}\n`)
  const ms = Date.now() - started
  log(`matrix-synapse installed in ${formatMs(ms)}`)
  return { installed: true, ms }
}

/** `go install`s the pinned livekit-server into `.tools/gobin` unless already there. */
export const ensureLivekit = async (log: Log): Promise<{ readonly installed: boolean; readonly ms: number }> => {
  if (livekitInstalled()) return { installed: false, ms: 0 }
  const started = Date.now()
  const go = findGo()
  const env = goInstallEnv(process.env, execFileSync(go, ["env", "GOPROXY"], { encoding: "utf8" }).trim())
  const logPath = installLog("livekit")
  mkdirSync(paths.gobin, { recursive: true })
  rmSync(paths.livekitMarker, { force: true })
  log(`installing livekit-server v${LIVEKIT_VERSION} with go install (GOPROXY=${env["GOPROXY"]}) into ${paths.gobin} (log: ${logPath})`)
  try {
    await runLogged(go, ["install", `${LIVEKIT_MODULE}@v${LIVEKIT_VERSION}`], { logPath, env })
  } catch (e) {
    throw installError(
      "install:livekit",
      `go install of livekit-server v${LIVEKIT_VERSION}`,
      e,
      logPath,
      "check network access to the Go module proxy (GOPROXY) and the log"
    )
  }
  if (!existsSync(paths.livekitBinary)) {
    throw new StackError(
      "install:livekit",
      `go install finished but ${paths.livekitBinary} is missing`,
      "make sure GOBIN is honoured (no GOOS/GOARCH cross-compilation set in the environment)"
    )
  }
  writeFileSync(paths.livekitMarker, `${livekitMarkerText}\n`)
  // The build cache (~650 MB) only speeds up a rebuild, which the marker makes rare; CI would
  // cache it with .tools/ on every run. The module cache (~360 MB) stays for a version bump.
  await runLogged(go, ["clean", "-cache"], { logPath, env }).catch((e: Error) => log(`go clean -cache failed (ignored): ${e.message}`))
  const ms = Date.now() - started
  log(`livekit-server installed in ${formatMs(ms)}`)
  return { installed: true, ms }
}

/**
 * Installs both (in parallel) when missing. When one fails, waits for the other to finish
 * (a half-done pip or go install must not keep running behind the error), then throws the
 * first error.
 */
export const ensureInstalled = async (log: Log): Promise<void> => {
  const results = await Promise.allSettled([ensureSynapse(log), ensureLivekit(log)])
  for (const r of results) if (r.status === "rejected") throw r.reason
}
