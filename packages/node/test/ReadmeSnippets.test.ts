// The README's code blocks are copies of files that tsc or vitest check; this keeps the copies exact.
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { assert, describe, it } from "vitest"

const root = join(import.meta.dirname, "..", "..", "..")
const read = (path: string) => readFileSync(join(root, path), "utf8")
const readmeBlocks = [...read("README.md").matchAll(/```ts\n([\s\S]*?)```\n/g)].map((m) => m[1]!)

describe("README code blocks", () => {
  it("the join example is packages/node/test/ReadmeJoin.example.ts without its leading comment", () => {
    const file = read("packages/node/test/ReadmeJoin.example.ts").replace(/^(\/\/.*\n)+/, "")
    assert.include(readmeBlocks, file)
  })

  it("the testing example is the readme region of packages/core/test/ReadmeExample.test.ts", () => {
    const file = read("packages/core/test/ReadmeExample.test.ts")
    const region = file.split("// #region readme\n")[1]?.split("// #endregion")[0]
    assert.isDefined(region)
    assert.include(readmeBlocks, region)
  })
})
