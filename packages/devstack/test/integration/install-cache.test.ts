// Caching: once the stack is up, the installers and the template DB are cached, so a second
// run (a second `npm test`) neither reinstalls nor rebuilds anything.
import { execFileSync } from "node:child_process"
import { describe, expect, it } from "vitest"
import { ensureLivekit, ensureSynapse, livekitInstalled, synapseInstalled } from "../../src/install.ts"
import { LIVEKIT_VERSION, SYNAPSE_VERSION, paths } from "../../src/paths.ts"
import { ensureTemplate, templateReady } from "../../src/services.ts"

describe("install cache", () => {
  it("has the pinned versions installed in the ignored .tools folders", () => {
    expect(synapseInstalled()).toBe(true)
    expect(livekitInstalled()).toBe(true)
    expect(execFileSync(paths.livekitBinary, ["--version"], { encoding: "utf8" })).toContain(LIVEKIT_VERSION)
    const v = execFileSync(paths.synapsePython, ["-c", "from importlib.metadata import version; print(version(\"matrix-synapse\"))"], { encoding: "utf8" })
    expect(v.trim()).toBe(SYNAPSE_VERSION)
  })

  it("a second ensure* call installs nothing and builds no template", async () => {
    const messages: Array<string> = []
    const log = (m: string) => messages.push(m)
    expect(await ensureSynapse(log)).toEqual({ installed: false, ms: 0 })
    expect(await ensureLivekit(log)).toEqual({ installed: false, ms: 0 })
    expect(templateReady()).toBe(true)
    await ensureTemplate(log)
    expect(messages).toEqual([])
  })
})
