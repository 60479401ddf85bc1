/**
 * Real Chromium for the end-to-end tests: Debian's `/usr/bin/chromium`, installed
 * with apt-get when missing (CI machines start without it), driven by playwright-core.
 *
 * The flags keep the browser on loopback: no background/component/sync traffic,
 * loopback ICE candidates allowed and not hidden behind mDNS names (local-stack.md
 * §5.8), fake camera/microphone without permission prompts, a host resolver that
 * fails every name except loopback ones, and a proxy that does not exist for
 * everything else (loopback never goes through a proxy), so HTTP and websocket
 * requests to IP addresses fail too. Every request that tries to leave loopback is
 * recorded, so a test cannot silently depend on the internet.
 *
 * The guard observes requests rather than intercepting them (Playwright's `route`):
 * an intercepted request waits for the test process to let it through, and when its
 * page closes first the browser drops it, which would also drop the keepalive
 * requests a closing page sends on purpose.
 */
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { BrowserContext } from "playwright-core"
import { chromium } from "playwright-core"

export const CHROMIUM = "/usr/bin/chromium"

export const chromiumFlags: ReadonlyArray<string> = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--disable-quic",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  // Remote audio must play without a click in tests that drive the page programmatically.
  "--autoplay-policy=no-user-gesture-required",
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
  // Port 9 (discard) has no listener here: whatever is not loopback cannot connect.
  "--proxy-server=http://127.0.0.1:9"
]

const run = (cmd: string, args: ReadonlyArray<string>): Promise<{ code: number | null; output: string }> =>
  new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } })
    let output = ""
    child.stdout.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr.on("data", (d: Buffer) => (output += d.toString()))
    child.on("error", (e) => resolve({ code: -1, output: output + String(e) }))
    child.on("close", (code) => resolve({ code, output }))
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Installs Debian's chromium when it is missing. Concurrent callers (several test
 * files, several vitest workers) share one install through a mkdir lock.
 */
export const ensureChromium = async (log: (m: string) => void = (m) => process.stderr.write(`[chromium] ${m}\n`)) => {
  if (existsSync(CHROMIUM)) return
  const lock = join(tmpdir(), "matrixrtc-effect-chromium-install.lock")
  for (;;) {
    try {
      mkdirSync(lock)
      break
    } catch {
      if (existsSync(CHROMIUM)) return
      await sleep(1000)
    }
  }
  try {
    if (existsSync(CHROMIUM)) return
    log("installing chromium: apt-get update && apt-get install -y chromium (takes a minute or two)")
    const r = await run("sh", ["-c", "apt-get update && apt-get install -y chromium"])
    if (r.code !== 0 || !existsSync(CHROMIUM)) {
      throw new Error(
        `installing chromium with apt-get failed (exit ${r.code}); the e2e tests need ${CHROMIUM} ` +
          `(run \`apt-get update && apt-get install -y chromium\` as root). Last output:\n${r.output.slice(-2000)}`
      )
    }
    log(`installed ${CHROMIUM}`)
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

const isLoopback = (url: string): boolean => {
  try {
    const u = new URL(url)
    if (u.protocol === "data:" || u.protocol === "blob:" || u.protocol === "about:") return true
    return u.hostname === "127.0.0.1" || u.hostname === "localhost" || u.hostname === "[::1]"
  } catch {
    return false
  }
}

export interface Chromium {
  readonly context: BrowserContext
  /** Requests that tried to leave loopback (the proxy flag makes them fail). */
  readonly blocked: ReadonlyArray<string>
  readonly close: () => Promise<void>
}

/** Launches a fresh Chromium (new user-data-dir) with the loopback-only flags. */
export const launchChromium = async (): Promise<Chromium> => {
  await ensureChromium()
  const userDataDir = mkdtempSync(join(tmpdir(), "matrixrtc-chromium-"))
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...chromiumFlags],
    viewport: { width: 1280, height: 800 },
    permissions: ["camera", "microphone"]
  })
  const blocked: Array<string> = []
  context.on("request", (request) => {
    if (!isLoopback(request.url())) blocked.push(request.url())
  })
  return {
    context,
    blocked,
    close: async () => {
      await context.close().catch(() => undefined)
      rmSync(userDataDir, { recursive: true, force: true })
    }
  }
}
