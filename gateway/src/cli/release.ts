/**
 * `vigil release …`: publish, approve, revoke and list model and firmware releases
 * (VigilReleases; see contracts/README.md and gateway/src/updates/README.md).
 */
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { RELEASE_KINDS, type ReleaseInput, type ReleaseKind, type RoleName } from "../chain/client.ts";
import { redactUrl, UsageError } from "../core/errors.ts";
import { parseFirmwareImage, versionText } from "../protocol/firmware-image.ts";
import { cidV1, cidV1OfFile } from "../updates/cid.ts";
import { checkModelAgainstManifest } from "../updates/model-check.ts";
import {
  encodeModelMeta,
  MANIFEST_FILE,
  firmwareVersionNumber,
  semverToVersion,
  targetId,
  trainingDataHash,
} from "../updates/release-meta.ts";
import { addressFlag, parse, refuseFlags, runSubcommand } from "./args.ts";
import { common, withClient, withReader } from "./chain.ts";
import { RELEASE_HELP as HELP } from "./help/release.ts";

function help(): number {
  process.stdout.write(HELP);
  return 0;
}

function releaseId(s: string | undefined): bigint {
  if (!s || !/^\d+$/.test(s)) throw new UsageError("give the release id (a positive integer)");
  const id = BigInt(s);
  if (id < 1n) throw new UsageError("release ids start at 1");
  return id;
}

/** Refuses a file flag whose path is not an existing file, naming the flag and why (usage error). */
function requireFile(flag: string, path: string): void {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(
      code === "ENOENT" ? `--${flag} ${path} does not exist` : `--${flag} ${path} cannot be read (${code})`,
    );
  }
  if (!isFile) throw new UsageError(`--${flag} ${path} is not a file`);
}

function sha256Hex(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** What publish computed for a file; printed, and proposed unless --dry-run. */
export interface PublishPlan {
  input: ReleaseInput;
  cid: string;
  manifestCid?: string;
}

/** Builds the release of `file` (hash, size, CID, checks); exported for tests and the demo. */
export async function planRelease(o: {
  kind: ReleaseKind;
  target: string;
  file: string;
  manifest?: string | undefined;
  uris?: string[] | undefined;
  version?: bigint | undefined;
}): Promise<PublishPlan> {
  const bytes = readFileSync(o.file);
  const sha = sha256Hex(bytes);
  const cid = await cidV1OfFile(o.file);
  const defaultUris = [pathToFileURL(resolve(o.file)).href, `ipfs://${cid}`];
  const uris = o.uris && o.uris.length > 0 ? o.uris : defaultUris;
  // URIs go on chain, public for ever: only what gateways fetch (updates/fetch.ts), no credentials.
  for (const u of uris) {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new UsageError(`--uri ${redactUrl(u)} is not a URI`);
    }
    if (!["file:", "https:", "ipfs:"].includes(url.protocol))
      throw new UsageError(`--uri ${redactUrl(u)}: gateways fetch only file://, https:// and ipfs:// URIs`);
    if (url.username !== "" || url.password !== "")
      throw new UsageError(
        `--uri ${redactUrl(u)} carries credentials, which would be published on chain; give a URI without them`,
      );
  }
  if (o.kind === "model") {
    if (!o.manifest) throw new UsageError("--manifest is required for a model release");
    // Before reading it: a missing manifest is not "not readable JSON" (infer/registry readManifest).
    requireFile("manifest", o.manifest);
    if (resolve(dirname(o.manifest)) !== resolve(dirname(o.file)))
      throw new UsageError(
        "the manifest must sit in the same folder as the model file (gateways fetch it from there)",
      );
    if (!MANIFEST_FILE.test(basename(o.manifest)))
      throw new UsageError(
        `the manifest's file name "${basename(o.manifest)}" must end in .manifest.json, with only letters, digits, ".", "_" and "-" (gateways refuse any other: MANIFEST_INVALID)`,
      );
    const m = await checkModelAgainstManifest(o.manifest, bytes);
    if (m.model.file !== basename(o.file))
      throw new UsageError(`the manifest names model file "${m.model.file}", not "${basename(o.file)}"`);
    const mBytes = readFileSync(o.manifest);
    const manifestCid = await cidV1(mBytes);
    const metrics = encodeModelMeta({
      manifest: { file: basename(o.manifest), sha256: sha256Hex(mBytes), cid: manifestCid },
      precision: m.model.precision ?? "float32",
      ...(typeof m.metrics.rmse === "number" ? { rmse: m.metrics.rmse } : {}),
    });
    // Gateways refuse a release whose chain version is not its manifest's (MANIFEST_MISMATCH).
    const fromManifest = semverToVersion(m.version);
    if (o.version !== undefined && o.version !== fromManifest)
      throw new UsageError(
        `--version ${o.version} is not the manifest's version ${m.version} (${fromManifest}); gateways would refuse the release`,
      );
    return {
      cid,
      manifestCid,
      input: {
        kind: "model",
        target: targetId("model", o.target),
        version: fromManifest,
        contentHash: `0x${sha}`,
        size: BigInt(bytes.length),
        trainingDataHash: trainingDataHash(m),
        uris,
        metrics,
      },
    };
  }
  if (o.manifest) throw new UsageError("--manifest is for model releases");
  const img = parseFirmwareImage(bytes);
  let fromHeader: bigint;
  try {
    fromHeader = firmwareVersionNumber(img.version);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  // Gateways refuse a release whose chain version is not its image header's (MANIFEST_MISMATCH).
  if (o.version !== undefined && o.version !== fromHeader)
    throw new UsageError(
      `--version ${o.version} is not the image header's version ${versionText(img.version)} (${fromHeader}); gateways would refuse the release`,
    );
  return {
    cid,
    input: {
      kind: "firmware",
      target: targetId("firmware", o.target),
      version: fromHeader,
      contentHash: `0x${sha}`,
      size: BigInt(bytes.length),
      trainingDataHash: `0x${"0".repeat(64)}`,
      uris,
      metrics: JSON.stringify({ securityCounter: img.securityCounter }),
    },
  };
}

async function publish(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...common,
    kind: { type: "string" },
    target: { type: "string" },
    file: { type: "string" },
    manifest: { type: "string" },
    uri: { type: "string", multiple: true },
    version: { type: "string" },
    "dry-run": { type: "boolean" },
  });
  if (values.help) return help();
  const kind = values.kind as ReleaseKind;
  if (!RELEASE_KINDS.includes(kind)) throw new UsageError("--kind must be model or firmware");
  if (!values.target) throw new UsageError("--target is required");
  if (!values.file) throw new UsageError("--file is required");
  requireFile("file", values.file);
  if (values.version !== undefined && !/^\d+$/.test(values.version))
    throw new UsageError("--version must be a non-negative integer");
  const plan = await planRelease({
    kind,
    target: values.target,
    file: values.file,
    manifest: values.manifest,
    uris: values.uri,
    version: values.version === undefined ? undefined : BigInt(values.version),
  });
  const i = plan.input;
  process.stdout.write(
    `${kind} release for target ${values.target} (${i.target})\n` +
      `  version   ${i.version}\n  sha256    ${i.contentHash.slice(2)}\n  size      ${i.size} bytes\n` +
      `  cid       ${plan.cid}\n` +
      (plan.manifestCid ? `  manifest  ${plan.manifestCid}\n` : "") +
      i.uris.map((u) => `  uri       ${u}\n`).join(""),
  );
  if (values["dry-run"]) return 0;
  return withClient(values, "vigil release publish", async (c) => {
    const r = await c.proposeRelease(i);
    process.stdout.write(`proposed release ${r.releaseId} (tx ${r.txHash})\n`);
  });
}

