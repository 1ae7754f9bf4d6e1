/**
 * The registry watch over JSON-RPC (RpcRegistryEvents, bounded eth_getLogs) against anvil: the
 * first read from the deployment block, and a real reorg (anvil_reorg) within the re-read depth
 * undoing a sensor registration at the next refresh.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANVIL_DEV_KEYS } from "../../gateway/src/chain/anvil.ts";
import { EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import { RpcRegistryEvents } from "../../gateway/src/chain/events.ts";
import { RpcPool } from "../../gateway/src/chain/rpc.ts";
import { RegistryWatch } from "../../gateway/src/chain/watch.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { localChain, type LocalChain } from "../helpers/chain.ts";

const GW: Hex = `0x${"7c".repeat(32)}`;
let dir: string;
let lc: LocalChain;
let admin: EthersRegistryClient;
let rpc: RpcPool;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-watch-"));
  lc = await localChain({ dataDir: dir, gatewayId: GW });
  admin = await EthersRegistryClient.connect({
    rpcUrl: lc.anvil.url,
    privateKey: ANVIL_DEV_KEYS[0]!,
    registry: lc.deployment.contracts.VigilRegistry.address,
    releases: lc.deployment.contracts.VigilReleases.address,
    pollingIntervalMs: 50,
  });
  rpc = new RpcPool({ urls: [lc.anvil.url], healthCheckIntervalMs: 0 });
}, 120_000);

afterAll(async () => {
  rpc?.close();
  await admin?.close();
  await lc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("registry watch over JSON-RPC on anvil", () => {
  it("reads from the deployment block (eth_getLogs windows of maxRange blocks); a reorg within the re-read depth undoes a registration at the next refresh", async () => {
    const store = new MemoryFrameStore();
    await store.open();
    const calls: Array<[number, number]> = [];
    const source = new RpcRegistryEvents({
      rpc,
      registry: lc.deployment.contracts.VigilRegistry.address,
      releases: lc.deployment.contracts.VigilReleases.address,
      maxRange: 2,
    });
    const events = source.events.bind(source);
    source.events = (from, to) => (calls.push([from, to]), events(from, to));
    const watch = new RegistryWatch({
      source,
      cache: store,
      gatewayId: GW,
      chainId: lc.deployment.chainId,
      registry: lc.deployment.contracts.VigilRegistry.address,
      deployBlock: lc.deployment.deployBlock,
      reorgDepth: 4,
      scheduler: () => ({ stop: () => undefined }),
    });
    await watch.open();
    await admin.registerSensor(GW, 0x0a, "none", "0x");
    expect(await watch.refresh()).toBe(true);
    expect(calls[0]?.[0]).toBe(lc.deployment.deployBlock);
    expect(watch.view.gateway?.status).toBe("active");
    expect(watch.view.sensorStatus(0x0a)).toBe("active");

    await admin.registerSensor(GW, 0x0b, "none", "0x");
    await watch.refresh();
    expect(watch.view.sensorStatus(0x0b)).toBe("active");
    // Replace the last block (the one registering 0x0b) with an empty one.
    await rpc.request("anvil_reorg", [1, []]);
    await watch.refresh();
    expect(watch.view.sensorStatus(0x0b)).toBe("none");
    expect(watch.view.sensorStatus(0x0a)).toBe("active");
    expect(watch.status().reorgs).toBe(0);
    await watch.stop();
  });
});
