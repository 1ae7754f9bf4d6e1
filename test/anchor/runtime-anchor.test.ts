/**
 * The runtime's anchoring wiring refuses, at start-up and with one sentence naming the setting, a
 * sending key file others can read, a well-known development key on a chain that is not a local
 * development chain, and a missing key; with a proper key it starts the anchoring service.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { ConfigError } from "../../gateway/src/core/errors.ts";
import { writeKeystore } from "../../gateway/src/attest/keystore.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { ANVIL_DEV_KEYS } from "../../gateway/src/chain/anvil.ts";
import { bytesToHex } from "../../gateway/src/core/hex.ts";

const PASS = "correct horse battery staple";
let dir: string;
let rt: Runtime | undefined;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-rt-anchor-"));
  await writeKeystore(join(dir, "gateway.key"), generateKey("secp256k1"), PASS, { N: 1 << 10 });
});
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
  delete process.env.VIGIL_CHAIN_SENDER_KEY;
  rmSync(dir, { recursive: true, force: true });
});

function deployment(chainId: string): void {
  writeFileSync(
    join(dir, "deployment.json"),
    JSON.stringify({
      format: "vigil-deployment/1",
      chainId,
      deployBlock: 7,
      contracts: {
        VigilRegistry: { address: "0x" + "44".repeat(20) },
        VigilReleases: { address: "0x" + "45".repeat(20) },
      },
    }),
  );
}

function runtime(chain: Record<string, unknown>, chainId = "31337"): Runtime {
  deployment(chainId);
  const config = resolveConfig({
    http: { port: 0 }, // never the default 9479: another gateway may hold it
    dataDir: dir,
    mqtt: { embedded: { enabled: false } },
    models: { enabled: false },
    store: { minFreeBytes: 0, reserveBytes: 0 },
    log: { statsIntervalMs: 0 },
    chain: { rpcUrl: "http://127.0.0.1:1", deployment: "deployment.json", ...chain },
  });
  rt = new Runtime({ config, passphrase: PASS });
  return rt;
}

async function startError(r: Runtime): Promise<ConfigError> {
  const e = await r.start().catch((x: unknown) => x);
  expect(e).toBeInstanceOf(ConfigError);
  return e as ConfigError;
}

describe("runtime: the anchoring sender key", () => {
  it("error: chain.senderKeyFile readable by group or others is refused with the chmod to run", async () => {
    const f = join(dir, "sender.key");
    writeFileSync(f, bytesToHex(generateKey("secp256k1").privateKey));
    chmodSync(f, 0o644);
    const e = await startError(runtime({ senderKeyFile: "sender.key" }));
    expect(e.path).toBe("chain.senderKeyFile");
    expect(e.message).toMatch(/accessible by group or others \(mode 0644\); run: chmod 600/);
  });

  it("error: a well-known development key on chain 10 is refused (file or environment); allowed on a local anvil", async () => {
    const f = join(dir, "sender.key");
    writeFileSync(f, ANVIL_DEV_KEYS[1], { mode: 0o600 });
    const e = await startError(runtime({ senderKeyFile: "sender.key" }, "10"));
    expect(e.message).toMatch(/chain\.senderKeyFile: is a well-known development key .* on chain 10/);
    await rt!.stop();
    process.env.VIGIL_CHAIN_SENDER_KEY = ANVIL_DEV_KEYS[2];
    const e2 = await startError(runtime({}, "10"));
    expect(e2.path).toBe("VIGIL_CHAIN_SENDER_KEY");
    await rt!.stop();
    // The same key on a local development chain (31337, loopback RPC) is fine.
    const r = runtime({}, "31337");
    await r.start();
    expect(r.anchor).toBeDefined();
  });

  it("error: no key at all is a ConfigError naming both ways to give one", async () => {
    const e = await startError(runtime({}));
    expect(e.message).toMatch(/set chain\.senderKeyFile or VIGIL_CHAIN_SENDER_KEY/);
  });

  it("behavior: a 0600 key file of one's own starts the anchoring service with the configured caps (an unreachable RPC is retried, not fatal)", async () => {
    const f = join(dir, "sender.key");
    writeFileSync(f, bytesToHex(generateKey("secp256k1").privateKey), { mode: 0o600 });
    const r = runtime({ senderKeyFile: "sender.key", maxSpendPerDayEth: 0.05 }, "10");
    await r.start();
    expect(r.anchor!.status()).toMatchObject({ spendCapWei: "50000000000000000", paused: null });
  });
});
