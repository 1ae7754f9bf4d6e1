/**
 * `vigil verify RECEIPT|BUNDLE [--deployment FILE | --registry ADDR --chain-id ID] [--gateway HEX32]
 * [--site NAME|HEX32] [--rpc URL …] [--signer KEY] [--json]`: checks a receipt or an audit bundle against a
 * trust anchor the auditor names. Exit 0 only when every check of every receipt passes; 1 when one
 * fails (the reason code and a precise message are printed); 2 on usage errors, unreadable input, or
 * `--rpc` without a trust anchor (the offline checks still run and are printed).
 */
import { readFile } from "node:fs/promises";
import { UsageError, VigilError } from "../core/errors.ts";
import {
  ReceiptVerifier,
  type CheckedAgainst,
  type TrustAnchor,
  type VerifyOptions,
  type VerifyResult,
} from "../attest/verify.ts";
import type { AnyReceipt, Bundle } from "../attest/receipt.ts";
import { crossCheck } from "../attest/cross-check.ts";
import { fileError, redactUrl } from "../core/errors.ts";
import { readDeploymentFile } from "../chain/deploy.ts";
import { siteIdOf } from "../config/gateway-id.ts";
import { addressFlag, parse } from "./args.ts";
import { VERIFY_HELP as HELP } from "./help/verify.ts";

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
  // By the receipt's kind: a stray object of another kind (a `frame` in an alert receipt) does not
  // name it.
  const kind = (r as { kind?: unknown } | null)?.kind;
  if (kind === "frame" && x.frame) return `${String(x.frame.deviceId)}/${String(x.frame.seq)}`;
  const leaf = typeof x?.leaf === "string" ? x.leaf.slice(0, 18).toLowerCase() : "?";
  if (kind === "alert" && x.alert) return `${String(x.alert.deviceId)} alert@${leaf}`;
  if (kind === "inference" && x.inference) return `${String(x.inference.deviceId)} inference@${leaf}`;
  if (kind === "sensor-fault" && x.sensorFault)
    return `${String(x.sensorFault.deviceId)} sensor-fault@${leaf}`;
  return "receipt";
}

function trustFrom(values: {
  deployment?: string | undefined;
  registry?: string | undefined;
  "chain-id"?: string | undefined;
  "from-block"?: string | undefined;
  gateway?: string | undefined;
  site?: string | undefined;
}): TrustAnchor | undefined {
  const chainId = values["chain-id"];
  if (chainId !== undefined && !/^\d+$/.test(chainId))
    throw new UsageError(`--chain-id must be a decimal chain id, got "${chainId}"`);
  if (values.deployment && values.registry) throw new UsageError("give --deployment or --registry, not both");
  let t: TrustAnchor | undefined;
  if (values.deployment) {
    if (values["from-block"] !== undefined)
      throw new UsageError("--from-block goes with --registry: a deployment file gives its own deployBlock");
    const d = readDeploymentFile(values.deployment);
    if (chainId !== undefined && BigInt(chainId) !== BigInt(d.chainId))
      throw new UsageError(`--chain-id ${chainId} disagrees with ${values.deployment} (chain ${d.chainId})`);
    t = {
      chainId: BigInt(d.chainId),
      registry: d.contracts.VigilRegistry.address.toLowerCase(),
      fromBlock: d.deployBlock,
      source: values.deployment,
    };
  } else if (values.registry) {
    addressFlag("registry", values.registry);
    if (chainId === undefined) throw new UsageError("--registry needs --chain-id");
    const from = values["from-block"];
    if (from !== undefined && !/^\d+$/.test(from))
      throw new UsageError(`--from-block must be a block number, got "${from}"`);
    t = {
      chainId: BigInt(chainId),
      registry: values.registry.toLowerCase(),
      fromBlock: from === undefined ? 0 : Number(from),
      source: "--registry",
    };
  } else if (chainId !== undefined || values.gateway || values.site || values["from-block"] !== undefined)
    throw new UsageError("--chain-id, --gateway, --site and --from-block need --deployment or --registry");
  if (t && values.gateway !== undefined) {
    if (!/^0x[0-9a-fA-F]{64}$/.test(values.gateway))
      throw new UsageError(`--gateway must be 0x + 64 hex digits, got "${values.gateway}"`);
    t.gatewayId = values.gateway.toLowerCase();
  }
  if (t && values.site !== undefined) {
    t.site = siteIdOf(values.site);
    if (!/^0x[0-9a-fA-F]{64}$/.test(values.site)) t.siteName = values.site;
  }
  return t;
}

/** What the signer's key was checked against (offline, nothing ties it to the registry). */
const SIGNER_NOTE: Record<CheckedAgainst["signer"], string> = {
  registered: "(the gateway's registered key when the batch was anchored)",
  pinned: "(pinned: --signer)",
  unchecked: "(not checked offline: any key passes; --rpc, or pin it with --signer)",
};

