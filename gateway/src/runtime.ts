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
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryAdmission } from "./access/admission.ts";
import { RegistryBrokerPolicy } from "./access/broker-policy.ts";
import { gatewayStanding, STANDING_SENTENCE, type GatewayStanding } from "./access/gateway-standing.ts";
import { exportMosquitto, exportUsers, type MosquittoExportOptions } from "./access/mosquitto.ts";
import { dynsecState, syncDynsec, type DynsecError } from "./access/mosquitto-dynsec.ts";
import { PasswordFile } from "./access/passwords.ts";
import { AnchorService } from "./anchor/service.ts";
import { connectAnchorChain } from "./anchor/chain.ts";
import { assertKeyAllowed, loadSenderKey } from "./chain/sender-key.ts";
import { EmbeddedPublisher } from "./alerts/embedded-publisher.ts";
import { MqttClientPublisher } from "./alerts/mqtt-publisher.ts";
import { EncodedOutput } from "./alerts/output.ts";
import type { AlertPublisher } from "./alerts/publisher.ts";
import { alertTopics } from "./alerts/topics.ts";
import { AlertService, type EventOutput } from "./alerts/service.ts";
import { VigilJsonEncoder } from "./alerts/vigil-json.ts";
import { loadKeystore, passphraseFromEnv } from "./attest/keystore.ts";
import { BatchSealer } from "./attest/sealer.ts";
import type { GatewaySigner } from "./attest/signer.ts";
import { readDeploymentFile, releasesOf, type LoadedDeployment } from "./chain/deploy.ts";
import { vigilDomain, type VigilDomain } from "./chain/eip712.ts";
import { RpcRegistryEvents } from "./chain/events.ts";
import { RegistryView } from "./chain/registry-view.ts";
import { CONTRACT_IFACES } from "./chain/ethers-client.ts";
import { RpcPool } from "./chain/rpc.ts";
import { RegistryWatch, type WatchStatus } from "./chain/watch.ts";
import {
  checkAccessConfig,
  deviceSet,
  ethToWei,
  gweiToWei,
  registryWatched,
  rpcUrlsOf,
  UPDATES_NEED_CHAIN,
  type GatewayConfig,
} from "./config/config.ts";
import { gatewayIdOf } from "./config/gateway-id.ts";
import { systemClock, type Clock } from "./core/clock.ts";
import { ListAdmission, type DeviceAdmission } from "./core/admission.ts";
import { ConfigError, type VigilError } from "./core/errors.ts";
import type { Hex } from "./core/hex.ts";
import { silentLogger, type Logger } from "./core/log.ts";
import { fromRoot, resolvePath } from "./core/paths.ts";
import { readSecretFile } from "./core/secret-file.ts";
import type { LeafRecord } from "./core/records.ts";
import { HttpServer, OPERATOR_TOKEN_FILE } from "./http/server.ts";
import type { AccessStatusView, GatewayPhase, RegistryStatusView } from "./http/source.ts";
import { storeHistory } from "./infer/history.ts";
import { InferenceLoop, type InferenceLoopOptions } from "./infer/loop.ts";
import { ModelRegistry } from "./infer/registry.ts";
import { ClockTrust } from "./ingest/clock-trust.ts";
import { Ingest } from "./ingest/ingest.ts";
import { EmbeddedBroker } from "./ingest/mqtt/embedded-broker.ts";
import { keepHellos } from "./ingest/hello-memory.ts";
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
  /** Whether the system clock is known good (default: timesyncd state and the chain's block time). */
  clockTrust?: ClockTrust;
  /**
   * Aborted when a stop is asked while start() runs (SIGTERM during a slow start): the start stops
   * waiting for an external broker's first CONNACK and goes on without it, so the stop that follows
   * does not wait out `mqtt.connectTimeoutMs` first.
   */
  startSignal?: AbortSignal;
}

export interface RuntimeSnapshot {
  ingest: ReturnType<Ingest["counters"]["snapshot"]>;
  store: ReturnType<FrameStore["stats"]>;
  sealer: { enabled: boolean; backlog: number; lastBatchSeq: number };
  anchor: {
    enabled: boolean;
    anchoredThrough: number;
    /** Highest batch whose anchor is final (chain.finality). */
    finalThrough: number;
    backlog: number;
    failures: number;
    lastError: string | null;
    /** Why anchoring is paused (fee-cap, spend-cap, gateway-inactive, …); null while it runs. */
    paused: string | null;
    /** Why the anchor transaction in flight is not being mined (fee-cap, no-blocks); null otherwise. */
    stalled: string | null;
    /** Pauses started since start, by reason. */
    pauses: Record<string, number>;
    /** Anchors dropped by a reorg and anchored again. */
    reorgs: number;
  };
  infer: Record<string, unknown> | null;
  alerts: AlertService["counters"];
  leaves: { inference: number; alert: number; "sensor-fault": number };
  sources: Record<string, Record<string, number>>;
}

