/**
 * The composition root: the only place that constructs and wires the gateway's stages, in
 * data-flow order:
 *
 *   sources (serial, embedded broker, external broker) → ingest → store (durable, group commit)
 *     → inference lanes → alert events → encoder → publisher (MQTT)
 *     → attest (seal, sign) → anchor (outbox → L2)
 *
 * Stages take their dependencies as options and know nothing of each other beyond the
 * interfaces they declare (core/records FrameSink, alerts EventOutput, anchor AnchorChain, …).
 * Each stage is optional where the configuration leaves it out: no keystore or deployment means
 * frames are stored but not sealed; no RPC URL means batches wait in the outbox; no models
 * means no inference; no broker means alerts are attested but not published.
 *
 * Start-up is all or nothing: a step that fails stops what was started before it and rethrows
 * (cli/start.ts turns that into one sentence and a non-zero exit).
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { AnchorService } from "./anchor/service.ts";
import { connectEthersAnchorChain } from "./anchor/chain.ts";
import { EmbeddedPublisher } from "./alerts/embedded-publisher.ts";
import { MqttClientPublisher } from "./alerts/mqtt-publisher.ts";
import { EncodedOutput } from "./alerts/output.ts";
import type { AlertPublisher } from "./alerts/publisher.ts";
import { AlertService, type EventOutput } from "./alerts/service.ts";
import { VigilJsonEncoder } from "./alerts/vigil-json.ts";
import { loadKeystore, passphraseFromEnv } from "./attest/keystore.ts";
import { BatchSealer } from "./attest/sealer.ts";
import type { GatewaySigner } from "./attest/signer.ts";
import { readDeploymentFile, type Deployment } from "./chain/deploy.ts";
import { vigilDomain, type VigilDomain } from "./chain/eip712.ts";
import { gatewayIdOf } from "./config/gateway-id.ts";
import { deviceSet, type GatewayConfig } from "./config/config.ts";
import { systemClock, type Clock } from "./core/clock.ts";
import { ConfigError, type VigilError } from "./core/errors.ts";
import type { Hex } from "./core/hex.ts";
import { silentLogger, type Logger } from "./core/log.ts";
import { fromRoot } from "./core/paths.ts";
import type { LeafRecord } from "./core/records.ts";
import { storeHistory } from "./infer/history.ts";
import { InferenceLoop, type InferenceLoopOptions } from "./infer/loop.ts";
import { ModelRegistry } from "./infer/registry.ts";
import { Ingest } from "./ingest/ingest.ts";
import { EmbeddedBroker } from "./ingest/mqtt/embedded-broker.ts";
import { ExternalMqttSource } from "./ingest/mqtt/external-source.ts";
import { SerialSource, type SerialFirmwareHook } from "./ingest/serial/serial-source.ts";
import type { IngestSource } from "./ingest/source.ts";
import { LevelFrameStore } from "./store/level.ts";
import type { FrameStore } from "./store/types.ts";
import type { FirmwareUpdateAgent } from "./updates/firmware-agent.ts";
import { startUpdates, updatesTopic, type RunningUpdates } from "./updates/start.ts";

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
  /** Alert events go here instead of the encoder + publisher (tests). */
  alertOutput?: EventOutput;
}

