/** `vigil start`: run the gateway. */
import { DEFAULT_CONFIG, loadConfigFile, resolveConfig, type GatewayConfig } from "../config/config.ts";
import { existsSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { loadKeystore, passphraseFromEnv } from "../attest/keystore.ts";
import { ChainError } from "../chain/errors.ts";
import { deviceSet, rpcUrlsOf } from "../config/config.ts";
import { redactUrl, type VigilError } from "../core/errors.ts";
import { gatewayIdOf, readDeployment, Runtime } from "../runtime.ts";
import { createLogger, setLogLevel, type Logger } from "../core/log.ts";
import { chainProblem, readChainFacts, type ChainFacts } from "./chain-check.ts";
import { num, parse } from "./args.ts";
import { StartupError } from "./fatal.ts";

export const START_HELP = `usage: vigil start [options]

Runs the gateway: ingest from serial ports and MQTT, store durably (acknowledging only
synced frames), run the models and publish alerts, seal signed batches, anchor them.

  -c, --config FILE      JSON config (see README "Configuration"); flags override it
  --data-dir DIR         store, keystore and deployment file location (default ${DEFAULT_CONFIG.dataDir})
  --rpc URL              anchor batches on this chain (needs chain.deployment and a sender key)
  --deployment FILE      deployment file from "vigil chain deploy" (EIP-712 domain, registry)
  --serial PATH          add a serial port (repeatable), e.g. /dev/ttyUSB0
  --baud N               baud rate for --serial ports (default 115200)
  --mqtt-port N          embedded broker port (default ${DEFAULT_CONFIG.mqtt.embedded.port}; 0 = any free port)
  --mqtt-host HOST       embedded broker address (default ${DEFAULT_CONFIG.mqtt.embedded.host})
  --no-embedded          do not run the embedded broker
  --mqtt-url URL         also subscribe to an external broker (mqtt://user:pass@host:1883)
  --stats-ms MS          counter log interval (default ${DEFAULT_CONFIG.log.statsIntervalMs})
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (default info)
  -h, --help             this text

Stops cleanly on SIGINT/SIGTERM. SIGHUP (systemctl reload vigil) re-reads the config file and
applies log.level, ingest.allow and ingest.revoked at once; other changed settings are named
in the log as needing a restart. An invalid file is logged and the running config kept.
`;

export function startConfig(argv: string[]): GatewayConfig | undefined {
  const { values: v } = parse(argv, {
    config: { type: "string", short: "c" },
    "data-dir": { type: "string" },
    rpc: { type: "string" },
    deployment: { type: "string" },
    serial: { type: "string", multiple: true },
    baud: { type: "string" },
    "mqtt-port": { type: "string" },
    "mqtt-host": { type: "string" },
    "no-embedded": { type: "boolean" },
    "mqtt-url": { type: "string" },
    "stats-ms": { type: "string" },
    "log-level": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) return undefined;
  const base = v.config ? loadConfigFile(v.config) : resolveConfig({});
  const cfg: GatewayConfig = structuredClone(base);
  if (v["data-dir"]) cfg.dataDir = v["data-dir"];
  if (v.rpc) cfg.chain.rpcUrl = v.rpc;
  if (v.deployment) cfg.chain.deployment = v.deployment;
  const baud = num("baud", v.baud, 115200, 300);
  for (const path of v.serial ?? []) cfg.serial.push({ path, baudRate: baud });
  if (v["mqtt-port"] !== undefined) cfg.mqtt.embedded.port = num("mqtt-port", v["mqtt-port"], 1883, 0, 65535);
  if (v["mqtt-host"]) cfg.mqtt.embedded.host = v["mqtt-host"];
  if (v["no-embedded"]) cfg.mqtt.embedded.enabled = false;
  if (v["mqtt-url"]) cfg.mqtt.url = v["mqtt-url"];
  if (v["stats-ms"] !== undefined) cfg.log.statsIntervalMs = num("stats-ms", v["stats-ms"], 5000, 100);
  // Re-validate so flag values get the same checks as file values.
  return resolveConfig({ ...cfg, log: { ...cfg.log, ...(v["log-level"] ? { level: v["log-level"] } : {}) } });
}

export async function startCommand(argv: string[]): Promise<number> {
  const cfg = startConfig(argv);
  if (!cfg) {
    process.stdout.write(START_HELP);
    return 0;
  }
  if (cfg.serial.length === 0 && !cfg.mqtt.embedded.enabled && !cfg.mqtt.url)
    throw new StartupError(
      "NO_SOURCE",
      "no ingest source is enabled (no serial port, no external broker, embedded broker off); add --serial PATH or --mqtt-url URL, or drop --no-embedded",
    );
  const log = createLogger(cfg.log.level);
  // Signals are handled from here on: a stop requested while starting (systemctl stop during a
  // slow start) lets the start finish and then stops in order, instead of killing the process.
  // Handlers stay installed: a second signal during the shutdown must not kill the process
  // before the group commit is flushed and the store closed.
  let stopRequested: (() => void) | undefined;
  const stopSignal = new Promise<void>((res) => (stopRequested = res));
  let stopping = false;
  const onSignal = (sig: string) => {
    if (stopping) return log.warn({ signal: sig }, "already stopping");
    stopping = true;
    stopRequested!();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const facts = await chainPreflight(cfg, log);
  const rt = new Runtime({ config: cfg, log });
  if (facts) rt.clockTrust.noteLowerBound(facts.latestBlockTime);
  const untrusted = rt.clockTrust.untrustedReason();
  if (untrusted)
    log.warn(
      { component: "ingest", reason: untrusted },
      "clock not known good: device timestamps beyond ingest.maxSkewMs are accepted and counted as clockUnverified until it is",
    );
  await rt.start();
  // Degraded, not fatal: devices keep their frames and resend once space is freed.
  const storeState = rt.store.stats().state;
  if (storeState !== "ok")
    log.warn(
      { component: "store", state: storeState, minFreeBytes: cfg.store.minFreeBytes },
      "the store refuses new frames (NACK STORE_UNAVAILABLE) until disk space is freed",
    );
  const embedded = rt.embedded;
  if (embedded) log.info({ url: embedded.url, port: embedded.port }, "embedded MQTT broker listening");
  log.info(
    {
      gatewayId: rt.gatewayId,
      sealing: !!rt.sealer,
      anchoring: !!rt.anchor,
      models: rt.loop?.models.map((m) => m.manifest.name) ?? [],
    },
    "gateway started",
  );
  process.on("SIGHUP", () => reload(argv, rt, log));
  await stopSignal;
  log.info(rt.statsLine());
  await rt.stop();
  log.info("stopped");
  return 0;
}

/**
 * Before sealing anything: when the chain answers, it must be the deployment's chain and this
 * gateway must be registered, active, with the local key (else the registry rejects every batch
 * and anchoring would retry forever): fatal. When it does not answer: degraded, batches are
 * sealed and wait in the outbox while anchoring retries. The keystore is decrypted here and again
 * by the runtime (one more scrypt at start-up, ~0.1 s) so the runtime stays unaware of this check.
 */
async function chainPreflight(cfg: GatewayConfig, log: Logger): Promise<ChainFacts | undefined> {
  const rpc = rpcUrlsOf(cfg.chain)[0];
  if (!cfg.attest.enabled || !cfg.chain.deployment || !rpc) return undefined;
  const at = (p: string) => (isAbsolute(p) ? p : join(cfg.dataDir, p));
  const deployment = readDeployment(at(cfg.chain.deployment));
  const keyPath = at(cfg.attest.keystore);
  if (!existsSync(keyPath)) return undefined; // the runtime refuses to start with the fix
  const signer = await loadKeystore(keyPath, await passphraseFromEnv());
  const gatewayId = gatewayIdOf(cfg);
  const chainLog = log.child({ component: "chain" });
  let facts;
  try {
    facts = await readChainFacts(rpc, deployment, gatewayId, cfg.chain.rpcTimeoutMs);
  } catch (e) {
    if (!(e instanceof ChainError)) throw e;
    chainLog.warn(
      { rpc: redactUrl(rpc), code: e.code, err: e.shortMessage },
      "chain not reachable at start-up: batches are sealed and wait in the outbox; anchoring retries",
    );
    return undefined;
  }
  const problem = chainProblem(facts, deployment, gatewayId, signer);
  if (problem) throw new StartupError("CHAIN_PREFLIGHT", problem);
  chainLog.info(
    { chainId: facts.chainId.toString(), gatewayId, keyEpoch: facts.gateway.keyEpoch },
    "registered key matches",
  );
  return facts;
}

/** Dotted paths whose values differ between two configs. */
function changedPaths(a: unknown, b: unknown, path = ""): string[] {
  if (typeof a === "object" && a !== null && typeof b === "object" && b !== null && !Array.isArray(a))
    return [...new Set([...Object.keys(a), ...Object.keys(b)])].flatMap((k) =>
      changedPaths(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        path ? `${path}.${k}` : k,
      ),
    );
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path];
}

/**
 * SIGHUP: re-reads the config (file and the same flags) and applies what can change at run time:
 * the log level and the device access lists. The running config object is updated for what was
 * applied, so the next reload compares against what runs.
 */
function reload(argv: string[], rt: Runtime, log: Logger): void {
  const cfgLog = log.child({ component: "config" });
  let next: GatewayConfig;
  try {
    next = startConfig(argv)!;
  } catch (e) {
    cfgLog.error(
      { code: (e as VigilError).code, err: (e as VigilError).shortMessage ?? (e as Error).message },
      "configuration not reloaded: keeping the running one",
    );
    return;
  }
  const cur = rt.config;
  const applied: string[] = [];
  const level = next.log.level !== cur.log.level ? next.log.level : undefined;
  if (level) {
    cur.log.level = level;
    applied.push("log.level");
  }
  const accessChanged = changedPaths(cur.ingest, next.ingest).filter((p) => p === "allow" || p === "revoked");
  if (accessChanged.length) {
    rt.ingest.setAccess(
      next.ingest.allow ? deviceSet(next.ingest.allow) : undefined,
      deviceSet(next.ingest.revoked),
    );
    cur.ingest.allow = next.ingest.allow;
    cur.ingest.revoked = next.ingest.revoked;
    applied.push(...accessChanged.map((p) => `ingest.${p}`));
  }
  // Logged at the old level, so a reload to "error" still says what it did.
  cfgLog.info({ applied, needsRestart: changedPaths(cur, next) }, "configuration reloaded");
  if (level) setLogLevel(log, level);
}
