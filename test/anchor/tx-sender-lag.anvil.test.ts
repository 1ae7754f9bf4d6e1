/**
 * The transaction sender behind a provider whose `eth_blockNumber` lags its blocks (RPC audit,
 * finding 7, as in finality-lag.anvil.test.ts): real anvil with mining under the test's control,
 * behind the loopback proxy (rpc-proxy.ts), which answers `eth_blockNumber` with a height frozen 20
 * blocks below the chain's while the blocks themselves stay honest. The sender counts blocks from
 * the latest block (`eth_getBlockByNumber("latest")`), so fee bumps, the takeover of a stuck
 * transaction and the stall check ("no-blocks") follow the blocks that are mined.
 */
import { afterAll, afterEach, beforeAll, expect, it, vi } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wallet, toQuantity } from "ethers";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { RpcPool } from "../../gateway/src/chain/rpc.ts";
import { TxSender, type TxSenderOptions } from "../../gateway/src/chain/tx-sender.ts";
import { fundedSender, GWEI } from "./funded-sender.ts";
import { jsonRpc, pipeline, startChainRig, type ChainRig } from "./chain-rig.ts";
import { startRpcProxy, type RpcProxy } from "./rpc-proxy.ts";

const TO = "0x000000000000000000000000000000000000dEaD";
let dir: string;
let rig: ChainRig;
let proxy: RpcProxy;
/** The height the proxy reports for eth_blockNumber, whatever the chain's. */
let frozen: number;
/** anvil's block gas limit (tests lower it for a while). */
let gasLimit: number;

/** Straight to anvil, not through the proxy. */
const rpc = <T = unknown>(m: string, p: unknown[] = []): Promise<T> => rig.rpc<T>(m, p);
const height = async (): Promise<number> => Number(BigInt(await rpc<string>("eth_blockNumber")));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-tx-sender-lag-"));
  rig = await startChainRig(dir);
  await rpc("anvil_mine", ["0x20"]); // room for "20 behind"
  frozen = (await height()) - 20;
  gasLimit = Number(
    BigInt((await rpc<{ gasLimit: string }>("eth_getBlockByNumber", ["latest", false])).gasLimit),
  );
  proxy = await startRpcProxy(rig.url);
  proxy.rewrite = (method, result) => (method === "eth_blockNumber" ? toQuantity(frozen) : result);
});
afterAll(async () => {
  await proxy?.close();
  await rig?.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await rpc("evm_setBlockGasLimit", [toQuantity(gasLimit)]);
  await rpc("evm_setAutomine", [true]);
});

/** Mines one block whose base fee is `baseFee` (wei). */
async function mineAt(baseFee: bigint): Promise<void> {
  await rpc("anvil_setNextBlockBaseFeePerGas", [toQuantity(baseFee)]);
  await rpc("evm_mine");
}

/**
 * Resolves once the sender has asked for the account's nonce `n` more times (through the proxy):
 * every polling round asks, after its receipts and before it reads the chain's height, so a round
 * that began after the caller's last step has finished by then. Also resolves when `done()`.
 */
async function polled(n: number, done: () => boolean = () => false): Promise<void> {
  const asks = (): number => proxy.seen.filter((r) => r.method === "eth_getTransactionCount").length;
  const from = asks();
  await vi.waitFor(() => expect(done() || asks() >= from + n).toBe(true), { timeout: 20_000, interval: 5 });
}

/** Whether `p` has settled (read it later). */
function settledFlag(p: Promise<unknown>): () => boolean {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  return () => settled;
}

/** A sender on a fresh, funded account, talking to the node through the lagging proxy. */
async function sender(
  o: Partial<TxSenderOptions> = {},
): Promise<{ s: TxSender; key: string; close: () => void }> {
  const pool = new RpcPool({ urls: [proxy.url], healthCheckIntervalMs: 0 });
  const { s, key } = await fundedSender(rpc, pool, o);
  return { s, key, close: () => pool.close() };
}

it("behavior: eth_blockNumber frozen 20 blocks behind: a transaction not mined is replaced with a higher fee after bumpAfterBlocks (2) blocks, counted from the latest block", async () => {
  await rpc("evm_setAutomine", [false]);
  await mineAt(GWEI / 2n);
  const { s, close } = await sender();
  const ac = new AbortController();
  const p = s.send({ to: TO, data: "0x", signal: ac.signal });
  const settled = settledFlag(p);
  try {
    await vi.waitFor(() => expect(s.inFlight()).toBeTruthy(), { timeout: 20_000, interval: 5 });
    const first = s.inFlight()!;
    expect.soft(first.sentAtBlock, "the block it was sent at").toBe(await height());
    // Blocks at 10 gwei: the first version (max fee ≈ 2 gwei) cannot be included.
    for (let k = 1; k <= 2; k++) {
      await mineAt(10n * GWEI);
      await polled(2, settled);
      expect.soft(s.inFlight()?.headBlock, "the head the stall check sees").toBe(await height());
      expect(s.counters.bumps, `fee bumps after ${k} block(s)`).toBe(k < 2 ? 0 : 1);
    }
    const bumped = s.inFlight()!;
    expect(bumped.txHash).not.toBe(first.txHash);
    expect(bumped.maxFeePerGas).toBeGreaterThanOrEqual(20n * GWEI); // 2 × base fee + tip
    // The replacement pays the base fee: the next block includes it.
    await mineAt(10n * GWEI);
    const m = await p;
    expect(m).toMatchObject({ txHash: bumped.txHash, nonce: first.nonce, bumps: 1 });
    expect(await rpc("eth_getTransactionReceipt", [first.txHash])).toBeNull();
    // The lie was in force: the endpoint's eth_blockNumber is below the block the first version was sent at.
    expect(Number(BigInt(await jsonRpc<string>(proxy.url, "eth_blockNumber")))).toBe(frozen);
    expect(frozen).toBeLessThan(first.sentAtBlock);
  } finally {
    ac.abort();
    await p.catch(() => {});
    close();
  }
});