export interface RuntimeSnapshot {
  ingest: ReturnType<Ingest["counters"]["snapshot"]>;
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
  alerts: AlertService["counters"];
  leaves: { inference: number; alert: number; "sensor-fault": number };
  sources: Record<string, Record<string, number>>;
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

/** Alert events with nowhere to go (no broker): counted by the alert service, not published. */
const NO_OUTPUT: EventOutput = {
  open: () => Promise.resolve(),
  emit: () => Promise.resolve(),
  close: () => Promise.resolve(),
};

/** Stop steps, in stop order. */
const STOP_ORDER = [
  "updates",
  "inference",
  "alerts",
  "sources",
  "sealer",
  "anchor",
  "models",
  "store",
] as const;
type StopStep = (typeof STOP_ORDER)[number];

/** Options of {@link wireInference}: the loop's own options minus what the wiring supplies. */
export type WireInferenceOptions = Omit<
  InferenceLoopOptions,
  "profileOf" | "channelsOf" | "onResult" | "onSensorFault" | "onDeviceStatus"
> & {
  ingest: Ingest;
  alerts: AlertService;
};

/**
 * The inference loop wired the way the gateway runs it (benchmarks and probes use this too):
 * ingest's stored frames in — and the valid frames the store refused (disk full), so alerts keep
 * flowing while it is down — device profiles and channel names from HELLO, live results, sensor
 * faults and device data-quality status to the alert service.
 */
export function wireInference(o: WireInferenceOptions): InferenceLoop {
  const { ingest, alerts, ...rest } = o;
  const loop = new InferenceLoop({
    ...rest,
    profileOf: (id) => ingest.counters.devices.get(id)?.profile,
    channelsOf: (id) => ingest.counters.devices.get(id)?.channelNames,
    onResult: alerts.onResult,
    onSensorFault: alerts.onSensorFault,
    onDeviceStatus: alerts.onDeviceStatus,
  });
  ingest.onStored(loop.onFrame);
  ingest.onUnstored(loop.onFrame);
  return loop;
}

export class Runtime {
  readonly config: GatewayConfig;
  readonly gatewayId: Hex;
  readonly log: Logger;
  readonly clock: Clock;
  readonly store: FrameStore;
  /**
   * Settles with the error when the gateway cannot go on (the store found lost or damaged data
   * while running): `vigil start` then stops and exits non-zero, so nothing is acknowledged over it.
   */
  readonly fatal: Promise<VigilError>;
  #setFatal!: (e: VigilError) => void;
  readonly ingest: Ingest;
  readonly sources: IngestSource[] = [];
  readonly embedded: EmbeddedBroker | undefined;
  /** Where alerts, health and status are published (undefined when no broker is configured). */
  readonly publisher: AlertPublisher | undefined;
  readonly alerts: AlertService;
  loop: InferenceLoop | undefined;
  sealer: BatchSealer | undefined;
  anchor: AnchorService | undefined;
  signer: GatewaySigner | undefined;
  /** Update agents (config `updates`), once started. */
  updates: RunningUpdates | undefined;
  /** Serial sources route firmware replies here; the firmware agent is plugged in at start. */
  readonly #firmwareHook: { agent: FirmwareUpdateAgent | undefined } & SerialFirmwareHook = {
    agent: undefined,
    onFrame(frame, link) {
      return this.agent?.onFrame(frame, link) ?? false;
    },
  };
  readonly leaves = { inference: 0, alert: 0, "sensor-fault": 0 };
  readonly #o: RuntimeOptions;
  /** What start() got running, by stop step (see #unwind for the order). */
  readonly #running: Partial<Record<StopStep, () => Promise<void>>> = {};
  #pruneTimer: NodeJS.Timeout | undefined;
  #statsTimer: NodeJS.Timeout | undefined;
  #started = false;

