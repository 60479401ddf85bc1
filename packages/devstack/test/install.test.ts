// What decides a reinstall (the markers) and how `go install` is run. Pure functions only:
// the installers themselves write into the shared .tools/ and are exercised by the stack.
import { describe, expect, it } from "vitest"
import { goInstallEnv, goProxyWithoutDirect, synapseMarkerText } from "../src/install.ts"
import { SYNAPSE_VERSION, paths } from "../src/paths.ts"

describe("the Synapse marker", () => {
  it("names the Synapse version and changes with the constraints and with the venv's Python", () => {
    const base = synapseMarkerText("attrs==26.1.0\n", "3.11.7")
    expect(base).toContain(`matrix-synapse==${SYNAPSE_VERSION}`)
    expect(synapseMarkerText("attrs==26.1.0\n", "3.11.7")).toBe(base)
    expect(synapseMarkerText("attrs==26.2.0\n", "3.11.7")).not.toBe(base)
    expect(synapseMarkerText("attrs==26.1.0\n", "3.11.9")).not.toBe(base)
  })
})

describe("go install's environment", () => {
  it("drops direct from GOPROXY, keeping the other proxies and their separators", () => {
    expect(goProxyWithoutDirect("https://proxy.golang.org,direct")).toBe("https://proxy.golang.org")
    expect(goProxyWithoutDirect("https://a.example|https://b.example,direct")).toBe("https://a.example|https://b.example")
    expect(goProxyWithoutDirect("direct,https://a.example")).toBe("https://a.example")
    expect(goProxyWithoutDirect("direct")).toBe("https://proxy.golang.org")
    expect(goProxyWithoutDirect("")).toBe("https://proxy.golang.org")
  })

  it("puts the caches under .tools/go, replaces the machine's GOFLAGS and never fetches a toolchain", () => {
    const env = goInstallEnv({ GOFLAGS: "-buildvcs=false", HOME: "/home/x", GOCACHE: "/home/x/.cache/go-build" }, "https://proxy.golang.org,direct")
    expect(env).toMatchObject({
      HOME: "/home/x",
      GOBIN: paths.gobin,
      GOMODCACHE: paths.goModCache,
      GOCACHE: paths.goBuildCache,
      GOPROXY: "https://proxy.golang.org",
      GOTOOLCHAIN: "local"
    })
    expect(paths.goModCache).toMatch(/\/\.tools\/go\/mod$/)
    expect(paths.goBuildCache).toMatch(/\/\.tools\/go\/cache$/)
    // Not empty: an empty GOFLAGS falls back to the go env file's value.
    expect(env["GOFLAGS"]).toBe("-modcacherw")
  })
})
