/**
 * The registry client over an RPC pool (EthersRegistryClient.overRpc, chain/pool-provider.ts)
 * against the same client over one URL (EthersRegistryClient.connect, ethers' JsonRpcProvider):
 * reads decode the same, a contract revert (in eth_call and in eth_estimateGas before a send)
 * becomes the same typed error, a dead endpoint the same ChainNetworkError. The node is a scripted
 * JSON-RPC server on loopback; the pool a real RpcPool. A fake RpcClient shows requests go one by
 * one, none before the first call, and that the pool's typed error reaches the caller as is.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Interface, Wallet, keccak256 } from "ethers";
import { afterEach, describe, expect, it } from "vitest";
import { VigilRegistryArtifact, VigilReleasesArtifact } from "../../contracts/artifacts/index.ts";
import { ANVIL_DEV_KEYS } from "../../gateway/src/chain/anvil.ts";
import {
  AlreadyKnownError,
  ChainNetworkError,
  ContractRevertError,
  RpcTimeoutError,
} from "../../gateway/src/chain/errors.ts";
import { RpcClientProvider } from "../../gateway/src/chain/pool-provider.ts";
import { CONTRACT_IFACES, EthersRegistryClient } from "../../gateway/src/chain/ethers-client.ts";
import { RpcPool, type RpcClient } from "../../gateway/src/chain/rpc.ts";
import type { Hex } from "../../gateway/src/core/hex.ts";

const registryIface = new Interface(VigilRegistryArtifact.abi as never);
const releasesIface = new Interface(VigilReleasesArtifact.abi as never);
const REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const RELEASES = "0xe7f1725e7734ce288f8367e1bb143e5bb3f0512a";
const GW = `0x${"ab".repeat(32)}` as Hex;
const HEAD = `0x${"cd".repeat(32)}`;
const CHAIN = 31337n;

type Answer = { result: unknown } | { error: { code: number; message: string; data?: string } };

/** A JSON-RPC node on loopback answering `answer(method, params)`; records the methods asked. */
async function scriptedNode(answer: (method: string, params: unknown[]) => Answer) {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        id: number;
        method: string;
        params: unknown[];
      };
      seen.push(body.method);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: body.id, ...answer(body.method, body.params) }));
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = (): Promise<void> => new Promise((ok) => server.close(() => ok()));
  return { url, seen, close };
}

/** A loopback URL nothing listens on. */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, "127.0.0.1", ok));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return `http://127.0.0.1:${port}`;
}

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const settings = {
  privateKey: ANVIL_DEV_KEYS[1]!,
  registry: REGISTRY,
  releases: RELEASES,
  pollingIntervalMs: 20,
};

/** The client over one URL (as before) and over an RpcPool of that URL (with the client's ABIs). */
async function bothClients(
  url: string,
): Promise<{ single: EthersRegistryClient; pooled: EthersRegistryClient }> {
  const single = await EthersRegistryClient.connect({ rpcUrl: url, chainId: CHAIN, ...settings });
  const pool = new RpcPool({ urls: [url], healthCheckIntervalMs: 0, ifaces: CONTRACT_IFACES });
  const pooled = EthersRegistryClient.overRpc({ rpc: pool, chainId: CHAIN, ...settings });
  cleanup.push(
    () => single.close(),
    () => pooled.close(),
    () => pool.close(),
  );
  return { single, pooled };
}

/** What a rejection looks like to a caller: class, code, and for reverts the decoded error. */
async function failureOf(p: Promise<unknown>) {
  const e = await p.then(
    () => expect.fail("expected a rejection"),
    (x: unknown) => x,
  );
  return {
    class: (e as Error).constructor.name,
    code: (e as ContractRevertError).code,
    errorName: (e as ContractRevertError).errorName,
    args: (e as ContractRevertError).args,
  };
}

