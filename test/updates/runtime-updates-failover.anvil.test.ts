// The update agents over the gateway's RPC pool (chain.rpcUrl + chain.rpcUrls), as runtime.ts
// wires them, on anvil: with the first endpoint dead from the start (a closed port, and
// chain.rpcUrls only), or killed while the gateway runs (a proxy in front of anvil, closed), an
// update check finds the approved release, the model is swapped in while frames flow, and the
// install report lands on chain through the second endpoint. And with the first endpoint alive but
// lagging (a replica stopped before the release existed), the pool's health probe skips it and
// the check sees the release through the second.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startAnvil, type Anvil } from "../../gateway/src/chain/anvil.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { jsonRpc } from "../anchor/chain-rig.ts";
import { startRpcProxy, type RpcProxy } from "../anchor/rpc-proxy.ts";
import {
  GATEWAY_ID,
  PROFILE,
  UPDATES,
  approve,
  chainRig,
  engines,
  gateway,
  propose,
  releaseFolder,
  type ChainRig,
} from "./rig.ts";

let r: ChainRig | undefined;
let rt: Runtime | undefined;
let proxy: RpcProxy | undefined;
let replica: Anvil | undefined;
afterEach(async () => {
  await rt?.stop();
  await proxy?.close();
  await replica?.stop();
  replica = undefined;
  await r?.close();
  rt = undefined;
  r = undefined;
  proxy = undefined;
});

/** A loopback URL nothing listens on. */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, "127.0.0.1", ok));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return `http://127.0.0.1:${port}`;
}

/** Engines stream; a release is proposed and approved; one check installs it and reports it on chain. */
async function installThroughPool(rig: ChainRig, runtime: Runtime): Promise<void> {
  const run = engines(runtime.embedded!.url, 6).run();
  await expect.poll(() => runtime.loop!.counters.windowsRun, { timeout: 10_000 }).toBeGreaterThan(20);
  const rel = releaseFolder({ profile: PROFILE, version: "3.1.0" });
  const id = await propose(rig, { profile: PROFILE, ...rel });
  await approve(rig, id);
  const agent = runtime.updates!.model!;
  await runtime.updates!.check();
  expect(agent.status().lastCheckError).toBeUndefined();
  expect(`0x${runtime.loop!.models[0]!.sha256}`).toBe((await rig.gateway.getRelease(id))!.contentHash);
  await expect.poll(() => agent.counters.installs, { timeout: 10_000 }).toBe(1);
  expect(await rig.gateway.installedRelease(GATEWAY_ID, "model")).toBe(id);
  await run;
}

describe("update agents over the RPC pool, on anvil", () => {
  it("behavior: chain.rpcUrls only, the first endpoint a closed port: the gateway starts, the release is installed and reported through the second", async () => {
    r = await chainRig();
    const chain = {
      rpcUrls: [await deadUrl(), r.chain.anvil.url],
      deployment: "deployment.json",
      confirmations: 1,
    };
    rt = gateway(r, { chain, updates: UPDATES });
    await rt.start();
    await installThroughPool(r, rt);
  });

  it("behavior: the first endpoint killed while the gateway runs: the next check and the install report go through the second", async () => {
    r = await chainRig();
    proxy = await startRpcProxy(r.chain.anvil.url);
    const first = proxy;
    const chain = {
      rpcUrl: first.url,
      rpcUrls: [r.chain.anvil.url],
      deployment: "deployment.json",
      confirmations: 1,
    };
    rt = gateway(r, { chain, updates: UPDATES });
    await rt.start();
    const agent = rt.updates!.model!;
    await expect.poll(() => agent.status().lastCheckMs, { timeout: 10_000 }).toBeDefined(); // the start-up check
    expect(agent.status().lastCheckError).toBeUndefined();
    // The first endpoint served the agents until now (their reads of the release contract).
    const releases = r.chain.deployment.contracts.VigilReleases.address.toLowerCase();
    expect(
      first.seen.some(
        (s) => s.method === "eth_call" && (s.params[0] as { to?: string }).to?.toLowerCase() === releases,
      ),
    ).toBe(true);
    await first.close(); // killed: connections reset, then refused
    proxy = undefined;
    await installThroughPool(r, rt);
  });

  it("behavior: the first endpoint alive but lagging (a replica stopped before the release): the health probe skips it, a check installs the release through the second", async () => {
    r = await chainRig();
    // Same chain and hashes up to now, then nothing: it never sees the release below.
    const forkBlock = Number(await jsonRpc(r.chain.anvil.url, "eth_blockNumber"));
    replica = await startAnvil({
      extraArgs: ["--fork-url", r.chain.anvil.url, "--fork-block-number", String(forkBlock)],
    });
    await jsonRpc(r.chain.anvil.url, "anvil_mine", ["0x1e"]); // 30 blocks ahead of the replica
    const chain = {
      rpcUrl: replica.url, // the preferred endpoint
      rpcUrls: [r.chain.anvil.url],
      deployment: "deployment.json",
      confirmations: 1,
      healthCheckIntervalMs: 200,
      maxLagBlocks: 5,
    };
    // No batch is anchored meanwhile (a transaction sent to the replica would move it on).
    const attest = { gatewayId: GATEWAY_ID, gatewayName: "g1", batchIntervalMs: 3_600_000 };
    rt = gateway(r, { chain, attest, updates: UPDATES });
    await rt.start();
    const runtime = rt;
    const run = engines(runtime.embedded!.url, 6).run();
    await expect.poll(() => runtime.loop!.counters.windowsRun, { timeout: 10_000 }).toBeGreaterThan(20);
    const rel = releaseFolder({ profile: PROFILE, version: "3.1.0" });
    const id = await propose(r, { profile: PROFILE, ...rel });
    await approve(r, id);
    const contentHash = (await r.gateway.getRelease(id))!.contentHash;
    // A check against the replica finds no release; once the probe skips it, one installs it.
    await expect
      .poll(
        async () => {
          await runtime.updates!.check();
          return `0x${runtime.loop!.models[0]!.sha256}`;
        },
        { timeout: 20_000, interval: 100 },
      )
      .toBe(contentHash);
    await expect.poll(() => r!.gateway.installedRelease(GATEWAY_ID, "model"), { timeout: 10_000 }).toBe(id);
    // The replica stayed where it was: nothing was sent to it.
    expect(Number(await jsonRpc(replica.url, "eth_blockNumber"))).toBe(forkBlock);
    await run;
  });
});