it("behavior: eth_blockNumber frozen: a pending transaction of the account (another process's) that is not mined is taken over after bumpAfterBlocks (2) blocks; the wait's head follows the blocks", async () => {
  await rpc("evm_setAutomine", [false]);
  await mineAt(GWEI / 2n);
  const { s, key, close } = await sender();
  // Sent by "another process" with a gas limit of 60,000, and blocks of 30,000 gas from now on:
  // it stays pending and is never included (a replacement of 25,200 fits).
  const stuckHash = await rpc<string>("eth_sendRawTransaction", [
    await new Wallet(key).signTransaction({
      type: 2,
      chainId: 31337n,
      nonce: 0,
      to: TO,
      value: 1n,
      gasLimit: 60_000n,
      maxFeePerGas: GWEI,
      maxPriorityFeePerGas: GWEI / 2n,
    }),
  ]);
  await rpc("evm_setBlockGasLimit", [toQuantity(30_000)]);
  const ac = new AbortController();
  const p = s.send({ to: TO, data: "0x", signal: ac.signal });
  const settled = settledFlag(p);
  const takenOver = (): boolean => settled() || s.inFlight() !== null;
  try {
    await vi.waitFor(() => expect(s.pendingWait()).toMatchObject({ nonce: 0 }), {
      timeout: 20_000,
      interval: 5,
    });
    expect.soft(s.pendingWait()!.headBlock, "the head the stall check sees").toBe(await height());
    await rpc("evm_mine");
    // Two rounds of the wait (a latest and a pending count each): one of them read the new head.
    await polled(4, takenOver);
    expect.soft(s.pendingWait()?.headBlock, "the head the stall check sees").toBe(await height());
    expect(s.counters.takeovers, "takeovers after 1 block").toBe(0);
    await rpc("evm_mine");
    await polled(4, takenOver);
    expect(s.counters.takeovers, "takeovers after 2 blocks").toBe(1);
    expect(s.inFlight()?.nonce).toBe(0);
    expect(s.pendingWait()).toBeNull();
    await rpc("evm_mine");
    const m = await p;
    expect(m.nonce).toBe(0);
    expect(await rpc("eth_getTransactionReceipt", [stuckHash])).toBeNull();
  } finally {
    ac.abort();
    await p.catch(() => {});
    close();
  }
});

it("behavior: eth_blockNumber frozen: the anchoring service's stall status stays clear while blocks are mined for longer than stallAfterMs, and says no-blocks once they stop", async () => {
  const gatewayId = ("0x" + "f8".repeat(32)) as Hex;
  const signer = await rig.registerGateway(gatewayId);
  const p = await pipeline(rig, signer, gatewayId);
  await p.ingest(10);
  await p.sealAll();
  await rpc("evm_setAutomine", [false]);
  const stallAfterMs = 1_000;
  // No fee bumps (1000 blocks): the one version waits.
  const svc = p.service({ stallAfterMs }, { rpcUrls: [proxy.url], bumpAfterBlocks: 1000 });
  const run = svc.runOnce();
  const settled = settledFlag(run);
  try {
    await vi.waitFor(() => expect(svc.status().chain?.sender?.inFlight).toBeTruthy(), {
      timeout: 20_000,
      interval: 5,
    });
    // Blocks of 30,000 gas: the anchor transaction (over 44,000) stays pending while they come.
    await rpc("evm_setBlockGasLimit", [toQuantity(30_000)]);
    const t0 = performance.now();
    let blocks = 0;
    while (performance.now() - t0 < 2.5 * stallAfterMs) {
      await rpc("evm_mine");
      blocks++;
      await polled(2, settled);
      expect(svc.status().stalled?.message ?? null, `stall after ${blocks} block(s)`).toBeNull();
    }
    expect(settled()).toBe(false);
    expect(blocks).toBeGreaterThanOrEqual(3);
    expect(svc.status().chain?.sender?.inFlight).toMatchObject({ headBlock: await height(), versions: 1 });
    // The check is live: with no block for stallAfterMs it reports the stall.
    await vi.waitFor(() => expect(svc.status().stalled?.reason).toBe("no-blocks"), {
      timeout: 20 * stallAfterMs,
      interval: 20,
    });
    await rpc("evm_setBlockGasLimit", [toQuantity(gasLimit)]);
    await rpc("evm_mine");
    expect(await run).toBe(1);
    expect(svc.status().stalled).toBeNull();
  } finally {
    await svc.stop();
    await run.catch(() => {});
  }
});
