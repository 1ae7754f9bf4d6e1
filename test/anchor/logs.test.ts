/**
 * scanLogs on a long chain (a fake RPC with 1,000,000 blocks and a provider limit): windows of at
 * most the configured range (default 10,000), halved when refused and kept small afterwards,
 * retried after transport failures, backward walks that stop at the first match, never below the
 * start block. test/attest/verify-trust.anvil.test.ts runs the same against anvil behind a proxy.
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_LOG_RANGE, scanLogs } from "../../gateway/src/chain/logs.ts";
import type { RpcClient } from "../../gateway/src/chain/rpc.ts";
import {
  LogRangeError,
  LogsBeyondHeadError,
  RpcTimeoutError,
  translateRpcError,
} from "../../gateway/src/chain/errors.ts";

const TIP = 1_000_000;

/** Logs at the given blocks; refuses ranges above `limit` like a hosted provider. */
function fakeChain(
  logBlocks: number[],
  limit = Infinity,
  failFirst = 0,
  shape: {
    address?: string;
    topics?: string[];
    ignoreRange?: boolean;
    malformed?: boolean;
    result?: unknown;
    /** The node's own head: windows past it are refused as geth and reth refuse them. */
    nodeHead?: number;
  } = {},
) {
  const ranges: [number, number][] = [];
  let fails = failFirst;
  const rpc: RpcClient = {
    currentUrl: "fake",
    close() {},
    async request<T>(method: string, params: readonly unknown[] = []): Promise<T> {
      if (method === "eth_blockNumber") return `0x${TIP.toString(16)}` as T;
      if (method !== "eth_getLogs") throw new Error(method);
      const f = params[0] as { fromBlock: string; toBlock: string };
      const from = Number(f.fromBlock);
      const to = Number(f.toBlock);
      ranges.push([from, to]);
      if (fails > 0) {
        fails--;
        throw new RpcTimeoutError("http://fake", 10);
      }
      if (shape.nodeHead !== undefined && to > shape.nodeHead)
        throw translateRpcError(
          "eth_getLogs",
          { code: -32602, message: "block range extends beyond current head block" },
          "fake",
        );
      if (to - from + 1 > limit)
        throw translateRpcError(
          "eth_getLogs",
          { code: -32005, message: `query exceeds max block range ${limit}` },
          "fake",
        );
      if ("result" in shape) return shape.result as T;
      if (shape.malformed) return [{ address: "0xaa", blockNumber: "not a number" }] as T;
      return logBlocks
        .filter((b) => shape.ignoreRange || (b >= from && b <= to))
        .map((b) => ({
          address: shape.address ?? "0xaa",
          topics: shape.topics ?? ["0x01"],
          data: "0x",
          blockNumber: `0x${b.toString(16)}`,
          blockHash: `0x${b.toString(16).padStart(64, "0")}`,
          transactionHash: `0x${(b + 1).toString(16).padStart(64, "0")}`,
          logIndex: "0x0",
        })) as T;
    },
  };
  return { rpc, ranges };
}