describe("EthersRegistryClient over an RPC pool", () => {
  it("behavior: a read decodes the same as over one URL", async () => {
    const node = await scriptedNode((method, params) => {
      if (method !== "eth_call") return { error: { code: -32601, message: `no ${method}` } };
      const call = params[0] as { to: string; data: string };
      expect(call.to.toLowerCase()).toBe(REGISTRY.toLowerCase());
      expect(registryIface.parseTransaction({ data: call.data })!.name).toBe("headOf");
      return { result: registryIface.encodeFunctionResult("headOf", [5n, HEAD]) };
    });
    cleanup.push(node.close);
    const { single, pooled } = await bothClients(node.url);
    const want = { seq: 5n, head: HEAD };
    expect(await single.getHead(GW)).toEqual(want);
    expect(await pooled.getHead(GW)).toEqual(want);
    expect(node.seen).toEqual(["eth_call", "eth_call"]);
  });

  it("error: a custom error in eth_call decodes to the same ContractRevertError as over one URL", async () => {
    const data = releasesIface.encodeErrorResult("ReleaseUnknown", [7n]);
    const node = await scriptedNode(() => ({ error: { code: 3, message: "execution reverted", data } }));
    cleanup.push(node.close);
    const { single, pooled } = await bothClients(node.url);
    const before = await failureOf(single.getRelease(7n));
    expect(before).toEqual({
      class: "ContractRevertError",
      code: "CHAIN_REVERT",
      errorName: "ReleaseUnknown",
      args: [7n],
    });
    expect(await failureOf(pooled.getRelease(7n))).toEqual(before);
  });

  it("error: a custom error while estimating gas for a send decodes the same, and the next send refetches the nonce", async () => {
    const data = releasesIface.encodeErrorResult("UnexpectedNonce", [GW, 3n, 1n]);
    const node = await scriptedNode((method) => {
      if (method === "eth_getTransactionCount") return { result: "0x4" };
      if (method === "eth_estimateGas") return { error: { code: 3, message: "execution reverted", data } };
      return { error: { code: -32601, message: `no ${method}` } };
    });
    cleanup.push(node.close);
    const { single, pooled } = await bothClients(node.url);
    const sig = `0x${"11".repeat(65)}` as Hex;
    const before = await failureOf(single.reportInstalled(GW, 2n, 1n, sig));
    expect(before).toMatchObject({ class: "ContractRevertError", errorName: "UnexpectedNonce" });
    expect(before.args).toEqual([GW, 3n, 1n]);
    const asked = node.seen.splice(0);
    expect(asked).toContain("eth_estimateGas");
    expect(await failureOf(pooled.reportInstalled(GW, 2n, 1n, sig))).toEqual(before);
    expect(node.seen.splice(0)).toEqual(asked); // the same requests as over one URL
    // Again: the nonce is asked for again (the failure reset it), then the same revert.
    expect(await failureOf(pooled.reportInstalled(GW, 2n, 1n, sig))).toEqual(before);
    expect(node.seen).toEqual(asked);
  });

  it("error: a send to a dead endpoint fails with ChainNetworkError and leaves no unhandled rejection behind", async () => {
    // Vitest fails the run on an unhandled rejection: ethers' NonceManager left one when both its
    // nonce request and gas estimation failed (ethers-client.ts send).
    const { single, pooled } = await bothClients(await deadUrl());
    const sig = `0x${"11".repeat(65)}` as Hex;
    const before = await failureOf(single.reportInstalled(GW, 2n, 1n, sig));
    expect(before).toMatchObject({ class: "ChainNetworkError", code: "CHAIN_NETWORK" });
    expect(await failureOf(pooled.reportInstalled(GW, 2n, 1n, sig))).toEqual(before);
  });

  it("error: a dead endpoint gives the same ChainNetworkError as over one URL", async () => {
    const { single, pooled } = await bothClients(await deadUrl());
    const before = await failureOf(single.getHead(GW));
    expect(before).toMatchObject({ class: "ChainNetworkError", code: "CHAIN_NETWORK" });
    expect(await failureOf(pooled.getHead(GW))).toEqual(before);
    await expect(pooled.now()).rejects.toBeInstanceOf(ChainNetworkError);
  });

  it("behavior: with the first endpoint dead, a read is served by the second", async () => {
    const node = await scriptedNode(() => ({
      result: registryIface.encodeFunctionResult("headOf", [9n, HEAD]),
    }));
    cleanup.push(node.close);
    const pool = new RpcPool({ urls: [await deadUrl(), node.url], healthCheckIntervalMs: 0 });
    const c = EthersRegistryClient.overRpc({ rpc: pool, chainId: CHAIN, ...settings });
    cleanup.push(
      () => c.close(),
      () => pool.close(),
    );
    expect(await c.getHead(GW)).toEqual({ seq: 9n, head: HEAD });
    expect(pool.status()).toMatchObject({ current: 1, failovers: 1 });
  });
});

