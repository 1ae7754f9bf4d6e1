/**
 * The transaction sender against anvil with mining under the test's control (evm_setAutomine false,
 * evm_mine, anvil_setNextBlockBaseFeePerGas, anvil_dropTransaction): fee bumps for a transaction not
 * mined after N blocks, a dropped transaction, fees at the caps, a stuck transaction of the account
 * taken over ("replacement underpriced" handled), a concurrent sender using the nonce ("nonce too
 * low"), the fee and spend caps, and the OP-Stack L1 data fee from the real GasPriceOracle.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { getEventListeners } from "node:events";
import { Interface, Transaction, Wallet } from "ethers";
import { ANVIL_DEV_KEYS, startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import { RpcPool } from "../../gateway/src/chain/rpc.ts";
import { TxSender, type MinedTx, type TxSenderOptions } from "../../gateway/src/chain/tx-sender.ts";
import {
  AlreadyKnownError,
  FeeCapError,
  FeeTooLowError,
  InsufficientFundsError,
  NonceTooLowError,
  ReplacementUnderpricedError,
  SpendCapError,
  nodeMessageError,
} from "../../gateway/src/chain/errors.ts";
import { GAS_PRICE_ORACLE, detectL1FeeSource } from "../../gateway/src/chain/op-stack.ts";
import { fundedSender, GWEI } from "./funded-sender.ts";
import { installOpPredeploys } from "./op-predeploys.ts";
import { jsonRpc } from "./chain-rig.ts";
import { startRpcProxy } from "./rpc-proxy.ts";

const TO = "0x000000000000000000000000000000000000dEaD";
let anvil: Anvil;
let pool: RpcPool;
const rpc = <T = unknown>(m: string, p: unknown[] = []): Promise<T> => jsonRpc<T>(anvil.url, m, p);

beforeAll(async () => {
  anvil = await startAnvil();
  pool = new RpcPool({ urls: [anvil.url], healthCheckIntervalMs: 0 });
});
afterAll(async () => {
  pool.close();
  await anvil.stop();
});
afterEach(async () => {
  await rpc("evm_setAutomine", [true]);
});

/** A sender on its own fresh, funded account (no nonce interference between tests). */
async function sender(o: Partial<TxSenderOptions> = {}): Promise<{ s: TxSender; key: string }> {
  return fundedSender(rpc, pool, o);
}

/** Mines one block whose base fee is `baseFee` (wei). */
async function mineAt(baseFee: bigint): Promise<void> {
  await rpc("anvil_setNextBlockBaseFeePerGas", [`0x${baseFee.toString(16)}`]);
  await rpc("evm_mine");
}

/** Mines blocks at `baseFee` until `p` settles (the sender polls in between). */
async function driveUntil<T>(p: Promise<T>, baseFee: () => bigint, max = 200): Promise<T> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < max && !settled; i++) {
    await mineAt(baseFee());
    await new Promise((r) => setTimeout(r, 30));
  }
  return p;
}

async function untilInFlight(s: TxSender): Promise<void> {
  await vi.waitFor(() => expect(s.inFlight()).toBeTruthy(), { timeout: 20_000, interval: 5 });
}

