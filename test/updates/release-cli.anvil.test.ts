// `vigil release` against anvil: publish (sha256, size, CIDv1, manifest check), approve 2-of-3,
// list, revoke; contract errors come out as sentences; --help for each command.
import { renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { JsonRpcProvider } from "ethers";
import { ANVIL_DEV_KEYS, startAnvil } from "../../gateway/src/chain/anvil.ts";
import { generateKey, secp256k1Address } from "../../gateway/src/chain/keys.ts";
import { chainCommand } from "../../gateway/src/cli/chain.ts";
import { bytesToHex } from "../../gateway/src/core/hex.ts";
import { releaseCommand } from "../../gateway/src/cli/release.ts";
import { cidV1 } from "../../gateway/src/updates/cid.ts";
import { targetId } from "../../gateway/src/updates/release-meta.ts";
import { chainRig, releaseFolder, type ChainRig } from "./rig.ts";

let r: ChainRig;
beforeAll(async () => {
  r = await chainRig();
});
afterAll(async () => {
  await r?.close();
});

function capture(): { out: () => string; err: () => string; restore: () => void } {
  let out = "";
  let err = "";
  const o = vi.spyOn(process.stdout, "write").mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, "write").mockImplementation((s) => ((err += String(s)), true));
  return { out: () => out, err: () => err, restore: () => (o.mockRestore(), e.mockRestore()) };
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const cap = capture();
  try {
    const code = await releaseCommand(argv);
    return { code, out: cap.out(), err: cap.err() };
  } finally {
    cap.restore();
  }
}

/** Keys come from 0600 files, never argv (chain/sender-key.ts). */
function keyFile(key: number): string {
  const f = join(r.dataDir, `sender-${key}.key`);
  writeFileSync(f, ANVIL_DEV_KEYS[key]!, { mode: 0o600 });
  return f;
}

/** Where to read: the chain and the deployment file (a listing needs no more). */
const at = (): string[] => ["--rpc", r.chain.anvil.url, "--deployment", join(r.dataDir, "deployment.json")];
const conn = (key: number): string[] => [...at(), "--key-file", keyFile(key)];

