import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "devstack",
    include: ["test/**/*.test.ts"]
  }
})