describe("TxSender on anvil", () => {
  it("behavior: mines a call with EIP-1559 fees under the caps and reports gas and cost (no L1 fee on a non-OP chain)", async () => {
    const { s } = await sender();
    const m = await s.send({ to: TO, data: "0x" });
    expect(m).toMatchObject({ gasUsed: 21000n, l1FeeWei: null, bumps: 0 });
    expect(m.costWei).toBe(m.gasUsed * m.effectiveGasPrice);
    const tx = await rpc<{ maxFeePerGas: string; maxPriorityFeePerGas: string; type: string }>(
      "eth_getTransactionByHash",
      [m.txHash],
    );
    expect(tx.type).toBe("0x2");
    expect(BigInt(tx.maxFeePerGas)).toBeLessThanOrEqual(50n * GWEI);
    expect(BigInt(tx.maxPriorityFeePerGas)).toBeLessThanOrEqual(2n * GWEI);
  });

  it("error: a receipt naming a block the chain does not have is taken as not mined yet; the true one, once the endpoint is honest, is what send reports", async () => {
    const proxy = await startRpcProxy(anvil.url);
    const lying = new RpcPool({ urls: [proxy.url], healthCheckIntervalMs: 0 });
    try {
      const { s } = await sender({ rpc: lying });
      let lies = 0;
      proxy.rewrite = (method, result) => {
        if (method !== "eth_getTransactionReceipt") return result;
        const r = result as { blockNumber: string; blockHash: string };
        if (++lies === 3) proxy.rewrite = undefined; // honest from the fourth receipt on
        return {
          ...r,
          blockNumber: `0x${(Number(BigInt(r.blockNumber)) + 100_000).toString(16)}`,
          blockHash: `0x${"ee".repeat(32)}`,
        };
      };
      const m = await s.send({ to: TO, data: "0x" });
      expect(lies).toBe(3);
      expect(s.counters.badReceipts).toBe(3);
      const real = await rpc<{ blockNumber: string; blockHash: string }>("eth_getTransactionReceipt", [
        m.txHash,
      ]);
      expect(m.blockNumber).toBe(Number(BigInt(real.blockNumber)));
      expect(m.blockHash).toBe(real.blockHash.toLowerCase());
      expect(m.blockNumber).toBeLessThanOrEqual(Number(BigInt(await rpc<string>("eth_blockNumber"))));
    } finally {
      lying.close();
      await proxy.close();
    }
  });

  it("error: a receipt whose gas or price the signed transaction rules out is counted at the worst case (gas limit × max fee), so a lying endpoint cannot spend past the daily cap", async () => {
    const proxy = await startRpcProxy(anvil.url);
    const lying = new RpcPool({ urls: [proxy.url], healthCheckIntervalMs: 0 });
    try {
      const { s } = await sender({ rpc: lying });
      proxy.rewrite = (method, result) =>
        method === "eth_getTransactionReceipt"
          ? { ...(result as object), gasUsed: "0x1", effectiveGasPrice: "0x1" }
          : result;
      const costs: bigint[] = [];
      const m = await s.send({ to: TO, data: "0x", onCost: (p) => costs.push(p.costWei) });
      const tx = await rpc<{ gas: string; maxFeePerGas: string }>("eth_getTransactionByHash", [m.txHash]);
      const worst = BigInt(tx.gas) * BigInt(tx.maxFeePerGas);
      expect(m.costWei).toBe(worst);
      expect(costs).toEqual([worst]);
      expect(m.gasUsed).toBe(BigInt(tx.gas));
      expect(m.effectiveGasPrice).toBe(BigInt(tx.maxFeePerGas));
      expect(s.counters.badReceipts).toBe(1);
      // What it really cost is no more than what was counted.
      const real = await rpc<{ gasUsed: string; effectiveGasPrice: string }>("eth_getTransactionReceipt", [
        m.txHash,
      ]);
      expect(BigInt(real.gasUsed) * BigInt(real.effectiveGasPrice)).toBeLessThanOrEqual(m.costWei);
    } finally {
      lying.close();
      await proxy.close();
    }
  });

  it("behavior: mining stopped for it (base fee above its max fee): replaced with a bumped fee after N blocks, then mined", async () => {
    await rpc("evm_setAutomine", [false]);
    const { s } = await sender();
    const p = s.send({ to: TO, data: "0x" });
    await untilInFlight(s);
    const first = s.inFlight()!;
    // Blocks keep coming, but at 10 gwei: the first version (≈ 3 gwei max fee) cannot be included.
    const m = await driveUntil(p, () => 10n * GWEI);
    expect(m.bumps).toBeGreaterThanOrEqual(1);
    expect(m.txHash).not.toBe(first.txHash);
    expect(await rpc("eth_getTransactionReceipt", [first.txHash])).toBeNull();
    expect(s.counters.bumps).toBeGreaterThanOrEqual(1);
    const mined = await rpc<{ maxFeePerGas: string }>("eth_getTransactionByHash", [m.txHash]);
    expect(BigInt(mined.maxFeePerGas)).toBeGreaterThanOrEqual((first.maxFeePerGas * 1125n) / 1000n);
    expect(BigInt(mined.maxFeePerGas)).toBeLessThanOrEqual(50n * GWEI);
    expect(m.nonce).toBe(first.nonce);
  });

  it("behavior: waiting through many polls on a long-lived abort signal leaves no listener behind", async () => {
    await rpc("evm_setAutomine", [false]);
    const { s } = await sender();
    const ac = new AbortController();
    const p = s.send({ to: TO, data: "0x", signal: ac.signal });
    await untilInFlight(s);
    // Several polls (10 ms each) while nothing is mined.
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 25));
    expect(getEventListeners(ac.signal, "abort").length).toBeLessThanOrEqual(1);
    await rpc("evm_mine");
    await p;
    expect(getEventListeners(ac.signal, "abort")).toHaveLength(0);
  });

  it("behavior: a transaction mined but reverted still reports its cost (onCost) before send rejects: its gas was paid", async () => {
    await rpc("evm_setAutomine", [false]);
    const { s, key } = await sender();
    const target = Wallet.createRandom().address; // no code at estimation: the estimate passes
    const paid: Parameters<NonNullable<Parameters<TxSender["send"]>[0]["onCost"]>>[0][] = [];
    const p = s.send({ to: target, data: "0x01", onCost: (c) => paid.push(c) });
    p.catch(() => {});
    await untilInFlight(s);
    // Code that reverts (PUSH1 0 PUSH1 0 REVERT) appears before the block is mined.
    await rpc("anvil_setCode", [target, "0x60006000fd"]);
    await expect(driveUntil(p, () => GWEI)).rejects.toThrow();
    const r = await rpc<{ status: string; gasUsed: string; effectiveGasPrice: string; from: string }>(
      "eth_getTransactionReceipt",
      [paid[0]?.txHash],
    );
    expect(r.status).toBe("0x0");
    expect(r.from.toLowerCase()).toBe(new Wallet(key).address.toLowerCase());
    expect(paid).toEqual([
      {
        txHash: paid[0]!.txHash,
        gasUsed: BigInt(r.gasUsed),
        l1FeeWei: null,
        costWei: BigInt(r.gasUsed) * BigInt(r.effectiveGasPrice),
      },
    ]);
    expect(paid[0]!.costWei).toBeGreaterThan(0n);
  });

  it("behavior: a dropped transaction (anvil_dropTransaction) is sent again with the same nonce and mined", async () => {
    await rpc("evm_setAutomine", [false]);
    const { s } = await sender();
    const p = s.send({ to: TO, data: "0x" });
    await untilInFlight(s);
    const { txHash: dropped, nonce } = s.inFlight()!;
    await rpc("anvil_dropTransaction", [dropped]);
    expect(await rpc("eth_getTransactionByHash", [dropped])).toBeNull();
    const m = await driveUntil(p, () => GWEI / 2n);
    expect(await rpc("eth_getTransactionReceipt", [m.txHash])).not.toBeNull();
    expect(m.nonce).toBe(nonce);
    expect(s.counters.bumps + s.counters.rebroadcasts).toBeGreaterThanOrEqual(1);
  });

  it("behavior: at the fee caps under a base fee above them: it keeps waiting (the node refuses the rebroadcast as fee-too-low), and is mined once the base fee falls", async () => {
    await rpc("evm_setAutomine", [false]);
    await mineAt(GWEI / 2n);
    const { s } = await sender({ caps: { maxFeePerGas: 2n * GWEI, maxPriorityFeePerGas: GWEI } });
    const p = s.send({ to: TO, data: "0x" });
    await untilInFlight(s);
    const v = s.inFlight()!;
    expect(v.maxFeePerGas).toBe(2n * GWEI);
    let high = true;
    const mined = driveUntil(p, () => (high ? 3n * GWEI : GWEI / 4n));
    await vi.waitFor(() => expect(s.counters.rebroadcasts).toBeGreaterThanOrEqual(1), {
      timeout: 20_000,
      interval: 10,
    });
    expect(s.inFlight()?.atCap).toBe(true);
    // The blocks that came while it waited are seen (the stall check's head): newer, seen later.
    expect(s.inFlight()!.headBlock).toBeGreaterThan(v.sentAtBlock);
    expect(s.inFlight()!.headSeenAtMs).toBeGreaterThan(v.sentAtMs);
    expect(s.inFlight()!.sentAtMs).toBe(v.sentAtMs);
    high = false;
    const m = await mined;
    expect(m.txHash).toBe(v.txHash); // the one transaction, never replaced
    expect(m.bumps).toBe(0);
  });

  it("behavior: a fee bump stops at the remaining daily budget: the mined version's worst case stays within it", async () => {
    await rpc("evm_setAutomine", [false]);
    await mineAt(GWEI / 2n);
    const { s } = await sender();
    // A transfer's gas limit is 21000 + 20 % margin; the budget allows a max fee of 5 gwei for it,
    // a tenth of the configured 50 gwei cap.
    const gasLimit = 25_200n;
    const budget = { spentWei: 1_000n, capWei: 1_000n + gasLimit * 5n * GWEI };
    const p = s.send({ to: TO, data: "0x", budget });
    await untilInFlight(s);
    const first = s.inFlight()!;
    expect(first.maxFeePerGas).toBeLessThan(4n * GWEI);
    // At a 4 gwei base fee the first version cannot be included, and the market bump would be
    // 2 × 4 gwei + tip; the budget holds it at 5 gwei, which is still enough to be mined.
    const m = await driveUntil(p, () => 4n * GWEI);
    expect(m.bumps).toBeGreaterThanOrEqual(1);
    expect(m.txHash).not.toBe(first.txHash);
    const tx = await rpc<{ maxFeePerGas: string; gas: string }>("eth_getTransactionByHash", [m.txHash]);
    expect(BigInt(tx.gas)).toBe(gasLimit);
    expect(BigInt(tx.maxFeePerGas)).toBe(5n * GWEI);
    expect(budget.spentWei + m.costWei).toBeLessThanOrEqual(budget.capWei);
  });

  it("error: a concurrent sender with the same key takes the nonce: NonceTooLowError after checking none of ours was mined", async () => {
    await rpc("evm_setAutomine", [false]);
    const { s, key } = await sender();
    const p = s.send({ to: TO, data: "0x" });
    await untilInFlight(s);
    const ours = s.inFlight()!;
    const other = await new Wallet(key).signTransaction({
      type: 2,
      chainId: 31337n,
      nonce: ours.nonce,
      to: TO,
      value: 7n,
      gasLimit: 21000n,
      maxFeePerGas: ours.maxFeePerGas * 2n,
      maxPriorityFeePerGas: ours.maxPriorityFeePerGas * 2n,
    });
    const otherHash = await rpc<string>("eth_sendRawTransaction", [other]);
    const err = await driveUntil(p, () => GWEI / 2n).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonceTooLowError);
    expect((err as NonceTooLowError).code).toBe("CHAIN_NONCE_TOO_LOW");
    expect((err as Error).message).toMatch(
      new RegExp(`nonce ${ours.nonce} of .* was used by another transaction`),
    );
    expect(await rpc("eth_getTransactionReceipt", [otherHash])).not.toBeNull();
  });

  it("error: a base fee above the max fee cap is a FeeCapError before anything is sent", async () => {
    await rpc("evm_setAutomine", [false]);
    await mineAt(5n * GWEI);
    const { s, key } = await sender({ caps: { maxFeePerGas: GWEI, maxPriorityFeePerGas: GWEI / 10n } });
    const err = await s.send({ to: TO, data: "0x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FeeCapError);
    expect((err as Error).message).toMatch(
      /base fee is 5 gwei, above the cap of 1 gwei \(chain\.maxFeePerGasGwei\)/,
    );
    expect(await rpc("eth_getTransactionCount", [new Wallet(key).address, "pending"])).toBe("0x0");
    expect(s.counters.feeCapped).toBe(1);
    await mineAt(GWEI / 2n);
  });

  it("error: a worst case above the remaining daily budget is a SpendCapError before anything is sent", async () => {
    const { s } = await sender();
    const err = await s
      .send({ to: TO, data: "0x", budget: { spentWei: 900n, capWei: 1000n } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpendCapError);
    expect((err as Error).message).toMatch(
      /spent 0\.0000000000000009 ETH today; .* over the daily cap of 0\.000000000000001 ETH/,
    );
  });

  it("error: an account without funds is InsufficientFundsError", async () => {
    const s = new TxSender({
      rpc: pool,
      privateKey: "0x" + "42".repeat(32),
      chainId: 31337n,
      caps: { maxFeePerGas: 50n * GWEI, maxPriorityFeePerGas: 2n * GWEI },
    });
    await expect(s.send({ to: TO, data: "0x" })).rejects.toBeInstanceOf(InsufficientFundsError);
  });
});

describe("TxSender when blocks are full (anvil --gas-limit 30000: one transfer per block)", () => {
  let full: Anvil;
  beforeAll(async () => {
    full = await startAnvil({ gasLimit: 30_000n });
  });
  afterAll(async () => full?.stop());

  it("behavior: outbid in every block and at the fee caps, the same transaction is broadcast again ('already known' handled), and mined when the blocks clear", async () => {
    const call = <T = unknown>(m: string, p: unknown[] = []): Promise<T> => jsonRpc<T>(full.url, m, p);
    const fp = new RpcPool({ urls: [full.url], healthCheckIntervalMs: 0 });
    try {
      await call("evm_setAutomine", [false]);
      const s = new TxSender({
        rpc: fp,
        privateKey: ANVIL_DEV_KEYS[6],
        chainId: 31337n,
        caps: { maxFeePerGas: 5n * GWEI, maxPriorityFeePerGas: GWEI / 10n },
        bumpAfterBlocks: 2,
        pollMs: 10,
      });
      const p = s.send({ to: TO, data: "0x" });
      let settled = false;
      p.then(
        () => (settled = true),
        () => (settled = true),
      );
      await vi.waitFor(() => expect(s.inFlight()).toBeTruthy(), { timeout: 20_000, interval: 5 });
      const v = s.inFlight()!;
      expect(v.maxPriorityFeePerGas).toBe(GWEI / 10n); // the tip is at its cap from the start
      const filler = new Wallet(ANVIL_DEV_KEYS[7]);
      let fillerNonce = 0;
      // Each block holds one transfer: a filler tipping 3 gwei wins it until we stop.
      while (s.counters.alreadyKnown < 1) {
        await call("eth_sendRawTransaction", [
          await filler.signTransaction({
            type: 2,
            chainId: 31337n,
            nonce: fillerNonce++,
            to: TO,
            value: 1n,
            gasLimit: 21000n,
            maxFeePerGas: 20n * GWEI,
            maxPriorityFeePerGas: 3n * GWEI,
          }),
        ]);
        await call("evm_mine");
        await new Promise((r) => setTimeout(r, 30));
        expect(settled).toBe(false);
      }
      expect(s.counters.rebroadcasts).toBeGreaterThanOrEqual(1);
      expect(s.inFlight()?.atCap).toBe(true);
      while (!settled) {
        await call("evm_mine");
        await new Promise((r) => setTimeout(r, 30));
      }
      const m = await p;
      expect(m.txHash).toBe(v.txHash);
    } finally {
      fp.close();
    }
  });

  it("behavior: a stuck transaction of the account (outbid; e.g. sent before a restart) is taken over; 'replacement underpriced' raises the fee until the node accepts", async () => {
    const call = <T = unknown>(m: string, p: unknown[] = []): Promise<T> => jsonRpc<T>(full.url, m, p);
    const fp = new RpcPool({ urls: [full.url], healthCheckIntervalMs: 0 });
    try {
      await call("evm_setAutomine", [false]);
      // Full blocks raise the base fee 5 % per block: start this test from 1 gwei.
      await call("anvil_setNextBlockBaseFeePerGas", [`0x${GWEI.toString(16)}`]);
      await call("evm_mine");
      const key = ANVIL_DEV_KEYS[8];
      const w = new Wallet(key);
      const filler = new Wallet(ANVIL_DEV_KEYS[9]);
      let fillerNonce = Number(
        BigInt(await call<string>("eth_getTransactionCount", [filler.address, "pending"])),
      );
      const fill = async (): Promise<void> => {
        await call("eth_sendRawTransaction", [
          await filler.signTransaction({
            type: 2,
            chainId: 31337n,
            nonce: fillerNonce++,
            to: TO,
            value: 1n,
            gasLimit: 21000n,
            maxFeePerGas: 40n * GWEI,
            maxPriorityFeePerGas: 3n * GWEI,
          }),
        ]);
        await call("evm_mine");
        await new Promise((r) => setTimeout(r, 20));
      };
      const nonce = Number(BigInt(await call<string>("eth_getTransactionCount", [w.address, "latest"])));
      // Tip 1.5 gwei (above the sender's first offer of 1 gwei), max fee 20 gwei: outbid by the filler.
      const stuckHash = await call<string>("eth_sendRawTransaction", [
        await w.signTransaction({
          type: 2,
          chainId: 31337n,
          nonce,
          to: TO,
          value: 1n,
          gasLimit: 21000n,
          maxFeePerGas: 20n * GWEI,
          maxPriorityFeePerGas: (3n * GWEI) / 2n,
        }),
      ]);
      await fill();
      expect(await call("eth_getTransactionReceipt", [stuckHash])).toBeNull();
      const s = new TxSender({
        rpc: fp,
        privateKey: key,
        chainId: 31337n,
        caps: { maxFeePerGas: 50n * GWEI, maxPriorityFeePerGas: 2n * GWEI },
        bumpAfterBlocks: 2,
        pollMs: 10,
      });
      const p = s.send({ to: TO, data: "0x" });
      let settled = false;
      p.then(
        () => (settled = true),
        () => (settled = true),
      );
      // While it waits for the pending one, the wait is visible (AnchorService shows a halted chain).
      await vi.waitFor(() => expect(s.pendingWait()).toMatchObject({ nonce }), {
        timeout: 10_000,
        interval: 10,
      });
      while (!s.inFlight() && !settled) await fill(); // it waits 2 blocks for the pending one, then takes over
      expect(s.pendingWait()).toBeNull();
      if (!s.inFlight()) await p;
      expect(s.counters.takeovers).toBe(1);
      expect(s.counters.underpriced).toBeGreaterThanOrEqual(1);
      expect(s.inFlight()!.nonce).toBe(nonce);
      while (!settled) {
        await call("evm_mine");
        await new Promise((r) => setTimeout(r, 20));
      }
      const m = await p;
      expect(m.nonce).toBe(nonce);
      expect(await call("eth_getTransactionReceipt", [stuckHash])).toBeNull();
      // It replaced the stuck one by paying more on both fees (anvil's rule; geth asks +10 % on each).
      const tx = await call<{ maxFeePerGas: string; maxPriorityFeePerGas: string }>(
        "eth_getTransactionByHash",
        [m.txHash],
      );
      expect(BigInt(tx.maxFeePerGas)).toBeGreaterThan(20n * GWEI);
      expect(BigInt(tx.maxPriorityFeePerGas)).toBeGreaterThan((3n * GWEI) / 2n);
    } finally {
      fp.close();
    }
  });
});

describe("node messages become typed errors", () => {
  it.each([
    ["nonce too low", NonceTooLowError],
    ["nonce too low: next nonce 5, tx nonce 4", NonceTooLowError],
    ["OldNonce", NonceTooLowError],
    ["already known", AlreadyKnownError],
    ["transaction already imported", AlreadyKnownError], // anvil
    ["known transaction: 0xabc", AlreadyKnownError],
    ["replacement transaction underpriced", ReplacementUnderpricedError],
    ["ReplacementUnderpriced", ReplacementUnderpricedError],
    ["insufficient funds for gas * price + value", InsufficientFundsError],
    ["max fee per gas less than block base fee", FeeTooLowError], // anvil
    ["fee cap less than block base fee", FeeTooLowError],
  ])("behavior: %j", (msg, cls) => {
    expect(nodeMessageError(msg)).toBeInstanceOf(cls);
  });
});

describe("OP-Stack L1 data fee", () => {
  let op: Anvil;
  beforeAll(async () => {
    op = await startAnvil({ network: "optimism" });
  });
  afterAll(async () => op?.stop());

  it("behavior: read from the GasPriceOracle predeploy and reported beside L2 gas; absent predeploy = no L1 fee", async () => {
    const p = new RpcPool({ urls: [op.url], healthCheckIntervalMs: 0 });
    try {
      expect(await detectL1FeeSource(p)).toBeNull();
      await installOpPredeploys(op.url);
      const l1 = await detectL1FeeSource(p);
      expect(l1).not.toBeNull();
      const s = new TxSender({
        rpc: p,
        privateKey: ANVIL_DEV_KEYS[5],
        chainId: 31337n,
        caps: { maxFeePerGas: 50n * GWEI, maxPriorityFeePerGas: 2n * GWEI },
        l1Fee: l1,
        pollMs: 10,
      });
      // About an anchor's calldata: 400 bytes.
      const data = "0x" + "ab".repeat(200);
      const m: MinedTx = await s.send({ to: TO, data });
      expect(m.l1FeeWei).not.toBeNull();
      expect(m.l1FeeWei!).toBeGreaterThan(0n);
      expect(m.costWei).toBe(m.gasUsed * m.effectiveGasPrice + m.l1FeeWei!);
      // Independently: the oracle's answer for the unsigned transaction at the block it was mined in.
      const tx = await jsonRpc<Record<string, string>>(op.url, "eth_getTransactionByHash", [m.txHash]);
      const unsigned = Transaction.from({
        type: 2,
        chainId: 31337n,
        nonce: Number(BigInt(tx.nonce!)),
        to: tx.to!,
        data: tx.input!,
        value: 0n,
        gasLimit: BigInt(tx.gas!),
        maxFeePerGas: BigInt(tx.maxFeePerGas!),
        maxPriorityFeePerGas: BigInt(tx.maxPriorityFeePerGas!),
      }).unsignedSerialized;
      const gpo = new Interface(["function getL1Fee(bytes) view returns (uint256)"]);
      const out = await jsonRpc<string>(op.url, "eth_call", [
        { to: GAS_PRICE_ORACLE, data: gpo.encodeFunctionData("getL1Fee", [unsigned]) },
        `0x${m.blockNumber.toString(16)}`,
      ]);
      expect(BigInt(out)).toBe(m.l1FeeWei);
    } finally {
      p.close();
    }
  });
});
