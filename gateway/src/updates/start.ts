/**
 * Builds and starts the update agents for runtime.ts (the composition root calls this once):
 * releases and install reports through an ethers registry client of their own over the gateway's
 * RPC pool (chain.rpcUrl + chain.rpcUrls, failover: chain/rpc.ts), state in the store's update
 * records, downloads under `<dataDir>/updates`.
 */
import { join } from "node:path";
import { EthersRegistryClient } from "../chain/ethers-client.ts";
import type { RpcClient } from "../chain/rpc.ts";
import { isLocalDevChain } from "../chain/sender-key.ts";
import type { Hex } from "../core/hex.ts";
import type { Logger } from "../core/log.ts";
import type { InferenceLoop } from "../infer/loop.ts";
import type { LoadedModel } from "../infer/registry.ts";
import { alertTopics } from "../alerts/topics.ts";
import { TOPIC_ROOT } from "../protocol/topics.ts";
import { FirmwareUpdateAgent, type ListableStateStore } from "./firmware-agent.ts";
import { chainInstallReporter, chainReleaseSource, ModelUpdateAgent } from "./model-agent.ts";

/** The `updates` config block (config.ts). */
export interface UpdatesSettings {
  schedule: string;
  ipfsGateway: string | null;
  shadowWindows: number;
  shadowMaxMs: number;
  maxCostFactor: number;
  maxModelBytes: number;
  maxFirmwareBytes: number;
  fetchTimeoutMs: number;
  staleAfterMs: number;
  firmware: boolean;
  firmwareTarget: string | null;
}

export interface StartUpdatesOptions {
  settings: UpdatesSettings;
  dataDir: string;
  /**
   * The connection to the chain (the runtime's RPC pool), built with the client's ABIs
   * (ethers-client.ts CONTRACT_IFACES) so reverts decode. Not closed by `stop()`: its owner
   * closes it after the agents stopped.
   */
  rpc: RpcClient;
  /** Every endpoint behind `rpc` (chain.rpcUrl then chain.rpcUrls): the local-chain check. */
  rpcUrls: readonly string[];
  /** The deployment's chain id: the client is built without asking the RPC, which may be down. */
  chainId: bigint;
  registry: string;
  releases: string;
  /** Funded account that pays for install reports. */
  senderKey: string;
  gatewayId: Hex;
  /** Signs an EIP-712 digest with the gateway key. */
  sign: (digest: Hex) => Hex;
  loop: InferenceLoop | undefined;
  state: ListableStateStore;
  /** Ingest's device admission, as a yes/no: only admitted devices are offered firmware. */
  admitted?: (deviceId: number) => boolean;
  log: Logger;
  /** After a model swap (publish the new status). */
  onModelInstalled?: (model: LoadedModel) => void;
  /**
   * Raised (true) and cleared (false) when no model update check succeeded for
   * `settings.staleAfterMs` (the freeze alarm; runtime.ts publishes the `update-check-stale`
   * gateway alert). `lastSuccessMs`: the last successful check (the time of the chain view it read
   * when that is older: view-age.ts), or the agent's start.
   */
  onStale?: (
    stale: boolean,
    info: { lastSuccessMs: number; staleAfterMs: number; lastError: string | null },
  ) => void;
  /**
   * Publishes the retained update status ({@link UpdatesStatusPayload}) on every change, on
   * `vigil/v1/{site}/{gateway}/updates` ({@link updatesTopic}). Default: not published.
   */
  publishStatus?: (payload: UpdatesStatusPayload) => void;
}

/** The retained update status: the model agent's status and counters, the firmware agent's devices and counters. */
export interface UpdatesStatusPayload {
  type: "updates";
  atMs: number;
  model: (ReturnType<ModelUpdateAgent["status"]> & { counters: ModelUpdateAgent["counters"] }) | null;
  firmware: {
    devices: ReturnType<FirmwareUpdateAgent["devices"]>;
    counters: FirmwareUpdateAgent["counters"];
  } | null;
}

/** `vigil/v1/{site}/{gateway}/updates`: the retained update status (QoS 1). */
export function updatesTopic(site: string, gateway: string): string {
  const t = alertTopics(site, gateway);
  return `${TOPIC_ROOT}/${t.site}/${t.gateway}/updates`;
}

export interface RunningUpdates {
  model: ModelUpdateAgent | undefined;
  firmware: FirmwareUpdateAgent | undefined;
  /** The retained status as published now. */
  status(): UpdatesStatusPayload;
  /**
   * One check of both agents now (registry events, operators). A call while a check is waiting
   * to start shares it, so a burst of events runs one check, not one each.
   */
  check(): Promise<void>;
  /**
   * Forgets that release `id` failed — the model release, and the firmware release on `deviceId`
   * or on every device it failed on — so the next check tries it again (operator request).
   */
  retry(id: bigint, deviceId?: number): Promise<{ model: boolean; firmwareDevices: number[] }>;
  stop(): Promise<void>;
}