describe("scanLogs", () => {
  it("error: an endpoint that ignores the filter (another contract, topic or block range) is a CHAIN_BAD_RESPONSE, never read as the registry's", async () => {
    const o = { fromBlock: 0, toBlock: 100 };
    const filter = { address: "0xAA", topics: ["0x01", null, ["0x02", "0x03"]] };
    const ok = fakeChain([5], Infinity, 0, { topics: ["0x01", "0x09", "0x03"] });
    expect((await scanLogs(ok.rpc, filter, o)).map((l) => l.blockNumber)).toEqual([5]);
    for (const shape of [
      { address: "0xbb", topics: ["0x01", "0x09", "0x03"] },
      { topics: ["0x01", "0x09", "0x04"] },
      { topics: ["0x01"] },
      { topics: ["0x01", "0x09", "0x03"], ignoreRange: true },
      { malformed: true }, // a log without topics or a block number
      // Not a list: read as "no logs", it would hide a revocation from a verifier.
      { result: null },
      { result: {} },
      { result: "0x" },
    ]) {
      const c = fakeChain([5, 500], Infinity, 0, shape);
      await expect(scanLogs(c.rpc, filter, o)).rejects.toMatchObject({ code: "CHAIN_BAD_RESPONSE" });
    }
  });

  it("behavior: walks from the start block to the tip in windows of at most 10,000 blocks by default", async () => {
    const c = fakeChain([123_456, 987_654]);
    const logs = await scanLogs(c.rpc, { address: "0xaa", topics: [] }, { fromBlock: 100_000 });
    expect(logs.map((l) => l.blockNumber)).toEqual([123_456, 987_654]);
    expect(DEFAULT_LOG_RANGE).toBe(10_000);
    expect(c.ranges[0]).toEqual([100_000, 109_999]);
    expect(c.ranges.at(-1)![1]).toBe(TIP);
    expect(c.ranges).toHaveLength(91);
    for (const [a, b] of c.ranges) {
      expect(a).toBeGreaterThanOrEqual(100_000);
      expect(b - a + 1).toBeLessThanOrEqual(10_000);
    }
    // Contiguous, no gaps, no overlaps.
    for (let i = 1; i < c.ranges.length; i++) expect(c.ranges[i]![0]).toBe(c.ranges[i - 1]![1] + 1);
  });

  it("behavior: a provider that refuses large ranges (LogRangeError) gets halved windows, kept small for the rest of the walk", async () => {
    const c = fakeChain([500_500], 2_000);
    const logs = await scanLogs(
      c.rpc,
      { address: "0xaa", topics: [] },
      { fromBlock: 490_000, toBlock: 520_000 },
    );
    expect(logs.map((l) => l.blockNumber)).toEqual([500_500]);
    // 10,000 → 5,000 → 2,500 refused, then 1,250 from there on.
    expect(c.ranges.slice(0, 4).map(([a, b]) => b - a + 1)).toEqual([10_000, 5_000, 2_500, 1_250]);
    for (const [a, b] of c.ranges.slice(3)) expect(b - a + 1).toBeLessThanOrEqual(1_250);
  });

  it("behavior: a transport failure is retried (the window again), and the configured range is honoured", async () => {
    const c = fakeChain([10], Infinity, 2);
    const logs = await scanLogs(
      c.rpc,
      { address: "0xaa", topics: [] },
      { fromBlock: 0, toBlock: 1_999, maxRange: 500, retryDelayMs: 1 },
    );
    expect(logs).toHaveLength(1);
    expect(c.ranges.slice(0, 3)).toEqual([
      [0, 499],
      [0, 499],
      [0, 499],
    ]);
    expect(c.ranges).toHaveLength(6);
    const d = fakeChain([], Infinity, 10);
    await expect(
      scanLogs(
        d.rpc,
        { address: "0xaa", topics: [] },
        { fromBlock: 0, toBlock: 10, retries: 2, retryDelayMs: 1 },
      ),
    ).rejects.toBeInstanceOf(RpcTimeoutError);
    expect(d.ranges).toHaveLength(3);
  });

  it("behavior: backward from the tip, stopping at the first match (finding a recent anchor needs no full scan)", async () => {
    const c = fakeChain([200_000, 999_000]);
    const logs = await scanLogs(
      c.rpc,
      { address: "0xaa", topics: [] },
      { fromBlock: 100, direction: "backward", stopWhen: (l) => l.length > 0 },
    );
    expect(logs.map((l) => l.blockNumber)).toEqual([999_000]);
    expect(c.ranges).toEqual([[990_001, 1_000_000]]);
    const none = fakeChain([]);
    await scanLogs(none.rpc, { address: "0xaa", topics: [] }, { fromBlock: 950_000, direction: "backward" });
    expect(none.ranges.at(-1)).toEqual([950_000, 950_000]); // …never below the start block
    expect(none.ranges.every(([a]) => a >= 950_000)).toBe(true);
  });

  it("error: a provider that refuses even one block is a LogRangeError", async () => {
    const c = fakeChain([], 0);
    await expect(
      scanLogs(c.rpc, { address: "0xaa", topics: [] }, { fromBlock: 0, toBlock: 10 }),
    ).rejects.toBeInstanceOf(LogRangeError);
  });

  it("error: node wordings for a range past its head are LogsBeyondHeadError (CHAIN_BEHIND), not a range too large; size refusals stay LogRangeError", () => {
    for (const message of [
      "block range extends beyond current head block", // geth, reth (-32602)
      "BlockOutOfRangeError: block height is 120 but requested was 125", // anvil
      "block 50162452 is beyond the latest block 50162448 of this node, retry later",
    ]) {
      const e = translateRpcError("eth_getLogs", { code: -32602, message }, "fake");
      expect(e, message).toBeInstanceOf(LogsBeyondHeadError);
      expect(e.code).toBe("CHAIN_BEHIND");
    }
    for (const message of [
      "query exceeds max block range 10000",
      "eth_getLogs is limited to a 10,000 block range",
      "block range is too wide",
    ])
      expect(translateRpcError("eth_getLogs", { code: -32005, message }, "fake"), message).toBeInstanceOf(
        LogRangeError,
      );
  });

  it("behavior: a window past the node's head is retried as it stands and, while the node stays behind, fails CHAIN_BEHIND; it is never halved", async () => {
    const c = fakeChain([10], Infinity, 0, { nodeHead: 90 });
    await expect(
      scanLogs(
        c.rpc,
        { address: "0xaa", topics: [] },
        { fromBlock: 0, toBlock: 100, retries: 2, retryDelayMs: 1 },
      ),
    ).rejects.toMatchObject({ name: "LogsBeyondHeadError", code: "CHAIN_BEHIND" });
    expect(c.ranges).toEqual([
      [0, 100],
      [0, 100],
      [0, 100],
    ]);
  });
});
