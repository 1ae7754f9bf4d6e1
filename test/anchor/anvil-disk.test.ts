/**
 * anvil and the disk: past a few hundred blocks anvil writes its historical states under
 * `$HOME/.foundry/anvil/tmp` and leaves them when it exits (76 GB had piled up on a CI machine).
 * startAnvil gives each anvil a HOME of its own in the temporary folder, removed when it exits.
 */
import { existsSync, readdirSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startAnvil } from "../../gateway/src/chain/anvil.ts";

const homes = (): string[] => readdirSync(tmpdir()).filter((f) => f.startsWith("vigil-anvil-"));
const sharedStates = (): string[] => {
  const d = join(homedir(), ".foundry", "anvil", "tmp");
  return existsSync(d) ? readdirSync(d) : [];
};

describe("anvil's historical states on disk", () => {
  for (const how of ["stop", "kill"] as const)
    it(`behavior: 700 blocks write states into the anvil's own HOME, which is gone once it exits (${how === "stop" ? "SIGTERM" : "SIGKILL"}); the user's HOME gets nothing`, async () => {
      const before = sharedStates();
      const a = await startAnvil();
      for (let i = 0; i < 700; i++)
        await fetch(a.url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: i, method: "evm_mine", params: [] }),
        });
      const [home, ...more] = homes();
      expect(more).toEqual([]);
      // The states anvil wrote (the reason for all this) are in its own HOME.
      expect(readdirSync(join(tmpdir(), home!, ".foundry", "anvil", "tmp")).length).toBeGreaterThan(0);
      await a[how]();
      expect(homes()).toEqual([]);
      expect(sharedStates()).toEqual(before);
    });
});
