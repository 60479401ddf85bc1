// LiveKit must never hand out public STUN servers: read the real join response over the
// signalling WebSocket and check every ICE server URL points at 127.0.0.1.
import { SignalResponse } from "@livekit/protocol"
import { beforeAll, describe, expect, it } from "vitest"
import { readStack, type StackInfo } from "../../src/index.ts"
import { sfuGet, userAt } from "./helpers.ts"

let stack: StackInfo
beforeAll(() => {
  stack = readStack()
})

const firstSignalMessage = (url: string): Promise<SignalResponse> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.binaryType = "arraybuffer"
    const timer = setTimeout(() => {
      ws.close()
      reject(new Error("no signal message within 10 s"))
    }, 10_000)
    ws.onmessage = (ev: MessageEvent) => {
      clearTimeout(timer)
      ws.close()
      try {
        resolve(SignalResponse.fromBinary(new Uint8Array(ev.data as ArrayBuffer)))
      } catch (e) {
        reject(e)
      }
    }
    ws.onerror = () => {
      clearTimeout(timer)
      reject(new Error("signal WebSocket failed"))
    }
  })

describe("livekit-server ICE configuration", () => {
  it("offers only the loopback STUN entry in the join response", async () => {
    const carol = userAt(stack, 2)
    const res = await sfuGet(stack, carol)
    expect(res.status).toBe(200)
    const q = new URLSearchParams({ access_token: res.json["jwt"] as string, auto_subscribe: "0", protocol: "16", sdk: "js", version: "2.23.0" })
    const msg = await firstSignalMessage(`${stack.livekitUrl}/rtc?${q.toString()}`)
    expect(msg.message.case).toBe("join")
    const join = msg.message.value as { iceServers: Array<{ urls: Array<string> }> }
    const urls = join.iceServers.flatMap((s) => s.urls)
    expect(urls.length).toBeGreaterThan(0)
    for (const u of urls) expect(u).toMatch(/^(stun|turn|turns):127\.0\.0\.1(:\d+)?(\?.*)?$/)
    expect(urls).toContain("stun:127.0.0.1:3478")
  })
})
