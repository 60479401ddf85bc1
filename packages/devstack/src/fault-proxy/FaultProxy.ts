/**
 * A loopback HTTP proxy that injects faults, for tests and benchmarks.
 *
 * Put it in front of one service (the auth service, the homeserver or LiveKit) and
 * point the client at `proxy.url` instead of the service. Every request is forwarded
 * unchanged unless a fault rule matches it; rules match on method + a regular
 * expression over the request target (path and query, e.g.
 * `/_matrix/client/v3/rooms/!r:localhost/state/...?org.matrix.msc4140.delay=8000`),
 * apply to the next `times` matching requests (default: all of them), and are tried
 * in the order they were added.
 *
 * WebSocket upgrades (LiveKit signalling on `/rtc`) are tunnelled as raw TCP after
 * the rules had their say; `dropTunnels()` cuts the open ones to simulate an SFU
 * that drops us mid-call.
 *
 * Only loopback: the proxy listens on 127.0.0.1 and refuses a non-loopback target.
 */
import { EventEmitter } from "node:events"
import * as http from "node:http"
import * as net from "node:net"
import type { Duplex } from "node:stream"

export type FaultAction =
  /** Close the client's connection without an answer (ECONNRESET / "socket hang up"). */
  | { readonly kind: "refuse" }
  /** Wait `ms`, then forward as usual. */
  | { readonly kind: "delay"; readonly ms: number }
  /** Never answer; the request is held until the client gives up or the proxy closes. */
  | { readonly kind: "hang" }
  /**
   * Forward, then send the upstream status, headers (with the full Content-Length) and
   * only the first `bytes` of the body (default: half of it), then close the connection.
   */
  | { readonly kind: "cut"; readonly bytes?: number | undefined }
  /**
   * Forward, then replace the upstream body: a fixed string, or a function of the
   * upstream body (e.g. to drop a field). `status` overrides the upstream status.
   */
  | {
      readonly kind: "replaceBody"
      readonly body: string | ((upstream: string) => string)
      readonly status?: number | undefined
      readonly contentType?: string | undefined
    }
  /** Answer without asking upstream: `json` is serialised, or `body` is sent verbatim. */
  | {
      readonly kind: "respond"
      readonly status: number
      readonly json?: unknown
      readonly body?: string | undefined
      readonly headers?: Readonly<Record<string, string>> | undefined
    }

export interface FaultRule {
  /** HTTP method to match (case-insensitive); any method when absent. */
  readonly method?: string | undefined
  /** Matched against the request target (path + query). A string is compiled as a RegExp. */
  readonly path: RegExp | string
  /** Applies to this many matching requests, then retires. Default: every matching request. */
  readonly times?: number | undefined
  /**
   * Rules with a higher priority are tried first; equal priorities in the order they were
   * added. Default 0. A standing rewrite (e.g. of a discovery answer) can use a negative
   * priority so that faults added later still win.
   */
  readonly priority?: number | undefined
  readonly action: FaultAction
}

export interface FaultHandle {
  /** Matching requests this rule has handled so far. */
  readonly hits: () => number
  /** How many more requests it will handle (Infinity for "always"). */
  readonly remaining: () => number
  /** Retires the rule now. */
  readonly remove: () => void
}

export interface RecordedRequest {
  readonly seq: number
  readonly method: string
  /** Path + query, as the client sent it. */
  readonly target: string
  /** Path without the query. */
  readonly path: string
  readonly receivedAt: number
  /** The fault applied, or "forward" for a plain pass-through, "upgrade" for a websocket tunnel. */
  readonly handling: FaultAction["kind"] | "forward" | "upgrade"
  /**
   * The HTTP status the client was answered with, once the whole answer has been written to it; undefined while
   * the request is pending, and for good when it was refused, held, cut or upgraded.
   */
  readonly status?: number | undefined
}

export interface RequestMatcher {
  readonly method?: string | undefined
  readonly path?: RegExp | string | undefined
}

