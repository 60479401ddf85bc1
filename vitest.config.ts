import { configDefaults, defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    projects: [
      // Unit projects, one per package. They must not include test/integration/** (see below).
      "packages/*/vitest.config.ts",
      // Real-stack tests: any package's test/integration/**/*.test.ts. The global setup brings up
      // one local MatrixRTC stack (Synapse + livekit-server + auth service) for the whole run;
      // tests read it with `readStack()` from @matrixrtc-effect/devstack. Files run one at a time.
      {
        test: {
          name: "integration",
          include: ["packages/*/test/integration/**/*.test.ts"],
          exclude: [...configDefaults.exclude],
          globalSetup: ["packages/devstack/src/vitest-global-setup.ts"],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 180_000
        }
      },
      // Stops and restarts the whole stack, so it runs after every other project has finished.
      {
        test: {
          name: "stack-lifecycle",
          include: ["packages/devstack/test/lifecycle/**/*.test.ts"],
          exclude: [...configDefaults.exclude],
          sequence: { groupOrder: 1 },
          testTimeout: 300_000,
          hookTimeout: 300_000
        }
      }
    ]
  }
})