  constructor(o: RuntimeOptions) {
    this.fatal = new Promise((res) => (this.#setFatal = res));
    this.#o = o;
    const c = o.config;
    this.config = c;
    this.log = o.log ?? silentLogger;
    this.clock = o.clock ?? systemClock;
    this.gatewayId = gatewayIdOf(c);
    this.store =
      o.store ??
      new LevelFrameStore({
        dir: join(c.dataDir, "store"),
        groupCommit: { flushIntervalMs: c.store.groupCommitMs, maxBatchRecords: c.store.groupCommitFrames },
        ...(c.store.maxBytes ? { limits: { maxBytes: c.store.maxBytes } } : {}),
        minFreeBytes: c.store.minFreeBytes,
        reserveBytes: c.store.reserveBytes,
        logger: this.log.child({ component: "store" }),
      });

    // Ingest and its sources.
    this.ingest = new Ingest({
      sink: this.store,
      clock: this.clock,
      ...(c.ingest.allow ? { allow: deviceSet(c.ingest.allow) } : {}),
      revoked: deviceSet(c.ingest.revoked),
      maxSkewUs: c.ingest.maxSkewMs * 1000,
      maxPending: c.ingest.maxPending,
      busyRetryMs: c.ingest.busyRetryMs,
      isStored: (d, s) => this.store.has(d, s),
    });
    const srcLog = this.log.child({ component: "ingest" });
    const onError = (e: VigilError): void => srcLog.warn({ code: e.code }, e.shortMessage);
    for (const s of c.serial)
      this.sources.push(
        new SerialSource(this.ingest, {
          path: s.path,
          baudRate: s.baudRate,
          onError,
          clock: this.clock,
          firmware: this.#firmwareHook,
        }),
      );
    if (c.mqtt.embedded.enabled) {
      this.embedded = new EmbeddedBroker(this.ingest, {
        host: c.mqtt.embedded.host,
        port: c.mqtt.embedded.port,
        onError,
      });
      this.sources.push(this.embedded);
    }
    if (c.mqtt.url)
      this.sources.push(
        new ExternalMqttSource(this.ingest, {
          url: c.mqtt.url,
          clientId: c.mqtt.clientId,
          ...(c.mqtt.username ? { username: c.mqtt.username } : {}),
          ...(c.mqtt.password ? { password: c.mqtt.password } : {}),
          onError,
        }),
      );

    // Alerts: events → Vigil JSON → the embedded broker, else the external one.
    this.publisher = this.embedded
      ? new EmbeddedPublisher(this.embedded)
      : c.mqtt.url
        ? new MqttClientPublisher({
            url: c.mqtt.url,
            clientId: `${c.mqtt.clientId}-alerts`,
            ...(c.mqtt.username ? { username: c.mqtt.username } : {}),
            ...(c.mqtt.password ? { password: c.mqtt.password } : {}),
          })
        : undefined;
    const alertLog = this.log.child({ component: "alerts" });
    this.alerts = new AlertService({
      output:
        o.alertOutput ??
        (this.publisher
          ? new EncodedOutput(new VigilJsonEncoder(c.site, c.attest.gatewayName), this.publisher)
          : NO_OUTPUT),
      models: () => this.loop?.models ?? [],
      clock: this.clock,
      onLeaf: this.#onLeaf,
      onError: (e) => alertLog.warn({ err: (e as Error).message }, "alert publication failed"),
    });
  }

  /** Every INFERENCE and ALERT leaf: durable, group-committed, sealed with the frames. */
  readonly #onLeaf = (leaf: LeafRecord): void => {
    this.leaves[leaf.kind]++;
    // Failures are counted in store.stats().leafFailures and logged at 1, 2, 4, 8, … so an
    // outage cannot flood the log.
    this.store.appendLeaf(leaf).catch((e: unknown) => {
      const n = this.store.stats().leafFailures;
      if ((n & (n - 1)) === 0)
        this.log.warn(
          { component: "store", err: (e as Error).message, failures: n },
          "attestation leaf not stored",
        );
    });
  };

  async start(): Promise<void> {
    if (this.#started) throw new RangeError("Runtime.start() called twice");
    this.#started = true;
    try {
      await this.#start();
    } catch (e) {
      await this.#unwind();
      throw e;
    }
  }

  async #start(): Promise<void> {
    const c = this.config;
    const log = this.log;
    await this.store.open();
    this.#running.store = () => this.store.close();
    this.store.onCorrupt((e) => this.#setFatal(e));
    // Recover per-device sequence state so resent frames are recognised as duplicates.
    for (const [id, st] of this.store.devices())
      this.ingest.counters
        .device(id)
        .seq.restore(st.lastSeq, st.bootId === undefined ? undefined : { id: st.bootId, base: st.base });

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
      const sealLog = log.child({ component: "attest" });
      this.sealer = new BatchSealer({
        store: this.store,
        signer: this.signer,
        gatewayId: this.gatewayId,
        domain: domainOf(deployment),
        intervalMs: c.attest.batchIntervalMs,
        maxLeaves: c.attest.batchMaxLeaves,
        onSealed: (b) => {
          sealLog.info({ seq: b.header.seq, leaves: b.header.leafCount }, "batch sealed");
          this.anchor?.trigger();
        },
        onError: (e) => sealLog.warn({ err: (e as Error).message }, "sealing failed"),
      });
    } else if (c.attest.enabled)
      log.warn(
        { component: "attest" },
        "no chain.deployment configured, so there is no EIP-712 domain; frames are stored but not sealed",
      );

    if (this.sealer && deployment && c.chain.rpcUrl) {
      const rpcUrl = c.chain.rpcUrl;
      const sender = this.#o.senderKey ?? (await this.#senderKey());
      const anchorLog = log.child({ component: "anchor" });
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
        logger: anchorLog,
        onAnchored: (b, a) =>
          anchorLog.info({ seq: b.header.seq, tx: a.txHash, block: a.blockNumber }, "batch anchored"),
      });
    }

