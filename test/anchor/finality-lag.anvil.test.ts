/**
 * Finality read consistency (RPC audit, finding 7): a provider whose `eth_blockNumber` lags its
 * blocks (load-balanced backends at different heights) must not freeze finality. The anchoring
 * service judges finality from the same `eth_getBlockByNumber("latest")` read as its reorg and
 * behind checks. Real anvil behind the loopback proxy (rpc-proxy.ts), which freezes
 * `eth_blockNumber` 20 blocks below the chain's height at the first time it is asked.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toQuantity } from "ethers";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { pipeline, startChainRig, type ChainRig } from "./chain-rig.ts";
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
