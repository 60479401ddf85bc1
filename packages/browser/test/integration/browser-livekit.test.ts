/**
 * The livekit-client adapter on its own, in real Chromium against the stack's
 * livekit-server: connection states, the disconnect on scope close, and how
 * connect failures map to `ConnectFailed` reasons.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import type { AddressInfo, Server, Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { randomBytes } from "node:crypto"
import { readStack } from "@matrixrtc-effect/devstack"
import type { StackInfo } from "@matrixrtc-effect/devstack"
import type { Page } from "playwright-core"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { build } from "vite"
import { startStatic } from "../../example/serve.ts"
import { launchChromium } from "../support/chromium.ts"
import type { Chromium } from "../support/chromium.ts"
import type { ConnectReport } from "../support/harness/harness.ts"
import { createRoom, deleteRoom, joinToken, signToken } from "../support/livekitAdmin.ts"

const stack: StackInfo = readStack()
const outDir = mkdtempSync(join(tmpdir(), "matrixrtc-harness-"))
let chromium: Chromium
let page: Page
let close: () => Promise<void>

beforeAll(async () => {
  await build({
    root: join(import.meta.dirname, "..", "support", "harness"),
    configFile: false,
    logLevel: "warn",
    base: "./",
    build: { outDir, emptyOutDir: true, target: "es2022", minify: false, reportCompressedSize: false }
  })
  const server = await startStatic(outDir)
  close = server.close
  chromium = await launchChromium()
  page = await chromium.context.newPage()
  await page.goto(server.url)
  await page.waitForFunction(() => document.body.dataset["ready"] === "true")
}, 600_000)

afterAll(async () => {
  await chromium?.close()
  await close?.()
  rmSync(outDir, { recursive: true, force: true })
})

const connect = (url: string, jwt: string, timeoutMs: number): Promise<ConnectReport> =>
  page.evaluate(
    ([u, j, t]) =>
      (globalThis as unknown as { harness: { connect: (u: string, j: string, t: number) => Promise<ConnectReport> } }).harness
        .connect(u, j, t),
    [url, jwt, timeoutMs] as const
  )

describe("BrowserLiveKit in Chromium", () => {
  it("connects, reports its states, and disconnects when the scope closes", async () => {
    const room = `harness-${randomBytes(4).toString("hex")}`
    await createRoom(stack, room)
    try {
      const r = await connect(stack.livekitUrl, joinToken(stack, room, "harness-ok"), 15_000)
      assert.isTrue(r.ok, JSON.stringify(r.error))
      assert.strictEqual(r.identity, "harness-ok")
      assert.strictEqual(r.roomName, room)
      assert.deepStrictEqual(r.states, ["connected", "disconnected"])
      assert.deepStrictEqual(r.reasons, ["ClientInitiated"])
      assert.isTrue(r.currentWhileOpen)
      assert.isFalse(r.currentAfterClose)
      assert.strictEqual(r.stateAfterClose, "disconnected")
    } finally {
      await deleteRoom(stack, room)
    }
  })

  it("a room the auth service did not create is RoomNotFound (404)", async () => {
    const r = await connect(stack.livekitUrl, joinToken(stack, `missing-${randomBytes(4).toString("hex")}`), 15_000)
    assert.isFalse(r.ok)
    assert.strictEqual(r.error?.tag, "ConnectFailed")
    assert.strictEqual(r.error?.reason, "RoomNotFound")
    assert.strictEqual(r.error?.status, 404)
  })

  it("a token signed with the wrong secret is Rejected (401)", async () => {
    const room = `harness-${randomBytes(4).toString("hex")}`
    await createRoom(stack, room)
    try {
      const forged = signToken(stack.livekitApiKey, "not-the-secret-but-long-enough-to-sign-with", {
        sub: "forger",
        video: { room, roomJoin: true }
      })
      const r = await connect(stack.livekitUrl, forged, 15_000)
      assert.isFalse(r.ok)
      assert.strictEqual(r.error?.reason, "Rejected")
      assert.strictEqual(r.error?.status, 401)
    } finally {
      await deleteRoom(stack, room)
    }
  })

  // The test's timeout is the deadline, below livekit-client's own 15 s websocket timeout: without
  // the adapter's timeoutMs nothing would end this connect in time.
  it("an SFU that accepts the TCP connection and never answers is a Timeout, bounded by timeoutMs", { timeout: 10_000 }, async () => {
    const sockets = new Set<Socket>()
    const silent: Server = createServer((s) => void sockets.add(s))
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
    try {
      const port = (silent.address() as AddressInfo).port
      const r = await connect(`ws://127.0.0.1:${port}`, joinToken(stack, "never"), 1_500)
      assert.isFalse(r.ok)
      assert.strictEqual(r.error?.reason, "Timeout")
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => silent.close(resolve))
    }
  })
})
