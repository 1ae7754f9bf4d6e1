import { execFile, spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
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

  it("input: VIGIL_KEYSTORE_PASSPHRASE_FILE=- with nothing on standard input, or a redirected file others may read, says what to fix", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-keys-"));
    const cfg = join(dir, "c.json");
    writeFileSync(cfg, JSON.stringify({ dataDir: dir }));
    expect((await vigil(["keys", "init", "-c", cfg], "correct horse")).code).toBe(0);
    const env: NodeJS.ProcessEnv = { ...process.env, VIGIL_KEYSTORE_PASSPHRASE_FILE: "-" };
    delete env.VIGIL_KEYSTORE_PASSPHRASE;
    const show = (stdin: "pipe" | number, input?: string) =>
      spawnSync(process.execPath, ["bin/vigil.js", "keys", "show", "-c", cfg], {
        env,
        stdio: [stdin, "pipe", "pipe"],
        encoding: "utf8",
        ...(input !== undefined ? { input } : {}),
      });
    // Nothing piped: it was tried as an empty passphrase ("wrong passphrase or the file was modified").
    const empty = show("pipe", "");
    expect([empty.status, empty.stderr]).toEqual([
      1,
      "vigil keys: standard input holds no passphrase (its first line is empty); pipe or redirect the passphrase file to it.\n",
    ]);
    // A 0644 file redirected: the fix named "-" as the file ("run: chmod 600 -").
    const file = join(dir, "pass");
    writeFileSync(file, "correct horse\n", { mode: 0o644 });
    const fd = openSync(file, "r");
    try {
      const open = show(fd);
      expect(open.status).toBe(1);
      expect(open.stderr).toBe(
        "vigil keys: standard input is a file accessible by group or others (mode 0644); chmod 600 the file you redirect, or pipe it (sudo cat FILE | …).\n",
      );
    } finally {
      closeSync(fd);
    }
    expect(show("pipe", "correct horse\n").status).toBe(0);
  }, 30_000);
});
