import { defineConfig } from "vitest/config";

// Every run works in one temporary root that it removes (test/setup/temp-root.ts), and each test
// file in its own folder under it (test/setup/temp-file.ts).
const temp = { globalSetup: ["test/setup/temp-root.ts"], setupFiles: ["test/setup/temp-file.ts"] };

// Two projects: `unit` (fast, no external processes beyond what a test starts itself on loopback)
// and `interop` (socat ptys, Mosquitto, anvil restarts, crash harness) run by .ci/run.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          ...temp,
          include: ["test/**/*.test.ts"],
          exclude: ["test/interop/**"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "interop",
          ...temp,
          include: ["test/interop/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
