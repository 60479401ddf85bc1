import { configDefaults, defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "browser",
    include: ["test/**/*.test.ts"],
    // The Chromium end-to-end tests need the real stack: they run in the root config's
    // `integration` project (test/integration/**), with the devstack global setup.
    exclude: [...configDefaults.exclude, "test/integration/**"]
  }
})
