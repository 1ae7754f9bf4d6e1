/**
 * `vigil doctor`, `vigil keys rotate` and the start-time key check against a real chain (anvil
 * with the registry deployed and the gateway registered), each through the real CLI.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { JsonRpcProvider } from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { gatewayIdOf } from "../../gateway/src/config/gateway-id.ts";
import { localChain, type LocalChain } from "../helpers/chain.ts";
import { freePort } from "../helpers/procs.ts";

const run = promisify(execFile);
interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

let chain: LocalChain;
let dir: string;
let cfgFile: string;
let cfg: Record<string, unknown>;

/**
 * Sets `mqtt.embedded.port` of config `file` to a port free right now. Picked just before each run,
 * not once for the whole file: another process on the machine could take a port picked minutes
 * earlier, and the broker check (which binds it) would then fail for a reason outside the gateway.
 */
async function freshBrokerPort(file: string): Promise<void> {
  const doc = JSON.parse(readFileSync(file, "utf8")) as { mqtt?: { embedded?: object } };
  doc.mqtt = { ...doc.mqtt, embedded: { ...doc.mqtt?.embedded, port: await freePort() } };
  writeFileSync(file, JSON.stringify(doc));
}

async function vigil(args: string[]): Promise<Out> {
  const c = args.indexOf("-c");
  if (c >= 0) await freshBrokerPort(args[c + 1]!);
  return run(process.execPath, ["bin/vigil.js", ...args], {
    env: {
      ...process.env,
      VIGIL_KEYSTORE_PASSPHRASE: chain.passphrase,
      VIGIL_CHAIN_SENDER_KEY: chain.senderKey,
    },
    timeout: 60_000,
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: Out) => e,
  );
}

function writeConfig(over: Record<string, unknown> = {}): string {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ ...cfg, ...over }));
  return file;
}

const line = (out: string, name: string) =>
  out.split("\n").find((l) => l.slice(5).startsWith(name.padEnd(10))) ?? "";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-doctor-"));
  const partial = { dataDir: dir, attest: { gatewayName: "doctor-gw" } };
  chain = await localChain({ dataDir: dir, gatewayId: gatewayIdOf(resolveConfig(partial)) });
  cfg = {
    ...partial,
    // mqtt.embedded.port: a free one is written into the config just before each run (vigil()).
    models: { enabled: false },
    chain: { rpcUrl: chain.anvil.url, deployment: "deployment.json" },
  };
  cfgFile = writeConfig();
}, 120_000);
afterAll(async () => chain?.stop());

describe("vigil doctor against anvil", () => {
  it("behavior: a healthy gateway passes every check, exit 0", async () => {
    const r = await vigil(["doctor", "-c", cfgFile]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/^FAIL/m);
    for (const name of [
      "config",
      "broker",
      "disk",
      "keystore",
      "deployment",
      "rpc",
      "registry",
      "sender",
      "clock",
    ])
      expect(line(r.stdout, name), name).toMatch(/^ok {3}/);
    expect(line(r.stdout, "registry")).toMatch(/local key registered/);
  }, 120_000);

  it("error: a sender key file readable by others, or with a typo, fails the sender check as start would, never printing the key", async () => {
    const keyFile = join(dir, "sender.key");
    const c = writeConfig({ chain: { ...(cfg.chain as object), senderKeyFile: "sender.key" } });
    writeFileSync(keyFile, chain.senderKey, { mode: 0o644 });
    const open = await vigil(["doctor", "-c", c]);
    expect(open.code).toBe(1);
    expect(line(open.stdout, "sender")).toMatch(
      /^FAIL sender +chain\.senderKeyFile: .*sender\.key is accessible by group or others \(mode 0644\); run: chmod 600 /,
    );
    rmSync(keyFile);
    writeFileSync(keyFile, `${chain.senderKey.slice(0, -1)}z`, { mode: 0o600 });
    const typo = await vigil(["doctor", "-c", c]);
    expect(line(typo.stdout, "sender")).toMatch(
      /^FAIL sender +chain\.senderKeyFile does not hold a 32-byte hex private key$/,
    );
    expect(open.stdout + open.stderr + typo.stdout + typo.stderr).not.toContain(chain.senderKey.slice(4, 24));
  }, 120_000);

  it("behavior: a missing serial port, a tampered model and a clock behind the chain each fail with one line", async () => {
    const models = mkdtempSync(join(tmpdir(), "vigil-doctor-models-"));
    for (const ext of ["manifest.json", "onnx"])
      writeFileSync(join(models, `rotating-v1.${ext}`), readFileSync(`models/rotating/rotating-v1.${ext}`));
    writeFileSync(
      join(models, "rotating-v1.onnx"),
      Buffer.concat([readFileSync(join(models, "rotating-v1.onnx")), Buffer.from("x")]),
    );
    // The chain's latest block 3 days ahead of this machine: the Pi booted with a stale clock.
    const p = new JsonRpcProvider(chain.anvil.url);
    const latest = (await p.getBlock("latest"))!.timestamp;
    await p.send("evm_mine", [latest + 3 * 86_400]);
    try {
      const r = await vigil([
        "doctor",
        "-c",
        writeConfig({ serial: [{ path: "/dev/ttyVIGILNOPE" }], models: { dir: models } }),
        "--json",
      ]);
      expect(r.code).toBe(1);
      const doc = JSON.parse(r.stdout) as {
        ok: boolean;
        checks: Array<{ name: string; status: string; detail: string }>;
      };
      const failed = doc.checks.filter((c) => c.status === "fail");
      expect(failed.map((c) => c.name).sort()).toEqual(["clock", "models", "serial"]);
      expect(failed.find((c) => c.name === "serial")!.detail).toMatch(/ttyVIGILNOPE does not exist/);
      expect(failed.find((c) => c.name === "models")!.detail).toMatch(/does not match the manifest/);
      expect(failed.find((c) => c.name === "clock")!.detail).toMatch(
        /is 2\d{5} s behind the chain's latest block/,
      );
    } finally {
      // Later tests need the clock check to pass again: the chain cannot go back, so this case
      // only asserts the failure; the others do not check the clock line.
      p.destroy();
    }
  }, 120_000);

  it("behavior: RPC on another chain than the deployment fails doctor and refuses start", async () => {
    const dep = JSON.parse(readFileSync(join(dir, "deployment.json"), "utf8")) as { chainId: string };
    writeFileSync(join(dir, "wrong-chain.json"), JSON.stringify({ ...dep, chainId: "999" }));
    const c = writeConfig({ chain: { rpcUrl: chain.anvil.url, deployment: "wrong-chain.json" } });
    const d = await vigil(["doctor", "-c", c]);
    expect(d.code).toBe(1);
    expect(line(d.stdout, "rpc")).toMatch(
      /^FAIL rpc +the RPC endpoint is chain \d+ but the deployment file is for chain 999/,
    );
    const s = await vigil(["start", "-c", c]);
    expect(s.code).toBe(1);
    expect(s.stderr.trim().split("\n").at(-1)).toMatch(
      /^vigil start: the RPC endpoint is chain \d+ but the deployment file is for chain 999/,
    );
  }, 120_000);
});

