import { configDefaults, defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "matrix-js-sdk",
    include: ["test/**/*.test.ts"],
    // Real-stack tests run in the root config's `integration` project.
    exclude: [...configDefaults.exclude, "test/integration/**"]
  }
})
