// Secrets must not end up in the service logs: after real token traffic, no access token,
// password, OpenID token, JWT or shared secret appears in .stack/logs/*.
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { readStack } from "../../src/index.ts"
import { requestOpenIdToken, sfuGet, userAt } from "./helpers.ts"

const logsDir = join(import.meta.dirname, "..", "..", "..", "..", ".stack", "logs")

describe("service logs", () => {
  it("contain no secrets after OpenID and JWT traffic", async () => {
    const stack = readStack()
    const dave = userAt(stack, 3)
    const openid = await requestOpenIdToken(dave)
    const res = await sfuGet(stack, dave, openid)
    expect(res.status).toBe(200)
    const jwt = res.json["jwt"] as string

    const secrets = [
      openid.access_token,
      jwt,
      jwt.split(".")[2]!,
      stack.registrationSharedSecret,
      stack.livekitApiSecret,
      ...stack.users.flatMap((u) => [u.accessToken, u.password])
    ]
    const files = readdirSync(logsDir).filter((f) => f.endsWith(".log"))
    expect(files.sort()).toEqual(["auth.log", "livekit.log", "synapse.log"])
    // The userinfo lookup happened, so Synapse's log has seen the request (with the token redacted).
    expect(readFileSync(join(logsDir, "synapse.log"), "utf8")).toContain("openid/userinfo")
    for (const f of files) {
      const text = readFileSync(join(logsDir, f), "utf8")
      const leaked = secrets.filter((s) => text.includes(s))
      expect(leaked.length, `${f} contains ${leaked.length} secret(s)`).toBe(0)
    }
  })
})