export interface FaultProxyOptions {
  /** The service behind the proxy, e.g. `http://127.0.0.1:8080` (a ws:// URL is accepted for LiveKit). */
  readonly target: string
  /** Port to listen on; 0 (default) picks a free one. */
  readonly port?: number | undefined
  /**
   * One-way latency added to forwarded traffic, in each direction (default 0): an HTTP request
   * reaches the service `latencyMs` late and its answer the client `latencyMs` late, and every
   * chunk of a websocket tunnel is held `latencyMs`. Emulates a wide-area link of round-trip
   * time 2 × `latencyMs` in front of a loopback service. Answers the proxy makes up itself
   * (`respond`) are not delayed.
   */
  readonly latencyMs?: number | undefined
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** `ws://127.0.0.1:<port>`, for LiveKit clients. */
  readonly wsUrl: string
  readonly port: number
  readonly target: string
  readonly addFault: (rule: FaultRule) => FaultHandle
  readonly clearFaults: () => void
  /** Every request seen so far, oldest first. */
  readonly requests: () => ReadonlyArray<RecordedRequest>
  /** How many requests matched (all when no matcher). */
  readonly count: (matcher?: RequestMatcher) => number
  /**
   * Resolves with the first request matching `matcher` whose sequence number is ≥ `since`
   * (default: any, including ones already seen); rejects after `timeoutMs`.
   */
  readonly waitForRequest: (matcher: RequestMatcher, options?: { readonly timeoutMs?: number; readonly since?: number }) => Promise<RecordedRequest>
  /** The sequence number the next request will get. */
  readonly nextSeq: () => number
  /** Open websocket tunnels right now. */
  readonly openTunnels: () => number
  /** Destroys every open websocket tunnel (both sides); returns how many were cut. */
  readonly dropTunnels: () => number
  /** Stops listening and destroys every connection, held request and tunnel. Idempotent. */
  readonly close: () => Promise<void>
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]", "::1"])

const toRegExp = (p: RegExp | string): RegExp => (typeof p === "string" ? new RegExp(p) : p)

const matches = (m: RequestMatcher, method: string, target: string): boolean =>
  (m.method === undefined || m.method.toUpperCase() === method.toUpperCase()) &&
  (m.path === undefined || toRegExp(m.path).test(target))

const statusText = (status: number): string => http.STATUS_CODES[status] ?? "Unknown"

interface LiveRule {
  readonly priority: number
  readonly method: string | undefined
  readonly path: RegExp
  remaining: number
  hits: number
  readonly action: FaultAction
}

const readAll = (stream: NodeJS.ReadableStream): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    stream.on("data", (c: Buffer) => chunks.push(c))
    stream.on("end", () => resolve(Buffer.concat(chunks)))
    stream.on("error", reject)
  })

