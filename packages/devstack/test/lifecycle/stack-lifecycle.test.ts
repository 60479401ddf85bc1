// (c) Stack lifecycle through the real CLI: `up` twice is fine (the second only re-verifies),
// `down` leaves no process and no listening port. Runs in its own vitest project after all
// other projects (root vitest.config.ts, sequence.groupOrder 1) and restores the stack if it
// found it running.
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { createServer } from "node:net"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import {
  AUTH_PORT,
  LIVEKIT_PORT,
  LIVEKIT_TCP_PORT,
  LIVEKIT_UDP_PORT,
  SYNAPSE_PORT,
  StackError,
  activeLeases,
  boundUdpPorts,
  listeningTcpPorts,
  readStack,
  startedByTests,
  status,
  up
} from "../../src/index.ts"

const cli = join(import.meta.dirname, "..", "..", "src", "cli.ts")
const repoRoot = join(import.meta.dirname, "..", "..", "..", "..")

const runCli = (command: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, command], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  // a zombie is not a running process
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return !/\) [ZX] /.test(stat)
  } catch {
    return false
  }
}

const tcpPorts = [SYNAPSE_PORT, LIVEKIT_PORT, LIVEKIT_TCP_PORT, AUTH_PORT]

const wasUp = Object.values(status()).every((pid) => pid !== undefined)
const wasTestOwned = startedByTests()
// Other vitest runs on this checkout (not this run's own global setup) that are using the stack
// right now: taking it down under them would break them, so the lifecycle tests wait for a quiet time.
const otherRuns = activeLeases().filter((pid) => pid !== process.pid && pid !== process.ppid)

afterAll(async () => {
  // Leave the stack as we found it: if it was up (global setup or a developer's stack), bring it
  // back with the same owner, so the global teardown still stops a stack that a test run started.
  if (wasUp && otherRuns.length === 0) await up({ owner: wasTestOwned ? "tests" : "user" })
})

describe.skipIf(otherRuns.length > 0)(`stack lifecycle (CLI)${otherRuns.length > 0 ? ` [skipped: test runs ${otherRuns.join(", ")} are using the stack]` : ""}`, () => {
  let pids: Array<number> = []

  it("`up` starts (or finds) the stack and prints where each service is, without secrets", async () => {
    const r = await runCli("up")
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain("MatrixRTC dev stack is up")
    expect(r.stdout).toContain("http://127.0.0.1:8008")
    expect(r.stdout).toContain("ws://127.0.0.1:7880")
    expect(r.stdout).toContain("http://127.0.0.1:8080")
    const stack = readStack()
    const secrets = [
      stack.livekitApiSecret,
      stack.registrationSharedSecret,
      ...stack.users.flatMap((u) => [u.accessToken, u.password])
    ]
    for (const s of secrets) {
      expect(r.stdout.includes(s) || r.stderr.includes(s)).toBe(false)
    }
    const s = status()
    pids = [s.livekit, s.synapse, s.auth].filter((p): p is number => p !== undefined)
    expect(pids).toHaveLength(3)
  })

  it("a second `up` while up only re-verifies: same processes, same stack.json", async () => {
    const before = readStack()
    const r = await runCli("up")
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain("already running")
    const s = status()
    expect([s.livekit, s.synapse, s.auth]).toEqual(pids)
    expect(readStack()).toEqual(before)
  })

  it("`down` leaves no process and no listening port; a second `down` is fine", async () => {
    const r = await runCli("down")
    expect(r.code, r.stderr).toBe(0)
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false)
    const tcp = listeningTcpPorts()
    for (const p of tcpPorts) expect(tcp.has(p), `tcp/${p}`).toBe(false)
    expect(boundUdpPorts().has(LIVEKIT_UDP_PORT), `udp/${LIVEKIT_UDP_PORT}`).toBe(false)
    expect(() => readStack()).toThrow(StackError)
    expect(Object.values(status())).toEqual([undefined, undefined, undefined])

    const again = await runCli("down")
    expect(again.code, again.stderr).toBe(0)
  })

  it("`up` refuses to start when a port is taken by a foreign process, and leaves nothing running", async () => {
    const blocker = createServer()
    await new Promise<void>((resolve, reject) => {
      blocker.once("error", reject)
      blocker.listen(AUTH_PORT, "127.0.0.1", resolve)
    })
    try {
      const r = await runCli("up")
      expect(r.code).toBe(1)
      expect(r.stderr).toContain("[ports]")
      expect(r.stderr).toContain(`tcp/${AUTH_PORT}`)
      expect(r.stderr).toContain("how to fix")
      expect(Object.values(status())).toEqual([undefined, undefined, undefined])
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()))
    }
  })
})
