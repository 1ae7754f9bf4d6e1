/**
 * The running part of `vigil start` (cli/start.ts parses the options and imports this only when
 * the gateway really starts, so `vigil start --help` loads none of it).
 */
import { existsSync } from "node:fs";
import { resolvePath } from "../core/paths.ts";
import { loadKeystore, passphraseFromEnv } from "../attest/keystore.ts";
import { ChainError } from "../chain/errors.ts";
import { deviceSet, rpcUrlsOf, type GatewayConfig } from "../config/config.ts";
import { gatewayIdOf } from "../config/gateway-id.ts";
import { redactUrl, type VigilError } from "../core/errors.ts";
import { ListAdmission } from "../core/admission.ts";
import { createLogger, setLogLevel, type Logger } from "../core/log.ts";
import { readDeployment, Runtime } from "../runtime.ts";
import { chainProblem, readChainFacts, type ChainFacts } from "./chain-check.ts";
import { StartupError } from "./fatal.ts";

/**
 * Runs the gateway until SIGINT/SIGTERM (exit 0) or a fatal condition (exit 1).
 * @param reloadConfig re-reads the configuration for SIGHUP (the file and the same flags).
 */
export async function runGateway(cfg: GatewayConfig, reloadConfig: () => GatewayConfig): Promise<number> {
  const root = createLogger(cfg.log.level, { format: cfg.log.format });
  // The runtime gives each stage its own `component`; this command's lines are the gateway's.
  const log = root.child({ component: "gateway" });
  // Signals are handled from here on: a stop requested while starting (systemctl stop during a
  // slow start) lets the start finish and then stops in order, instead of killing the process.
  // Handlers stay installed: a second signal during the shutdown must not kill the process
  // before the group commit is flushed and the store closed.
  let stopRequested: (() => void) | undefined;
  const stopSignal = new Promise<void>((res) => (stopRequested = res));
  // Cuts the start's wait for an external broker short: the stop follows at once, instead of after
  // up to mqtt.connectTimeoutMs (the Pi unit's TimeoutStopSec would otherwise run out first).
  const hurry = new AbortController();
  let stopping = false;
  let started = false;
  const onSignal = (sig: string) => {
    if (stopping) return log.warn({ signal: sig }, "already stopping");
    stopping = true;
    if (!started) {
      log.info(
        { signal: sig },
        "stop asked during start-up: not waiting for the broker, stopping once started",
      );
      hurry.abort();
    }
    stopRequested!();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const facts = await chainPreflight(cfg, root);
  const rt = new Runtime({ config: cfg, log: root, startSignal: hurry.signal });
  if (facts) rt.clockTrust.noteLowerBound(facts.latestBlockTime);
  const untrusted = rt.clockTrust.untrustedReason();
  if (untrusted)
    log.warn(
      { component: "ingest", reason: untrusted },
      "clock not known good: frames are stored marked clock-unverified, and device timestamps beyond ingest.maxSkewMs accepted, until it is",
    );
  // As at a reload: lists the operator may believe in, but the registry decides.
  if (cfg.ingest.admission === "registry" && (cfg.ingest.allow !== null || cfg.ingest.revoked.length > 0))
    log.warn(
      { component: "ingest", ignored: ["ingest.allow", "ingest.revoked"] },
      'ingest.allow and ingest.revoked are not used with ingest.admission "registry": the registry decides who may send',
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
      ...(embedded ? { mqtt: embedded.url } : {}),
      ...(rt.http ? { page: rt.http.url, metrics: `${rt.http.url}/metrics` } : {}),
    },
    "gateway started",
  );
  started = true;
  process.on("SIGHUP", () => reload(reloadConfig, rt, root));
  // A fatal condition while running (the store found damaged data) stops the gateway like a signal.
  let fatal: VigilError | undefined;
  void rt.fatal.then((e) => {
    fatal = e;
    stopping = true;
    stopRequested!();
  });
  await stopSignal;
  log.info(rt.statsLine());
  await rt.stop();
  if (fatal) {
    // Exit non-zero so systemd restarts the unit; the restart then refuses the damaged store at
    // open with the same advice, instead of acknowledging frames over it.
    const line = `the store is damaged (${fatal.shortMessage}); the gateway stopped: run "vigil store check" on it, then "vigil store salvage"`;
    log.fatal({ code: fatal.code }, line);
    // Also on stderr, like a start-up refusal: log.level "silent" must not hide why it exited 1.
    process.stderr.write(`vigil start: ${line}\n`);
    return 1;
  }
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
async function chainPreflight(cfg: GatewayConfig, root: Logger): Promise<ChainFacts | undefined> {
  const rpc = rpcUrlsOf(cfg.chain)[0];
  if (!cfg.attest.enabled || !cfg.chain.deployment || !rpc) return undefined;
  const at = (p: string) => resolvePath(cfg.dataDir, p);
  const deployment = readDeployment(at(cfg.chain.deployment));
  const keyPath = at(cfg.attest.keystore);
  if (!existsSync(keyPath)) return undefined; // the runtime refuses to start with the fix
  const signer = await loadKeystore(keyPath, await passphraseFromEnv());
  const gatewayId = gatewayIdOf(cfg);
  // From the root: a child of the "gateway" logger would carry the key "component" twice.
  const chainLog = root.child({ component: "chain" });
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
function reload(reloadConfig: () => GatewayConfig, rt: Runtime, log: Logger): void {
  const cfgLog = log.child({ component: "config" });
  let next: GatewayConfig;
  try {
    next = reloadConfig();
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
  if (accessChanged.length && cur.ingest.admission === "open") {
    rt.ingest.setAdmission(
      new ListAdmission(
        next.ingest.allow ? deviceSet(next.ingest.allow) : undefined,
        deviceSet(next.ingest.revoked),
      ),
    );
    cur.ingest.allow = next.ingest.allow;
    cur.ingest.revoked = next.ingest.revoked;
    applied.push(...accessChanged.map((p) => `ingest.${p}`));
  } else if (accessChanged.length)
    cfgLog.warn(
      { changed: accessChanged.map((p) => `ingest.${p}`) },
      'ingest.allow and ingest.revoked are not used with ingest.admission "registry": the registry decides who may send',
    );
  // Logged at the old level, so a reload to "error" still says what it did.
  cfgLog.info({ applied, needsRestart: changedPaths(cur, next) }, "configuration reloaded");
  if (level) setLogLevel(log, level);
}
