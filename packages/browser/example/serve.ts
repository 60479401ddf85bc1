/**
 * Builds the example web app once with Vite and serves the static files from a
 * small node:http server on loopback, next to a `/config.json` endpoint that
 * tells the page which homeserver, account and room to default to.
 *
 * Building (instead of running the Vite dev server) keeps the page identical to
 * what a deployment gets, needs no file watchers, and lets a fresh machine serve
 * it with nothing but this workspace's dependencies. The build is reused while
 * its inputs are unchanged (a fingerprint of the sources next to the output).
 */
import { createHash } from "node:crypto"
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { extname, join, normalize, relative, sep } from "node:path"
import { Data, Effect, Exit, Scope } from "effect"

const exampleDir = import.meta.dirname
const packageDir = join(exampleDir, "..")
const workspaceDir = join(packageDir, "..", "..")
export const exampleOutDir = join(exampleDir, "dist")
const fingerprintFile = join(exampleOutDir, ".fingerprint")

/** What the page starts with; every field can be overridden by a URL parameter of the same name. */
export interface ExampleConfig {
  /** Client-server API base URL, e.g. `http://127.0.0.1:8008`. */
  readonly homeserverUrl?: string | undefined
  /** User id or localpart to log in as. */
  readonly user?: string | undefined
  /** Password for `user`. Only for local test stacks: the page receives it in clear. */
  readonly password?: string | undefined
  /** Room to preselect. */
  readonly roomId?: string | undefined
  /** Log in and join right away (used by the end-to-end tests). */
  readonly autoJoin?: boolean | undefined
}

export interface ServeExampleOptions {
  /** TCP port on 127.0.0.1; 0 (the default) picks a free one. */
  readonly port?: number | undefined
  /** Defaults served at `/config.json`. */
  readonly config?: ExampleConfig | undefined
  /** Build even if the previous build is up to date. */
  readonly rebuild?: boolean | undefined
}

export interface ExampleServer {
  /** e.g. `http://127.0.0.1:41234/` */
  readonly url: string
  readonly port: number
  /** A URL with `params` (e.g. `{ user: "bob", autoJoin: "1" }`) as query parameters. */
  readonly urlWith: (params: Readonly<Record<string, string>>) => string
}

export class ExampleError extends Data.TaggedError("ExampleError")<{
  readonly step: "build" | "listen"
  readonly message: string
  readonly cause?: unknown
}> {}

// ---------------------------------------------------------------------------------------
// Build

const sourceRoots = [
  exampleDir,
  join(packageDir, "src"),
  join(workspaceDir, "packages", "core", "src"),
  join(workspaceDir, "packages", "matrix-js-sdk", "src")
]

const listFiles = (dir: string): Array<string> =>
  existsSync(dir)
    ? readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
        const p = join(dir, d.name)
        if (d.isDirectory()) return d.name === "dist" || d.name === "node_modules" ? [] : listFiles(p)
        return [p]
      })
    : []

/** Content hash of every input plus the lockfile (dependency versions). */
const fingerprint = (): string => {
  const h = createHash("sha256")
  const files = [...sourceRoots.flatMap(listFiles), join(workspaceDir, "pnpm-lock.yaml")].sort()
  for (const f of files) {
    if (!existsSync(f)) continue
    h.update(relative(workspaceDir, f)).update("\0").update(readFileSync(f)).update("\0")
  }
  return h.digest("hex")
}

export interface BuildResult {
  readonly outDir: string
  /** False when the previous build was still up to date. */
  readonly built: boolean
  readonly ms: number
}

/** Builds the example into `example/dist` unless the existing build matches the sources. */
export const buildExample = (options: { readonly force?: boolean | undefined } = {}): Effect.Effect<BuildResult, ExampleError> =>
  Effect.gen(function*() {
    const started = Date.now()
    const fp = fingerprint()
    if (options.force !== true && existsSync(fingerprintFile) && readFileSync(fingerprintFile, "utf8") === fp) {
      return { outDir: exampleOutDir, built: false, ms: Date.now() - started }
    }
    yield* Effect.logInfo("building the example web app with vite")
    yield* Effect.tryPromise({
      try: async () => {
        const { build } = await import("vite")
        await build(exampleViteConfig())
      },
      catch: (cause) =>
        new ExampleError({ step: "build", message: `vite build of ${exampleDir} failed: ${String(cause)}`, cause })
    })
    writeFileSync(fingerprintFile, fp)
    return { outDir: exampleOutDir, built: true, ms: Date.now() - started }
  })

