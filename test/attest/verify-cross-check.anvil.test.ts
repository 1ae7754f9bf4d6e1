/**
 * `vigil verify --cross-check` against a lying endpoint, on two anvils.
 *
 * The liar is a chain with the same chain id where the registry was deployed by the same account at
 * the same nonce, so at the same address as the real one (anvil's development keys are public; on a
 * real chain the liar is a JSON-RPC endpoint that fabricates answers). There the gateway id is
 * registered to an attacker's key and a made-up batch is anchored. Asked alone, the liar makes the
 * forgery verify on chain against the pinned deployment; cross-checked with an honest endpoint, it
 * fails CHAIN_DISAGREE, and so does the genuine receipt.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hex } from "../../gateway/src/core/hex.ts";
import { ReceiptBuilder, type AnyReceipt } from "../../gateway/src/attest/receipt.ts";
import { jsonFile, verifyCli } from "./verify-cli.ts";
import { pipeline, startChainRig, type ChainRig } from "../anchor/chain-rig.ts";

const GW = ("0x" + "77".repeat(32)) as Hex;
let dir: string;
let honest: ChainRig;
let liar: ChainRig;
let real: AnyReceipt;
let forged: AnyReceipt;

const cli = verifyCli;
const file = (name: string, doc: unknown): string => jsonFile(dir, name, doc);
/** `vigil verify` of `receipt` against the honest deployment, asking `urls` (each a --rpc), cross-checked. */
const crossChecked = (name: string, receipt: AnyReceipt, urls: string[], ...more: string[]) =>
  cli([
    file(name, receipt),
    "--deployment",
    honest.deploymentFile,
    ...urls.flatMap((u) => ["--rpc", u]),
    "--cross-check",
    ...more,
  ]);

/** Registers GW in `rig` with a fresh key, seals 10 frames into one batch and anchors it. */
async function anchoredReceipt(rig: ChainRig): Promise<AnyReceipt> {
  const signer = await rig.registerGateway(GW);
  const p = await pipeline(rig, signer, GW, { maxLeaves: 10, device: 0x2a });
  await p.ingest(10);
  await p.sealAll();
  const svc = p.service({}, { confirmations: 1 });
  expect(await svc.runOnce()).toBe(1);
  await svc.stop();
  return new ReceiptBuilder(p.store).forSeq(0x2a, 4);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-cross-"));
  honest = await startChainRig(mkdtempSync(join(dir, "honest-")));
  liar = await startChainRig(mkdtempSync(join(dir, "liar-")));
  // The premise of the test: the liar's registry is where the auditor's deployment file points.
  expect(liar.deployment.contracts.VigilRegistry.address).toBe(
    honest.deployment.contracts.VigilRegistry.address,
  );
  real = await anchoredReceipt(honest);
  forged = await anchoredReceipt(liar);
}, 120_000);

afterAll(async () => {
  await honest?.stop();
  await liar?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("vigil verify --cross-check", () => {
  it("behavior: a lying endpoint alone makes a forgery verify on chain; failover (--rpc twice) asks only the first", async () => {
    const f = file("forged.json", forged);
    const alone = await cli([f, "--deployment", honest.deploymentFile, "--rpc", liar.url]);
    expect(alone.out).toMatch(/verified offline and on chain/);
    expect(alone.code).toBe(0);
    const failover = await cli([
      f,
      "--deployment",
      honest.deploymentFile,
      "--rpc",
      liar.url,
      "--rpc",
      honest.url,
    ]);
    expect(failover.code).toBe(0);
  });

  it("error: cross-checked with an honest endpoint, the forgery and the genuine receipt fail CHAIN_DISAGREE naming each verdict", async () => {
    const forgedRun = await crossChecked("forged.json", forged, [liar.url, honest.url]);
    expect(forgedRun.code).toBe(1);
    expect(forgedRun.out).toMatch(
      new RegExp(
        `CHAIN_DISAGREE: the endpoints disagree.*${liar.url.replace(/[./]/g, "\\$&")}: verified \\(tx 0x[0-9a-f]{64}, block \\d+\\); ${honest.url.replace(/[./]/g, "\\$&")}: WRONG_SIGNER`,
      ),
    );
    const realRun = await crossChecked("real.json", real, [honest.url, liar.url], "--json");
    expect(realRun.code).toBe(1);
    const doc = JSON.parse(realRun.out) as {
      crossChecked: number;
      results: { result: { reason: string } }[];
    };
    expect(doc.crossChecked).toBe(2);
    expect(doc.results[0]!.result.reason).toBe("CHAIN_DISAGREE");
  });

  it("behavior: endpoints that agree pass, with the cross-check named in the steps and the summary", async () => {
    // The same honest node by two names (a second provider of the same chain).
    const other = honest.url.replace("127.0.0.1", "localhost");
    expect(other).not.toBe(honest.url);
    const r = await crossChecked("real.json", real, [honest.url, other]);
    expect(r.out).toMatch(new RegExp(`ok   cross-check +2 endpoints agree`));
    expect(r.out).toMatch(/verified offline and on chain \(cross-checked by 2 endpoints\)/);
    expect(r.code).toBe(0);
  });

  it("error: --cross-check with one --rpc is a usage error (exit 2)", async () => {
    const r = await crossChecked("real.json", real, [honest.url]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /--cross-check asks every --rpc endpoint and compares their answers: give two or more --rpc/,
    );
  });
});
