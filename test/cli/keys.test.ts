import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const vigil = (args: string[], pass: string) =>
  run(process.execPath, ["bin/vigil.js", ...args], {
    env: { ...process.env, VIGIL_KEYSTORE_PASSPHRASE: pass },
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

describe("vigil keys", () => {
  it("behavior: init writes a 0600 keystore, show prints public data only; a wrong passphrase is a clear error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-keys-"));
    const cfg = join(dir, "c.json");
    writeFileSync(cfg, JSON.stringify({ dataDir: dir, attest: { gatewayName: "line-3" } }));
    const init = await vigil(["keys", "init", "-c", cfg, "--type", "p256"], "correct horse");
    expect(init.code).toBe(0);
    const info = JSON.parse(init.stdout) as { keyType: string; publicKey: string; gatewayId: string };
    expect(info.keyType).toBe("p256");
    expect(info.gatewayId).toMatch(/^0x[0-9a-f]{64}$/);
    const file = join(dir, "gateway.key");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The private key is in the file only encrypted, and never printed.
    const ks = readFileSync(file, "utf8");
    expect(init.stdout).not.toContain(ks.slice(0, 20));
    expect((await vigil(["keys", "show", "-c", cfg], "correct horse")).stdout).toBe(init.stdout);
    const again = await vigil(["keys", "init", "-c", cfg], "correct horse");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists; use --force/);
    const wrong = await vigil(["keys", "show", "-c", cfg], "wrong passphrase");
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/could not be decrypted/);
  }, 30_000);
});
