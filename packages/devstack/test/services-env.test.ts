// The stack's children talk loopback only: no machine proxy and no npm nodedir reaches them.
import { describe, expect, it } from "vitest"
import { childEnv, serviceNames, services } from "../src/services.ts"

describe("the environment of the stack's processes", () => {
  it("has no proxy variables and no npm_config_nodedir, and keeps the rest", () => {
    const set = {
      http_proxy: "http://proxy.invalid:3128",
      HTTPS_PROXY: "http://proxy.invalid:3128",
      ALL_PROXY: "socks5://proxy.invalid:1080",
      no_proxy: "example.org",
      NODE_USE_ENV_PROXY: "1",
      npm_config_nodedir: "/usr",
      MATRIXRTC_UNIT_KEEP: "kept"
    }
    const saved = Object.fromEntries(Object.keys(set).map((k) => [k, process.env[k]]))
    Object.assign(process.env, set)
    try {
      for (const env of [childEnv({ EXTRA: "x" }), ...serviceNames.map((n) => services[n].command().env)]) {
        for (const key of Object.keys(set).filter((k) => k !== "MATRIXRTC_UNIT_KEEP")) expect(env[key], key).toBeUndefined()
        expect(env["MATRIXRTC_UNIT_KEEP"]).toBe("kept")
      }
      expect(childEnv({ EXTRA: "x" })["EXTRA"]).toBe("x")
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    }
  })
})
