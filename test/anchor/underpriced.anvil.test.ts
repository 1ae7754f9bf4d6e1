/**
 * "replacement transaction underpriced" on a first send (RPC audit, finding 8), against anvil behind
 * the loopback proxy (rpc-proxy.ts): the sender first asks the node whether it has the transaction
 * after all (eth_getTransactionByHash), and otherwise raises both fees by geth's replacement
 * minimum (10 %) once per attempt, with a pause between attempts — no burst of re-signed
 * broadcasts straight to the tip cap.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Transaction } from "ethers";
import { startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import { RpcPool } from "../../gateway/src/chain/rpc.ts";
import { TxSender, type TxSenderOptions } from "../../gateway/src/chain/tx-sender.ts";
import { fundedSender } from "./funded-sender.ts";
import { jsonRpc } from "./chain-rig.ts";
import { startRpcProxy, type RpcProxy, type SeenRequest } from "./rpc-proxy.ts";

const TO = "0x000000000000000000000000000000000000dEaD";
const UNDERPRICED = "replacement transaction underpriced";
let anvil: Anvil;
const rpc = <T = unknown>(m: string, p: unknown[] = []): Promise<T> => jsonRpc<T>(anvil.url, m, p);

beforeAll(async () => {
  anvil = await startAnvil();
});
afterAll(async () => {
  await anvil.stop();
});

/** A sender on a fresh funded account, talking to the node through a new proxy. */
async function behindProxy(
  o: Partial<TxSenderOptions> = {},
): Promise<{ s: TxSender; proxy: RpcProxy; close: () => Promise<void> }> {
  const proxy = await startRpcProxy(anvil.url);
  const pool = new RpcPool({ urls: [proxy.url], healthCheckIntervalMs: 0 });
  const { s } = await fundedSender(rpc, pool, o);
  return {
    s,
    proxy,
    close: async () => {
      pool.close();
      await proxy.close();
    },
  };
}

/** The transactions the sender broadcast, in order (signed, as the proxy saw them). */
const broadcasts = (seen: readonly SeenRequest[]): Transaction[] =>
  seen
    .filter((r) => r.method === "eth_sendRawTransaction")
    .map((r) => Transaction.from(r.params[0] as string));

/** x raised by 10 %, rounded up (the sender's replacement minimum). */
const plus10 = (x: bigint): bigint => (x * 11_000n + 9_999n) / 10_000n;

describe("TxSender: 'replacement transaction underpriced' on a first send", () => {
  it("behavior: the node has the transaction after all (a provider that forwarded it, then answered another backend's error): no re-signed broadcast, mined at its first fee", async () => {
    const { s, proxy, close } = await behindProxy();
    try {
      await rpc("evm_setAutomine", [false]);
      // Every send reaches anvil, and every answer is "replacement transaction underpriced".
      proxy.inject("rpc-error-after-forward", {
        method: "eth_sendRawTransaction",
        count: 100,
        message: UNDERPRICED,
      });
      const tip = BigInt(await rpc<string>("eth_maxPriorityFeePerGas"));
      const p = s.send({ to: TO, data: "0x" });
      let settled = false;
      p.then(
        () => (settled = true),
        () => (settled = true),
      );
      await vi.waitFor(() => expect(s.inFlight() !== null || settled).toBe(true), {
        timeout: 20_000,
        interval: 5,
      });
      await rpc("evm_mine");
      const m = await p;
      const sent = broadcasts(proxy.seen);
      expect(sent).toHaveLength(1); // the audit measured 17 on the old code
      expect(m.txHash).toBe(sent[0]!.hash);
      expect(m.bumps).toBe(0);
      expect(s.counters).toMatchObject({ underpriced: 1, rebroadcasts: 0, bumps: 0 });
      // It paid the fee it first offered: base fee + the node's suggested tip, not the tip cap.
      const tx = await rpc<{ maxPriorityFeePerGas: string }>("eth_getTransactionByHash", [m.txHash]);
      expect(BigInt(tx.maxPriorityFeePerGas)).toBe(tip);
      const r = await rpc<{ effectiveGasPrice: string; blockNumber: string }>("eth_getTransactionReceipt", [
        m.txHash,
      ]);
      const block = await rpc<{ baseFeePerGas: string }>("eth_getBlockByNumber", [r.blockNumber, false]);
      expect(BigInt(r.effectiveGasPrice)).toBe(BigInt(block.baseFeePerGas) + tip);
      expect(m.costWei).toBe(21_000n * (BigInt(block.baseFeePerGas) + tip));
    } finally {
      await rpc("evm_setAutomine", [true]);
      await close();
    }
  });

  it("behavior: refused three times (the node lacks it): three raises of 10 % on both fees, one per attempt, a lookup and a pause before each", async () => {
    const pollMs = 100;
    const { s, proxy, close } = await behindProxy({ pollMs });
    try {
      proxy.inject("rpc-error", { method: "eth_sendRawTransaction", count: 3, message: UNDERPRICED });
      const t0 = performance.now();
      const m = await s.send({ to: TO, data: "0x" });
      const ms = performance.now() - t0;
      const sent = broadcasts(proxy.seen);
      expect(sent).toHaveLength(4);
      for (let i = 1; i < sent.length; i++) {
        expect(sent[i]!.maxPriorityFeePerGas).toBe(plus10(sent[i - 1]!.maxPriorityFeePerGas!));
        expect(sent[i]!.maxFeePerGas).toBe(plus10(sent[i - 1]!.maxFeePerGas!));
        expect(sent[i]!.nonce).toBe(sent[0]!.nonce);
      }
      expect(m.txHash).toBe(sent[3]!.hash);
      // Between two attempts: a lookup of what was sent (the node does not have it).
      const order = proxy.seen
        .map((r) => r.method)
        .filter((x) => x === "eth_sendRawTransaction" || x === "eth_getTransactionByHash");
      expect(order.slice(0, 7)).toEqual([
        "eth_sendRawTransaction",
        "eth_getTransactionByHash",
        "eth_sendRawTransaction",
        "eth_getTransactionByHash",
        "eth_getTransactionByHash",
        "eth_sendRawTransaction",
        "eth_getTransactionByHash",
      ]);
      // A pause (pollMs) before each of the three retries.
      expect(ms).toBeGreaterThanOrEqual(3 * pollMs);
      expect(s.counters.underpriced).toBe(3);
      const tx = await rpc<{ maxPriorityFeePerGas: string; maxFeePerGas: string }>(
        "eth_getTransactionByHash",
        [m.txHash],
      );
      expect(BigInt(tx.maxPriorityFeePerGas)).toBe(sent[3]!.maxPriorityFeePerGas);
    } finally {
      await close();
    }
  });
});
