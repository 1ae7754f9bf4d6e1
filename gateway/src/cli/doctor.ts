/**
 * `vigil doctor`: checks what the gateway needs, the way the service will meet it, and prints one
 * line per check. Exit 0 when every check passes, 1 with a FAIL line (problem and fix) per failed
 * check. Run it as the service user so file and device permissions are the service's, with the
 * root-only passphrase on standard input (`sudo cat /etc/vigil/keystore.pass | sudo -u vigil env
 * VIGIL_KEYSTORE_PASSPHRASE_FILE=- vigil doctor -c /etc/vigil/config.json`).
 */
import { accessSync, constants, existsSync, statSync } from "node:fs";
import { access, statfs } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { computeAddress } from "ethers";
import { probeProvider } from "../chain/ethers-client.ts";
import mqtt from "mqtt";
import { loadKeystore, passphraseFromEnv } from "../attest/keystore.ts";
import type { GatewaySigner } from "../attest/signer.ts";
import type { LoadedDeployment } from "../chain/deploy.ts";
import { translateEthersError } from "../chain/errors.ts";
import { loadSenderKey } from "../chain/sender-key.ts";
import { loadConfigFile, resolveConfig, rpcUrlsOf, type GatewayConfig } from "../config/config.ts";
import { redactUrl, VigilError } from "../core/errors.ts";
import { fromRoot, resolvePath } from "../core/paths.ts";
import { ModelRegistry, otherFileProblems } from "../infer/registry.ts";
import { gatewayIdOf } from "../config/gateway-id.ts";
import { readDeployment } from "../runtime.ts";
import { parse } from "./args.ts";
import { chainProblem, readChainFacts, type ChainFacts } from "./chain-check.ts";
import { DOCTOR_HELP } from "./help/doctor.ts";

export { DOCTOR_HELP } from "./help/doctor.ts";

export type CheckStatus = "ok" | "fail" | "skip";
export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
}

/** Largest tolerated lag of the system clock behind the chain's latest block, seconds. */
export const MAX_CLOCK_BEHIND_S = 30;

const ok = (name: string, detail: string): CheckResult => ({ name, status: "ok", detail });
const fail = (name: string, detail: string): CheckResult => ({ name, status: "fail", detail });
const skip = (name: string, detail: string): CheckResult => ({ name, status: "skip", detail });
const msg = (e: unknown): string => (e instanceof VigilError ? e.shortMessage : (e as Error).message);

async function checkSerial(cfg: GatewayConfig): Promise<CheckResult[]> {
  if (cfg.serial.length === 0) return [skip("serial", "no serial ports configured")];
  const out: CheckResult[] = [];
  for (const { path } of cfg.serial) {
    if (!existsSync(path)) {
      out.push(
        fail("serial", `${path} does not exist; plug the device in, or use its /dev/serial/by-id/ name`),
      );
      continue;
    }
    if (!statSync(path).isCharacterDevice()) {
      out.push(fail("serial", `${path} is not a character device`));
      continue;
    }
    try {
      await access(path, constants.R_OK | constants.W_OK);
      out.push(ok("serial", `${path} readable and writable`));
    } catch {
      out.push(
        fail(
          "serial",
          `${path} is not readable and writable by this user; add the service user to group dialout`,
        ),
      );
    }
  }
  return out;
}

function mqttAnswers(url: string, timeoutMs: number, cfg?: GatewayConfig): Promise<boolean> {
  return new Promise((res) => {
    const c = mqtt.connect(url, {
      clientId: `vigil-doctor-${process.pid}`,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      ...(cfg?.mqtt.username ? { username: cfg.mqtt.username } : {}),
      ...(cfg?.mqtt.password ? { password: cfg.mqtt.password } : {}),
    });
    const done = (v: boolean) => {
      clearTimeout(t);
      c.end(true);
      res(v);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    c.once("connect", () => done(true));
    c.once("error", () => done(false));
    c.once("close", () => done(false));
  });
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once("error", () => res(false));
    s.listen(port, host, () => s.close(() => res(true)));
  });
}

async function checkBroker(cfg: GatewayConfig): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const { enabled, host, port } = cfg.mqtt.embedded;
  if (enabled && port !== 0) {
    if (await portFree(host, port)) out.push(ok("broker", `${host}:${port} is free for the embedded broker`));
    else if (await mqttAnswers(`mqtt://${host}:${port}`, 3000))
      out.push(ok("broker", `an MQTT broker answers on ${host}:${port} (the gateway is running?)`));
    else
      out.push(
        fail(
          "broker",
          `${host}:${port} is taken by something that is not an MQTT broker; stop it or set mqtt.embedded.port`,
        ),
      );
  } else if (enabled) out.push(skip("broker", "embedded broker on a free port chosen at start"));
  if (cfg.mqtt.url) {
    const url = redactUrl(cfg.mqtt.url);
    out.push(
      (await mqttAnswers(cfg.mqtt.url, cfg.mqtt.connectTimeoutMs, cfg))
        ? ok("broker", `${url} answers CONNECT`)
        : fail(
            "broker",
            `${url} did not answer CONNECT within ${cfg.mqtt.connectTimeoutMs} ms; check mqtt.url and its credentials`,
          ),
    );
  }
  return out.length ? out : [skip("broker", "no broker configured")];
}

