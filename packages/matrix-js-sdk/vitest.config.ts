import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "matrix-js-sdk",
    include: ["test/**/*.test.ts"]
  }
})