describe("vigil release", () => {
  it("behavior: CIDv1 equals what `ipfs add --cid-version=1` prints (Kubo vectors)", async () => {
    // Kubo: `echo "Hello IPFS" | ipfs add --cid-version 1 -q` (kubo test/sharness/t0124 README).
    expect(await cidV1(Buffer.from("Hello IPFS\n"))).toBe(
      "bafkreidfdrlkeq4m4xnxuyx6iae76fdm4wgl5d4xzsb77ixhyqwumhz244",
    );
    expect(await cidV1(Buffer.from("hello world"))).toBe(
      "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
    );
    // Above one 256 KiB chunk: a dag-pb root over raw leaves (Kubo's multi-chunk vectors: cid.test.ts).
    expect(await cidV1(Buffer.alloc(300_000, 1))).toMatch(/^bafybei[a-z2-7]{52}$/);
  });

  it("behavior: --help for every command", async () => {
    for (const cmd of ["publish", "approve", "revoke", "list", "grant-role"]) {
      const res = await run([cmd, "--help"]);
      expect(res.code).toBe(0);
      expect(res.out).toMatch(/usage: vigil release/);
    }
    expect((await run([])).code).toBe(2);
    expect((await run(["frobnicate"])).err).toMatch(/unknown release command/);
  });

  it("behavior: publish → approve 2-of-3 → list → revoke, with contract errors as sentences", async () => {
    const rel = releaseFolder({ profile: "cli-fd001", version: "3.1.0" });
    const pub = await run([
      "publish",
      ...conn(2),
      "--kind",
      "model",
      "--target",
      "cli-fd001",
      "--file",
      rel.file,
      "--manifest",
      rel.manifest,
    ]);
    expect(pub.err).toBe("");
    expect(pub.code).toBe(0);
    expect(pub.out).toMatch(/version +3001000/);
    expect(pub.out).toMatch(/sha256 +452d0ad76086f1824802b9d948695453ba2e5b437a2501251a44d9fc1ac1251a/);
    expect(pub.out).toMatch(/size +375093 bytes/);
    expect(pub.out).toMatch(/cid +bafybei/);
    const id = /proposed release (\d+)/.exec(pub.out)![1]!;
    const onChain = (await r.gateway.getRelease(BigInt(id)))!;
    expect(onChain).toMatchObject({
      kind: "model",
      status: "proposed",
      target: targetId("model", "cli-fd001"),
    });
    expect(onChain.uris[1]).toMatch(/^ipfs:\/\/bafybei/);
    expect(JSON.parse(onChain.metrics)).toMatchObject({
      precision: "int8",
      manifest: { file: "cmapss-fd001-rul.manifest.json" },
    });

    // Self-approval by the proposer, and approval by a non-approver, are refused in sentences.
    const self = await run(["approve", id, ...conn(2)]);
    expect(self.code).toBe(1);
    expect(self.err).toMatch(/lacks|role/i);
    expect((await run(["approve", id, ...conn(3)])).out).toMatch(/it is now proposed with 1 counting/);
    const again = await run(["approve", id, ...conn(3)]);
    expect(again.err).toMatch(/already approved release/);
    expect((await run(["approve", id, ...conn(4)])).out).toMatch(/it is now active with 2 counting/);
    const list = await run(["list", ...at()]);
    expect(list.out).toMatch(new RegExp(`^${id}\\tmodel\\tactive\\t3001000\\t2/2`, "m"));

    // Going backwards on the same target: the contract's sentence.
    const older = releaseFolder({ profile: "cli-fd001", version: "3.0.0" });
    const back = await run([
      "publish",
      ...conn(2),
      "--kind",
      "model",
      "--target",
      "cli-fd001",
      "--file",
      older.file,
      "--manifest",
      older.manifest,
    ]);
    expect(back.code).toBe(1);
    expect(back.err).toMatch(
      /version 3000000 is not above 3001000, the latest model version proposed for target/,
    );

    expect((await run(["revoke", id, "--reason", "recalled", ...conn(2)])).code).toBe(0);
    expect((await run(["list", ...at()])).out).toMatch(new RegExp(`^${id}\\tmodel\\trevoked`, "m"));
    expect((await run(["approve", id, ...conn(5)])).err).toMatch(/is revoked, which does not allow this/);
  });

  it("behavior: list only reads: no sending key on a chain that is not a development chain (as gateway/src/updates/README.md shows it)", async () => {
    // On chain 10 there is no development-key fallback: list used to refuse ("no sending key").
    const op = await startAnvil({ chainId: 10 });
    try {
      const own = generateKey("secp256k1");
      const ownFile = join(r.dataDir, "own-10.key");
      writeFileSync(ownFile, bytesToHex(own.privateKey), { mode: 0o600 });
      const p = new JsonRpcProvider(op.url, undefined, { staticNetwork: true });
      await p.send("anvil_setBalance", [secp256k1Address(own.privateKey), "0x56bc75e2d63100000"]);
      p.destroy();
      const out = join(r.dataDir, "deployment-10.json");
      const cap = capture();
      try {
        expect(await chainCommand(["deploy", "--rpc", op.url, "--key-file", ownFile, "--out", out])).toBe(0);
      } finally {
        cap.restore();
      }
      const args = ["list", "--rpc", op.url, "--deployment", out];
      expect(await run(args)).toEqual({ code: 0, out: "no releases\n", err: "" });
      // A key given to a command that sends nothing would read as used: refused.
      const keyed = await run([...args, "--key-file", ownFile]);
      expect(keyed.code).toBe(2);
      expect(keyed.err).toMatch(
        /^vigil release: --key-file applies only to the commands that send a transaction/,
      );
    } finally {
      await op.stop();
    }
  });

  it("input: a manifest that contradicts the model is refused before anything is sent", async () => {
    const rel = releaseFolder({
      profile: "cli-bad",
      version: "3.1.0",
      edit: (m) => (m.outputs[0]!.shape = ["batch", 2]),
    });
    const res = await run([
      "publish",
      "--dry-run",
      "--kind",
      "model",
      "--target",
      "cli-bad",
      "--file",
      rel.file,
      "--manifest",
      rel.manifest,
    ]);
    expect(res.code).toBe(1);
    expect(res.err).toMatch(/output "rul" has shape \[batch\], the manifest declares \[batch, 2\]/);
    expect((await run(["publish", "--kind", "model", "--target", "x", "--file", rel.file])).err).toMatch(
      /--manifest is required/,
    );
  });

  it("input: a manifest file name that gateways refuse (not *.manifest.json) is refused before anything is sent", async () => {
    const rel = releaseFolder({ profile: "cli-name", version: "3.1.0" });
    const renamed = join(dirname(rel.manifest), "fd001.json");
    renameSync(rel.manifest, renamed);
    const args = ["publish", "--dry-run", "--kind", "model", "--target", "cli-name", "--file", rel.file];
    const res = await run([...args, "--manifest", renamed]);
    expect(res.code).toBe(2); // a usage error, as a manifest outside the model's folder
    expect(res.err).toMatch(/the manifest's file name "fd001.json" must end in .manifest.json/);
    renameSync(renamed, rel.manifest);
    expect((await run([...args, "--manifest", rel.manifest])).code).toBe(0);
  });

  it("input: a URI gateways cannot fetch, or one with credentials (they would be public on chain), is refused before anything is sent", async () => {
    const rel = releaseFolder({ profile: "cli-uri", version: "3.1.0" });
    const base = ["publish", "--dry-run", "--kind", "model", "--target", "cli-uri", "--file", rel.file];
    const cases: [string, RegExp][] = [
      ["ftp://mirror.example/r.onnx", /gateways fetch only file:\/\/, https:\/\/ and ipfs:\/\/ URIs/],
      ["https://user:S3cret@models.example/r.onnx", /carries credentials, which would be published on chain/],
      ["not a uri", /is not a URI/],
    ];
    for (const [uri, re] of cases) {
      const res = await run([...base, "--manifest", rel.manifest, "--uri", uri]);
      expect(res.code, uri).toBe(2);
      expect(res.err).toMatch(re);
      expect(res.err).not.toContain("S3cret");
    }
    const ok = await run([...base, "--manifest", rel.manifest, "--uri", "https://models.example/r.onnx"]);
    expect(ok.code, ok.err).toBe(0);
    // a chain version other than the manifest's would be refused by every gateway
    const v = await run([...base, "--manifest", rel.manifest, "--version", "9000000"]);
    expect(v.code).toBe(2);
    expect(v.err).toMatch(/--version 9000000 is not the manifest's version 3\.1\.0 \(3001000\)/);
  });
});
