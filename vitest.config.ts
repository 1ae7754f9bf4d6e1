import { defineConfig } from "vitest/config";

// Two projects: `unit` (fast, no external processes beyond what a test starts itself on loopback)
// and `interop` (socat ptys, Mosquitto, anvil restarts, crash harness) run by .ci/run.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/**/*.test.ts"],
          exclude: ["test/interop/**"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "interop",
          include: ["test/interop/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