export async function startUpdates(o: StartUpdatesOptions): Promise<RunningUpdates> {
  const s = o.settings;
  const client = EthersRegistryClient.overRpc({
    rpc: o.rpc,
    chainId: o.chainId,
    privateKey: o.senderKey,
    registry: o.registry,
    releases: o.releases,
    pollingIntervalMs: 1000,
  });
  // A chain view older than updates.staleAfterMs is not acted on (view-age.ts); not on a local
  // development chain (every endpoint on loopback), whose newest block is as old as its last
  // transaction.
  const releases = chainReleaseSource(client, o.gatewayId, {
    checkViewAge: !isLocalDevChain(o.chainId, o.rpcUrls),
  });
  const reporter = chainInstallReporter(client, o.gatewayId, o.sign);
  const dir = join(o.dataDir, "updates");
  const ipfsGateway = s.ipfsGateway ?? undefined;
  // The agents publish through `publish`, which reads both: built first, assigned below.
  const a: { model?: ModelUpdateAgent | undefined; firmware?: FirmwareUpdateAgent | undefined } = {};
  const status = (): UpdatesStatusPayload => ({
    type: "updates",
    atMs: Date.now(),
    model: a.model ? { ...a.model.status(), counters: a.model.counters } : null,
    firmware: a.firmware ? { devices: a.firmware.devices(), counters: a.firmware.counters } : null,
  });
  const publish = (): void => o.publishStatus?.(status());
  const model = o.loop
    ? new ModelUpdateAgent({
        loop: o.loop,
        releases,
        reporter,
        state: o.state,
        dir,
        ipfsGateway,
        shadowWindows: s.shadowWindows,
        shadowMaxMs: s.shadowMaxMs,
        maxCostFactor: s.maxCostFactor,
        maxModelBytes: s.maxModelBytes,
        fetchTimeoutMs: s.fetchTimeoutMs,
        staleAfterMs: s.staleAfterMs,
        schedule: s.schedule,
        log: o.log,
        onStale: (stale, sinceMs) => {
          if (stale)
            o.log.error(
              { alert: "update-check-stale" },
              "update checks have failed for longer than updates.staleAfterMs",
            );
          else o.log.info({ alert: "update-check-stale" }, "update checks succeed again");
          o.onStale?.(stale, {
            lastSuccessMs: sinceMs,
            staleAfterMs: s.staleAfterMs,
            lastError: a.model?.status().lastCheckError ?? null,
          });
        },
        onStatus: publish,
        ...(o.onModelInstalled ? { onInstalled: (m: LoadedModel) => o.onModelInstalled!(m) } : {}),
      })
    : undefined;
  const firmware = s.firmware
    ? new FirmwareUpdateAgent({
        releases,
        reporter,
        state: o.state,
        dir,
        ipfsGateway,
        log: o.log,
        ...(s.firmwareTarget ? { targetOf: () => s.firmwareTarget! } : {}),
        ...(o.admitted ? { admitted: o.admitted } : {}),
        onChange: publish,
        fetchTimeoutMs: s.fetchTimeoutMs,
        maxFirmwareBytes: s.maxFirmwareBytes,
        staleAfterMs: s.staleAfterMs,
      })
    : undefined;
  a.model = model;
  a.firmware = firmware;
  model?.start();
  firmware?.start(s.schedule);
  let waiting: Promise<void> | undefined;
  let running: Promise<void> | undefined;
  const check = (): Promise<void> => {
    if (waiting) return waiting;
    const before = running ?? Promise.resolve();
    const p: Promise<void> = before
      .then(async () => {
        waiting = undefined;
        running = p;
        await Promise.all([model?.check(), firmware?.check()]);
      })
      .finally(() => {
        if (running === p) running = undefined;
      });
    waiting = p;
    return p;
  };
  return {
    model,
    firmware,
    status,
    check,
    async retry(id, deviceId) {
      const m = (await model?.retry(id)) ?? false;
      const devices = !firmware
        ? []
        : deviceId === undefined
          ? await firmware.retryEverywhere(id)
          : (await firmware.retry(deviceId, id))
            ? [deviceId]
            : [];
      return { model: m, firmwareDevices: devices };
    },
    async stop() {
      // Both at once: each aborts its downloads under way (no wait for a slow content source).
      await Promise.all([firmware?.stop(), model?.stop()]);
      await client.close();
    },
  };
}
