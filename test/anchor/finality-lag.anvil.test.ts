/**
 * Finality read consistency (RPC audit, finding 7): a provider whose `eth_blockNumber` lags its
 * blocks (load-balanced backends at different heights) must not freeze finality. The anchoring
 * service judges finality from the same `eth_getBlockByNumber("latest")` read as its reorg and
 * behind checks. Real anvil behind the loopback proxy (rpc-proxy.ts), which freezes
 * `eth_blockNumber` 20 blocks below the chain's height at the first time it is asked. The same lag
 * must not hide an anchor sent before a restart (found by a search up to the latest block read), and
 * a log range the node refuses as past its head is waited out, not halved (geth's, reth's and
 * anvil's own wording).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toQuantity } from "ethers";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { RpcPool } from "../../gateway/src/chain/rpc.ts";
import { scanLogs } from "../../gateway/src/chain/logs.ts";
import type { AnchorRecord } from "../../gateway/src/store/types.ts";
import { pipeline, startChainRig, type ChainRig, type Pipeline } from "./chain-rig.ts";
import { startRpcProxy, type RpcProxy } from "./rpc-proxy.ts";

let dir: string;
let rig: ChainRig;
let proxy: RpcProxy;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-finality-lag-"));
  rig = await startChainRig(dir);
  proxy = await startRpcProxy(rig.url);
});
afterAll(async () => {
  await proxy?.close();
  await rig?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it("behavior: eth_blockNumber frozen 20 blocks behind (the blocks themselves honest): finality still advances, judged from the latest block the pass read", async () => {
  const gatewayId = ("0x" + "f7".repeat(32)) as Hex;
  const signer = await rig.registerGateway(gatewayId);
  const p = await pipeline(rig, signer, gatewayId);
  await rig.rpc("anvil_mine", ["0x20"]); // room for "20 behind"
  let frozen: number | undefined;
  let lies = 0;
  proxy.rewrite = (method, result) => {
    if (method !== "eth_blockNumber") return result;
    frozen ??= Number(BigInt(result as string)) - 20;
    lies++;
    return toQuantity(frozen);
  };
  const s = p.service({}, { rpcUrls: [proxy.url], confirmations: 3 });
  try {
    for (let k = 1; k <= 2; k++) {
      await p.ingest(10);
      await p.sealAll();
      expect(await s.runOnce()).toBe(1); // anvil automines: anchored at once
      const rec = await p.store.getAnchor(k);
      // Three confirmations: the inclusion block and two more.
      await rig.rpc("anvil_mine", ["0x2"]);
      expect(await s.runOnce()).toBe(0);
      expect(s.status()).toMatchObject({
        anchoredThrough: k,
        finalThrough: k,
        unfinalized: 0,
        lastError: null,
      });
      expect(await p.store.getAnchor(k)).toMatchObject({ blockNumber: rec!.blockNumber, final: true });
    }
    // The lie was in force the whole time: the endpoint reported a height below both anchors.
    expect(lies).toBeGreaterThan(0);
    expect(frozen).toBeLessThan((await p.store.getAnchor(1))!.blockNumber!);
  } finally {
    proxy.rewrite = undefined;
    await s.stop();
  }
});

/**
 * A gateway whose batch 1 was anchored (directly, not through the proxy) and whose anchor record was
 * then lost: a crash after the transaction was mined, before the record was written.
 */
async function anchoredBeforeCrash(idByte: string): Promise<{ p: Pipeline; sent: AnchorRecord }> {
  const gatewayId = ("0x" + idByte.repeat(32)) as Hex;
  const p = await pipeline(rig, await rig.registerGateway(gatewayId), gatewayId);
  await p.ingest(10);
  await p.sealAll();
  const first = p.service({}, { confirmations: 3 });
  expect(await first.runOnce()).toBe(1);
  await first.stop();
  const sent = (await p.store.getAnchor(1))!;
  expect(await p.store.rewindAnchors(0)).toBe(1);
  return { p, sent };
}

it("behavior: a restart finding its batch already anchored, with eth_blockNumber frozen below the anchor's block: the event is searched up to the latest block read, and the batch recorded (it was ANCHOR_STATE 'no BatchAnchored event')", async () => {
  const { p, sent } = await anchoredBeforeCrash("f8");
  let frozen: number | undefined;
  proxy.rewrite = (method, result) => {
    if (method !== "eth_blockNumber") return result;
    frozen = sent.blockNumber! - 1;
    return toQuantity(frozen);
  };
  const s = p.service({}, { rpcUrls: [proxy.url], confirmations: 3 });
  try {
    expect(await s.runOnce()).toBe(1);
    expect(s.status().lastError).toBeNull();
    expect(await p.store.getAnchor(1)).toMatchObject({ txHash: sent.txHash, blockNumber: sent.blockNumber });
    // One transaction in all: recorded from its event, not sent again.
    expect(s.status().counters).toMatchObject({ anchored: 1, transactions: 0 });
    // The search asked for blocks up to the anchor's, not the frozen height.
    const scans = proxy.seen.filter((r) => r.method === "eth_getLogs" && r.range);
    expect(scans.at(-1)!.range![1]).toBeGreaterThanOrEqual(sent.blockNumber!);
  } finally {
    proxy.rewrite = undefined;
    await s.stop();
  }
});

it("behavior: eth_getLogs refused as past the node's head (geth and reth's wording) is waited out on the same window, not halved as a range too large", async () => {
  const { p } = await anchoredBeforeCrash("f9");
  const message = "block range extends beyond current head block";
  proxy.inject("rpc-error", { method: "eth_getLogs", count: 2, message });
  const before = proxy.seen.length;
  const s = p.service({}, { rpcUrls: [proxy.url], confirmations: 3 });
  try {
    expect(await s.runOnce()).toBe(1);
    const scans = proxy.seen.slice(before).filter((r) => r.method === "eth_getLogs");
    expect(scans.map((r) => r.outcome)).toEqual(["rpc-error", "rpc-error", "forwarded"]);
    // The same window three times.
    expect(new Set(scans.map((r) => r.range!.join("-"))).size).toBe(1);
  } finally {
    await s.stop();
  }
});

it("error: anvil's own refusal of blocks past its head (BlockOutOfRangeError) is CHAIN_BEHIND after the retries", async () => {
  const pool = new RpcPool({ urls: [rig.url], healthCheckIntervalMs: 0 });
  try {
    const head = Number(BigInt(await pool.request<string>("eth_blockNumber", [])));
    const filter = { address: rig.deployment.contracts.VigilRegistry.address, topics: [] };
    await expect(
      scanLogs(pool, filter, { fromBlock: head + 5, toBlock: head + 10, retries: 1, retryDelayMs: 1 }),
    ).rejects.toMatchObject({ name: "LogsBeyondHeadError", code: "CHAIN_BEHIND" });
  } finally {
    pool.close();
  }
});