export const startFaultProxy = async (options: FaultProxyOptions): Promise<FaultProxy> => {
  const targetUrl = new URL(options.target.replace(/^ws(s?):/, "http$1:"))
  if (!LOOPBACK_HOSTS.has(targetUrl.hostname)) {
    throw new Error(`fault proxy: target ${options.target} is not a loopback address`)
  }
  if (targetUrl.protocol !== "http:") throw new Error(`fault proxy: only plain http/ws targets are supported (${options.target})`)
  const targetHost = targetUrl.hostname === "localhost" ? "127.0.0.1" : targetUrl.hostname.replace(/^\[|\]$/g, "")
  const targetPort = Number(targetUrl.port || 80)

  const rules: Array<LiveRule> = []
  const log: Array<RecordedRequest> = []
  const events = new EventEmitter()
  events.setMaxListeners(0)
  const timers = new Set<NodeJS.Timeout>()
  const held = new Set<http.ServerResponse>()
  /** Client sides of websocket upgrades (one per tunnel) and their upstream sockets. */
  const tunnels = new Set<Duplex>()
  const upstreams = new Set<net.Socket>()
  const agent = new http.Agent({ keepAlive: false })
  let closed = false
  let seq = 0

  const pick = (method: string, target: string): FaultAction | undefined => {
    for (const r of rules) {
      if (r.remaining <= 0) continue
      if (r.method !== undefined && r.method !== method.toUpperCase()) continue
      if (!r.path.test(target)) continue
      r.remaining--
      r.hits++
      return r.action
    }
    return undefined
  }

  const record = (method: string, target: string, handling: RecordedRequest["handling"]): { status?: number } & RecordedRequest => {
    const rec: { status?: number } & RecordedRequest = {
      seq: seq++,
      method,
      target,
      path: target.split("?")[0] ?? target,
      receivedAt: Date.now(),
      handling
    }
    log.push(rec)
    events.emit("request", rec)
    return rec
  }

  const later = (ms: number, f: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t)
      f()
    }, ms)
    timers.add(t)
  }

  const latencyMs = options.latencyMs ?? 0
  /** Runs `f` one link latency from now (at once without latency). */
  const acrossLink = (f: () => void) => (latencyMs > 0 ? later(latencyMs, f) : f())
  /** `from.pipe(to)`, each chunk held one link latency; timers of equal delay fire in order, so order is kept. */
  const pipeAcrossLink = (from: Duplex, to: Duplex) => {
    if (latencyMs === 0) return void from.pipe(to)
    from.on("data", (chunk: Buffer) => later(latencyMs, () => to.destroyed || to.write(chunk)))
    from.on("end", () => later(latencyMs, () => to.end()))
  }

  const forward = (
    req: http.IncomingMessage,
    body: Buffer,
    res: http.ServerResponse,
    onResponse?: (upstream: http.IncomingMessage, upstreamBody: Buffer) => void
  ) => {
    const headers = { ...req.headers, host: `${targetHost}:${targetPort}` }
    delete headers["connection"]
    const up = http.request(
      { host: targetHost, port: targetPort, method: req.method, path: req.url, headers, agent },
      (upRes) => {
        if (onResponse === undefined) {
          // The body stays buffered in upRes until piped, so holding the head holds it all.
          acrossLink(() => {
            res.writeHead(upRes.statusCode ?? 502, upRes.headers)
            upRes.pipe(res)
          })
          return
        }
        readAll(upRes).then(
          (b) => acrossLink(() => onResponse(upRes, b)),
          () => res.destroy()
        )
      }
    )
    up.on("error", () => {
      // The upstream refused or broke: behave like it (close the client's connection).
      res.destroy()
    })
    up.end(body)
  }

  const handle = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, action: FaultAction | undefined) => {
    if (closed) return res.destroy()
    if (action === undefined) return forward(req, body, res)
    switch (action.kind) {
      case "refuse":
        req.socket.destroy()
        return
      case "hang":
        held.add(res)
        res.on("close", () => held.delete(res))
        return
      case "delay":
        held.add(res)
        res.on("close", () => held.delete(res))
        later(action.ms, () => {
          held.delete(res)
          if (!res.destroyed) forward(req, body, res)
        })
        return
      case "respond": {
        const payload = action.body ?? (action.json === undefined ? "" : JSON.stringify(action.json))
        res.writeHead(action.status, {
          "content-type": action.body === undefined ? "application/json" : "text/plain",
          ...action.headers,
          "content-length": String(Buffer.byteLength(payload))
        })
        res.end(payload)
        return
      }
      case "cut":
        forward(req, body, res, (upRes, upBody) => {
          const n = Math.max(0, Math.min(upBody.length - 1, action.bytes ?? Math.floor(upBody.length / 2)))
          const headers = { ...upRes.headers, "content-length": String(upBody.length) }
          delete headers["transfer-encoding"]
          res.writeHead(upRes.statusCode ?? 502, headers)
          res.write(upBody.subarray(0, n), () => {
            res.socket?.destroy()
          })
        })
        return
      case "replaceBody":
        forward(req, body, res, (upRes, upBody) => {
          const payload = typeof action.body === "string" ? action.body : action.body(upBody.toString("utf8"))
          const headers: http.OutgoingHttpHeaders = { ...upRes.headers, "content-length": String(Buffer.byteLength(payload)) }
          delete headers["transfer-encoding"]
          delete headers["content-encoding"]
          if (action.contentType !== undefined) headers["content-type"] = action.contentType
          res.writeHead(action.status ?? upRes.statusCode ?? 502, headers)
          res.end(payload)
        })
        return
    }
  }

  const server = http.createServer((req, res) => {
    const method = (req.method ?? "GET").toUpperCase()
    const target = req.url ?? "/"
    const action = pick(method, target)
    const rec = record(method, target, action?.kind ?? "forward")
    // A cut answer also "finishes" (its socket is destroyed after the write), but the client never got all of it.
    if (action?.kind !== "cut") res.on("finish", () => void (rec.status = res.statusCode))
    if (action?.kind === "refuse") {
      req.socket.destroy()
      return
    }
    readAll(req).then(
      (body) => acrossLink(() => handle(req, res, body, action)),
      () => res.destroy()
    )
  })

  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const method = (req.method ?? "GET").toUpperCase()
    const target = req.url ?? "/"
    const action = pick(method, target)
    record(method, target, action?.kind ?? "upgrade")
    tunnels.add(socket)
    socket.on("close", () => tunnels.delete(socket))
    socket.on("error", () => socket.destroy())
    const tunnel = () => {
      if (closed || socket.destroyed) return socket.destroy()
      const up = net.connect({ host: targetHost, port: targetPort })
      upstreams.add(up)
      up.on("close", () => {
        upstreams.delete(up)
        socket.destroy()
      })
      up.on("error", () => up.destroy())
      socket.on("close", () => up.destroy())
      up.on("connect", () => {
        const lines = [`${req.method} ${target} HTTP/${req.httpVersion}`]
        for (let i = 0; i < req.rawHeaders.length; i += 2) {
          const name = req.rawHeaders[i] ?? ""
          const value = name.toLowerCase() === "host" ? `${targetHost}:${targetPort}` : (req.rawHeaders[i + 1] ?? "")
          lines.push(`${name}: ${value}`)
        }
        up.write(lines.join("\r\n") + "\r\n\r\n")
        if (head.length > 0) up.write(head)
        pipeAcrossLink(up, socket)
        pipeAcrossLink(socket, up)
      })
    }
    if (action === undefined) return acrossLink(tunnel)
    switch (action.kind) {
      case "refuse":
        socket.destroy()
        return
      case "hang":
        return
      case "delay":
        later(action.ms, () => acrossLink(tunnel))
        return
      case "respond": {
        const payload = action.body ?? (action.json === undefined ? "" : JSON.stringify(action.json))
        const headerLines = Object.entries({
          "content-type": action.body === undefined ? "application/json" : "text/plain",
          ...action.headers,
          "content-length": String(Buffer.byteLength(payload)),
          connection: "close"
        }).map(([k, v]) => `${k}: ${v}`)
        socket.end(`HTTP/1.1 ${action.status} ${statusText(action.status)}\r\n${headerLines.join("\r\n")}\r\n\r\n${payload}`)
        return
      }
      case "cut":
      case "replaceBody":
        // No body to cut or replace before the upgrade: treat as a refusal.
        socket.destroy()
        return
    }
  })

  // A client that drops its connection must not crash the proxy.
  server.on("clientError", (_err, socket) => socket.destroy())

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject)
      resolve()
    })
  })
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("fault proxy: no TCP address")
  const port = address.port

  const waitForRequest: FaultProxy["waitForRequest"] = (matcher, opts) => {
    const since = opts?.since ?? 0
    const timeoutMs = opts?.timeoutMs ?? 10_000
    const found = log.find((r) => r.seq >= since && matches(matcher, r.method, r.target))
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const onRequest = (r: RecordedRequest) => {
        if (r.seq >= since && matches(matcher, r.method, r.target)) {
          clearTimeout(t)
          events.off("request", onRequest)
          resolve(r)
        }
      }
      const t = setTimeout(() => {
        events.off("request", onRequest)
        reject(new Error(`fault proxy: no ${matcher.method ?? "*"} ${String(matcher.path ?? "*")} within ${timeoutMs} ms`))
      }, timeoutMs)
      events.on("request", onRequest)
    })
  }

  const dropTunnels = () => {
    const n = tunnels.size
    for (const s of [...tunnels]) s.destroy()
    for (const s of [...upstreams]) s.destroy()
    return n
  }

  let closing: Promise<void> | undefined
  const close = () => {
    if (closing !== undefined) return closing
    closed = true
    for (const t of timers) clearTimeout(t)
    timers.clear()
    for (const r of held) r.destroy()
    held.clear()
    dropTunnels()
    closing = new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }).then(() => agent.destroy())
    return closing
  }

  return {
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    port,
    target: options.target,
    addFault: (rule) => {
      const live: LiveRule = {
        priority: rule.priority ?? 0,
        method: rule.method?.toUpperCase(),
        path: toRegExp(rule.path),
        remaining: rule.times ?? Number.POSITIVE_INFINITY,
        hits: 0,
        action: rule.action
      }
      // Stable: after every rule of the same or a higher priority.
      const at = rules.findIndex((r) => r.priority < live.priority)
      if (at < 0) rules.push(live)
      else rules.splice(at, 0, live)
      return {
        hits: () => live.hits,
        remaining: () => live.remaining,
        remove: () => {
          live.remaining = 0
          const i = rules.indexOf(live)
          if (i >= 0) rules.splice(i, 1)
        }
      }
    },
    clearFaults: () => {
      rules.length = 0
    },
    requests: () => log.slice(),
    count: (matcher) => (matcher === undefined ? log.length : log.filter((r) => matches(matcher, r.method, r.target)).length),
    waitForRequest,
    nextSeq: () => seq,
    openTunnels: () => tunnels.size,
    dropTunnels,
    close
  }
}
