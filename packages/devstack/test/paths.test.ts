// .tools/ is cached between CI machines; .stack/ is not. State of one run (the lock with its
// owner's pid) must not travel to another machine, where the pid may belong to a live process.
import { describe, expect, it } from "vitest"
import { paths, stackDir, toolsDir } from "../src/paths.ts"

describe("paths", () => {
  it("keeps the devstack lock in .stack/, not in the cached .tools/", () => {
    expect(paths.lockDir.startsWith(`${stackDir}/`)).toBe(true)
    expect(paths.lockDir.startsWith(`${toolsDir}/`)).toBe(false)
  })
})