/** Reads the deployment file named by chain.deployment (errors name the setting). */
export function readDeployment(path: string): LoadedDeployment {
  try {
    return readDeploymentFile(path);
  } catch (e) {
    throw new ConfigError("chain.deployment", (e as VigilError).shortMessage, { cause: e });
  }
}

export function domainOf(d: LoadedDeployment): VigilDomain {
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
  "registry",
  "rpc",
  "models",
  "http",
  "store",
] as const;

/** How often connected readers are re-checked for expired tokens between registry refreshes, ms. */
const SWEEP_INTERVAL_MS = 10_000;
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

/** Whether this configuration seals batches: attestation on and a registry deployment to sign for. */
function seals(c: GatewayConfig): boolean {
  return c.attest.enabled && !!c.chain.deployment;
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
  /** Until the clock is known good, out-of-skew device timestamps are accepted and flagged. */
  readonly clockTrust: ClockTrust;
  readonly sources: IngestSource[] = [];
  readonly embedded: EmbeddedBroker | undefined;
  /** Where alerts, health and status are published (undefined when no broker is configured). */
  readonly publisher: AlertPublisher | undefined;
  readonly alerts: AlertService;
  loop: InferenceLoop | undefined;
  sealer: BatchSealer | undefined;
  anchor: AnchorService | undefined;
  signer: GatewaySigner | undefined;
  /** `/metrics`, `/healthz`, `/readyz` and the live page (undefined when http.enabled is false). */
  readonly http: HttpServer | undefined;
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
  /** Ingest's device admission (also asked by the firmware agent before an offer). */
  readonly #deviceAdmission: DeviceAdmission;
  /**
   * What access control reads: the registry view (replaced by every refresh that changed it) and
   * whether it is stale. Empty and stale until the watch has opened its cache.
   */
  readonly registryState: { view: RegistryView; stale: boolean };
  /** The registry watch (undefined unless registryWatched(config)). */
  watch: RegistryWatch | undefined;
  /** The gateway's own standing in the registry (undefined before the watch synced). */
  standing: GatewayStanding | undefined;
  readonly #brokerPolicy: RegistryBrokerPolicy | undefined;
  /** Made once: a child per registry change or failed standing change would pile up (core/log.ts). */
  readonly #registryLog: Logger;
  #sweepTimer: NodeJS.Timeout | undefined;
  #mosquittoExports: Promise<void> = Promise.resolve();
  /** The RPC pool of the registry watch and the update agents ({@link #chainPool}). */
  #rpc: RpcPool | undefined;
  readonly #o: RuntimeOptions;
  /** What start() got running, by stop step (see #unwind for the order). */
  readonly #running: Partial<Record<StopStep, () => Promise<void>>> = {};
  #pruneTimer: NodeJS.Timeout | undefined;
  /** Retention passes that failed (each logged with its code; the next pass retries). */
  #pruneFailures = 0;
  #statsTimer: NodeJS.Timeout | undefined;
  #started = false;
  #phase: GatewayPhase = "created";

  constructor(o: RuntimeOptions) {
    this.fatal = new Promise((res) => (this.#setFatal = res));
    this.#o = o;
    const c = o.config;
    this.config = c;
    this.log = o.log ?? silentLogger;
    this.#registryLog = this.log.child({ component: "registry" });
    this.clock = o.clock ?? systemClock;
    this.gatewayId = gatewayIdOf(c);
    // Again after command-line overrides (--mqtt-host): nothing beyond loopback without auth.
    checkAccessConfig(c);
    this.registryState = { view: new RegistryView(this.gatewayId), stale: true };
    this.store =
      o.store ??
      new LevelFrameStore({
        dir: join(c.dataDir, "store"),
        groupCommit: { flushIntervalMs: c.store.groupCommitMs, maxBatchRecords: c.store.groupCommitFrames },
        ...(c.store.maxBytes ? { limits: { maxBytes: c.store.maxBytes } } : {}),
        minFreeBytes: c.store.minFreeBytes,
        reserveBytes: c.store.reserveBytes,
        logger: this.log.child({ component: "store" }),
        // The unsealed tail serves the sealer; without one it would only hold memory.
        ...(seals(c) ? {} : { tailEntries: 0 }),
      });

    // Ingest and its sources.
    this.#deviceAdmission = this.#admission();
    this.clockTrust = o.clockTrust ?? new ClockTrust();
    this.ingest = new Ingest({
      clockTrusted: () => this.clockTrust.trusted(),
      sink: this.store,
      clock: this.clock,
      admission: this.#deviceAdmission,
      maxSkewUs: c.ingest.maxSkewMs * 1000,
      maxPending: c.ingest.maxPending,
      busyRetryMs: c.ingest.busyRetryMs,
      storedRaw: async (d, s) => (await this.store.getFrameBySeq(d, s))?.raw,
      logger: this.log.child({ component: "ingest" }),
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
      const e = c.mqtt.embedded;
      if (e.auth === "registry") {
        const d = readDeployment(resolvePath(c.dataDir, c.chain.deployment!));
        this.#brokerPolicy = new RegistryBrokerPolicy({
          state: this.registryState,
          passwords: e.passwordFile
            ? PasswordFile.load(resolvePath(c.dataDir, e.passwordFile))
            : new PasswordFile(),
          domain: domainOf(d),
          gatewayId: this.gatewayId,
          site: c.site,
          gatewayName: c.attest.gatewayName,
          stalePolicy: c.registry.stalePolicy,
          clock: this.clock,
        });
      }
      this.embedded = new EmbeddedBroker(this.ingest, {
        host: e.host,
        port: e.port,
        onError,
        limits: e.limits,
        ...(e.tls ? { tls: this.#tlsFiles(e.tls) } : {}),
        ...(e.websocket ? { websocket: e.websocket } : {}),
        ...(this.#brokerPolicy ? { policy: this.#brokerPolicy } : {}),
      });
      this.sources.push(this.embedded);
    }
    const external = c.mqtt.url
      ? new ExternalMqttSource(this.ingest, {
          url: c.mqtt.url,
          clientId: c.mqtt.clientId,
          ...(c.mqtt.username ? { username: c.mqtt.username } : {}),
          ...(c.mqtt.password ? { password: c.mqtt.password } : {}),
          connectTimeoutMs: c.mqtt.connectTimeoutMs,
          ...(o.startSignal ? { startSignal: o.startSignal } : {}),
          onError,
        })
      : undefined;
    if (external) this.sources.push(external);

    // Alerts: events → Vigil JSON → the embedded broker, else the external one.
    this.publisher = this.embedded
      ? new EmbeddedPublisher(this.embedded)
      : c.mqtt.url
        ? new MqttClientPublisher({
            url: c.mqtt.url,
            clientId: `${c.mqtt.clientId}-alerts`,
            ...(c.mqtt.username ? { username: c.mqtt.username } : {}),
            ...(c.mqtt.password ? { password: c.mqtt.password } : {}),
            connectTimeoutMs: c.mqtt.connectTimeoutMs,
            // The sources start first: a broker that did not answer ingest's wait is not waited
            // for again (README "When the gateway refuses to start").
            connectWaitMs: () => (external?.connected() === false ? 0 : c.mqtt.connectTimeoutMs),
            ...(o.startSignal ? { startSignal: o.startSignal } : {}),
          })
        : undefined;
    // The HTTP endpoint reads the stages when asked; the live page also sees every alert event.
    if (c.http.enabled)
      this.http = new HttpServer({
        source: this,
        host: c.http.host,
        port: c.http.port,
        allowRemote: c.http.allowRemote,
        authToken: c.http.authTokenFile
          ? readSecretFile(resolvePath(c.dataDir, c.http.authTokenFile), "http.authTokenFile")
          : undefined,
        operatorTokenFile: c.http.authTokenFile ? resolvePath(c.dataDir, OPERATOR_TOKEN_FILE) : undefined,
        log: this.log.child({ component: "http" }),
      });
    const alertLog = this.log.child({ component: "alerts" });
    const output =
      o.alertOutput ??
      (this.publisher
        ? new EncodedOutput(new VigilJsonEncoder(c.site, c.attest.gatewayName), this.publisher)
        : NO_OUTPUT);
    this.alerts = new AlertService({
      output: this.http ? this.http.tap(output) : output,
      models: () => this.loop?.models ?? [],
      clock: this.clock,
      onLeaf: this.#onLeaf,
      onError: (e) => alertLog.warn({ err: (e as Error).message }, "alert publication failed"),
      readingsIntervalMs: c.mqtt.readingsIntervalMs ?? undefined,
      ackTimeoutMs: c.mqtt.connectTimeoutMs,
      ...(o.startSignal ? { startSignal: o.startSignal } : {}),
    });
    // Dashboards read decoded values on {device}/reading (names from the device's last HELLO).
    if (c.mqtt.readingsIntervalMs !== null)
      this.ingest.onStored((rec, f) =>
        this.alerts.onReading(rec, f, this.ingest.counters.devices.get(f.deviceId)?.channelNames),
      );
  }

  /** The embedded broker's certificate and key (errors name the setting). */
  #tlsFiles(t: { port: number; certFile: string; keyFile: string }): {
    port: number;
    cert: Buffer;
    key: Buffer;
  } {
    const read = (setting: string, p: string): Buffer => {
      const path = resolvePath(this.config.dataDir, p);
      try {
        return readFileSync(path);
      } catch (e) {
        throw new ConfigError(
          setting,
          `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? "error"})`,
          {
            cause: e,
          },
        );
      }
    };
    return {
      port: t.port,
      cert: read("mqtt.embedded.tls.certFile", t.certFile),
      key: read("mqtt.embedded.tls.keyFile", t.keyFile),
    };
  }

  #admission(): DeviceAdmission {
    const c = this.config;
    if (c.ingest.admission === "registry")
      return new RegistryAdmission(this.registryState, c.registry.stalePolicy);
    return new ListAdmission(
      c.ingest.allow ? deviceSet(c.ingest.allow) : undefined,
      deviceSet(c.ingest.revoked),
    );
  }

  /**
   * Starts the registry watch: opens the store's cache (access works offline from it), one refresh
   * (a failure is logged; the cache serves), then the schedule. Every refresh swaps the view in,
   * disconnects readers the registry no longer allows, and re-evaluates the gateway's standing.
   */
  async #startWatch(deployment: LoadedDeployment): Promise<void> {
    const c = this.config;
    const log = this.log.child({ component: "registry" });
    const rpc = this.#chainPool(deployment);
    const watch = new RegistryWatch({
      source: new RpcRegistryEvents({
        rpc,
        registry: deployment.contracts.VigilRegistry.address,
        releases: releasesOf(deployment),
        maxRange: c.chain.logBlockRange,
      }),
      cache: this.store,
      gatewayId: this.gatewayId,
      chainId: deployment.chainId,
      registry: deployment.contracts.VigilRegistry.address,
      deployBlock: deployment.deployBlock,
      reorgDepth: c.registry.reorgDepth,
      schedule: c.registry.schedule,
      maxStaleMs: c.registry.maxStaleMs,
      clock: this.clock,
      log,
      onRefresh: (view, changed) => {
        this.registryState.view = view;
        this.#afterRegistryChange();
        if (changed) this.#exportMosquitto();
        this.#releasesSeen(view);
      },
      onStatus: (s: WatchStatus) => {
        this.registryState.stale = s.state !== "fresh";
        void this.#publishAccessStatus();
      },
    });
    this.watch = watch;
    this.#running.registry = async () => {
      clearInterval(this.#sweepTimer);
      await watch.stop();
      await this.#mosquittoExports;
    };
    await watch.open();
    this.registryState.view = watch.view;
    this.registryState.stale = watch.status().state !== "fresh";
    await watch.refresh();
    watch.start();
    this.#afterRegistryChange();
    this.#exportMosquitto();
    this.#sweepTimer = setInterval(() => {
      watch.checkStale();
      this.embedded?.sweep();
      // A reader grant that simply expires changes nothing on chain: re-export when one has.
      if (this.clock.nowMs() / 1000 >= this.#exportStaleAt) this.#exportMosquitto();
    }, SWEEP_INTERVAL_MS);
    this.#sweepTimer.unref();
  }

  /**
   * The RPC pool (chain.rpcUrl + chain.rpcUrls) of the registry watch and the update agents, built
   * on first use. One pool for both, not one each: one set of health checks and one view of which
   * endpoint is down or lagging. Anchoring keeps a pool of its own (anchor/chain.ts), which its
   * service rebuilds on reconnect. Closed by the `rpc` stop step, after `updates` and `registry`
   * (STOP_ORDER), so neither user is left with a closed connection.
   */
  #chainPool(deployment: LoadedDeployment): RpcPool {
    if (this.#rpc) return this.#rpc;
    const c = this.config;
    const rpcLog = this.log.child({ component: "rpc" }); // once per pool, not per failover
    const rpc = new RpcPool({
      urls: rpcUrlsOf(c.chain),
      timeoutMs: c.chain.rpcTimeoutMs,
      // Probed like the anchoring connection: a lagging or frozen endpoint is skipped (failover).
      healthCheckIntervalMs: c.chain.healthCheckIntervalMs,
      maxLagBlocks: c.chain.maxLagBlocks,
      expectedChainId: BigInt(deployment.chainId),
      // The update agents' registry client decodes reverts through the pool (pool-provider.ts).
      ifaces: CONTRACT_IFACES,
      onFailover: (e) =>
        rpcLog.warn({ from: e.from, to: e.to, url: e.url, reason: e.reason }, "RPC failover"),
    });
    this.#rpc = rpc;
    this.#running.rpc = async () => {
      this.#rpc = undefined;
      rpc.close();
    };
    return rpc;
  }

  /** Release ids and states in the registry view at the last refresh (undefined before the first). */
  #releases: string | undefined;

  /**
   * Registry events drive update checks (issue 11): when a refresh shows a release activated or
   * revoked (ReleaseActivated / ReleaseRevoked) since the previous one, both update agents check
   * at once instead of at their next cron tick (`RunningUpdates.check` coalesces a burst).
   */
  #releasesSeen(view: RegistryView): void {
    const now = [...view.releases]
      .map(([id, r]) => `${id}:${r.status}`)
      .sort()
      .join(",");
    const changed = this.#releases !== undefined && now !== this.#releases;
    this.#releases = now;
    if (!changed || !this.updates) return;
    this.log
      .child({ component: "updates" })
      .info("a release was activated or revoked on chain; checking for updates now");
    void this.updates.check();
  }

  /** After a refresh: drop readers no longer allowed; stop or resume sealing by the gateway's standing. */
  #afterRegistryChange(): void {
    this.embedded?.sweep();
    if (!this.watch || this.watch.status().state === "unsynced") return;
    const standing = gatewayStanding(this.registryState.view, this.signer?.publicKey);
    if (standing === this.standing) return;
    this.standing = standing;
    const log = this.#registryLog;
    if (standing === "active") log.info({ standing }, STANDING_SENTENCE.active);
    else log.error({ standing, gatewayId: this.gatewayId }, STANDING_SENTENCE[standing]);
    void this.#applyStanding();
    void this.#publishAccessStatus();
  }

  /**
   * The standing applications, one after the other: a suspend's stops, still pending when a
   * resume arrives, would otherwise land after the resume's starts and leave anchoring stopped.
   */
  #standingApplied: Promise<void> = Promise.resolve();

  /** When the last Mosquitto export's reader list goes out of date (a grant expires), unix seconds. */
  #exportStaleAt = Infinity;

  /**
   * Regenerates the external Mosquitto's access (registry.mosquittoExport): syncs its
   * dynamic-security plugin first, so a new user has its ACLs before the password file lets it in
   * (otherwise its first frames would be PUBACKed and dropped), and a revoked one is disconnected
   * and, should it log in again before the SIGHUP is processed, denied everything; then rewrites
   * the password and ACL files and SIGHUPs it. Runs one at a time.
   */
  #exportMosquitto(): void {
    const x = this.config.registry.mosquittoExport;
    if (!x) return;
    this.#exportStaleAt = this.registryState.view.nextGrantExpiry(Math.floor(this.clock.nowMs() / 1000));
    this.#mosquittoExports = this.#mosquittoExports.then(() => this.#exportMosquittoNow(x));
  }

  async #exportMosquittoNow(x: NonNullable<GatewayConfig["registry"]["mosquittoExport"]>): Promise<void> {
    const c = this.config;
    const log = this.#registryLog;
    let opts: MosquittoExportOptions;
    // A pid file that is missing or unreadable (the broker stopped or restarting: it reads the
    // files when it starts) skips only the signal: a revocation must still reach the files.
    let pidText: string | undefined;
    if (x.pidFile)
      try {
        pidText = readFileSync(resolvePath(c.dataDir, x.pidFile), "utf8").trim();
      } catch (e) {
        log.warn(
          { pidFile: x.pidFile, code: (e as NodeJS.ErrnoException).code },
          "registry.mosquittoExport.pidFile cannot be read: the files are written, the broker is not signalled",
        );
      }
    const pid = pidText === undefined ? undefined : Number(pidText);
    if (pidText !== undefined && !(Number.isInteger(pid) && pid! > 0))
      log.warn(
        { pidFile: x.pidFile },
        "registry.mosquittoExport.pidFile holds no PID: the files are written, the broker is not signalled",
      );
    try {
      opts = {
        view: this.registryState.view,
        passwords: c.mqtt.embedded.passwordFile
          ? readFileSync(resolvePath(c.dataDir, c.mqtt.embedded.passwordFile), "utf8")
          : "",
        outDir: resolvePath(c.dataDir, x.dir),
        site: c.site,
        gatewayName: c.attest.gatewayName,
        ...(x.gatewayUserLine ? { gatewayLine: x.gatewayUserLine } : {}),
        ...(pid !== undefined && Number.isInteger(pid) && pid > 0 ? { pid } : {}),
      };
    } catch (e) {
      log.error(
        { code: (e as NodeJS.ErrnoException).code, err: (e as Error).message },
        "Mosquitto access not exported; the external broker keeps its previous rules",
      );
      return;
    }
    // checkAccessConfig guarantees mqtt.url, username and password with dynsec.
    if (x.dynsec && c.mqtt.url && c.mqtt.username && c.mqtt.password !== null) {
      try {
        const commands = await syncDynsec({
          url: c.mqtt.url,
          username: c.mqtt.username,
          password: c.mqtt.password,
          desired: dynsecState(exportUsers(opts)),
        });
        log.info({ commands }, "Mosquitto dynamic-security plugin synced");
      } catch (e) {
        log.error(
          { code: (e as DynsecError).code, err: (e as Error).message },
          "Mosquitto dynamic-security plugin not synced; it keeps its previous ACLs (the password file is still rewritten)",
        );
      }
    }
    try {
      const r = exportMosquitto(opts);
      log.info(
        { devices: r.devices, readers: r.readers, reloaded: r.reloaded },
        "Mosquitto access files exported",
      );
    } catch (e) {
      log.error(
        { code: (e as NodeJS.ErrnoException).code, err: (e as Error).message },
        "Mosquitto access files not exported; the external broker keeps its previous rules",
      );
    }
  }

  /**
   * Sealing and anchoring run only while the gateway is active in the registry with this key.
   * Queued after the previous application, and each reads the standing when its turn comes, so
   * the last standing wins however fast they follow each other.
   */
  #applyStanding(): Promise<void> {
    const next = this.#standingApplied.then(() => this.#applyStandingNow());
    this.#standingApplied = next.catch((e: unknown) =>
      this.#registryLog.warn(
        { err: (e as Error).message },
        "sealing or anchoring not stopped or started after a change of standing",
      ),
    );
    return this.#standingApplied;
  }

  async #applyStandingNow(): Promise<void> {
    // Not before start() started them (it reads the standing itself), nor after stop() stopped them.
    if (!this.#sealingStarted || this.#phase === "stopping" || this.#phase === "stopped") return;
    if (this.standing === "active") {
      this.sealer?.start();
      this.anchor?.start();
    } else {
      await this.sealer?.stop();
      await this.anchor?.stop();
    }
  }

  /** Whether the standing lets the gateway seal and anchor (unknown before the watch synced: yes). */
  #maySeal(): boolean {
    return this.standing === undefined || this.standing === "active";
  }

  #sealingStarted = false;

  /**
   * A retained message on `vigil/v1/{site}/{gateway}/access` (QoS 1): the registry cache's
   * freshness and the gateway's standing, so dashboards see why sealing stopped.
   */
  async #publishAccessStatus(): Promise<void> {
    // Before start() opened the publisher (alerts.start) there is nowhere to publish; start() publishes then.
    if (!this.publisher || !this.watch || !this.#sealingStarted) return;
    const s = this.watch.status();
    const payload = JSON.stringify({
      v: 1,
      registry: s.state,
      headBlock: s.headBlock,
      lastRefreshMs: s.lastRefreshMs,
      standing: this.standing ?? null,
      sealing: this.#maySeal(),
      reason: this.standing ? STANDING_SENTENCE[this.standing] : null,
    });
    try {
      await this.publisher.publish({
        // Sanitised like every other gateway topic (a raw name could span topic levels).
        topic: alertTopics(this.config.site, this.config.attest.gatewayName).access,
        payload: Buffer.from(payload),
        qos: 1,
        retain: true,
      });
    } catch (e) {
      this.log.warn({ component: "registry", err: (e as Error).message }, "access status not published");
    }
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
    this.#phase = "starting";
    try {
      await this.#start();
      this.#phase = "running";
    } catch (e) {
      await this.#unwind();
      this.#phase = "stopped";
      throw e;
    }
  }

  /** Where the runtime is in its life cycle (`/readyz`). */
  phase(): GatewayPhase {
    return this.#phase;
  }

  /** The registry watch's local copy (`vigil_registry_cache_age_seconds`, the page's registry panel). */
  registry(): RegistryStatusView | undefined {
    const st = this.watch?.status();
    if (!st || st.lastRefreshMs === null) return undefined;
    return {
      cacheAgeSeconds: Math.max(0, (this.clock.nowMs() - st.lastRefreshMs) / 1000),
      block: st.confirmedBlock,
    };
  }

  /**
   * The gateway's standing, whether it seals and the watch's freshness (`vigil_gateway_standing`,
   * `vigil_sealer_running`, `vigil_registry_state`, the summary's and the stats line's `access`);
   * undefined without the registry watch.
   */
  access(): AccessStatusView | undefined {
    if (!this.watch) return undefined;
    return {
      standing: this.standing ?? null,
      sealing: !!this.sealer && this.#maySeal(),
      registry: this.watch.status().state,
    };
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
    // And each device's last HELLO: its profile picks its model before the device's next HELLO.
    const hellos = await keepHellos(this.store, this.ingest, (e) =>
      log.warn({ component: "ingest", err: e.message }, "a device's HELLO was not kept in the store"),
    );
    if (hellos.skipped > 0)
      log.warn(
        { component: "ingest", skipped: hellos.skipped },
        "kept HELLOs that cannot be read were skipped",
      );

    const deployment = c.chain.deployment
      ? readDeployment(resolvePath(c.dataDir, c.chain.deployment))
      : undefined;
    if (seals(c) && deployment) {
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

    const rpcUrls = rpcUrlsOf(c.chain);
    if (this.sealer && deployment && rpcUrls.length > 0) {
      const chainId = BigInt(deployment.chainId);
      const sender = this.#senderKey(rpcUrls, chainId);
      const anchorLog = log.child({ component: "anchor" });
      const depth = c.chain.finality === "finalized" ? 0 : c.chain.confirmations;
      this.anchor = new AnchorService({
        store: this.store,
        gatewayId: this.gatewayId,
        connect: () =>
          connectAnchorChain({
            rpcUrls,
            chainId,
            registry: deployment.contracts.VigilRegistry.address,
            deployBlock: deployment.deployBlock,
            senderPrivateKey: sender,
            senderKeySource: c.chain.senderKeyFile ? "chain.senderKeyFile" : "VIGIL_CHAIN_SENDER_KEY",
            caps: {
              maxFeePerGas: gweiToWei(c.chain.maxFeePerGasGwei),
              maxPriorityFeePerGas: gweiToWei(c.chain.maxPriorityFeePerGasGwei),
            },
            finality: c.chain.finality,
            confirmations: c.chain.confirmations,
            logBlockRange: c.chain.logBlockRange,
            rpcTimeoutMs: c.chain.rpcTimeoutMs,
            healthCheckIntervalMs: c.chain.healthCheckIntervalMs,
            maxLagBlocks: c.chain.maxLagBlocks,
            bumpAfterBlocks: c.chain.bumpAfterBlocks,
            bumpPercent: c.chain.feeBumpPercent,
            logger: anchorLog,
          }),
        confirmations: depth,
        intervalMs: c.chain.anchorIntervalMs,
        maxBatchesPerTx: c.chain.maxBatchesPerTx,
        stallAfterMs: c.chain.stallAfterMs,
        ...(c.chain.maxSpendPerDayEth !== null
          ? { maxSpendPerDayWei: ethToWei(c.chain.maxSpendPerDayEth) }
          : {}),
        logger: anchorLog,
        onAnchored: (b, a) =>
          anchorLog.debug({ seq: b.header.seq, tx: a.txHash, block: a.blockNumber }, "batch anchored"),
        // The service logs the pause; the retained MQTT status says so to dashboards.
        onPause: (p) => void this.alerts.anchoringChanged(p),
      });
    }

    // Models: every manifest verified (sha256) before the first frame is accepted.
    const modelsDir = c.models.dir ? resolvePath(process.cwd(), c.models.dir) : fromRoot("models");
    // A mistyped models.dir must not turn inference off in silence.
    if (c.models.enabled && c.models.dir && !existsSync(modelsDir))
      throw new ConfigError(
        "models.dir",
        `${modelsDir} does not exist; fix the path (relative to the current folder), or set models.enabled to false`,
      );
    if (c.models.enabled && existsSync(modelsDir)) {
      const registry = await ModelRegistry.load(modelsDir, {
        threads: c.models.threads,
        precision: c.models.precision,
        // In worker mode each model's session lives in its worker only (one copy in memory).
        deferSession: c.models.runner === "worker",
      });
      this.#running.models = () => registry.release();
      const inferLog = log.child({ component: "infer" });
      const loop = wireInference({
        registry,
        ingest: this.ingest,
        alerts: this.alerts,
        clock: this.clock,
        runner: c.models.runner,
        windowBacklog: c.models.windowBacklog,
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

    // Checked before the watch starts (updates turn it on): one sentence, nothing half-started.
    if (c.updates.enabled && (!deployment || rpcUrls.length === 0 || !this.signer))
      throw new ConfigError("updates.enabled", UPDATES_NEED_CHAIN);
    if (registryWatched(c) && deployment) await this.#startWatch(deployment);

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
    const maySeal = this.#maySeal();
    if (this.sealer) {
      const sealer = this.sealer;
      if (maySeal) sealer.start();
      this.#running.sealer = () => sealer.stop();
    }
    if (this.anchor) {
      const anchor = this.anchor;
      if (maySeal) anchor.start();
      this.#running.anchor = () => anchor.stop();
    }
    if (this.http) {
      const http = this.http;
      await http.start();
      this.#running.http = () => http.stop();
    }
    this.#sealingStarted = true;
    if (this.watch) void this.#publishAccessStatus();

    // Updates (issue 11): releases followed on chain, see gateway/src/updates/README.md.
    if (c.updates.enabled && deployment && rpcUrls.length > 0 && this.signer) {
      const signer = this.signer;
      const updates = await startUpdates({
        settings: c.updates,
        dataDir: c.dataDir,
        // The watch's pool (the watch runs whenever updates do: registryWatched).
        rpc: this.#chainPool(deployment),
        rpcUrls,
        chainId: BigInt(deployment.chainId),
        registry: deployment.contracts.VigilRegistry.address,
        releases: releasesOf(deployment),
        senderKey: this.#senderKey(rpcUrls, BigInt(deployment.chainId)),
        gatewayId: this.gatewayId,
        sign: (d) => signer.sign(d),
        loop: this.loop,
        state: this.store,
        admitted: (id) => this.#deviceAdmission.admit(id) === "ok",
        log: log.child({ component: "updates" }),
        onModelInstalled: () => void this.alerts.modelsChanged(),
        // The freeze alarm as a gateway alert on vigil/v1/{site}/{gateway}/alert (alerts/README.md).
        onStale: (stale, detail) =>
          void this.alerts.gatewayAlert("update-check-stale", stale, {
            severity: "warning",
            message: stale
              ? "no update check succeeded for longer than updates.staleAfterMs: this gateway may be kept from its updates (freeze)"
              : "update checks succeed again",
            detail,
          }),
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

    this.#pruneTimer = setInterval(() => void this.prune(), 60_000);
    this.#pruneTimer.unref();
    if (c.log.statsIntervalMs > 0) {
      const statsLog = log.child({ component: "runtime" });
      this.#statsTimer = setInterval(() => statsLog.info(this.statsFields(), "stats"), c.log.statsIntervalMs);
      this.#statsTimer.unref();
    }
  }

  /**
   * One retention pass (run every 60 s): frames of batches anchored longer than
   * store.retentionDays ago are pruned. A failure is logged with its code and counted
   * (stats `store.pruneFailures`), never thrown: the next pass tries again.
   */
  async prune(): Promise<void> {
    try {
      await this.store.prune({ retentionUs: this.config.store.retentionDays * 86_400e6 });
    } catch (e) {
      this.#pruneFailures++;
      this.log.warn(
        {
          component: "store",
          code: (e as VigilError).code,
          err: (e as Error).message,
          failures: this.#pruneFailures,
        },
        "retention pruning failed",
      );
    }
  }

  /**
   * The key paying anchor gas: the `senderKey` option, else chain.senderKeyFile (mode 0600, relative
   * to dataDir), else VIGIL_CHAIN_SENDER_KEY; a well-known development key only on a local
   * development chain. Fatal (ConfigError) otherwise.
   */
  #senderKey(rpcUrls: readonly string[], chainId: bigint): string {
    const c = this.config.chain;
    const file = c.senderKeyFile ? resolvePath(this.config.dataDir, c.senderKeyFile) : null;
    const what = c.senderKeyFile ? "chain.senderKeyFile" : "VIGIL_CHAIN_SENDER_KEY";
    let key: string | undefined;
    try {
      key = this.#o.senderKey ?? loadSenderKey(file, "VIGIL_CHAIN_SENDER_KEY", process.env, what);
      if (key) assertKeyAllowed(key, chainId, rpcUrls, this.#o.senderKey ? "the sending key" : what);
    } catch (e) {
      // The key's messages name their source already ("chain.senderKeyFile: …"): not twice.
      const msg = (e as VigilError).shortMessage.replace(new RegExp(`^${what.replace(".", "\\.")}:? `), "");
      throw new ConfigError(what, msg, { cause: e });
    }
    if (!key)
      throw new ConfigError(
        "chain.senderKeyFile",
        "anchoring needs a funded account: set chain.senderKeyFile or VIGIL_CHAIN_SENDER_KEY",
      );
    return key;
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
        finalThrough: a?.finalThrough ?? 0,
        backlog: a?.backlog ?? 0,
        failures: a?.failures ?? 0,
        lastError: a?.lastError?.message ?? null,
        paused: a?.paused?.reason ?? null,
        stalled: a?.stalled?.reason ?? null,
        pauses: { ...a?.counters.pauses },
        reorgs: a?.counters.reorgs ?? 0,
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
    const access = this.access();
    return {
      ingest: {
        devices: s.ingest.devices.length,
        accepted: s.ingest.accepted,
        duplicates: s.ingest.duplicates,
        outOfOrder: s.ingest.outOfOrder,
        gaps: s.ingest.gaps,
        rejected: s.ingest.rejected,
        nonFiniteFrames: s.ingest.nonFiniteFrames,
        clockUnverified: s.ingest.clockUnverified,
      },
      store: {
        lastIndex: s.store.lastIndex,
        pending: s.store.pending,
        state: s.store.state,
        pruneFailures: this.#pruneFailures,
      },
      batches: {
        sealed: s.sealer.lastBatchSeq,
        anchored: s.anchor.anchoredThrough,
        final: s.anchor.finalThrough,
        anchorError: s.anchor.lastError,
        anchorPaused: s.anchor.paused,
        anchorStalled: s.anchor.stalled,
      },
      ...(inf ? { infer: { windowsRun: inf.windowsRun, windowsSkipped: inf.skippedWindows } } : {}),
      alerts: { raised: s.alerts.raised, cleared: s.alerts.cleared, publishErrors: s.alerts.publishErrors },
      ...(access ? { access } : {}),
    };
  }

  /** One human line for the demo: ingest, store, batches, anchors, inference. */
  statsLine(): string {
    const s = this.snapshot();
    const inf = this.loop?.counters;
    const a = this.access();
    return (
      `${this.ingest.counters.line()} | stored=${s.store.lastIndex} batches=${s.sealer.lastBatchSeq} ` +
      `anchored=${s.anchor.anchoredThrough}${s.anchor.lastError ? ` (chain: ${s.anchor.lastError})` : ""}` +
      (inf
        ? ` | windows=${inf.windowsRun} skipped=${inf.skippedWindows} alerts raised=${s.alerts.raised} cleared=${s.alerts.cleared}`
        : "") +
      (a
        ? ` | standing=${a.standing ?? "unknown"}${a.standing === null || a.standing === "active" ? "" : " (not sealing or anchoring)"} registry=${a.registry}`
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
    if (this.#phase !== "stopped") this.#phase = "stopping";
    clearInterval(this.#sweepTimer);
    await this.#unwind();
    this.#phase = "stopped";
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
          { component: "runtime", step, code: (e as VigilError).code, err: (e as Error).message },
          "error while stopping",
        );
      }
    }
  }
}
