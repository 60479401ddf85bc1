// Process helpers: tagged processes are found through /proc/<pid>/environ and stopped by pid.
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { describe, expect, it } from "vitest"
import { TAG_VAR, findTagged, pidAlive, stopPids } from "../src/proc.ts"
import { pollUntil } from "../src/util.ts"

describe("tagged processes", () => {
  it("finds a process by its MATRIXRTC_DEVSTACK tag, and stopPids ends it (SIGTERM ignored → SIGKILL)", async () => {
    const tag = `unit-${randomBytes(6).toString("hex")}@/nonexistent`
    // The child ignores SIGTERM, so stopPids has to escalate.
    const child = spawn(process.execPath, ["-e", "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)"], {
      env: { ...process.env, [TAG_VAR]: tag },
      stdio: ["ignore", "pipe", "ignore"]
    })
    const pid = child.pid!
    try {
      // wait until the SIGTERM handler is installed
      await new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()))
      const seen = await pollUntil(async () => (findTagged(tag).includes(pid) ? true : undefined), { timeoutMs: 5000, intervalMs: 50 })
      expect(seen).toBe(true)
      expect(findTagged(`${tag}-other`)).toEqual([])
      const t0 = Date.now()
      expect(await stopPids([pid], 500)).toBe(true)
      expect(Date.now() - t0).toBeGreaterThanOrEqual(450)
      expect(pidAlive(pid)).toBe(false)
      expect(findTagged(tag)).toEqual([])
    } finally {
      child.kill("SIGKILL")
    }
  })
})
