#!/usr/bin/env node
/**
 * `node scripts/pack.mjs <outDir>`: builds the publishable packages to JavaScript
 * (`tsc -p packages/<p>/tsconfig.build.json` → `dist/`, in dependency order) and packs
 * each with `pnpm pack`, whose tarball takes `publishConfig` (exports and bin pointing at
 * `dist/`). Prints `{ "<package name>": "<tarball path>" }` as JSON.
 *
 * Published packages need JavaScript: Node does not strip types from files under
 * node_modules, so the `.ts` sources the workspace runs from cannot be what users install.
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const outDir = resolve(process.argv[2] ?? join(root, "dist-packs"))
// Dependency order: each build reads the previous ones' dist/ types.
const packages = ["core", "matrix-js-sdk", "node", "browser"]
const tsc = join(root, "node_modules", "typescript", "bin", "tsc")
const pnpm = join(root, ".tools", "pnpm", "node_modules", "pnpm", "bin", "pnpm.cjs")

mkdirSync(outDir, { recursive: true })
const tarballs = {}
for (const p of packages) {
  const dir = join(root, "packages", p)
  execFileSync(process.execPath, [tsc, "-p", join(dir, "tsconfig.build.json")], { stdio: "inherit" })
  const before = new Set(readdirSync(outDir))
  execFileSync(process.execPath, [pnpm, "pack", "--pack-destination", outDir], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] })
  const made = readdirSync(outDir).filter((f) => f.endsWith(".tgz") && !before.has(f))
  const name = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name
  const tgz = made[0] ?? readdirSync(outDir).find((f) => f.startsWith(name.replace("@", "").replace("/", "-")))
  if (tgz === undefined) throw new Error(`pnpm pack made no tarball for ${name}`)
  tarballs[name] = join(outDir, tgz)
}
process.stdout.write(`${JSON.stringify(tarballs)}\n`)
