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
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
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

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..")
/** Downloaded .debs stay in the project (ignored, cached by CI with .tools/): a second machine installs without downloading. */
export const aptArchives = join(repoRoot, ".tools", "apt-archives")

/**
 * The commands that install chromium: `apt-get update`, then `apt-get install`. Through
 * `sudo -n` when not root (it fails at once instead of prompting when sudo needs a password).
 * apt waits up to 5 minutes for a dpkg lock held by another apt (e.g. unattended-upgrades)
 * instead of failing at once.
 */
export const aptCommands = (opts: { readonly root: boolean; readonly sudo: boolean; readonly archives: string }): ReadonlyArray<ReadonlyArray<string>> => {
  const aptGet = [...(!opts.root && opts.sudo ? ["sudo", "-n"] : []), "apt-get", "-o", "DPkg::Lock::Timeout=300", "-o", `Dir::Cache::Archives=${opts.archives}`]
  return [
    [...aptGet, "update"],
    [...aptGet, "install", "-y", "chromium"]
  ]
}

const onPath = (cmd: string): boolean =>
  (process.env["PATH"] ?? "").split(":").some((dir) => dir !== "" && existsSync(join(dir, cmd)))

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

const lockOwner = (lock: string): number | undefined => {
  try {
    const pid = Number(readFileSync(join(lock, "pid"), "utf8").trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined // empty while its owner writes it
  } catch {
    return undefined
  }
}

/**
 * A mkdir lock holding its owner's pid. A lock whose owner is dead (or that never got a pid:
 * its owner died between mkdir and write) is stale and taken over; after `deadlineMs` the wait
 * gives up with an error naming the lock. Resolves "done" without the lock when `done()`
 * turns true while waiting. Two waiters taking over the same stale lock at once could both
 * run apt-get; dpkg's own lock serialises them, this one only spares the waiting.
 */
export const acquireDirLock = async (
  lock: string,
  done: () => boolean,
  opts: { readonly deadlineMs: number; readonly pollMs?: number; readonly orphanMs?: number }
): Promise<"locked" | "done"> => {
  const deadline = Date.now() + opts.deadlineMs
  for (;;) {
    try {
      mkdirSync(lock)
      writeFileSync(join(lock, "pid"), `${process.pid}\n`)
      return "locked"
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
    }
    if (done()) return "done"
    const owner = lockOwner(lock)
    let ageMs = 0
    try {
      ageMs = Date.now() - statSync(lock).mtimeMs
    } catch {
      continue // released meanwhile: try again at once
    }
    if (owner !== undefined ? !pidAlive(owner) : ageMs > (opts.orphanMs ?? 30_000)) {
      rmSync(lock, { recursive: true, force: true })
      continue
    }
    if (Date.now() >= deadline) {
      throw new Error(`waited ${Math.round(opts.deadlineMs / 1000)} s for ${lock} (held by pid ${owner ?? "?"}); if no chromium install is running, delete it`)
    }
    await sleep(opts.pollMs ?? 1000)
  }
}

/**
 * Installs Debian's chromium when it is missing. Concurrent callers (several test
 * files, several vitest workers) share one install through a mkdir lock.
 */
export const ensureChromium = async (log: (m: string) => void = (m) => process.stderr.write(`[chromium] ${m}\n`)) => {
  if (existsSync(CHROMIUM)) return
  const lock = join(tmpdir(), "matrixrtc-effect-chromium-install.lock")
  // An install takes a minute or two, plus up to 5 minutes waiting for dpkg's lock.
  if ((await acquireDirLock(lock, () => existsSync(CHROMIUM), { deadlineMs: 10 * 60_000 })) === "done") return
  try {
    if (existsSync(CHROMIUM)) return
    mkdirSync(join(aptArchives, "partial"), { recursive: true })
    const commands = aptCommands({ root: process.getuid?.() === 0, sudo: onPath("sudo"), archives: aptArchives })
    const shown = commands.map((c) => c.join(" ")).join(" && ")
    log(`installing chromium: ${shown} (takes a minute or two)`)
    for (const [cmd, ...args] of commands) {
      const r = await run(cmd!, args)
      if (r.code !== 0) {
        throw new Error(
          `installing chromium failed: \`${[cmd, ...args].join(" ")}\` exited ${r.code}; the e2e tests need ${CHROMIUM} ` +
            `(run \`${shown}\` as root). Last output:\n${r.output.slice(-2000)}`
        )
      }
    }
    if (!existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium but ${CHROMIUM} is missing`)
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