/** The HTTP endpoint's port: free, or a Vigil endpoint (the running gateway) answers there. */
async function checkHttp(cfg: GatewayConfig): Promise<CheckResult> {
  const { enabled, host, port } = cfg.http;
  if (!enabled) return skip("http", "http.enabled is false");
  if (port === 0) return skip("http", "endpoint on a free port chosen at start");
  if (await portFree(host, port)) return ok("http", `${host}:${port} is free for the endpoint`);
  const h = host.includes(":") ? `[${host}]` : host;
  // A Vigil endpoint's /healthz (no token needed) answers exactly this.
  const answers = await fetch(`http://${h}:${port}/healthz`, { signal: AbortSignal.timeout(3000) })
    .then((r) => r.text())
    .then(
      (t) => t.trim() === '{"status":"alive"}',
      () => false,
    );
  return answers
    ? ok("http", `a gateway's endpoint answers on ${host}:${port} (the gateway is running?)`)
    : fail(
        "http",
        `${host}:${port} is taken by another program; stop it or set http.port (0: any free port)`,
      );
}

/**
 * The data folder: writable by this user, and enough free space. `access` defaults to
 * fs.accessSync (tests give one that refuses, since root passes every permission check).
 */
export async function checkDisk(
  cfg: GatewayConfig,
  access: (path: string, mode: number) => void = accessSync,
): Promise<CheckResult> {
  let dir = cfg.dataDir;
  while (!existsSync(dir) && dir !== join(dir, "..")) dir = join(dir, "..");
  const s = await statfs(dir);
  const free = s.bavail * s.bsize;
  const need = cfg.store.minFreeBytes + cfg.store.reserveBytes;
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  // The gateway creates (or writes) the data folder and its store: this user must be able to.
  const store = join(cfg.dataDir, "store");
  const target = existsSync(store) ? store : dir;
  try {
    access(target, constants.W_OK | constants.X_OK);
  } catch {
    return fail(
      "disk",
      `${target} is not writable by this user (uid ${process.getuid?.() ?? "?"}); run as the gateway's user (sudo -u vigil vigil doctor on the Pi) or fix its permissions`,
    );
  }
  return free >= need
    ? ok("disk", `${mib(free)} free at ${dir}`)
    : fail(
        "disk",
        `${mib(free)} free at ${dir}, below store.minFreeBytes + reserveBytes (${mib(need)}); free disk space`,
      );
}

async function checkModels(cfg: GatewayConfig): Promise<CheckResult> {
  if (!cfg.models.enabled) return skip("models", "models.enabled is false");
  const dir = cfg.models.dir ? resolvePath(process.cwd(), cfg.models.dir) : fromRoot("models");
  if (!existsSync(dir))
    return cfg.models.dir ? fail("models", `${dir} does not exist`) : skip("models", "no models folder");
  try {
    // As `vigil start` loads them: the file models.precision picks.
    const reg = await ModelRegistry.load(dir, { precision: cfg.models.precision });
    const names = reg.models.map((m) => `${m.manifest.name}@${m.manifest.version}`).join(", ");
    const others = reg.models.flatMap(otherFileProblems);
    await reg.release();
    if (others.length > 0)
      return fail(
        "models",
        `${reg.models.length} loaded, but another precision's file is bad: ${others.join("; ")}; reinstall the models folder (a start with that models.precision would refuse it)`,
      );
    return ok(
      "models",
      `${reg.models.length} verified (sha256) and loaded (models.precision ${cfg.models.precision}), their other precisions' files verified: ${names}`,
    );
  } catch (e) {
    return fail("models", msg(e));
  }
}

