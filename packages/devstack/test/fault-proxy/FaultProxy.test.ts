import { Effect } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { Duplex } from "node:stream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type FaultProxy, faultProxy, startFaultProxy } from "../../src/fault-proxy/index.ts"

// An upstream that echoes what it got, and echoes raw bytes on an upgraded connection.
let upstream: http.Server
let upstreamUrl: string
const upgraded = new Set<Duplex>()

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const body = JSON.stringify({ method: req.method, url: req.url, body: Buffer.concat(chunks).toString(), url2: "ws://x", jwt: "j" })
      res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) })
      res.end(body)
    })
  })
  upstream.on("upgrade", (_req, socket: Duplex) => {
    upgraded.add(socket)
    socket.on("close", () => upgraded.delete(socket))
    socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
    socket.on("data", (d: Buffer) => socket.write(d))
  })
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r))
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
})

afterAll(async () => {
  for (const s of upgraded) s.destroy()
  await new Promise<void>((r) => upstream.close(() => r()))
})

const withProxy = async (f: (p: FaultProxy) => Promise<void>) => {
  const p = await startFaultProxy({ target: upstreamUrl })
  try {
    await f(p)
  } finally {
    await p.close()
  }
}

const upgrade = (p: FaultProxy, path = "/rtc?access_token=x") =>
  new Promise<Duplex>((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: p.port, path, headers: { connection: "Upgrade", upgrade: "test" } })
    req.on("upgrade", (_res, socket) => resolve(socket))
    req.on("response", (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)))
    req.on("error", reject)
    req.end()
  })

const nextData = (s: Duplex) => new Promise<string>((resolve) => s.once("data", (d: Buffer) => resolve(d.toString())))
const closed = (s: Duplex) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once("close", () => resolve())))

