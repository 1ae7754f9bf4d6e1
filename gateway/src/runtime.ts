/**
 * The whole gateway process, composed from its stages in data-flow order:
 * ingest (sources) → store (durable, group commit) → infer + alerts → attest (seal, sign) →
 * anchor (outbox → L2). Each stage is optional where the configuration leaves it out: no
 * keystore or deployment means frames are stored but not sealed; no RPC URL means batches
 * wait in the outbox; no models means no inference.
 */
import { storeHistory } from "./infer/history.ts";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { keccak256, toUtf8Bytes } from "ethers";
import { AnchorService } from "./anchor/service.ts";
import { connectEthersAnchorChain } from "./anchor/chain.ts";
import { loadKeystore, passphraseFromEnv } from "./attest/keystore.ts";
import { BatchSealer } from "./attest/sealer.ts";
import type { GatewaySigner } from "./attest/signer.ts";
import { readDeploymentFile, type Deployment } from "./chain/deploy.ts";
import { vigilDomain, type VigilDomain } from "./chain/eip712.ts";
import { type Hex } from "./core/hex.ts";
import type { GatewayConfig } from "./config/config.ts";
import { ConfigError, type VigilError } from "./core/errors.ts";
import { Gateway } from "./gateway.ts";
import { EmbeddedPublisher } from "./alerts/embedded-publisher.ts";
import { MqttClientPublisher } from "./alerts/mqtt-publisher.ts";
import { createInference, type AttestLeaf, type Inference } from "./infer/index.ts";
import { LevelFrameStore } from "./store/level.ts";
import type { FrameStore } from "./store/types.ts";
import { systemClock, type Clock } from "./core/clock.ts";
import type { Logger } from "./core/log.ts";
import { fromRoot } from "./core/paths.ts";

export interface RuntimeOptions {
  config: GatewayConfig;
  log?: Logger;
  clock?: Clock;
  /** Passphrase for the keystore (default: VIGIL_KEYSTORE_PASSPHRASE[_FILE]). */
  passphrase?: string;
  /** Private key paying anchor gas (default: the file in chain.senderKeyFile, or VIGIL_CHAIN_SENDER_KEY). */
  senderKey?: string;
  /** Override the store (tests); default LevelFrameStore in `<dataDir>/store`. */
  store?: FrameStore;
}

export interface RuntimeSnapshot {
  ingest: ReturnType<Gateway["ingest"]["counters"]["snapshot"]>;
  store: ReturnType<FrameStore["stats"]>;
  sealer: { enabled: boolean; backlog: number; lastBatchSeq: number };
  anchor: {
    enabled: boolean;
    anchoredThrough: number;
    backlog: number;
    failures: number;
    lastError: string | null;
  };
  infer: Record<string, unknown> | null;
  leaves: { inference: number; alert: number };
}

/** bytes32 gateway id: the configured one, or keccak256("vigil-gateway:" + name). */
export function gatewayIdOf(config: GatewayConfig): Hex {
  return (config.attest.gatewayId?.toLowerCase() ??
    keccak256(toUtf8Bytes(`vigil-gateway:${config.attest.gatewayName}`))) as Hex;
}

function resolvePath(base: string, p: string): string {
  return isAbsolute(p) ? p : join(base, p);
}

/** Reads the deployment file named by chain.deployment (errors name the setting). */
export function readDeployment(path: string): Deployment {
  try {
    return readDeploymentFile(path);
  } catch (e) {
    throw new ConfigError("chain.deployment", (e as VigilError).shortMessage, { cause: e });
  }
}

export function domainOf(d: Deployment): VigilDomain {
  return vigilDomain(BigInt(d.chainId), d.contracts.VigilRegistry.address);
}

export class Runtime {
  readonly gateway: Gateway;
  readonly store: FrameStore;
  readonly gatewayId: Hex;
  sealer: BatchSealer | undefined;
  anchor: AnchorService | undefined;
  inference: Inference | undefined;
  signer: GatewaySigner | undefined;
  readonly leaves = { inference: 0, alert: 0 };
  readonly #o: RuntimeOptions;
  #pruneTimer: NodeJS.Timeout | undefined;
  #statsTimer: NodeJS.Timeout | undefined;

