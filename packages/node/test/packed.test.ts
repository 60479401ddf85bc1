// What users install: the packages as `pnpm pack` makes them (publishConfig → dist/ JavaScript),
// installed into a fresh project and run with plain Node, which does not strip types under
// node_modules. Builds with scripts/pack.mjs; installs from the workspace's pnpm store and
// metadata cache (.npmrc), going to the registry only for what they do not hold yet.
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..")
const pnpm = join(root, ".tools", "pnpm", "node_modules", "pnpm", "bin", "pnpm.cjs")
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env["PATH"] ?? ""}`, NO_COLOR: "1" }

let work = ""
// The consumer lives outside the workspace, so it does not read the workspace's .npmrc: hand it
// the workspace's store and cache. Relative settings resolve against the workspace root.
const workspaceDir = (key: string): string =>
  resolve(root, execFileSync(process.execPath, [pnpm, "config", "get", key], { cwd: root, env, encoding: "utf8" }).trim())

let consumer = ""
let tarballs: Record<string, string> = {}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "matrixrtc-packed-"))
  tarballs = JSON.parse(execFileSync(process.execPath, [join(root, "scripts", "pack.mjs"), join(work, "packs")], { encoding: "utf8" }))
  consumer = join(work, "consumer")
  const ours = {
    "@matrixrtc-effect/core": `file:${tarballs["@matrixrtc-effect/core"]}`,
    "@matrixrtc-effect/matrix-js-sdk": `file:${tarballs["@matrixrtc-effect/matrix-js-sdk"]}`,
    "@matrixrtc-effect/node": `file:${tarballs["@matrixrtc-effect/node"]}`,
    "@matrixrtc-effect/browser": `file:${tarballs["@matrixrtc-effect/browser"]}`
  }
  execFileSync("mkdir", ["-p", consumer])
  writeFileSync(
    join(consumer, "package.json"),
    JSON.stringify({
      name: "consumer",
      private: true,
      type: "module",
      dependencies: { ...ours, effect: "3.22.4", "@effect/platform": "0.97.2" },
      // The tarballs name each other by version (^0.1.0), which no registry has: point them at the files.
      pnpm: { overrides: ours }
    })
  )
  // Not --offline: a fresh machine's metadata cache is empty (a frozen-lockfile install never fills it).
  const install = spawnSync(
    process.execPath,
    [pnpm, "install", "--prefer-offline", "--ignore-scripts", `--store-dir=${workspaceDir("store-dir")}`, `--cache-dir=${workspaceDir("cache-dir")}`],
    { cwd: consumer, env, encoding: "utf8", timeout: 150_000 }
  )
  if (install.status !== 0) {
    // pnpm prints its errors on stdout.
    throw new Error(`pnpm install in ${consumer} failed (${install.status ?? install.signal ?? install.error?.message}):\n${`${install.stdout ?? ""}${install.stderr ?? ""}`.slice(-3000)}`)
  }
}, 180_000)

afterAll(() => {
  if (work !== "") rmSync(work, { recursive: true, force: true })
})

const run = (cmd: string, args: ReadonlyArray<string>) => spawnSync(cmd, args, { cwd: consumer, env, encoding: "utf8", timeout: 60_000 })

describe("the packed packages", () => {
  it("point exports and bin at dist/ JavaScript and name each other by version", () => {
    for (const [name, tgz] of Object.entries(tarballs)) {
      const manifest = JSON.parse(execFileSync("tar", ["xzf", tgz, "-O", "package/package.json"], { encoding: "utf8" }))
      expect(JSON.stringify(manifest.exports), name).not.toContain("./src/")
      expect(JSON.stringify(manifest.exports), name).toMatch(/dist\/index\.js/)
      expect(JSON.stringify(manifest.dependencies ?? {}), name).not.toContain("workspace:")
    }
    const node = JSON.parse(execFileSync("tar", ["xzf", tarballs["@matrixrtc-effect/node"]!, "-O", "package/package.json"], { encoding: "utf8" }))
    expect(node.bin).toEqual({ matrixrtc: "./dist/bin.js" })
  })

  it("import with plain Node from node_modules", () => {
    const r = run(process.execPath, [
      "--input-type=module",
      "-e",
      "import { Call, AuthServiceHttp } from '@matrixrtc-effect/core'; import * as Testing from '@matrixrtc-effect/core/testing'; import { layerLogin } from '@matrixrtc-effect/matrix-js-sdk'; import { NodeCall } from '@matrixrtc-effect/node'; import { BrowserCall, leaveOnPageHide } from '@matrixrtc-effect/browser'; console.log([Call.join, Call.prepare, AuthServiceHttp.layer, Testing.layer, layerLogin, NodeCall.layer, BrowserCall.layer, leaveOnPageHide].map((f) => typeof f).join(','))"
    ])
    expect(r.stderr).toBe("")
    expect(r.stdout.trim()).toBe("function,function,object,function,function,function,function,function")
  })

  it("the matrixrtc bin runs: help, and a typed usage error with exit code 2", () => {
    const bin = join(consumer, "node_modules", ".bin", "matrixrtc")
    const help = run(bin, ["--help"])
    expect(help.status).toBe(0)
    expect(help.stdout).toContain("Join and watch Matrix calls")
    const bad = run(bin, ["join", "--room", "!x:example.org"])
    expect(bad.status).toBe(2)
    expect(bad.stdout + bad.stderr).toContain("--homeserver")
  })
})