    // Models: every manifest verified (sha256) before the first frame is accepted.
    const modelsDir = c.models.dir ? resolvePath(process.cwd(), c.models.dir) : fromRoot("models");
    if (c.models.enabled && existsSync(modelsDir)) {
      const registry = await ModelRegistry.load(modelsDir, {
        threads: c.models.threads,
        precision: c.models.precision,
      });
      this.#running.models = () => registry.release();
      const inferLog = log.child({ component: "infer" });
      const loop = wireInference({
        registry,
        ingest: this.ingest,
        alerts: this.alerts,
        clock: this.clock,
        runner: c.models.runner,
        onLeaf: this.#onLeaf,
        // After a restart, device windows and baselines continue from the frame log.
        history: storeHistory(this.store),
        onError: (e) => inferLog.warn({ err: (e as Error).message }, "inference error"),
      });
      await loop.ready();
      this.loop = loop;
      this.#running.models = async () => {
        await loop.close();
        await registry.release();
      };
    }

    const started: IngestSource[] = [];
    this.#running.sources = async () => {
      for (const s of started.reverse()) await s.stop();
    };
    for (const s of this.sources) {
      await s.start();
      started.push(s);
      log.info({ component: "ingest", source: s.name }, "source started");
    }
    await this.alerts.start();
    this.#running.alerts = () => this.alerts.stop();
    if (this.loop) {
      const loop = this.loop;
      loop.start();
      this.#running.inference = () => loop.stop();
    }
    if (this.sealer) {
      const sealer = this.sealer;
      sealer.start();
      this.#running.sealer = () => sealer.stop();
    }
    if (this.anchor) {
      const anchor = this.anchor;
      anchor.start();
      this.#running.anchor = () => anchor.stop();
    }

    // Updates (issue 11): releases followed on chain, see gateway/src/updates/README.md.
    if (c.updates.enabled) {
      if (!deployment || !c.chain.rpcUrl || !this.signer)
        throw new ConfigError(
          "updates.enabled",
          "updates need chain.rpcUrl, chain.deployment and the gateway key (attest.enabled); set them or disable updates",
        );
      const signer = this.signer;
      const updates = await startUpdates({
        settings: c.updates,
        dataDir: c.dataDir,
        rpcUrl: c.chain.rpcUrl,
        registry: deployment.contracts.VigilRegistry.address,
        releases: deployment.contracts.VigilReleases.address,
        senderKey: this.#o.senderKey ?? (await this.#senderKey()),
        gatewayId: this.gatewayId,
        sign: (d) => signer.sign(d),
        loop: this.loop,
        state: this.store,
        log: log.child({ component: "updates" }),
        onModelInstalled: () => void this.alerts.modelsChanged(),
        publishStatus: (p) =>
          void this.publisher
            ?.publish({
              topic: updatesTopic(c.site, c.attest.gatewayName),
              payload: JSON.stringify(p, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)),
              qos: 1,
              retain: true,
            })
            .catch((e: unknown) => log.warn({ err: (e as Error).message }, "update status not published")),
      });
      this.updates = updates;
      this.#firmwareHook.agent = updates.firmware;
      this.#running.updates = () => updates.stop();
    }

    const retentionUs = c.store.retentionDays * 86_400e6;
    const storeLog = log.child({ component: "store" });
    this.#pruneTimer = setInterval(() => {
      this.store.prune({ retentionUs }).catch((e: unknown) => {
        storeLog.warn(
          { code: (e as VigilError).code, err: (e as Error).message },
          "retention pruning failed",
        );
      });
    }, 60_000);
    this.#pruneTimer.unref();
    if (c.log.statsIntervalMs > 0) {
      this.#statsTimer = setInterval(() => log.info(this.statsFields(), "stats"), c.log.statsIntervalMs);
      this.#statsTimer.unref();
    }
  }

  async #senderKey(): Promise<string> {
    const c = this.config.chain;
    if (c.senderKeyFile)
      return (await readFile(resolvePath(this.config.dataDir, c.senderKeyFile), "utf8")).trim();
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
      ingest: this.ingest.counters.snapshot(),
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
      infer: this.loop?.snapshot() ?? null,
      alerts: { ...this.alerts.counters },
      leaves: { ...this.leaves },
      sources: Object.fromEntries(this.sources.map((s) => [s.name, s.stats()])),
    };
  }

  /** The periodic stats log line's structured fields (counters as fields, not in the message). */
  statsFields(): Record<string, unknown> {
    const s = this.snapshot();
    const inf = this.loop?.counters;
    return {
      ingest: {
        devices: s.ingest.devices.length,
        accepted: s.ingest.accepted,
        duplicates: s.ingest.duplicates,
        outOfOrder: s.ingest.outOfOrder,
        gaps: s.ingest.gaps,
        rejected: s.ingest.rejected,
      },
      store: { lastIndex: s.store.lastIndex, pending: s.store.pending, state: s.store.state },
      batches: {
        sealed: s.sealer.lastBatchSeq,
        anchored: s.anchor.anchoredThrough,
        anchorError: s.anchor.lastError,
      },
      ...(inf ? { infer: { windowsRun: inf.windowsRun, windowsSkipped: inf.skippedWindows } } : {}),
      alerts: { raised: s.alerts.raised, cleared: s.alerts.cleared, publishErrors: s.alerts.publishErrors },
    };
  }

  /** One human line for the demo: ingest, store, batches, anchors, inference. */
  statsLine(): string {
    const s = this.snapshot();
    const inf = this.loop?.counters;
    return (
      `${this.ingest.counters.line()} | stored=${s.store.lastIndex} batches=${s.sealer.lastBatchSeq} ` +
      `anchored=${s.anchor.anchoredThrough}${s.anchor.lastError ? ` (chain: ${s.anchor.lastError})` : ""}` +
      (inf
        ? ` | windows=${inf.windowsRun} skipped=${inf.skippedWindows} alerts raised=${s.alerts.raised} cleared=${s.alerts.cleared}`
        : "")
    );
  }

  /**
   * Stops in the order that loses nothing: the loop (its last results go out), the alert service
   * (held health and the offline status reach subscribers), the sources (brokers close their
   * clients gracefully), the sealer and anchor, and last the store (group commit flushed).
   */
  async stop(): Promise<void> {
    clearInterval(this.#pruneTimer);
    clearInterval(this.#statsTimer);
    await this.#unwind();
  }

  async #unwind(): Promise<void> {
    for (const step of STOP_ORDER) {
      const fn = this.#running[step];
      delete this.#running[step];
      if (!fn) continue;
      this.log.debug({ step }, "stopping");
      try {
        await fn();
      } catch (e) {
        // Keep stopping the rest: the store must still be closed.
        this.log.warn(
          { step, code: (e as VigilError).code, err: (e as Error).message },
          "error while stopping",
        );
      }
    }
  }
}
