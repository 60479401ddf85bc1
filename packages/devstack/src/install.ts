// Installers for the two external programs of the stack. Both are idempotent: a marker
// file holding the pinned version is written last, and a second call with the marker in
// place does nothing (no pip, no go).
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { LIVEKIT_MODULE, LIVEKIT_VERSION, SYNAPSE_VERSION, paths, toolsDir } from "./paths.ts"
import { type Log, StackError, formatMs, runLogged } from "./util.ts"

const installLog = (name: string): string => join(toolsDir, "logs", `install-${name}.log`)

const readMarker = (file: string): string | undefined => {
  try {
    return readFileSync(file, "utf8").trim()
  } catch {
    return undefined
  }
}

const synapseMarkerText = `matrix-synapse==${SYNAPSE_VERSION}`
const livekitMarkerText = `${LIVEKIT_MODULE}@v${LIVEKIT_VERSION}`

export const synapseInstalled = (): boolean =>
  existsSync(paths.synapsePython) && readMarker(paths.synapseMarker) === synapseMarkerText

export const livekitInstalled = (): boolean =>
  existsSync(paths.livekitBinary) && readMarker(paths.livekitMarker) === livekitMarkerText

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

/** pip-installs the pinned matrix-synapse into `.tools/synapse-venv` unless already there. */
export const ensureSynapse = async (log: Log): Promise<{ readonly installed: boolean; readonly ms: number }> => {
  if (synapseInstalled()) return { installed: false, ms: 0 }
  const started = Date.now()
  const python = findPython()
  log(`installing matrix-synapse==${SYNAPSE_VERSION} into ${paths.synapseVenv} (log: ${installLog("synapse")})`)
  rmSync(paths.synapseVenv, { recursive: true, force: true })
  const logPath = installLog("synapse")
  const pipArgs = ["install", "--disable-pip-version-check", "--no-input", `matrix-synapse==${SYNAPSE_VERSION}`]
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
    throw new StackError(
      "install:synapse",
      `pip install of matrix-synapse==${SYNAPSE_VERSION} failed: ${(e as Error).message}`,
      "check network access to PyPI and the log above; on Debian you may need `apt-get install python3-venv`"
    )
  }
  writeFileSync(paths.synapseMarker, `${synapseMarkerText}\n`)
  const ms = Date.now() - started
  log(`matrix-synapse installed in ${formatMs(ms)}`)
  return { installed: true, ms }
}

/** `go install`s the pinned livekit-server into `.tools/gobin` unless already there. */
export const ensureLivekit = async (log: Log): Promise<{ readonly installed: boolean; readonly ms: number }> => {
  if (livekitInstalled()) return { installed: false, ms: 0 }
  const started = Date.now()
  const go = findGo()
  mkdirSync(paths.gobin, { recursive: true })
  rmSync(paths.livekitMarker, { force: true })
  log(`installing livekit-server v${LIVEKIT_VERSION} with go install into ${paths.gobin} (log: ${installLog("livekit")})`)
  try {
    await runLogged(go, ["install", `${LIVEKIT_MODULE}@v${LIVEKIT_VERSION}`], {
      logPath: installLog("livekit"),
      env: { ...process.env, GOBIN: paths.gobin }
    })
  } catch (e) {
    throw new StackError(
      "install:livekit",
      `go install of livekit-server v${LIVEKIT_VERSION} failed: ${(e as Error).message}`,
      "check network access to the Go module proxy (GOPROXY) and the log above"
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
  const ms = Date.now() - started
  log(`livekit-server installed in ${formatMs(ms)}`)
  return { installed: true, ms }
}

/** Installs both (in parallel) when missing. */
export const ensureInstalled = async (log: Log): Promise<void> => {
  await Promise.all([ensureSynapse(log), ensureLivekit(log)])
}
