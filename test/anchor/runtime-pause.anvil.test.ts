/**
 * The runtime turns an anchoring pause into a signal an operator sees: the retained MQTT status is
 * published again (reason "anchoring", with the pause's reason) and the snapshot's metrics carry it,
 * while frames are still stored and sealed. On a real anvil, with a sending account that has no
 * funds (a key of one's own, never funded). And chain.stallAfterMs reaches the anchor service: a
 * transaction waiting on a chain that mines nothing is shown as stalled after that long.
 */
import { afterEach, beforeEach, expect, it, vi } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { gatewayIdOf } from "../../gateway/src/config/gateway-id.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import type { EventOutput } from "../../gateway/src/alerts/service.ts";
import type { GatewayEvent, StatusEvent } from "../../gateway/src/alerts/events.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { bytesToHex } from "../../gateway/src/core/hex.ts";
import { localChain, type LocalChain } from "../helpers/chain.ts";
import { record } from "../store/abstract.ts";
import { jsonRpc } from "./chain-rig.ts";

let dir: string;
let chain: LocalChain | undefined;
let rt: Runtime | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "vigil-rt-pause-"));
});
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
  await chain?.stop();
  chain = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A runtime with anchoring to a fresh anvil (no broker, no models) and `chain` settings added;
 * `senderKey` pays gas (default the local chain's funded account). Events go to `events`.
 */
async function startRuntime(
  name: string,
  chainExtra: Record<string, unknown>,
  senderKey?: string,
): Promise<{ runtime: Runtime; events: GatewayEvent[] }> {
  const events: GatewayEvent[] = [];
  const output: EventOutput = {
    open: () => Promise.resolve(),
    emit: (e) => {
      events.push(e);
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
  const raw = {
    dataDir: dir,
    mqtt: { embedded: { enabled: false } },
    models: { enabled: false },
    store: { minFreeBytes: 0, reserveBytes: 0 },
    log: { statsIntervalMs: 0 },
    attest: { gatewayName: name, batchIntervalMs: 60_000 },
  };
  chain = await localChain({ dataDir: dir, gatewayId: gatewayIdOf(resolveConfig(raw)) });
  const config = resolveConfig({
    http: { port: 0 }, // never the default 9479: another gateway may hold it
    ...raw,
    chain: { rpcUrl: chain.anvil.url, deployment: chain.deploymentFile, confirmations: 1, ...chainExtra },
  });
  rt = new Runtime({
    config,
    passphrase: chain.passphrase,
    senderKey: senderKey ?? chain.senderKey,
    alertOutput: output,
  });
  await rt.start();
  return { runtime: rt, events };
}

it("behavior: an unfunded sending account pauses anchoring: the retained status says insufficient-funds, the snapshot counts it, sealing goes on", async () => {
  const unfunded = bytesToHex(generateKey("secp256k1").privateKey);
  const { runtime: gw, events } = await startRuntime("pause-test", {}, unfunded);

  await gw.store.append(record(7, 0));
  await gw.store.append(record(7, 1));
  expect(await gw.sealer!.sealNow()).toBeTruthy();
  gw.anchor!.trigger();

  const paused = (): StatusEvent | undefined =>
    events.find((e): e is StatusEvent => e.kind === "status" && e.reason === "anchoring");
  await vi.waitFor(() => expect(paused()).toBeDefined(), { timeout: 20_000, interval: 50 });
  expect(paused()).toMatchObject({
    state: "online",
    anchoringPaused: { reason: "insufficient-funds", untilUs: null },
  });
  expect(paused()!.anchoringPaused!.message).toMatch(/fund it/);
  const s = gw.snapshot();
  expect(s.anchor).toMatchObject({
    paused: "insufficient-funds",
    pauses: { "insufficient-funds": 1 },
    anchoredThrough: 0,
    backlog: 1,
  });
  expect(s.sealer.lastBatchSeq).toBe(1);
  expect(gw.statsFields()).toMatchObject({
    batches: { sealed: 1, anchored: 0, anchorPaused: "insufficient-funds" },
  });

  // Sealing goes on while anchoring is paused.
  await gw.store.append(record(7, 2));
  expect(await gw.sealer!.sealNow()).toBeTruthy();
  expect(gw.snapshot().sealer.lastBatchSeq).toBe(2);
});

it("behavior: chain.stallAfterMs sets when a transaction waiting on a chain that makes no blocks is shown as stalled (no-blocks)", async () => {
  const { runtime: gw } = await startRuntime("stall-test", {
    stallAfterMs: 1000,
    healthCheckIntervalMs: 200,
  });
  // The sequencer halts: anvil mines nothing more, so the anchor transaction waits in its pool.
  await jsonRpc(chain!.anvil.url, "evm_setAutomine", [false]);
  await gw.store.append(record(7, 0));
  expect(await gw.sealer!.sealNow()).toBeTruthy();
  gw.anchor!.trigger();
  await vi.waitFor(() => expect(gw.anchor!.status().stalled?.reason).toBe("no-blocks"), {
    timeout: 20_000,
    interval: 50,
  });
  expect(gw.anchor!.status().stalled!.message).toMatch(/^no new block for \d+ s .*: the sequencer is halted/);
  expect(gw.anchor!.status().anchoredThrough).toBe(0);
});