  constructor(o: RuntimeOptions) {
    this.#o = o;
    const c = o.config;
    this.gatewayId = gatewayIdOf(c);
    this.store =
      o.store ??
      new LevelFrameStore({
        dir: join(c.dataDir, "store"),
        groupCommit: { flushIntervalMs: c.store.groupCommitMs, maxBatchRecords: c.store.groupCommitFrames },
        ...(c.store.maxBytes ? { limits: { maxBytes: c.store.maxBytes } } : {}),
        minFreeBytes: c.store.minFreeBytes,
        reserveBytes: c.store.reserveBytes,
        ...(o.log ? { logger: o.log } : {}),
      });
    this.gateway = new Gateway({
      config: c,
      sink: this.store,
      isStored: (d, s) => this.store.has(d, s),
      logStats: false,
      ...(o.clock ? { clock: o.clock } : {}),
      ...(o.log ? { log: o.log } : {}),
    });
  }

  async start(): Promise<void> {
    const c = this.#o.config;
    const log = this.#o.log;
    await this.store.open();
    // Recover per-device sequence state so resent frames are recognised as duplicates.
    for (const [id, seq] of this.store.devices()) this.gateway.ingest.counters.device(id).seq.restore(seq);

    const deployment = c.chain.deployment
      ? readDeployment(resolvePath(c.dataDir, c.chain.deployment))
      : undefined;
    if (c.attest.enabled && deployment) {
      const keyPath = resolvePath(c.dataDir, c.attest.keystore);
      if (!existsSync(keyPath))
        throw new ConfigError(
          "attest.keystore",
          `${keyPath} does not exist; create it with "vigil keys init"`,
        );
      this.signer = await loadKeystore(keyPath, this.#o.passphrase ?? (await passphraseFromEnv()));
      this.sealer = new BatchSealer({
        store: this.store,
        signer: this.signer,
        gatewayId: this.gatewayId,
        domain: domainOf(deployment),
        intervalMs: c.attest.batchIntervalMs,
        maxLeaves: c.attest.batchMaxLeaves,
        onSealed: (b) => {
          log?.info({ seq: b.header.seq, leaves: b.header.leafCount }, "batch sealed");
          this.anchor?.trigger();
        },
        onError: (e) => log?.warn({ err: (e as Error).message }, "sealing failed"),
      });
    } else if (c.attest.enabled) {
      log?.warn(
        "attest: no chain.deployment configured, so there is no EIP-712 domain; frames are stored but not sealed",
      );
    }

    if (this.sealer && deployment && c.chain.rpcUrl) {
      const rpcUrl = c.chain.rpcUrl;
      const sender = this.#o.senderKey ?? (await this.#senderKey());
      this.anchor = new AnchorService({
        store: this.store,
        gatewayId: this.gatewayId,
        connect: () =>
          connectEthersAnchorChain({
            rpcUrl,
            senderPrivateKey: sender,
            registry: deployment.contracts.VigilRegistry.address,
            releases: deployment.contracts.VigilReleases.address,
            confirmations: c.chain.confirmations,
          }),
        confirmations: c.chain.confirmations,
        intervalMs: c.chain.anchorIntervalMs,
        ...(log ? { logger: log } : {}),
        onAnchored: (b, a) =>
          log?.info({ seq: b.header.seq, tx: a.txHash, block: a.blockNumber }, "batch anchored"),
      });
    }

    await this.gateway.start();

    const modelsDir = c.models.dir ? resolvePath(process.cwd(), c.models.dir) : fromRoot("models");
    if (c.models.enabled && existsSync(modelsDir)) {
      const publisher = this.gateway.embedded
        ? new EmbeddedPublisher(this.gateway.embedded)
        : c.mqtt.url
          ? new MqttClientPublisher({
              url: c.mqtt.url,
              clientId: `${c.mqtt.clientId}-alerts`,
              ...(c.mqtt.username ? { username: c.mqtt.username } : {}),
              ...(c.mqtt.password ? { password: c.mqtt.password } : {}),
            })
          : undefined;
      if (publisher) {
        this.inference = await createInference({
          modelsDir,
          ingest: this.gateway.ingest,
          publisher,
          site: c.site,
          gatewayId: c.attest.gatewayName,
          clock: this.#o.clock ?? systemClock,
          threads: c.models.threads,
          // After a restart, device windows and baselines continue from the frame log.
          history: storeHistory(this.store),
          onLeaf: (leaf: AttestLeaf) => {
            this.leaves[leaf.kind]++;
            // Durable, group-committed, sealed with the frames; failures are counted in
            // store.stats().leafFailures and logged at 1, 2, 4, 8, … so an outage cannot flood the log.
            this.store.appendLeaf(leaf).catch((e: unknown) => {
              const n = this.store.stats().leafFailures;
              if ((n & (n - 1)) === 0)
                log?.warn({ err: (e as Error).message, failures: n }, "attestation leaf not stored");
            });
          },
          onError: (e) => log?.warn({ err: (e as Error).message }, "inference error"),
        });
        await this.inference.start();
      }
    }
    this.sealer?.start();
    this.anchor?.start();
    const retentionUs = c.store.retentionDays * 86_400e6;
    this.#pruneTimer = setInterval(() => {
      void this.store.prune({ nowUs: Date.now() * 1000, retentionUs }).catch(() => undefined);
    }, 60_000);
    this.#pruneTimer.unref();
    if (log && c.log.statsIntervalMs > 0) {
      this.#statsTimer = setInterval(() => log.info(this.statsLine()), c.log.statsIntervalMs);
      this.#statsTimer.unref();
    }
  }

  async #senderKey(): Promise<string> {
    const c = this.#o.config.chain;
    if (c.senderKeyFile)
      return (await readFile(resolvePath(this.#o.config.dataDir, c.senderKeyFile), "utf8")).trim();
    const env = process.env.VIGIL_CHAIN_SENDER_KEY;
    if (env) return env;
    throw new ConfigError(
      "chain.senderKeyFile",
      "anchoring needs a funded account: set chain.senderKeyFile or VIGIL_CHAIN_SENDER_KEY",
    );
  }

  snapshot(): RuntimeSnapshot {
    const a = this.anchor?.status();
    return {
      ingest: this.gateway.ingest.counters.snapshot(),
      store: this.store.stats(),
      sealer: {
        enabled: !!this.sealer,
        backlog: this.sealer?.backlog() ?? 0,
        lastBatchSeq: this.store.lastBatchSeq(),
      },
      anchor: {
        enabled: !!this.anchor,
        anchoredThrough: this.store.anchoredThrough(),
        backlog: a?.backlog ?? 0,
        failures: a?.failures ?? 0,
        lastError: a?.lastError?.message ?? null,
      },
      infer: this.inference?.snapshot() ?? null,
      leaves: { ...this.leaves },
    };
  }

  /** One line for logs and the demo: ingest, store, batches, anchors, inference. */
  statsLine(): string {
    const s = this.snapshot();
    const inf = this.inference?.counters;
    return (
      `${this.gateway.ingest.counters.line()} | stored=${s.store.lastIndex} batches=${s.sealer.lastBatchSeq} ` +
      `anchored=${s.anchor.anchoredThrough}${s.anchor.lastError ? ` (chain: ${s.anchor.lastError})` : ""}` +
      (inf
        ? ` | windows=${inf.loop.windowsRun} skipped=${inf.loop.skippedWindows} alerts=${inf.alerts.raised}`
        : "")
    );
  }

  async stop(): Promise<void> {
    clearInterval(this.#pruneTimer);
    clearInterval(this.#statsTimer);
    // Stop accepting input first, then let the later stages drain what they hold.
    await this.inference?.stop();
    await this.gateway.stop();
    await this.sealer?.stop();
    await this.anchor?.stop();
    await this.store.close();
  }
}