async function approve(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, common, true);
  if (values.help) return help();
  if (positionals.length > 1) throw new UsageError(`one release id, got ${positionals.length}`);
  const id = releaseId(positionals[0]);
  return withClient(values, "vigil release approve", async (c) => {
    const r = await c.approveRelease(id);
    const rel = await c.getRelease(id);
    process.stdout.write(
      `approved release ${id} (tx ${r.txHash}); it is now ${rel?.status ?? "unknown"} with ${await c.currentApprovals(id)} counting approvals\n`,
    );
  });
}

async function revoke(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { ...common, reason: { type: "string", default: "" } }, true);
  if (values.help) return help();
  if (positionals.length > 1) throw new UsageError(`one release id, got ${positionals.length}`);
  const id = releaseId(positionals[0]);
  return withClient(values, "vigil release revoke", async (c) => {
    const r = await c.revokeRelease(id, values.reason ?? "");
    process.stdout.write(`revoked release ${id} (tx ${r.txHash})\n`);
  });
}

async function list(argv: string[]): Promise<number> {
  const { values } = parse(argv, common);
  if (values.help) return help();
  // A listing only reads: it needs no sending key, on any chain.
  refuseFlags(
    values,
    ["key-file", "key"],
    "applies only to the commands that send a transaction (list only reads)",
  );
  return withReader(values, async (c) => {
    const rows: string[] = [];
    for (let id = 1n; ; id++) {
      const r = await c.getRelease(id);
      if (!r) break;
      const current = await c.currentApprovals(id);
      rows.push(
        `${id}\t${r.kind}\t${r.status}\t${r.version}\t${current}/${r.approvals}\t${r.target.slice(0, 10)}…\t${r.contentHash.slice(2, 14)}…\t${r.size}\t${r.uris[0] ?? ""}`,
      );
    }
    process.stdout.write(
      rows.length === 0
        ? "no releases\n"
        : `id\tkind\tstatus\tversion\tapprovals(current/recorded)\ttarget\tsha256\tsize\tfirst uri\n${rows.join("\n")}\n`,
    );
  });
}

async function grantRole(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...common, role: { type: "string" }, account: { type: "string" } });
  if (values.help) return help();
  const roles: Record<string, RoleName> = { manager: "releaseManager", approver: "releaseApprover" };
  const role = roles[values.role ?? ""];
  if (!role) throw new UsageError("--role must be manager or approver");
  if (!values.account) throw new UsageError("--account ADDR is required");
  const account = addressFlag("account", values.account);
  return withClient(values, "vigil release grant-role", async (c) => {
    const r = await c.grantRole(role, account);
    process.stdout.write(`granted ${values.role} to ${account} (tx ${r.txHash})\n`);
  });
}

/** Entry point of `vigil release`; returns the process exit code. */
export async function releaseCommand(argv: string[]): Promise<number> {
  return runSubcommand("release", HELP, { publish, approve, revoke, list, "grant-role": grantRole }, argv);
}