describe("the registered key: start refuses a key the registry would reject; keys rotate fixes it on chain", () => {
  it("behavior: keys init --force → doctor and start name the mismatch; keys rotate moves the registration", async () => {
    const keystore = join(dir, "gateway.key");
    const registered = readFileSync(keystore);
    // A new local key the registry does not know (what `keys init --force` did in the report).
    const forced = await vigil(["keys", "init", "--force", "-c", cfgFile]);
    expect(forced.code, forced.stderr).toBe(0);
    const d = await vigil(["doctor", "-c", cfgFile]);
    expect(d.code).toBe(1);
    expect(line(d.stdout, "registry")).toMatch(
      /^FAIL registry +the local key .* is not the registered key .*"vigil keys rotate"/,
    );
    const s = await vigil(["start", "-c", cfgFile]);
    expect(s.code).toBe(1);
    const last = s.stderr.trim().split("\n").at(-1)!;
    expect(last).toMatch(
      /^vigil start: the local key .* is not the registered key .*restore the registered keystore .*"vigil keys rotate".*\(VigilRegistry\.rotateGatewayKey\)\.$/,
    );
    // A gateway the registry does not know is told to register first (not "is none").
    const unknown = await vigil([
      "keys",
      "rotate",
      "-c",
      writeConfig({ attest: { gatewayName: "never-registered", keystore: keystore } }),
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(
      /is not registered in the registry; register it first \(vigil chain register-gateway\)/,
    );
    // The forced key cannot sign a rotation; the registered one can.
    const refused = await vigil(["keys", "rotate", "-c", cfgFile]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/cannot sign the rotation/);
    // A refused rotation writes no new key (it used to leave gateway.key.next behind).
    expect(existsSync(`${keystore}.next`)).toBe(false);
    writeFileSync(keystore, registered, { mode: 0o600 });
    const rot = await vigil(["keys", "rotate", "-c", cfgFile]);
    expect(rot.code, rot.stderr).toBe(0);
    const info = JSON.parse(rot.stdout) as {
      publicKey: string;
      previousPublicKey: string;
      keyEpoch: number;
      tx: string;
    };
    expect(info.publicKey).not.toBe(info.previousPublicKey);
    expect(info.tx).toMatch(/^0x[0-9a-f]{64}$/);
    expect(readFileSync(keystore, "utf8")).toContain(info.publicKey.slice(2));
    const after = await vigil(["doctor", "-c", cfgFile]);
    expect(line(after.stdout, "registry")).toMatch(
      new RegExp(
        `^ok +registry +gateway 0x[0-9a-f]{64} active, key epoch ${info.keyEpoch}, local key registered`,
      ),
    );
  }, 240_000);
});