describe("fault proxy", () => {
  it("forwards requests unchanged and records them", () =>
    withProxy(async (p) => {
      const res = await fetch(`${p.url}/a/b?x=1`, { method: "POST", body: "hello" })
      expect(res.status).toBe(200)
      expect(await res.json()).toMatchObject({ method: "POST", url: "/a/b?x=1", body: "hello" })
      expect(p.requests()).toMatchObject([{ method: "POST", target: "/a/b?x=1", path: "/a/b", handling: "forward" }])
    }))

  it("answers a canned status for the next K matching requests, then forwards", () =>
    withProxy(async (p) => {
      const h = p.addFault({
        method: "PUT",
        path: /\/state\//,
        times: 2,
        action: { kind: "respond", status: 429, json: { errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 1500 } }
      })
      const put = () => fetch(`${p.url}/rooms/!r/state/t/k`, { method: "PUT", body: "{}" })
      const a = await put()
      expect(a.status).toBe(429)
      expect(await a.json()).toEqual({ errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 1500 })
      // a different method is not matched
      expect((await fetch(`${p.url}/rooms/!r/state/t/k`)).status).toBe(200)
      expect((await put()).status).toBe(429)
      expect((await put()).status).toBe(200)
      expect(h.hits()).toBe(2)
      expect(h.remaining()).toBe(0)
    }))

  it("records the status each client was answered with; none for refused or cut answers", () =>
    withProxy(async (p) => {
      p.addFault({ path: "^/teapot", times: 1, action: { kind: "respond", status: 418, body: "t" } })
      p.addFault({ path: "^/refused", times: 1, action: { kind: "refuse" } })
      p.addFault({ path: "^/cut", times: 1, action: { kind: "cut" } })
      await (await fetch(`${p.url}/ok`)).text()
      await (await fetch(`${p.url}/teapot`)).text()
      await expect(fetch(`${p.url}/refused`)).rejects.toThrow()
      await expect(fetch(`${p.url}/cut`).then((r) => r.text())).rejects.toThrow()
      expect(p.requests().map((r) => [r.path, r.status])).toEqual([
        ["/ok", 200],
        ["/teapot", 418],
        ["/refused", undefined],
        ["/cut", undefined]
      ])
    }))

  it("applies an 'always' rule until removed", () =>
    withProxy(async (p) => {
      const h = p.addFault({ path: "^/sfu/get", action: { kind: "respond", status: 500, body: "boom" } })
      for (let i = 0; i < 3; i++) expect((await fetch(`${p.url}/sfu/get`, { method: "POST" })).status).toBe(500)
      h.remove()
      expect((await fetch(`${p.url}/sfu/get`, { method: "POST" })).status).toBe(200)
    }))

  it("tries higher priorities first, equal priorities in order", () =>
    withProxy(async (p) => {
      p.addFault({ path: /.*/, priority: -1, action: { kind: "respond", status: 299, body: "rewrite" } })
      p.addFault({ path: /.*/, times: 1, action: { kind: "respond", status: 500, body: "a" } })
      p.addFault({ path: /.*/, times: 1, action: { kind: "respond", status: 501, body: "b" } })
      p.addFault({ path: /.*/, times: 1, priority: 5, action: { kind: "respond", status: 502, body: "c" } })
      const statuses: Array<number> = []
      for (let i = 0; i < 5; i++) statuses.push((await fetch(`${p.url}/x`)).status)
      expect(statuses).toEqual([502, 500, 501, 299, 299])
    }))

  it("refuses: the client sees its connection closed", () =>
    withProxy(async (p) => {
      p.addFault({ path: /.*/, times: 1, action: { kind: "refuse" } })
      await expect(fetch(`${p.url}/x`)).rejects.toThrow()
      expect((await fetch(`${p.url}/x`)).status).toBe(200)
      expect(p.requests().map((r) => r.handling)).toEqual(["refuse", "forward"])
    }))

  it("cuts a response mid-body", () =>
    withProxy(async (p) => {
      p.addFault({ path: /.*/, times: 1, action: { kind: "cut" } })
      const res = await fetch(`${p.url}/x`)
      expect(res.status).toBe(200)
      await expect(res.text()).rejects.toThrow()
    }))

  it("replaces or rewrites the upstream body", () =>
    withProxy(async (p) => {
      p.addFault({ path: /.*/, times: 1, action: { kind: "replaceBody", body: "{not json" } })
      p.addFault({
        path: /.*/,
        times: 1,
        action: {
          kind: "replaceBody",
          body: (b) => {
            const { jwt: _jwt, ...rest } = JSON.parse(b) as Record<string, unknown>
            return JSON.stringify(rest)
          }
        }
      })
      expect(await (await fetch(`${p.url}/x`)).text()).toBe("{not json")
      const rewritten = (await (await fetch(`${p.url}/x`)).json()) as Record<string, unknown>
      expect(rewritten).not.toHaveProperty("jwt")
      expect(rewritten).toHaveProperty("url2", "ws://x")
    }))

  it("delays, then forwards", () =>
    withProxy(async (p) => {
      p.addFault({ path: /.*/, times: 1, action: { kind: "delay", ms: 20 } })
      expect((await fetch(`${p.url}/x`)).status).toBe(200)
      expect(p.requests()[0]?.handling).toBe("delay")
    }))

  it("holds a hanging request until the client gives up; waitForRequest sees it", () =>
    withProxy(async (p) => {
      p.addFault({ path: /^\/slow/, action: { kind: "hang" } })
      const ac = new AbortController()
      const pending = fetch(`${p.url}/slow`, { signal: ac.signal })
      const seen = await p.waitForRequest({ path: /^\/slow/ }, { timeoutMs: 5000 })
      expect(seen.handling).toBe("hang")
      ac.abort()
      await expect(pending).rejects.toThrow()
    }))

  it("waitForRequest honours `since` and times out", () =>
    withProxy(async (p) => {
      await fetch(`${p.url}/one`)
      const since = p.nextSeq()
      const w = p.waitForRequest({ path: /^\/one/ }, { since, timeoutMs: 5000 })
      await fetch(`${p.url}/one`)
      expect((await w).seq).toBe(since)
      await expect(p.waitForRequest({ path: /^\/never/ }, { timeoutMs: 10 })).rejects.toThrow(/no \* .*never/)
    }))

  it("tunnels websocket upgrades and can drop them", () =>
    withProxy(async (p) => {
      const s = await upgrade(p)
      expect(p.openTunnels()).toBe(1)
      const echoed = nextData(s)
      s.write("ping")
      expect(await echoed).toBe("ping")
      expect(p.dropTunnels()).toBe(1)
      await closed(s)
      expect(p.requests().map((r) => r.handling)).toEqual(["upgrade"])
    }))

  it("refuses or answers an upgrade when told to", () =>
    withProxy(async (p) => {
      p.addFault({ path: /^\/rtc/, times: 1, action: { kind: "refuse" } })
      p.addFault({ path: /^\/rtc/, times: 1, action: { kind: "respond", status: 401, json: { error: "no" } } })
      await expect(upgrade(p)).rejects.toThrow()
      await expect(upgrade(p)).rejects.toThrow(/HTTP 401/)
      const s = await upgrade(p)
      s.destroy()
    }))

  it("close() ends held requests and tunnels, and is idempotent", async () => {
    const p = await startFaultProxy({ target: upstreamUrl })
    p.addFault({ path: /^\/slow/, action: { kind: "hang" } })
    const pending = fetch(`${p.url}/slow`)
    await p.waitForRequest({ path: /^\/slow/ })
    const s = await upgrade(p)
    await Promise.all([p.close(), p.close()])
    await expect(pending).rejects.toThrow()
    await closed(s)
    await expect(fetch(`${p.url}/x`)).rejects.toThrow()
  })

  it("latencyMs holds each direction of a request and of a tunnel for one link latency, in order", async () => {
    const latencyMs = 30
    const p = await startFaultProxy({ target: upstreamUrl, latencyMs })
    try {
      // Lower bounds only: timers never fire early, so a round trip is at least two link latencies.
      const t0 = performance.now()
      const res = await fetch(`${p.url}/lat`, { method: "POST", body: "x" })
      expect(await res.json()).toMatchObject({ method: "POST", url: "/lat", body: "x" })
      expect(performance.now() - t0).toBeGreaterThanOrEqual(2 * latencyMs - 1)

      const t1 = performance.now()
      const s = await upgrade(p)
      expect(performance.now() - t1).toBeGreaterThanOrEqual(2 * latencyMs - 1)
      let echoed = ""
      const all = new Promise<void>((resolve) =>
        s.on("data", (d: Buffer) => {
          echoed += d.toString()
          if (echoed.length >= 3) resolve()
        })
      )
      const t2 = performance.now()
      for (const c of ["a", "b", "c"]) s.write(c)
      await all
      expect(echoed).toBe("abc")
      expect(performance.now() - t2).toBeGreaterThanOrEqual(2 * latencyMs - 1)
      s.destroy()
    } finally {
      await p.close()
    }
  })

  it("refuses a non-loopback target", async () => {
    await expect(startFaultProxy({ target: "http://example.org" })).rejects.toThrow(/loopback/)
  })

  it("is a scoped Effect resource", async () => {
    const url = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const p = yield* faultProxy({ target: upstreamUrl })
          const res = yield* Effect.promise(() => fetch(`${p.url}/scoped`))
          expect(res.status).toBe(200)
          return p.url
        })
      )
    )
    await expect(fetch(`${url}/after`)).rejects.toThrow()
  })
})
