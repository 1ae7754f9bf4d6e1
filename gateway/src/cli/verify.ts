/**
 * `vigil verify RECEIPT|BUNDLE [--rpc URL] [--signer KEY] [--json]`: checks a receipt or an
 * audit bundle. Exit 0 only when every check of every receipt passes; 1 when one fails (the
 * reason code and a precise message are printed); 2 on usage errors or unreadable input.
 */
import { readFile } from "node:fs/promises";
import { UsageError } from "../core/errors.ts";
import { verifyReceipt, type VerifyOptions, type VerifyResult } from "../attest/verify.ts";
import type { AnyReceipt, Bundle } from "../attest/receipt.ts";
import { parse } from "./args.ts";

const HELP = `usage: vigil verify RECEIPT|BUNDLE [--rpc URL] [--signer KEY] [--json]

Verifies a receipt (vigil-receipt/1: frame, inference or alert) or an audit bundle
(vigil-bundle/1), see gateway/src/attest/RECEIPTS.md. Offline: frame or leaf preimage →
leaf → Merkle proof → root → EIP-712 header digest → signature by the key named in the
receipt. With --rpc: the batch is
anchored in the registry of the receipt's EIP-712 domain, and that key was the gateway's
registered, active key when it was anchored.

Options:
  --rpc URL       also check on chain (any EVM JSON-RPC endpoint)
  --signer KEY    require this signer (secp256k1 address or P-256 x‖y hex)
  --json          print the results as JSON
  -h, --help      this text

Exit status: 0 all checks passed, 1 a check failed, 2 usage error or unreadable file.
Failure reasons: MALFORMED, TAMPERED_FRAME, TAMPERED_LEAF, BAD_PROOF, TAMPERED_HEADER, BAD_SIGNATURE,
WRONG_SIGNER, WRONG_CHAIN, NOT_ANCHORED, ANCHOR_MISMATCH, KEY_REVOKED, CHAIN_UNREACHABLE.
`;

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

const stdio: CliIo = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) };

/** A short name for a receipt in messages: device/seq for frames, device kind@leaf otherwise. */
function receiptName(r: AnyReceipt): string {
  const x = r as Partial<
    Record<"frame" | "inference" | "alert" | "sensorFault", { deviceId?: unknown; seq?: unknown }>
  > & {
    leaf?: unknown;
  };
  if (x?.frame) return `${String(x.frame.deviceId)}/${String(x.frame.seq)}`;
  const leaf = typeof x?.leaf === "string" ? x.leaf.slice(0, 18) : "?";
  if (x?.alert) return `${String(x.alert.deviceId)} alert@${leaf}`;
  if (x?.inference) return `${String(x.inference.deviceId)} inference@${leaf}`;
  if (x?.sensorFault) return `${String(x.sensorFault.deviceId)} sensor-fault@${leaf}`;
  return "receipt";
}

export async function verifyCommand(argv: string[], io: CliIo = stdio): Promise<number> {
  let parsed;
  try {
    parsed = parse(
      argv,
      {
        rpc: { type: "string" },
        signer: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      true,
    );
  } catch (e) {
    io.err(`vigil verify: ${(e as UsageError).shortMessage}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    io.err(`vigil verify: expected one RECEIPT or BUNDLE file\n\n${HELP}`);
    return 2;
  }
  const file = positionals[0]!;
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, "utf8"));
  } catch (e) {
    io.err(`vigil verify: cannot read ${file}: ${(e as Error).message.split("\n")[0]}\n`);
    return 2;
  }
  const opts: VerifyOptions = {};
  if (values.rpc) opts.rpcUrl = values.rpc;
  if (values.signer) opts.expectSigner = values.signer;

  const format = (doc as { format?: unknown } | null)?.format;
  let receipts: AnyReceipt[];
  if (format === "vigil-bundle/1") {
    receipts = (doc as Bundle).receipts;
    if (!Array.isArray(receipts) || receipts.length === 0) {
      io.err(`vigil verify: ${file}: the bundle holds no receipts\n`);
      return 1;
    }
  } else receipts = [doc as AnyReceipt];

  const results: { receipt: string; result: VerifyResult }[] = [];
  for (const r of receipts) {
    const result = await verifyReceipt(r, opts);
    const name = receiptName(r);
    results.push({ receipt: name, result });
  }
  const failed = results.filter((x) => !x.result.ok);
  if (values.json) {
    io.out(
      JSON.stringify(
        { ok: failed.length === 0, checked: results.length, failed: failed.length, results },
        null,
        2,
      ) + "\n",
    );
  } else if (receipts.length === 1) {
    const { result } = results[0]!;
    for (const s of result.steps) io.out(`${s.ok ? "ok  " : "FAIL"} ${s.step.padEnd(17)} ${s.detail}\n`);
    if (result.ok)
      io.out(
        `verified${opts.rpcUrl ? " (offline and on chain)" : " offline"}${!opts.rpcUrl && result.anchored ? "; receipt claims anchoring, use --rpc to check it" : ""}\n`,
      );
    else io.out(`${result.reason}: ${result.message}\n`);
  } else {
    for (const f of failed)
      if (!f.result.ok) io.out(`FAIL ${f.receipt}: ${f.result.reason}: ${f.result.message}\n`);
    io.out(
      `${results.length - failed.length}/${results.length} receipts verified${opts.rpcUrl ? " (offline and on chain)" : " offline"}\n`,
    );
  }
  return failed.length === 0 ? 0 : 1;
}
