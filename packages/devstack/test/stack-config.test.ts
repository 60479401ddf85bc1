// Unit tests of the dev stack: generated configs, the YAML writer, and /proc port detection.
import { createSocket } from "node:dgram"
import { createServer } from "node:net"
import { describe, expect, it } from "vitest"
import { authServiceEnv, homeserverSettings, livekitSettings, toYaml } from "../src/config.ts"
import { boundUdpPorts, listeningTcpPorts } from "../src/proc.ts"

describe("toYaml", () => {
  it("writes nested maps, lists and quoted scalars", () => {
    expect(
      toYaml({ a: 1, b: "24h", c: [{ x: true, y: ["lo"] }, "s"], d: {}, e: [], "k.dot": null, "needs quote": "no" })
    ).toBe(
      [
        "a: 1",
        'b: "24h"',
        "c:",
        "  - x: true",
        "    y:",
        '      - "lo"',
        '  - "s"',
        "d: {}",
        "e: []",
        "k.dot: null",
        '"needs quote": "no"',
        ""
      ].join("\n")
    )
  })
})

describe("homeserver.yaml", () => {
  const hs = homeserverSettings({ dataDir: "/abs/data", registrationSharedSecret: "s" }) as Record<string, any>

  it("listens on 127.0.0.1:8008 only, with client + federation (OpenID userinfo) and no TLS", () => {
    expect(hs["listeners"]).toEqual([
      {
        port: 8008,
        bind_addresses: ["127.0.0.1"],
        type: "http",
        tls: false,
        x_forwarded: false,
        resources: [{ names: ["client", "federation"], compress: false }]
      }
    ])
  })

  it("enables delayed events, RTC transports to the auth service, and offline-safe settings", () => {
    expect(hs["server_name"]).toBe("localhost")
    expect(hs["max_event_delay_duration"]).toBe("24h")
    expect(hs["experimental_features"]).toEqual({ msc4222_enabled: true, msc4354_enabled: true, msc4143_enabled: true })
    expect(hs["matrix_rtc"]).toEqual({ transports: [{ type: "livekit", livekit_service_url: "http://127.0.0.1:8080" }] })
    expect(hs["extra_well_known_client_content"]["org.matrix.msc4143.rtc_foci"][0].livekit_service_url).toBe("http://127.0.0.1:8080")
    expect(hs["trusted_key_servers"]).toEqual([])
    expect(hs["report_stats"]).toBe(false)
    expect(hs["database"]).toEqual({ name: "sqlite3", args: { database: "/abs/data/homeserver.db" } })
    expect(hs["rc_message"]).toEqual({ per_second: 10000, burst_count: 10000 })
    expect(hs["rc_room_creation"]).toEqual({ per_second: 10000, burst_count: 10000 })
  })
})

describe("livekit.yaml", () => {
  const lk = livekitSettings() as Record<string, any>

  it("binds loopback only and never hands out a non-loopback STUN server", () => {
    expect(lk["bind_addresses"]).toEqual(["127.0.0.1"])
    expect(lk["rtc"]).toMatchObject({
      node_ip: "127.0.0.1",
      enable_loopback_candidate: true,
      use_external_ip: false,
      interfaces: { includes: ["lo"] }
    })
    for (const s of lk["rtc"]["stun_servers"] as Array<string>) expect(s).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(lk["room"]).toEqual({ auto_create: false })
    expect(lk["webhook"]).toEqual({ api_key: "devkey", urls: ["http://127.0.0.1:8080/sfu_webhook"] })
    expect(Object.values(lk["keys"] as Record<string, string>)[0]!.length).toBeGreaterThanOrEqual(32)
  })

  it("gives the auth service the same key/secret and the loopback maps", () => {
    const env = authServiceEnv()
    expect(env["LIVEKIT_KEY"]).toBe("devkey")
    expect(env["LIVEKIT_SECRET"]).toBe((lk["keys"] as Record<string, string>)["devkey"])
    expect(env["LIVEKIT_URL"]).toBe("ws://127.0.0.1:7880")
    expect(env["MATRIXRTC_USERINFO_URLS"]).toBe("localhost=http://127.0.0.1:8008")
  })
})

describe("/proc port detection", () => {
  it("sees a TCP listener appear and disappear", async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const port = (server.address() as { port: number }).port
    expect(listeningTcpPorts().has(port)).toBe(true)
    await new Promise<void>((resolve) => server.close(() => resolve()))
    expect(listeningTcpPorts().has(port)).toBe(false)
  })

  it("sees a bound UDP socket appear and disappear", async () => {
    const sock = createSocket("udp4")
    await new Promise<void>((resolve) => sock.bind(0, "127.0.0.1", resolve))
    const port = sock.address().port
    expect(boundUdpPorts().has(port)).toBe(true)
    await new Promise<void>((resolve) => sock.close(() => resolve()))
    expect(boundUdpPorts().has(port)).toBe(false)
  })
})