describe("RpcClientProvider over a fake RpcClient", () => {
  /** An RpcClient that answers `eth_call` with headOf and records every request. */
  function fakeRpc(fail?: Error) {
    const requests: Array<{ method: string; params: readonly unknown[] }> = [];
    let closed = false;
    const rpc: RpcClient = {
      currentUrl: "http://fake.invalid/",
      request: <T>(method: string, params: readonly unknown[] = []): Promise<T> => {
        requests.push({ method, params });
        if (fail) return Promise.reject(fail);
        return Promise.resolve(registryIface.encodeFunctionResult("headOf", [1n, HEAD]) as T);
      },
      close: () => {
        closed = true;
      },
    };
    return { rpc, requests, closed: () => closed };
  }

  it("behavior: nothing is asked before the first call; concurrent calls go one request each; close leaves the connection to its owner", async () => {
    const f = fakeRpc();
    const c = EthersRegistryClient.overRpc({ rpc: f.rpc, chainId: CHAIN, ...settings });
    expect(c.chainId).toBe(CHAIN);
    expect(f.requests).toEqual([]); // the network is the deployment's: no eth_chainId
    const heads = await Promise.all([c.getHead(GW), c.getHead(GW), c.getHead(GW)]);
    expect(heads).toEqual(Array(3).fill({ seq: 1n, head: HEAD }));
    expect(f.requests.map((r) => r.method)).toEqual(["eth_call", "eth_call", "eth_call"]);
    await c.close();
    expect(f.closed()).toBe(false);
    await expect(c.getHead(GW)).rejects.toThrow();
    expect(f.requests).toHaveLength(3); // a closed client sends nothing
  });

  it('behavior: "already known" for a transaction resent after a timeout is that transaction sent: its hash, not an error', async () => {
    // A node that already has the transaction, and is at block 16 (broadcast asks for it too).
    const rpc: RpcClient = {
      currentUrl: "http://fake.invalid/",
      request: <T>(method: string): Promise<T> =>
        method === "eth_sendRawTransaction"
          ? Promise.reject(new AlreadyKnownError())
          : method === "eth_blockNumber"
            ? Promise.resolve("0x10" as T)
            : Promise.reject(new AlreadyKnownError()),
      close: () => undefined,
    };
    const provider = new RpcClientProvider(rpc, CHAIN);
    cleanup.push(() => provider.destroy());
    const wallet = new Wallet(ANVIL_DEV_KEYS[1]);
    const signed = await wallet.signTransaction({
      to: wallet.address,
      nonce: 3,
      chainId: CHAIN,
      gasLimit: 21_000n,
      maxFeePerGas: 10n ** 9n,
      maxPriorityFeePerGas: 1n,
      type: 2,
    });
    const sent = await provider.broadcastTransaction(signed);
    expect(sent.hash).toBe(keccak256(signed));
    // Any other method's error is not an answer.
    await expect(provider.getBalance(wallet.address)).rejects.toBeInstanceOf(AlreadyKnownError);
  });

  it("error: the connection's typed error reaches the caller as the same object (translated once, by the pool)", async () => {
    const thrown = new RpcTimeoutError("http://fake.invalid/", 10);
    const f = fakeRpc(thrown);
    const c = EthersRegistryClient.overRpc({ rpc: f.rpc, chainId: CHAIN, ...settings });
    cleanup.push(() => c.close());
    await expect(c.getHead(GW)).rejects.toBe(thrown);
    await expect(c.reportInstalled(GW, 1n, 0n, `0x${"11".repeat(65)}`)).rejects.toBe(thrown);
  });
});
