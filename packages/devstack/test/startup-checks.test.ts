// The start-up checks against a fake homeserver: each missing feature fails with the name of
// the check and a fix; a complete homeserver passes.
import { createServer, type Server } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runChecks } from "../src/checks.ts"
import { StackError } from "../src/util.ts"

interface Fake {
  versions: Record<string, boolean>
  maxDelayMs: number | undefined
  transports: Array<{ type: string; livekit_service_url: string }>
  foci: Array<{ type: string; livekit_service_url: string }>
}

const good = (): Fake => ({
  versions: { "org.matrix.msc4140": true, "org.matrix.msc4143": true },
  maxDelayMs: 86_400_000,
  transports: [{ type: "livekit", livekit_service_url: "http://127.0.0.1:8080" }],
  foci: [{ type: "livekit", livekit_service_url: "http://127.0.0.1:8080" }]
})

let fake = good()
let server: Server
let baseUrl = ""

beforeAll(async () => {
  server = createServer((req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "Content-Type": "application/json" })
      res.end(JSON.stringify(body))
    }
    const authed = req.headers.authorization === "Bearer tok"
    switch (req.url) {
      case "/_matrix/client/versions":
        return json(200, { versions: ["v1.11"], unstable_features: fake.versions })
      case "/_matrix/client/v3/capabilities":
        if (!authed) return json(401, { errcode: "M_MISSING_TOKEN" })
        return json(200, {
          capabilities: fake.maxDelayMs === undefined ? {} : { "org.matrix.msc4140.delayed_events": { max_delay_ms: fake.maxDelayMs } }
        })
      case "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports":
        if (!authed) return json(401, { errcode: "M_MISSING_TOKEN" })
        return json(200, fake.transports.length === 0 ? {} : { rtc_transports: fake.transports })
      case "/.well-known/matrix/client":
        return json(200, { "m.homeserver": { base_url: baseUrl }, "org.matrix.msc4143.rtc_foci": fake.foci })
      default:
        return json(404, { errcode: "M_UNRECOGNIZED" })
    }
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`
})
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

const failure = async (): Promise<StackError> => {
  const e = await runChecks("tok", baseUrl).then(
    () => undefined,
    (err: unknown) => err
  )
  expect(e).toBeInstanceOf(StackError)
  return e as StackError
}

describe("start-up checks", () => {
  it("pass on a homeserver with everything MatrixRTC needs", async () => {
    fake = good()
    await expect(runChecks("tok", baseUrl)).resolves.toBeUndefined()
  })

  it("name the missing msc4140 in /versions and point at max_event_delay_duration", async () => {
    fake = { ...good(), versions: { "org.matrix.msc4143": true } }
    const e = await failure()
    expect(e.check).toBe("check:versions:msc4140")
    expect(e.fix).toContain("max_event_delay_duration")
  })

  it("name the missing msc4143 in /versions", async () => {
    fake = { ...good(), versions: { "org.matrix.msc4140": true } }
    expect((await failure()).check).toBe("check:versions:msc4143")
  })

  it("reject a max_delay_ms below 8000 ms", async () => {
    fake = { ...good(), maxDelayMs: 5000 }
    const e = await failure()
    expect(e.check).toBe("check:capabilities:delayed_events")
    expect(e.message).toContain("5000")
  })

  it("reject transports that do not list our auth service", async () => {
    fake = { ...good(), transports: [{ type: "livekit", livekit_service_url: "https://elsewhere.example/livekit/jwt" }] }
    const e = await failure()
    expect(e.check).toBe("check:rtc_transports")
    expect(e.fix).toContain("matrix_rtc.transports")
  })

  it("reject a well-known without rtc_foci", async () => {
    fake = { ...good(), foci: [] }
    expect((await failure()).check).toBe("check:well_known:rtc_foci")
  })
})
