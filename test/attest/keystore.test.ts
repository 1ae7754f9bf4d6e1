import { describe, expect, it, afterEach } from "vitest";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import {
  KeystoreDecryptError,
  KeystoreError,
  KeystorePermissionError,
  loadKeystore,
  passphraseFromEnv,
  writeKeystore,
} from "../../gateway/src/attest/keystore.ts";
import { bytesToHex } from "../../gateway/src/core/hex.ts";

const FAST = { N: 1 << 10 };
const PASS = "correct horse battery staple";
let dir: string;
const tmp = (): string => (dir = mkdtempSync(join(tmpdir(), "vigil-ks-")));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("keystore", () => {
  it.each(["secp256k1", "p256"] as const)(
    "behavior: %s key round-trips through a 0600 file",
    async (type) => {
      const path = join(tmp(), "gateway.key");
      const key = generateKey(type);
      const f = await writeKeystore(path, key, PASS, FAST);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const signer = await loadKeystore(path, PASS);
      expect(signer.keyType).toBe(type);
      expect(signer.publicKey).toBe(f.publicKey);
      expect(bytesToHex(signer.exportKey().privateKey)).toBe(bytesToHex(key.privateKey));
      expect(readFileSync(path, "utf8")).not.toContain(Buffer.from(key.privateKey).toString("hex"));
    },
  );

  it("error: a group/world-readable file is refused with the chmod hint", async () => {
    const path = join(tmp(), "gateway.key");
    await writeKeystore(path, generateKey("secp256k1"), PASS, FAST);
    chmodSync(path, 0o644);
    const err = await loadKeystore(path, PASS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeystorePermissionError);
    expect((err as Error).message).toContain("chmod 600");
  });

  it("error: wrong passphrase or any modified field gives KeystoreDecryptError", async () => {
    const path = join(tmp(), "gateway.key");
    await writeKeystore(path, generateKey("p256"), PASS, FAST);
    await expect(loadKeystore(path, "wrong passphrase")).rejects.toBeInstanceOf(KeystoreDecryptError);
    const orig = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    // Flip the first byte (setting it to a constant was a no-op 1 time in 256: a flaky test).
    const flip = (h: string): string =>
      (parseInt(h.slice(0, 2), 16) ^ 0xff).toString(16).padStart(2, "0") + h.slice(2);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- free-form edits of parsed JSON
    const mutations: ((f: Record<string, any>) => void)[] = [
      (f) => (f.cipher.ciphertext = flip(f.cipher.ciphertext)),
      (f) => (f.cipher.tag = flip(f.cipher.tag)),
      (f) => (f.kdf.salt = flip(f.kdf.salt)),
      (f) => (f.publicKey = "0x" + "11".repeat(64)),
    ];
    for (const m of mutations) {
      const f = structuredClone(orig);
      m(f);
      writeFileSync(path, JSON.stringify(f), { mode: 0o600 });
      await expect(loadKeystore(path, PASS)).rejects.toBeInstanceOf(KeystoreDecryptError);
    }
  });

  it("error: scrypt parameters outside the bounds are refused before any work (KEYSTORE_KDF)", async () => {
    const path = join(tmp(), "gateway.key");
    await writeKeystore(path, generateKey("secp256k1"), PASS, FAST);
    const orig = JSON.parse(readFileSync(path, "utf8")) as { kdf: Record<string, unknown> };
    for (const [kdf, why] of [
      [{ N: 2 ** 30 }, /N must be a power of two from 2\^10 to 2\^20/], // 128 GiB of memory
      [{ N: 2 ** 8 }, /N must be/], // too weak
      [{ N: 3000 }, /N must be/], // not a power of two
      [{ N: 2 ** 20, r: 8 }, /128·N·r/], // 1 GiB
      [{ r: 0 }, /r must be 1\.\.32/],
      [{ p: 1_000_000 }, /p must be 1\.\.16/], // hours of CPU
      [{ N: "1024" }, /N must be/],
      [{ salt: "00" }, /salt/],
    ] as const) {
      const f = structuredClone(orig);
      Object.assign(f.kdf, kdf);
      writeFileSync(path, JSON.stringify(f), { mode: 0o600 });
      const err = await loadKeystore(path, PASS).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KeystoreError);
      expect((err as KeystoreError).code).toBe("KEYSTORE_KDF");
      expect((err as Error).message).toMatch(why);
    }
    await expect(
      writeKeystore(join(dir, "weak.key"), generateKey("p256"), PASS, { N: 16 }),
    ).rejects.toMatchObject({
      code: "KEYSTORE_KDF",
    });
  });

  it("behavior: the key never appears in logs or error messages", async () => {
    const path = join(tmp(), "gateway.key");
    const key = generateKey("secp256k1");
    const secret = Buffer.from(key.privateKey).toString("hex");
    await writeKeystore(path, key, PASS, FAST);
    const signer = await loadKeystore(path, PASS);
    let out = "";
    const sink = new Writable({
      write(chunk, _enc, cb) {
        out += String(chunk);
        cb();
      },
    });
    const log = pino({ level: "trace" }, sink);
    log.info({ signer, key: signer }, "loaded gateway key");
    log.info(`signer ${String(signer)}`);
    const errors: unknown[] = [];
    errors.push(await loadKeystore(path, "wrong passphrase").catch((e: unknown) => e));
    chmodSync(path, 0o640);
    errors.push(await loadKeystore(path, PASS).catch((e: unknown) => e));
    for (const e of errors) {
      log.error({ err: e }, "keystore failed");
      expect(JSON.stringify({ m: (e as Error).message, s: (e as Error).stack })).not.toContain(secret);
      expect((e as Error).message).not.toContain(PASS);
    }
    expect(out).toContain(signer.publicKey);
    expect(out).not.toContain(secret);
    expect(out).not.toContain(PASS);
  });

  it("behavior: passphrase from env or from a 0600 file; clear error when missing", async () => {
    expect(await passphraseFromEnv({ VIGIL_KEYSTORE_PASSPHRASE: PASS })).toBe(PASS);
    const file = join(tmp(), "pass");
    writeFileSync(file, PASS + "\n", { mode: 0o600 });
    expect(await passphraseFromEnv({ VIGIL_KEYSTORE_PASSPHRASE_FILE: file })).toBe(PASS);
    chmodSync(file, 0o644);
    await expect(passphraseFromEnv({ VIGIL_KEYSTORE_PASSPHRASE_FILE: file })).rejects.toBeInstanceOf(
      KeystorePermissionError,
    );
    // named as what it is, not as the keystore
    await expect(passphraseFromEnv({ VIGIL_KEYSTORE_PASSPHRASE_FILE: file })).rejects.toThrow(
      `passphrase file ${file} is accessible by group or others (mode 0644); run: chmod 600 ${file}`,
    );
    await expect(passphraseFromEnv({})).rejects.toBeInstanceOf(KeystoreError);
    // A file that cannot be read is a sentence with the reason, not a stack trace.
    const dir = join(tmp(), "not-a-file");
    mkdirSync(dir, { mode: 0o700 });
    await expect(passphraseFromEnv({ VIGIL_KEYSTORE_PASSPHRASE_FILE: dir })).rejects.toThrow(
      `passphrase file ${dir} cannot be read (EISDIR)`,
    );
  });

  it("behavior: VIGIL_KEYSTORE_PASSPHRASE_FILE=- reads standard input once (how a service user gets a root-only file)", () => {
    const data = tmp();
    const cfg = join(data, "config.json");
    writeFileSync(cfg, JSON.stringify({ dataDir: data }));
    const vigil = (args: string[]) =>
      spawnSync(process.execPath, ["bin/vigil.js", ...args, "--config", cfg], {
        input: `${PASS}\n`,
        env: { ...process.env, VIGIL_KEYSTORE_PASSPHRASE_FILE: "-", VIGIL_KEYSTORE_PASSPHRASE: "" },
        encoding: "utf8",
      });
    const init = vigil(["keys", "init"]);
    expect(init.stderr).toBe("");
    expect(init.status).toBe(0);
    const show = vigil(["keys", "show"]);
    expect(show.status).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({ gatewayId: JSON.parse(init.stdout).gatewayId });
    // The wrong passphrase on standard input does not unlock it.
    const wrong = spawnSync(process.execPath, ["bin/vigil.js", "keys", "show", "--config", cfg], {
      input: "not-the-passphrase\n",
      env: { ...process.env, VIGIL_KEYSTORE_PASSPHRASE_FILE: "-" },
      encoding: "utf8",
    });
    expect(wrong.status).not.toBe(0);
  }, 60_000);
});