/** The Vite configuration of the example. */
const exampleViteConfig = () => ({
  root: exampleDir,
  configFile: false as const,
  logLevel: "warn" as const,
  // Relative asset URLs: the bundle works from any path it is served under.
  base: "./",
  build: {
    outDir: exampleOutDir,
    emptyOutDir: true,
    sourcemap: true,
    target: "es2022",
    reportCompressedSize: false,
    chunkSizeWarningLimit: 4096
  }
})

// ---------------------------------------------------------------------------------------
// Serve

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".wasm": "application/wasm",
  ".png": "image/png",
  ".ico": "image/x-icon"
}

const fileIn = (root: string, urlPath: string): string | undefined => {
  const rel = normalize(decodeURIComponent(urlPath)).replace(/^([/\\])+/, "")
  const path = join(root, rel)
  // Never serve anything outside `root`.
  if (path !== root && !path.startsWith(root + sep)) return undefined
  if (existsSync(path) && statSync(path).isFile()) return path
  return undefined
}

/**
 * Serves the files under `root` on 127.0.0.1 for as long as the scope is open;
 * unknown paths get `index.html` (single-page app). `json` adds fixed JSON
 * answers by path (e.g. `/config.json`).
 */
export const serveStatic = (
  root: string,
  options: { readonly port?: number | undefined; readonly json?: Readonly<Record<string, unknown>> | undefined } = {}
): Effect.Effect<ExampleServer, ExampleError, Scope.Scope> =>
  Effect.gen(function*() {
    const json = new Map(Object.entries(options.json ?? {}).map(([path, value]) => [path, JSON.stringify(value)]))
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1")
      const body = json.get(url.pathname)
      if (body !== undefined) {
        res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" })
        res.end(body)
        return
      }
      const file = fileIn(root, url.pathname) ?? join(root, "index.html")
      res.writeHead(200, {
        "content-type": contentTypes[extname(file)] ?? "application/octet-stream",
        "cache-control": "no-store"
      })
      res.end(readFileSync(file))
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<number, ExampleError>((resume) => {
        server.once("error", (cause) =>
          resume(Effect.fail(new ExampleError({ step: "listen", message: `cannot listen on 127.0.0.1:${options.port ?? 0}: ${cause.message}`, cause })))
        )
        server.listen(options.port ?? 0, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
      }),
      () =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    const url = `http://127.0.0.1:${port}/`
    return {
      url,
      port,
      urlWith: (params) => `${url}?${new URLSearchParams(params).toString()}`
    }
  })

/**
 * Builds (if needed) and serves the example on 127.0.0.1 for as long as the scope
 * is open. `/config.json` answers with `options.config`.
 */
export const serveExample = (options: ServeExampleOptions = {}): Effect.Effect<ExampleServer, ExampleError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* buildExample({ force: options.rebuild })
    const server = yield* serveStatic(exampleOutDir, { port: options.port, json: { "/config.json": options.config ?? {} } })
    yield* Effect.logInfo(`example web app at ${server.url}`)
    return server
  })

/** Runs a scoped server for callers that do not run Effect: resolves once listening; `close()` stops it. */
const startScoped = async (
  server: Effect.Effect<ExampleServer, ExampleError, Scope.Scope>
): Promise<ExampleServer & { readonly close: () => Promise<void> }> => {
  const scope = Effect.runSync(Scope.make())
  const close = () => Effect.runPromise(Scope.close(scope, Exit.void))
  const started = await Effect.runPromise(Scope.extend(server, scope)).catch(async (e: unknown) => {
    await close()
    throw e
  })
  return { ...started, close }
}

/** Promise facade of `serveExample`. */
export const startExample = (options: ServeExampleOptions = {}) => startScoped(serveExample(options))

/** Promise facade of `serveStatic`. */
export const startStatic = (root: string, options: Parameters<typeof serveStatic>[1] = {}) =>
  startScoped(serveStatic(root, options))
