import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import type { Bundle } from "../../gateway/src/attest/receipt.ts";
import { vigilDomain } from "../../gateway/src/chain/eip712.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { verifyCommand } from "../../gateway/src/cli/verify.ts";
import { readDeploymentFile, releasesOf } from "../../gateway/src/chain/deploy.ts";
import { receiptCommand } from "../../gateway/src/cli/receipt.ts";
import { record } from "../store/abstract.ts";

let dir: string;
const io = () => {
  const o = { out: "", err: "" };
  return { o, io: { out: (s: string) => void (o.out += s), err: (s: string) => void (o.err += s) } };
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-cli-"));
  const store = new LevelFrameStore({ dir: join(dir, "store"), reserveBytes: 0, minFreeBytes: 0 });
  await store.open();
  for (let i = 0; i < 30; i++) await store.append(record(0x2a, i));
  await store.append(record(7, 1));
  const sealer = new BatchSealer({
    store,
    signer: new GatewaySigner(generateKey("p256")),
    gatewayId: `0x${"cd".repeat(32)}`,
    domain: vigilDomain(31337, "0x" + "44".repeat(20)),
    maxLeaves: 12,
  });
  await sealer.sealNow();
  await sealer.sealNow();
  await store.append(record(0x2a, 30)); // not sealed
  await store.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("vigil receipt / vigil verify", () => {
  it("behavior: --help exits 0 for both; usage errors exit 2 and name the flag", async () => {
    for (const cmd of [verifyCommand, receiptCommand]) {
      const a = io();
      expect(await cmd(["--help"], a.io)).toBe(0);
      expect(a.o.out).toContain("usage: vigil");
    }
    const b = io();
    expect(await receiptCommand(["--store", dir, "--device", "xyz"], b.io)).toBe(2);
    expect(b.o.err).toContain("--device");
    const c = io();
    expect(await verifyCommand(["--bogus", "x"], c.io)).toBe(2);
    const d = io();
    expect(await verifyCommand([join(dir, "missing.json")], d.io)).toBe(2);
    // --from-block belongs to --registry: with a deployment file it would be ignored, so it is refused.
    const e = io();
    expect(
      await verifyCommand(["r.json", "--deployment", "deployment.json", "--from-block", "5"], e.io),
    ).toBe(2);
    expect(e.o.err).toContain("--from-block goes with --registry");
    // Finality is checked on chain; an empty or malformed --signer would silently pin nothing.
    for (const [args, msg] of [
      [["--finalized"], "add --rpc"],
      [["--min-confirmations", "12"], "add --rpc"],
      [["--min-confirmations", "0", "--rpc", "http://127.0.0.1:1"], "--min-confirmations must be"],
      [["--signer", ""], "--signer needs a value"],
      [["--signer", "0x1234"], "--signer must be"],
    ] as const) {
      const f = io();
      expect(await verifyCommand(["r.json", ...args], f.io), args.join(" ")).toBe(2);
      expect(f.o.err).toContain(msg);
    }
  });

  it("behavior: a usage error is one line with the --help to read, as every other command's (not the help text)", async () => {
    const cases: [typeof verifyCommand, string[]][] = [
      [receiptCommand, ["--store", dir, "--device", "xyz"]],
      [receiptCommand, ["--device", "1"]],
      [receiptCommand, ["--store", dir, "--bogus"]],
      [verifyCommand, ["--bogus", "x"]],
      [verifyCommand, ["r.json", "--finalized"]],
      [verifyCommand, []],
      [verifyCommand, ["a.json", "b.json"]],
    ];
    for (const [cmd, args] of cases) {
      const name = cmd === receiptCommand ? "receipt" : "verify";
      const x = io();
      expect(await cmd(args, x.io), args.join(" ")).toBe(2);
      expect(x.o.err, args.join(" ")).toMatch(
        new RegExp(`^vigil ${name}: [^\\n]+ \\(see "vigil ${name} --help"\\)\\n$`),
      );
      expect(x.o.out).toBe("");
    }
  });

  it("input: a receipt file that is missing, a folder or not JSON is one line saying which (exit 2)", async () => {
    const garbage = join(dir, "garbage.json");
    writeFileSync(garbage, "garbage\nmore\n");
    const cases: [string, string][] = [
      // Node's wording was passed on: "ENOENT: no such file or directory, open '…'"
      [
        join(dir, "missing.json"),
        `cannot read ${join(dir, "missing.json")}: no such file or folder (ENOENT)`,
      ],
      [dir, `cannot read ${dir} (EISDIR)`],
      // JSON.parse's message quotes the text, newline included: it was cut at the newline.
      [garbage, `${garbage} is not JSON (Unexpected token 'g', "garbage more " is not valid JSON)`],
    ];
    for (const [file, line] of cases) {
      const x = io();
      expect(await verifyCommand([file], x.io), file).toBe(2);
      expect(x.o.err).toBe(`vigil verify: ${line}\n`);
    }
  });

  it("input: a bundle whose receipts are empty, missing or not a list fails with one line (exit 1, RECEIPTS.md exit status)", async () => {
    for (const [name, bundle] of [
      ["empty", { format: "vigil-bundle/1", createdAt: "2026-12-04T00:00:00.000Z", receipts: [] }],
      ["none", { format: "vigil-bundle/1" }],
      ["not a list", { format: "vigil-bundle/1", receipts: {} }],
    ] as const) {
      const file = join(dir, `bundle-${name.replace(/ /g, "-")}.json`);
      writeFileSync(file, JSON.stringify(bundle));
      const x = io();
      expect(await verifyCommand([file], x.io), name).toBe(1);
      expect(x.o.err).toBe(`vigil verify: ${file}: the bundle holds no receipts\n`);
    }
  });

  it("doc: receipt --help's --leaf line names every leaf kind its description says --leaf exports", async () => {
    const x = io();
    await receiptCommand(["--help"], x.io);
    const kinds = /With --leaf: the receipt of one ([A-Z_]+(?:, [A-Z_]+)*(?: or [A-Z_]+)?) leaf/.exec(
      x.o.out.replace(/\s+/g, " "),
    )?.[1];
    const names = kinds!.split(/, | or /);
    expect(names.length).toBeGreaterThan(2);
    const line = /^ {2}--leaf HASH .*$/m.exec(x.o.out)![0];
    for (const k of names) expect(line, k).toContain(k);
  });

  it("error: a deployment file without a usable chain id, block or address is refused by field (exit 2), not a crash", async () => {
    const base = {
      format: "vigil-deployment/1",
      chainId: "31337",
      deployBlock: 3,
      contracts: {
        VigilRegistry: { address: "0x" + "44".repeat(20) },
        VigilReleases: { address: "0x" + "45".repeat(20) },
      },
    };
    const cases: [string, Record<string, unknown>, string][] = [
      ["no chain id", { ...base, chainId: undefined }, "chainId must be a decimal chain id"],
      ["chain id 0", { ...base, chainId: "0" }, "chainId must be a decimal chain id"],
      ["negative block", { ...base, deployBlock: -1 }, "deployBlock must be a block number"],
      [
        "short address",
        { ...base, contracts: { VigilRegistry: { address: "0x44" } } },
        "contracts.VigilRegistry.address must be a 20-byte 0x address",
      ],
      ["not a deployment", { format: "other" }, "is not a vigil-deployment/1 file"],
    ];
    for (const [what, doc, msg] of cases) {
      const f = join(dir, "bad-deployment.json");
      writeFileSync(f, JSON.stringify(doc));
      const o = io();
      expect(await verifyCommand([join(dir, "r.json"), "--deployment", f], o.io), what).toBe(2);
      expect(o.o.err, what).toContain(msg);
    }
    // A readable file that is not JSON (a vigil init config, with comments) is named as such, not
    // as one that "cannot be read".
    const jsonc = join(dir, "gw.json");
    writeFileSync(jsonc, '{\n  // a config file\n  "dataDir": ".vigil"\n}\n');
    const c = io();
    expect(await verifyCommand([join(dir, "r.json"), "--deployment", jsonc], c.io)).toBe(2);
    expect(c.o.err).toContain(`${jsonc} is not a vigil-deployment/1 file (not JSON)`);
    // a hand-written file may give the chain id as a number and omit the deployment block
    const ok = join(dir, "ok-deployment.json");
    writeFileSync(ok, JSON.stringify({ ...base, chainId: 31337, deployBlock: undefined }));
    const o = io();
    await verifyCommand([join(dir, "missing-receipt.json"), "--deployment", ok], o.io);
    expect(o.o.err).toContain("cannot read");
    // One type for every reader; no deployment block is block 0 (the registry watch took undefined
    // for a bad value and stopped with a RangeError).
    expect(readDeploymentFile(ok)).toMatchObject({ chainId: "31337", deployBlock: 0 });
    // No VigilReleases (enough for the verifier): what needs it says so by name.
    const noReleases = join(dir, "no-releases.json");
    writeFileSync(
      noReleases,
      JSON.stringify({ ...base, contracts: { VigilRegistry: base.contracts.VigilRegistry } }),
    );
    expect(() => releasesOf(readDeploymentFile(noReleases))).toThrowError(
      /^the deployment file has no contracts\.VigilReleases\.address, which the registry watch, access commands, updates and key rotation read/,
    );
  });

  it("behavior: exports a bundle for a device and time range that verifies (exit 0); a tampered receipt exits 1 with its reason", async () => {
    const out = join(dir, "bundle.json");
    const a = io();
    expect(
      await receiptCommand(["--store", join(dir, "store"), "--device", "0000002a", "--out", out], a.io),
    ).toBe(0);
    const bundle = JSON.parse(readFileSync(out, "utf8")) as Bundle;
    expect(bundle.format).toBe("vigil-bundle/1");
    expect(bundle.receipts).toHaveLength(24); // frames 1..24 are sealed (all device 0x2a)
    expect(bundle.unsealed).toBe(7); // seq 24..30 arrived after the seals
    const v = io();
    expect(await verifyCommand([out], v.io)).toBe(0);
    expect(v.o.out).toContain("24/24 receipts verified offline");

    const ts0 = bundle.receipts[5]!.frame.timestampUs;
    const ranged = io();
    expect(
      await receiptCommand(
        ["--store", join(dir, "store"), "--device", "42", "--from", String(ts0), "--to", String(ts0 + 2000)],
        ranged.io,
      ),
    ).toBe(0);
    expect((JSON.parse(ranged.o.out) as Bundle).receipts.map((r) => r.frame.seq)).toEqual([5, 6, 7]);

    bundle.receipts[3]!.proof[0] = "0x" + "00".repeat(32);
    writeFileSync(out, JSON.stringify(bundle));
    const bad = io();
    expect(await verifyCommand([out], bad.io)).toBe(1);
    expect(bad.o.out).toMatch(/FAIL 0000002a\/3: BAD_PROOF/);
    expect(bad.o.out).toContain("23/24 receipts verified");

    // Pinned to another registry, nothing passes: the summary names the pinned registry (it said
    // "no trust anchor given").
    const other = io();
    const pin = ["--registry", "0x" + "99".repeat(20), "--chain-id", "31337"];
    expect(await verifyCommand([out, ...pin], other.io)).toBe(1);
    expect(other.o.out).toContain(
      `0/24 receipts verified offline\ntrust anchor: registry 0x${"99".repeat(20)} on chain 31337; no receipt passed\n`,
    );
    // A failure is named by the receipt's kind: a frame object inside a receipt of another kind
    // does not lend it its device and seq.
    (bundle.receipts[0] as { kind: string }).kind = "alert";
    writeFileSync(out, JSON.stringify(bundle));
    const named = io();
    expect(await verifyCommand([out], named.io)).toBe(1);
    expect(named.o.out).toMatch(/^FAIL receipt: MALFORMED/m);
    expect(named.o.out).not.toContain("FAIL 0000002a/0:");
  });

  it("error: a receipt repeated in a bundle fails DUPLICATE naming both positions (it inflated the count); the others are verified", async () => {
    const out = join(dir, "bundle-dup.json");
    expect(
      await receiptCommand(["--store", join(dir, "store"), "--device", "0000002a", "--out", out], io().io),
    ).toBe(0);
    const bundle = JSON.parse(readFileSync(out, "utf8")) as Bundle;
    // The repeat differs only in what a leaf's proof does not commit to, or may spell differently:
    // its position (leafIndex), the case of its hex digits, its anchor record.
    const again = structuredClone(bundle.receipts[2]!);
    again.leaf = again.leaf.toUpperCase().replace(/^0X/, "0x");
    again.batch.digest = again.batch.digest.toUpperCase().replace(/^0X/, "0x");
    bundle.receipts.push(structuredClone(bundle.receipts[5]!), again);
    writeFileSync(out, JSON.stringify(bundle));
    const v = io();
    expect(await verifyCommand([out, "--json"], v.io)).toBe(1);
    const j = JSON.parse(v.o.out) as {
      results: { result: { ok: boolean; reason?: string; message?: string } }[];
    };
    expect(j.results.map((x) => x.result.ok)).toEqual([...Array(24).fill(true), false, false]);
    expect(j.results[24]!.result).toMatchObject({ reason: "DUPLICATE" });
    expect(j.results[24]!.result.message).toMatch(
      /^receipts\[24\] repeats receipts\[5\]: leaf 0x[0-9a-f]{64} of batch 1 \(digest 0x[0-9a-f]{64}\) of gateway 0x(cd){32}$/,
    );
    expect(j.results[25]!.result).toMatchObject({ reason: "DUPLICATE" });
    expect(j.results[25]!.result.message).toMatch(/^receipts\[25\] repeats receipts\[2\]: /);
    const text = io();
    expect(await verifyCommand([out], text.io)).toBe(1);
    expect(text.o.out).toMatch(/^FAIL 0000002a\/5: DUPLICATE: receipts\[24\] repeats receipts\[5\]/m);
    expect(text.o.out).toContain("24/26 receipts verified offline");
    // A tampered copy is reported as tampered, not as a repeat.
    bundle.receipts.splice(24, 2, structuredClone(bundle.receipts[5]!));
    bundle.receipts[24]!.frame.raw = bundle.receipts[24]!.frame.raw.slice(0, -2) + "00";
    writeFileSync(out, JSON.stringify(bundle));
    const t = io();
    expect(await verifyCommand([out], t.io)).toBe(1);
    expect(t.o.out).toMatch(/^FAIL 0000002a\/5: TAMPERED_FRAME/m);
    expect(t.o.out).toContain("24/25 receipts verified offline");
  });

  it("behavior: one receipt by --seq verifies with a step-by-step report; --json output; --signer pins the key", async () => {
    const file = join(dir, "r.json");
    expect(
      await receiptCommand(
        ["--store", join(dir, "store"), "--device", "0000002a", "--seq", "13", "--out", file],
        io().io,
      ),
    ).toBe(0);
    const v = io();
    expect(await verifyCommand([file], v.io)).toBe(0);
    expect(v.o.out).toMatch(/ok +signature/);
    const j = io();
    expect(await verifyCommand([file, "--json"], j.io)).toBe(0);
    expect(JSON.parse(j.o.out)).toMatchObject({ ok: true, checked: 1, failed: 0 });
    const w = io();
    expect(await verifyCommand([file, "--signer", "0x" + "12".repeat(64)], w.io)).toBe(1);
    expect(w.o.out).toContain("WRONG_SIGNER");
    const r = JSON.parse(readFileSync(file, "utf8")) as { frame: { raw: string } };
    r.frame.raw = r.frame.raw.slice(0, -2) + (r.frame.raw.endsWith("00") ? "01" : "00");
    writeFileSync(file, JSON.stringify(r));
    const t = io();
    expect(await verifyCommand([file], t.io)).toBe(1);
    expect(t.o.out).toContain("TAMPERED_FRAME");
    const nf = io();
    expect(
      await receiptCommand(["--store", join(dir, "store"), "--device", "0000002a", "--seq", "30"], nf.io),
    ).toBe(1);
    expect(nf.o.err).toContain("not sealed");
  });
});
