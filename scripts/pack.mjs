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
import { mkdirSync } from "node:fs"
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
  const packed = execFileSync(process.execPath, [pnpm, "pack", "--json", "--pack-destination", outDir], {
    cwd: dir,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"]
  })
  const { filename, name } = JSON.parse(packed)
  tarballs[name] = resolve(outDir, filename)
}
process.stdout.write(`${JSON.stringify(tarballs)}\n`)