/** Runs every check; never throws for a failed check. */
export async function runChecks(
  cfg: GatewayConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [ok("config", `data folder ${cfg.dataDir}`)];
  results.push(
    ...(await checkSerial(cfg)),
    ...(await checkBroker(cfg)),
    await checkHttp(cfg),
    await checkDisk(cfg),
    await checkModels(cfg),
  );
  const at = (p: string) => resolvePath(cfg.dataDir, p);

  const sealing = cfg.attest.enabled && cfg.chain.deployment;
  let signer: GatewaySigner | undefined;
  if (!sealing)
    results.push(
      skip(
        "keystore",
        cfg.attest.enabled ? "sealing is off (no chain.deployment)" : "sealing is off (attest.enabled false)",
      ),
    );
  else {
    try {
      signer = await loadKeystore(at(cfg.attest.keystore), await passphraseFromEnv(env));
      results.push(ok("keystore", `${signer.keyType} ${signer.publicKey}`));
    } catch (e) {
      results.push(fail("keystore", msg(e)));
    }
  }
  let deployment: LoadedDeployment | undefined;
  if (cfg.chain.deployment) {
    try {
      deployment = readDeployment(at(cfg.chain.deployment));
      results.push(
        ok(
          "deployment",
          `chain ${deployment.chainId}, registry ${deployment.contracts.VigilRegistry.address}`,
        ),
      );
    } catch (e) {
      results.push(fail("deployment", msg(e)));
    }
  } else results.push(skip("deployment", "no chain.deployment"));

  const rpc = rpcUrlsOf(cfg.chain)[0];
  if (!rpc || !deployment) {
    for (const n of ["rpc", "registry", "sender", "clock"])
      results.push(skip(n, rpc ? "no deployment" : "no chain.rpcUrl"));
    return results;
  }
  const gatewayId = gatewayIdOf(cfg);
  let facts: ChainFacts;
  try {
    facts = await readChainFacts(rpc, deployment, gatewayId, cfg.chain.rpcTimeoutMs);
  } catch (e) {
    results.push(fail("rpc", `${msg(e)}; check chain.rpcUrl and the network`));
    for (const n of ["registry", "sender", "clock"]) results.push(skip(n, "RPC unreachable"));
    return results;
  }
  if (facts.chainId !== BigInt(deployment.chainId)) {
    results.push(fail("rpc", chainProblem(facts, deployment, gatewayId, signer)!));
    for (const n of ["registry", "sender", "clock"]) results.push(skip(n, "wrong chain"));
    return results;
  }
  results.push(ok("rpc", `${redactUrl(rpc)} is chain ${facts.chainId}`));
  const problem = chainProblem(facts, deployment, gatewayId, signer);
  results.push(
    problem
      ? fail("registry", problem)
      : ok(
          "registry",
          `gateway ${gatewayId} active, key epoch ${facts.gateway.keyEpoch}${signer ? ", local key registered" : ""}`,
        ),
  );
  results.push(await checkSender(cfg, rpc, env));
  const behind = facts.latestBlockTime - Math.floor(Date.now() / 1000);
  results.push(
    behind > MAX_CLOCK_BEHIND_S
      ? fail(
          "clock",
          `the system clock is ${behind} s behind the chain's latest block; wait for NTP (timedatectl) or set the time before devices' timestamps are judged`,
        )
      : ok("clock", `${-behind} s after the chain's latest block (a lower bound on the time)`),
  );
  return results;
}

async function checkSender(cfg: GatewayConfig, rpc: string, env: NodeJS.ProcessEnv): Promise<CheckResult> {
  // The same reading as at start (mode 0600, first line, never echoed).
  const file = cfg.chain.senderKeyFile;
  let key: string | undefined;
  try {
    key = loadSenderKey(
      file ? resolvePath(cfg.dataDir, file) : null,
      "VIGIL_CHAIN_SENDER_KEY",
      env,
      file ? "chain.senderKeyFile" : "VIGIL_CHAIN_SENDER_KEY",
    );
  } catch (e) {
    return fail("sender", msg(e));
  }
  if (!key)
    return fail(
      "sender",
      "anchoring needs a funded account: set chain.senderKeyFile or VIGIL_CHAIN_SENDER_KEY",
    );
  const address = computeAddress(key);
  const p = probeProvider(rpc);
  try {
    const bal = BigInt((await p.send("eth_getBalance", [address, "latest"])) as string);
    return bal > 0n
      ? ok("sender", `${address} has ${bal} wei`)
      : fail("sender", `${address} has no funds for gas; fund it`);
  } catch (e) {
    // ethers' own message carries the request URL (an API key in its path): translated, redacted.
    return fail("sender", msg(translateEthersError(e, rpc, [])));
  } finally {
    p.destroy();
  }
}

export async function doctorCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, {
    config: { type: "string", short: "c" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) {
    process.stdout.write(DOCTOR_HELP);
    return 0;
  }
  let cfg: GatewayConfig;
  try {
    cfg = v.config ? loadConfigFile(v.config) : resolveConfig({});
  } catch (e) {
    const r = [fail("config", msg(e))];
    print(r, !!v.json);
    return 1;
  }
  const results = await runChecks(cfg);
  print(results, !!v.json);
  return results.some((r) => r.status === "fail") ? 1 : 0;
}

function print(results: CheckResult[], json: boolean): void {
  if (json) {
    process.stdout.write(
      JSON.stringify({ ok: !results.some((r) => r.status === "fail"), checks: results }) + "\n",
    );
    return;
  }
  const tag = { ok: "ok  ", fail: "FAIL", skip: "skip" } as const;
  for (const r of results) process.stdout.write(`${tag[r.status]} ${r.name.padEnd(10)} ${r.detail}\n`);
}