/** The site is only checked on chain (GatewayRegistered's site): offline a pinned one is not confirmed. */
function siteNote(c: CheckedAgainst): string {
  if (!c.onChain) return c.sitePinned ? "pinned, not checked offline: --rpc" : "not checked offline";
  return c.sitePinned ? "pinned" : "as registered; not pinned: --site";
}

/** "registry 0x… on chain 10 (deployment.json); gateway 0x… (pinned); site 0x… plant-1 (pinned)". */
function describeTrust(list: readonly CheckedAgainst[]): string {
  const c = list[0]!;
  const gateways = [...new Set(list.map((x) => x.gatewayId))];
  const sites = [...new Set(list.map((x) => x.site ?? "unknown"))];
  const name = c.siteName ? ` ${c.siteName}` : "";
  return (
    `checked against registry ${c.registry} on chain ${c.chainId}${c.source ? ` (${c.source})` : ""}; ` +
    `gateway ${gateways.join(", ")} (${c.gatewayPinned ? "pinned" : "not pinned: --gateway"}); ` +
    `site ${sites.join(", ")}${name} (${siteNote(c)}); ` +
    `signer key ${SIGNER_NOTE[c.signer]}`
  );
}

export async function verifyCommand(argv: string[], io: CliIo = stdio): Promise<number> {
  let parsed;
  let trust: TrustAnchor | undefined;
  try {
    parsed = parse(
      argv,
      {
        rpc: { type: "string", multiple: true },
        deployment: { type: "string" },
        registry: { type: "string" },
        "chain-id": { type: "string" },
        "from-block": { type: "string" },
        gateway: { type: "string" },
        site: { type: "string" },
        "log-range": { type: "string" },
        signer: { type: "string" },
        "min-confirmations": { type: "string" },
        finalized: { type: "boolean" },
        "cross-check": { type: "boolean" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      true,
    );
    if (parsed.values.help) {
      io.out(HELP);
      return 0;
    }
    trust = trustFrom(parsed.values);
    const lr = parsed.values["log-range"];
    if (lr !== undefined && !(/^\d+$/.test(lr) && Number(lr) >= 1))
      throw new UsageError(`--log-range must be a positive number of blocks, got "${lr}"`);
    const mc = parsed.values["min-confirmations"];
    if (mc !== undefined && !(/^\d{1,9}$/.test(mc) && Number(mc) >= 1))
      throw new UsageError(`--min-confirmations must be a positive number of blocks, got "${mc}"`);
    if ((mc !== undefined || parsed.values.finalized) && !(parsed.values.rpc ?? []).length)
      throw new UsageError("--min-confirmations and --finalized are checked on chain: add --rpc");
    if (parsed.values["cross-check"] && (parsed.values.rpc ?? []).length < 2)
      throw new UsageError(
        "--cross-check asks every --rpc endpoint and compares their answers: give two or more --rpc (endpoints of independent providers, or a node you run)",
      );
    const signer = parsed.values.signer;
    if (signer !== undefined && !/^0x(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{128})$/.test(signer))
      throw new UsageError(
        `--signer must be a secp256k1 address (0x + 40 hex digits) or a P-256 key x‖y (0x + 128), got "${signer}"`,
      );
  } catch (e) {
    if (e instanceof UsageError) {
      // One line, as every command's usage error (fatal.ts reportCommandError): not the help.
      io.err(`vigil verify: ${e.shortMessage} (see "vigil verify --help")\n`);
      return 2;
    }
    if (e instanceof VigilError) {
      io.err(`vigil verify: ${e.shortMessage}\n`);
      return 2;
    }
    throw e;
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    io.err(
      `vigil verify: expected one RECEIPT or BUNDLE file, got ${positionals.length} (see "vigil verify --help")\n`,
    );
    return 2;
  }
  const file = positionals[0]!;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    // "cannot open r.json: no such file or folder (ENOENT)", not Node's "ENOENT: no such file …".
    // A folder's EISDIR carries no path: then its code.
    const f = fileError(e, "read");
    const code = (e as NodeJS.ErrnoException).code;
    if (!f && code === undefined) throw e;
    io.err(`vigil verify: ${f ? f.shortMessage : `cannot read ${file} (${code})`}\n`);
    return 2;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    // JSON.parse quotes the text, newlines included: one line.
    io.err(`vigil verify: ${file} is not JSON (${(e as Error).message.replace(/\s+/g, " ")})\n`);
    return 2;
  }
  const rpcUrls = values.rpc ?? [];
  // Refused on chain without a trust anchor: the offline checks run, then the refusal.
  const refused = rpcUrls.length > 0 && !trust;
  const opts: VerifyOptions = {};
  if (trust) opts.trust = trust;
  if (rpcUrls.length > 0 && trust) opts.rpcUrl = rpcUrls;
  if (values.signer !== undefined) opts.expectSigner = values.signer;
  if (values["log-range"]) opts.logBlockRange = Number(values["log-range"]);
  if (values["min-confirmations"] !== undefined && opts.rpcUrl)
    opts.minConfirmations = Number(values["min-confirmations"]);
  if (values.finalized && opts.rpcUrl) opts.requireFinalized = true;

  const format = (doc as { format?: unknown } | null)?.format;
  const isBundle = format === "vigil-bundle/1";
  let receipts: AnyReceipt[];
  if (isBundle) {
    receipts = (doc as Bundle).receipts;
    if (!Array.isArray(receipts) || receipts.length === 0) {
      io.err(`vigil verify: ${file}: the bundle holds no receipts\n`);
      return 1;
    }
  } else receipts = [doc as AnyReceipt];

  const crossChecked = values["cross-check"] === true && opts.rpcUrl !== undefined;
  let verified: VerifyResult[];
  if (crossChecked) {
    // Each endpoint on its own, then their verdicts compared (attest/cross-check.ts).
    try {
      verified = await crossCheck(
        receipts,
        rpcUrls.map((url) => ({ endpoint: redactUrl(url), options: { ...opts, rpcUrl: url } })),
        isBundle,
      );
    } catch (e) {
      // Only a verifier's options can throw (the same TypeError as below); receipts never do.
      if (!(e instanceof TypeError)) throw e;
      io.err(`vigil verify: ${e.message}\n`);
      return 2;
    }
  } else {
    let verifier: ReceiptVerifier;
    try {
      verifier = new ReceiptVerifier(opts);
    } catch (e) {
      io.err(`vigil verify: ${(e as Error).message}\n`);
      return 2;
    }
    try {
      // A bundle's receipts are checked together: a repeated one fails DUPLICATE.
      verified = isBundle ? await verifier.verifyBundle(receipts) : [await verifier.verify(receipts[0]!)];
    } finally {
      verifier.close();
    }
  }
  const results = verified.map((result, i) => ({ receipt: receiptName(receipts[i]!), result }));
  const failed = results.filter((x) => !x.result.ok);
  const checked = results.flatMap((x) =>
    x.result.ok && x.result.checkedAgainst ? [x.result.checkedAgainst] : [],
  );
  const onChain = !!opts.rpcUrl;
  const how = onChain
    ? `offline and on chain${crossChecked ? ` (cross-checked by ${rpcUrls.length} endpoints)` : ""}`
    : "offline";
  // Anchors that passed but a reorg could still remove (finality was reported, not required).
  const unfinal = results.filter(
    (x) => x.result.ok && x.result.anchored?.finalized === false && !opts.requireFinalized,
  ).length;
  const finalityNote =
    unfinal === 0
      ? ""
      : `; ${receipts.length === 1 ? "the anchor is" : `${unfinal} anchors are`} not finalized yet and can still be reorganised away (--finalized or --min-confirmations N to require finality)`;
  const refusal =
    "not checked on chain: --rpc needs a trust anchor (--deployment FILE, or --registry ADDR --chain-id ID); the registry named inside a receipt proves nothing\n";
  if (values.json) {
    io.out(
      JSON.stringify(
        {
          ok: failed.length === 0 && !refused,
          checked: results.length,
          failed: failed.length,
          onChain,
          crossChecked: crossChecked ? rpcUrls.length : 0,
          trust: checked.length > 0 ? describeTrust(checked) : null,
          ...(refused ? { refused: refusal.trim() } : {}),
          results,
        },
        null,
        2,
      ) + "\n",
    );
  } else if (receipts.length === 1) {
    const { result } = results[0]!;
    for (const s of result.steps) io.out(`${s.ok ? "ok  " : "FAIL"} ${s.step.padEnd(17)} ${s.detail}\n`);
    if (result.ok) {
      io.out(
        `verified ${how}${!onChain && result.anchored ? `; the receipt claims an anchor: add ${trust ? "--rpc URL" : "--deployment FILE (or --registry ADDR --chain-id ID) and --rpc URL"} to check it on chain` : ""}${finalityNote}\n`,
      );
      io.out(
        checked.length > 0
          ? `${describeTrust(checked)}\n`
          : "no trust anchor given: checked against the receipt's own claims only\n",
      );
    } else io.out(`${result.reason}: ${result.message}\n`);
  } else {
    for (const f of failed)
      if (!f.result.ok) io.out(`FAIL ${f.receipt}: ${f.result.reason}: ${f.result.message}\n`);
    io.out(`${results.length - failed.length}/${results.length} receipts verified ${how}${finalityNote}\n`);
    if (checked.length > 0) io.out(`${describeTrust(checked)}\n`);
    else if (opts.trust)
      io.out(
        `trust anchor: registry ${opts.trust.registry} on chain ${opts.trust.chainId}; no receipt passed\n`,
      );
    else io.out("no trust anchor given: checked against the receipts' own claims only\n");
  }
  if (refused) {
    io.err(`vigil verify: ${refusal}`);
    return 2;
  }
  return failed.length === 0 ? 0 : 1;
}
