/**
 * Bundle size report (a script, not a test): `node packages/browser/scripts/size.ts`.
 *
 * 1. Our overhead: what a browser app pulls in to join a call (core's `Call.join`
 *    + `Ids`, `BrowserCall.layer`, `BrowserLiveKit`, `leaveOnPageHide`, and through
 *    them the shared matrix-js-sdk adapter and the auth-service client), built for
 *    the browser with Vite (esbuild minify, tree-shaken), with livekit-client and
 *    matrix-js-sdk as externals. Reported with effect/@effect/platform bundled
 *    (what the app ships) and as externals too (our own code only).
 * 2. The example app as built by `serveExample` (everything included).
 *
 * Goal: our overhead ≤ 35 KB gzipped.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { gzipSync } from "node:zlib"
import { Effect } from "effect"
import { build } from "vite"
import { buildExample } from "../example/serve.ts"

const packageDir = join(import.meta.dirname, "..")
const GOAL_KB = 35

const entrySource = `
export { Call, Ids } from "@matrixrtc-effect/core"
export { BrowserCall, BrowserLiveKit, leaveOnPageHide } from ${JSON.stringify(join(packageDir, "src", "index.ts"))}
`

const gz = (buf: Buffer) => gzipSync(buf, { level: 9 }).length
const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`

const filesIn = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? filesIn(join(dir, d.name)) : [join(dir, d.name)]
  )

const bundle = async (externals: ReadonlyArray<RegExp>) => {
  const dir = mkdtempSync(join(tmpdir(), "matrixrtc-size-"))
  try {
    const entry = join(packageDir, "scripts", ".size-entry.ts")
    writeFileSync(entry, entrySource)
    try {
      await build({
        root: packageDir,
        configFile: false,
        logLevel: "warn",
        build: {
          outDir: dir,
          emptyOutDir: true,
          target: "es2022",
          minify: "esbuild",
          sourcemap: false,
          reportCompressedSize: false,
          lib: { entry, formats: ["es"], fileName: "overhead" },
          rollupOptions: { external: (id: string) => externals.some((re) => re.test(id)) }
        }
      })
    } finally {
      rmSync(entry, { force: true })
    }
    const js = filesIn(dir).filter((f) => f.endsWith(".js") || f.endsWith(".mjs"))
    const raw = js.reduce((n, f) => n + statSync(f).size, 0)
    const zipped = gz(Buffer.concat(js.map((f) => readFileSync(f))))
    return { raw, zipped }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const sdks = [/^livekit-client(\/|$)/, /^matrix-js-sdk(\/|$)/]
const withEffect = await bundle(sdks)
const ownOnly = await bundle([...sdks, /^effect(\/|$)/, /^@effect\//])

const { outDir } = await Effect.runPromise(buildExample())
const assets = join(outDir, "assets")
const appJs = filesIn(assets).filter((f) => f.endsWith(".js"))
const appWasm = filesIn(assets).filter((f) => f.endsWith(".wasm"))
const appRaw = appJs.reduce((n, f) => n + statSync(f).size, 0)
const appGz = appJs.reduce((n, f) => n + gz(readFileSync(f)), 0)
const wasmGz = appWasm.reduce((n, f) => n + gz(readFileSync(f)), 0)

const lines = [
  "matrixrtc-effect browser bundle sizes (minified; gzip -9)",
  `  overhead (core + browser + matrix-js-sdk adapter + effect), livekit-client/matrix-js-sdk external: ${kb(withEffect.zipped)} gz (${kb(withEffect.raw)} min)  goal ≤ ${GOAL_KB} KB: ${withEffect.zipped <= GOAL_KB * 1024 ? "met" : "NOT met"}`,
  `  overhead without effect/@effect/platform (our code only):                                    ${kb(ownOnly.zipped)} gz (${kb(ownOnly.raw)} min)`,
  `  example app JS (everything: livekit-client, matrix-js-sdk, effect, app):                       ${kb(appGz)} gz (${kb(appRaw)} min)`,
  `  example app lazily loaded crypto wasm (matrix-js-sdk rust crypto, not fetched by the app):  ${kb(wasmGz)} gz`
]
console.log(lines.join("\n"))
