import { configDefaults, defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "devstack",
    include: ["test/**/*.test.ts"],
    // Real-stack tests run in the root config's `integration` / `stack-lifecycle` projects.
    exclude: [...configDefaults.exclude, "test/integration/**", "test/lifecycle/**"]
  }
})
