/**
 * Receipt verification with one precise failure reason per step.
 *
 * Offline (receipt only):
 *  1. MALFORMED        the JSON is not a vigil-receipt/1
 *  2. TAMPERED_FRAME   raw frame fails the protocol codec (CRC), disagrees with the receipt's
 *                      frame fields, or does not hash to `leaf` (frame receipts)
 *     TAMPERED_LEAF    INFERENCE/ALERT/SENSOR_FAULT preimage does not decode, disagrees with the receipt's
 *                      decoded fields or kind, or does not hash to `leaf` (leaf receipts)
 *  3. BAD_PROOF        leaf + proof do not give header.root
 *  4. TAMPERED_HEADER  header + domain do not hash to the signed digest, or `head` is not
 *                      keccak256(prevHead ‖ hashStruct(header)), or the entry's timestamp is
 *                      outside the header's range, or a non-zero header modelHash differs
 *                      from a leaf receipt's model hash
 *  5. BAD_SIGNATURE    the signature does not verify for the receipt's signer key
 *  6. WRONG_SIGNER     the signer is not the expected key (`expectSigner`)
 * Online (RPC URL):
 *  7. WRONG_CHAIN      the RPC's chain id differs from the domain's
 *  8. NOT_ANCHORED     no BatchAnchored(gatewayId, seq, root) event with this header hash
 *  9. ANCHOR_MISMATCH  the receipt's recorded transaction/block differ from the chain's
 * 10. KEY_REVOKED      the gateway was not active (revoked/suspended) when the batch was anchored
 * 11. WRONG_SIGNER     the registry's key for the gateway at that moment is not the receipt's signer
 *                      (key history is replayed from the registry's events, so a non-archive
 *                      node suffices; a later revocation or rotation does not void old receipts)
 *     CHAIN_UNREACHABLE the online checks could not run
 */
import { Interface, JsonRpcProvider } from "ethers";
import { VigilRegistryArtifact } from "../../../contracts/artifacts/index.ts";
import { batchDigest, hashBatchHeader, nextHead } from "../chain/eip712.ts";
import { bytesToHex, hexToBytes, type Hex } from "../core/hex.ts";
import { verifyDigest } from "../chain/keys.ts";
import { decodeFrame, deviceIdHex, FrameType } from "../protocol/frame.ts";
import { redactUrl } from "../core/errors.ts";
import { decodeModelLeaf, frameLeaf, leafFromPreimage, type DecodedModelLeaf } from "../core/leaf.ts";
import { processProof } from "./merkle.ts";
import { toDomain, toEip712Header } from "./header.ts";
import type { AnyReceipt, LeafReceipt, Receipt, ReceiptAlert, ReceiptInference } from "./receipt.ts";

export type VerifyFailure =
  | "MALFORMED"
  | "TAMPERED_FRAME"
  | "TAMPERED_LEAF"
  | "BAD_PROOF"
  | "TAMPERED_HEADER"
  | "BAD_SIGNATURE"
  | "WRONG_SIGNER"
  | "WRONG_CHAIN"
  | "NOT_ANCHORED"
  | "ANCHOR_MISMATCH"
  | "KEY_REVOKED"
  | "CHAIN_UNREACHABLE";

export interface VerifyStep {
  step: string;
  ok: boolean;
  detail: string;
}

export interface AnchorSummary {
  chainId: number;
  contract: string;
  txHash: string | null;
  blockNumber: number | null;
}

export type VerifyResult =
  | { ok: true; steps: VerifyStep[]; anchored: AnchorSummary | null }
  | { ok: false; reason: VerifyFailure; message: string; steps: VerifyStep[] };

export interface VerifyOptions {
  /** Enables the on-chain checks. */
  rpcUrl?: string;
  /** Pin the signer (address or P-256 x‖y): WRONG_SIGNER if the receipt names another key. */
  expectSigner?: string;
  /** Injected provider (tests); default a JsonRpcProvider on rpcUrl. */
  provider?: JsonRpcProvider;
}

const HEX32 = /^0x[0-9a-f]{64}$/i;
const ZERO32 = "0x" + "00".repeat(32);
const STATUS = ["unregistered", "active", "suspended", "revoked"];
const KEY_TYPES = ["none", "secp256k1", "p256"];
const registryIface = new Interface(VigilRegistryArtifact.abi as never);

class Fail extends Error {
  constructor(
    readonly reason: VerifyFailure,
    message: string,
  ) {
    super(message);
  }
}

function must(cond: unknown, reason: VerifyFailure, message: string): asserts cond {
  if (!cond) throw new Fail(reason, message);
}

function isSafeUint(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

const HEX_BYTES = /^0x([0-9a-f]{2})+$/i;

function checkShape(r: AnyReceipt): void {
  const m = (c: unknown, what: string): void =>
    must(c, "MALFORMED", `receipt field ${what} is missing or invalid`);
  m(
    r &&
      typeof r === "object" &&
      r.format === "vigil-receipt/1" &&
      (r.kind === "frame" || r.kind === "inference" || r.kind === "alert" || r.kind === "sensor-fault"),
    "format",
  );
  if (r.kind === "frame") {
    m(r.frame && typeof r.frame.raw === "string" && HEX_BYTES.test(r.frame.raw), "frame.raw");
    m(/^[0-9a-f]{8}$/.test(r.frame.deviceId), "frame.deviceId");
    for (const k of ["seq", "receivedUs", "timestampUs"] as const) m(isSafeUint(r.frame[k]), `frame.${k}`);
  } else {
    const x: Partial<ReceiptInference & ReceiptAlert> | undefined = leafFields(r);
    m(x && typeof x === "object", r.kind);
    m(typeof x!.preimage === "string" && HEX_BYTES.test(x!.preimage), `${r.kind}.preimage`);
    m(typeof x!.deviceId === "string" && /^[0-9a-f]{8}$/.test(x!.deviceId), `${r.kind}.deviceId`);
    m(isSafeUint(x!.timestampUs), `${r.kind}.timestampUs`);
    for (const k of ["modelHash", "inputWindowHash"] as const) m(HEX32.test(String(x![k])), `${r.kind}.${k}`);
    if (r.kind === "inference") m(Array.isArray(x!.outputs), "inference.outputs");
    else {
      m(isSafeUint(x!.severity) && typeof x!.rule === "string", "alert.severity/rule");
      m(typeof x!.score === "number" || x!.score === null, "alert.score");
    }
  }
  m(typeof r.leaf === "string" && HEX32.test(r.leaf), "leaf");
  m(isSafeUint(r.leafIndex), "leafIndex");
  m(Array.isArray(r.proof) && r.proof.every((p) => typeof p === "string" && HEX32.test(p)), "proof");
  const b = r.batch;
  m(b && b.header && b.domain && b.signer, "batch");
  for (const k of ["gatewayId", "prevHead", "root", "modelHash"] as const)
    m(HEX32.test(String(b.header[k])), `batch.header.${k}`);
  for (const k of ["seq", "leafCount", "firstTimestamp", "lastTimestamp"] as const)
    m(isSafeUint(b.header[k]), `batch.header.${k}`);
  m(HEX32.test(String(b.head)) && HEX32.test(String(b.digest)), "batch.head/digest");
  m(typeof b.signature === "string" && /^0x([0-9a-f]{2})+$/i.test(b.signature), "batch.signature");
  m(b.signer.keyType === "secp256k1" || b.signer.keyType === "p256", "batch.signer.keyType");
  m(typeof b.signer.publicKey === "string", "batch.signer.publicKey");
}

/** f32 values as JSON carries them: NaN becomes null. */
function sameNumber(json: unknown, v: number): boolean {
  return Number.isNaN(v) ? json === null : json === v;
}

/** The decoded-fields object of a leaf receipt (`inference`, `alert` or `sensorFault`). */
function leafFields(r: LeafReceipt): ReceiptInference | ReceiptAlert {
  return r.kind === "inference" ? r.inference : r.kind === "alert" ? r.alert : r.sensorFault;
}

/** 2. (leaf receipts) preimage → decoded fields → leaf. Returns the decoded preimage. */
function checkLeafPreimage(r: LeafReceipt): DecodedModelLeaf {
  const x = leafFields(r);
  const preimage = hexToBytes(x.preimage);
  let d: DecodedModelLeaf;
  try {
    d = decodeModelLeaf(preimage);
  } catch (e) {
    throw new Fail("TAMPERED_LEAF", `${r.kind} preimage is not a canonical leaf: ${(e as Error).message}`);
  }
  const t = (c: boolean, what: string): void =>
    must(c, "TAMPERED_LEAF", `${r.kind}.${what} differs from the preimage`);
  t(d.kind === r.kind, "kind (preimage tag)");
  t(deviceIdHex(d.deviceId) === x.deviceId, "deviceId");
  t(d.timestampUs === x.timestampUs, "timestampUs");
  t(bytesToHex(d.modelHash) === x.modelHash.toLowerCase(), "modelHash");
  t(bytesToHex(d.inputWindowHash) === x.inputWindowHash.toLowerCase(), "inputWindowHash");
  if (d.kind === "inference") {
    const outs = (x as ReceiptInference).outputs;
    t(outs.length === d.outputs.length && d.outputs.every((v, i) => sameNumber(outs[i], v)), "outputs");
  } else {
    const a = x as ReceiptAlert;
    t(a.severity === d.severity, "severity");
    t(a.rule === d.rule, "rule");
    t(sameNumber(a.score, d.score), "score");
  }
  const leaf = bytesToHex(leafFromPreimage(preimage));
  must(
    leaf === r.leaf.toLowerCase(),
    "TAMPERED_LEAF",
    `the ${r.kind} preimage does not hash to the receipt's leaf`,
  );
  return d;
}

/** Verifies a receipt (frame, inference or alert); never throws (failures are results). */
export async function verifyReceipt(r: AnyReceipt, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const steps: VerifyStep[] = [];
  const pass = (step: string, detail: string): void => void steps.push({ step, ok: true, detail });
  try {
    checkShape(r);
    pass("format", `vigil-receipt/1 (${r.kind})`);
    let leaf: string;
    let ts: number;
    let model: string | undefined;
    if (r.kind === "frame") {
      leaf = checkFrame(r);
      ts = r.frame.timestampUs;
      pass("leaf", `frame ${r.frame.deviceId}/${r.frame.seq} hashes to ${leaf}`);
    } else {
      const d = checkLeafPreimage(r);
      leaf = r.leaf.toLowerCase();
      ts = d.timestampUs;
      model = bytesToHex(d.modelHash);
      const what = d.kind === "inference" ? `inference (${d.outputs.length} outputs)` : `${d.kind} ${d.rule}`;
      pass("leaf", `${what} of device ${deviceIdHex(d.deviceId)}, model ${model}, hashes to ${leaf}`);
    }
    return await verifyBatch(r, leaf, ts, model, opts, steps);
  } catch (e) {
    return failed(e, steps);
  }
}

function failed(e: unknown, steps: VerifyStep[]): VerifyResult {
  if (e instanceof Fail) {
    steps.push({ step: e.reason, ok: false, detail: e.message });
    return { ok: false, reason: e.reason, message: e.message, steps };
  }
  const msg = (e as Error)?.message ?? String(e);
  return { ok: false, reason: "MALFORMED", message: `receipt could not be checked: ${msg}`, steps };
}

/** 2. (frame receipts) frame bytes → fields → leaf. Returns the leaf (lowercase hex). */
function checkFrame(r: Receipt): string {
  const raw = Buffer.from(r.frame.raw.slice(2), "hex");
  let frame;
  try {
    frame = decodeFrame(raw);
  } catch (e) {
    throw new Fail(
      "TAMPERED_FRAME",
      `frame bytes are not a valid protocol v1 frame: ${(e as Error).message}`,
    );
  }
  must(frame.type === FrameType.Data, "TAMPERED_FRAME", "frame is not a DATA frame");
  must(
    deviceIdHex(frame.deviceId) === r.frame.deviceId,
    "TAMPERED_FRAME",
    "frame.deviceId differs from the frame bytes",
  );
  must(r.frame.seq % 0x1_0000_0000 === frame.seq, "TAMPERED_FRAME", "frame.seq differs from the frame bytes");
  const expectTs = frame.timestampUs === 0 ? r.frame.receivedUs : frame.timestampUs;
  must(r.frame.timestampUs === expectTs, "TAMPERED_FRAME", "frame.timestampUs differs from the frame bytes");
  const leaf = bytesToHex(frameLeaf({ seq: r.frame.seq, receivedUs: r.frame.receivedUs, raw }));
  must(leaf === r.leaf.toLowerCase(), "TAMPERED_FRAME", "the frame does not hash to the receipt's leaf");
  return leaf;
}

/** Steps 3-6 and the online checks, the same for every kind of receipt. */
async function verifyBatch(
  r: AnyReceipt,
  leaf: string,
  ts: number,
  model: string | undefined,
  opts: VerifyOptions,
  steps: VerifyStep[],
): Promise<VerifyResult> {
  const pass = (step: string, detail: string): void => void steps.push({ step, ok: true, detail });
  // 3. leaf → root
  const h = r.batch.header;
  const root = bytesToHex(
    processProof(
      hexToBytes(leaf),
      r.proof.map((p) => hexToBytes(p)),
    ),
  );
  must(
    root === h.root.toLowerCase(),
    "BAD_PROOF",
    `the Merkle proof leads to ${root}, not the batch root ${h.root}`,
  );
  must(
    r.leafIndex < h.leafCount,
    "BAD_PROOF",
    `leafIndex ${r.leafIndex} is outside the batch of ${h.leafCount}`,
  );
  pass("proof", `leaf is in batch ${h.seq} (root ${h.root})`);

  // 4. header → digest, head
  let digest: Hex;
  let head: Hex;
  try {
    const eip = toEip712Header(h);
    digest = batchDigest(toDomain(r.batch.domain), eip);
    head = nextHead(h.prevHead as Hex, eip);
  } catch (e) {
    throw new Fail("TAMPERED_HEADER", `header or domain is invalid: ${(e as Error).message}`);
  }
  must(
    digest === r.batch.digest.toLowerCase(),
    "TAMPERED_HEADER",
    "header and domain do not hash to the signed EIP-712 digest",
  );
  must(
    head === r.batch.head.toLowerCase(),
    "TAMPERED_HEADER",
    "head is not keccak256(prevHead ‖ hashStruct(header))",
  );
  must(
    ts >= h.firstTimestamp && ts <= h.lastTimestamp,
    "TAMPERED_HEADER",
    `${r.kind} timestamp is outside the header's time range`,
  );
  // The sealer commits the leaves' model hash when they share one, zero otherwise.
  if (model !== undefined && h.modelHash.toLowerCase() !== ZERO32)
    must(
      h.modelHash.toLowerCase() === model,
      "TAMPERED_HEADER",
      `the header's modelHash ${h.modelHash} is not the ${r.kind}'s model ${model}`,
    );
  pass("header", `EIP-712 digest ${digest}`);

  // 5./6. signature
  const signer = r.batch.signer;
  must(
    verifyDigest(signer.keyType, signer.publicKey as Hex, digest, r.batch.signature as Hex),
    "BAD_SIGNATURE",
    `signature does not verify for ${signer.keyType} key ${signer.publicKey}`,
  );
  if (opts.expectSigner !== undefined)
    must(
      opts.expectSigner.toLowerCase() === signer.publicKey.toLowerCase(),
      "WRONG_SIGNER",
      `batch is signed by ${signer.publicKey}, expected ${opts.expectSigner}`,
    );
  pass("signature", `${signer.keyType} signature by ${signer.publicKey}`);

  if (!opts.rpcUrl && !opts.provider)
    return { ok: true, steps, anchored: r.anchor ? anchorSummary(r) : null };
  const anchored = await verifyOnline(r, opts, steps);
  return { ok: true, steps, anchored };
}

function anchorSummary(r: AnyReceipt): AnchorSummary | null {
  return r.anchor
    ? {
        chainId: r.anchor.chainId,
        contract: r.anchor.contract,
        txHash: r.anchor.txHash,
        blockNumber: r.anchor.blockNumber,
      }
    : null;
}

async function verifyOnline(r: AnyReceipt, opts: VerifyOptions, steps: VerifyStep[]): Promise<AnchorSummary> {
  const url = opts.rpcUrl ?? "";
  // The expected chain id is given as a static network (no detection retry loop); the real
  // one is still read with eth_chainId below.
  const provider =
    opts.provider ??
    new JsonRpcProvider(url, r.batch.domain.chainId, { staticNetwork: true, batchMaxCount: 1 });
  try {
    const h = r.batch.header;
    const contract = r.batch.domain.verifyingContract;
    let chainId: bigint;
    let logs;
    try {
      chainId = BigInt((await provider.send("eth_chainId", [])) as string);
    } catch (e) {
      throw new Fail(
        "CHAIN_UNREACHABLE",
        `RPC ${redactUrl(url)} is unreachable: ${(e as Error).message.split("\n")[0]}`,
      );
    }
    must(
      chainId === BigInt(r.batch.domain.chainId),
      "WRONG_CHAIN",
      `RPC serves chain ${chainId}, the receipt is for chain ${r.batch.domain.chainId}`,
    );
    const ev = registryIface.getEvent("BatchAnchored");
    if (!ev) throw new Error("registry ABI has no BatchAnchored event");
    const topics = [
      ev.topicHash,
      h.gatewayId.toLowerCase(),
      "0x" + h.seq.toString(16).padStart(64, "0"),
      h.root.toLowerCase(),
    ];
    try {
      logs = await provider.getLogs({ address: contract, topics, fromBlock: 0, toBlock: "latest" });
    } catch (e) {
      throw new Fail("CHAIN_UNREACHABLE", `log query failed: ${(e as Error).message.split("\n")[0]}`);
    }
    const headerHash = hashBatchHeader(toEip712Header(h));
    const log = logs.find((l) => {
      const p = registryIface.parseLog(l);
      return p !== null && String(p.args.getValue("headerHash")).toLowerCase() === headerHash;
    });
    must(
      log,
      "NOT_ANCHORED",
      `batch ${h.seq} with root ${h.root} is not anchored in registry ${contract} on chain ${chainId}`,
    );
    if (r.anchor && r.anchor.txHash !== null) {
      must(
        r.anchor.txHash.toLowerCase() === log.transactionHash.toLowerCase() &&
          r.anchor.blockNumber === log.blockNumber,
        "ANCHOR_MISMATCH",
        `receipt says tx ${r.anchor.txHash} in block ${r.anchor.blockNumber}; the chain has ${log.transactionHash} in block ${log.blockNumber}`,
      );
    }
    steps.push({
      step: "anchored",
      ok: true,
      detail: `tx ${log.transactionHash} in block ${log.blockNumber}`,
    });
    // The gateway's key and status at the anchor, replayed from the registry's events up to
    // the anchor's log (works on non-archive nodes, which cannot answer historical eth_calls).
    const at = await keyAt(provider, contract, h.gatewayId, log.blockNumber, log.index);
    must(
      at.status === 1,
      "KEY_REVOKED",
      `gateway ${h.gatewayId} was ${STATUS[at.status] ?? at.status} when batch ${h.seq} was anchored (block ${log.blockNumber})`,
    );
    const s = r.batch.signer;
    must(
      at.keyType === s.keyType && at.publicKey === s.publicKey.toLowerCase(),
      "WRONG_SIGNER",
      `the registry's key for the gateway at block ${log.blockNumber} is ${at.keyType} ${at.publicKey}, the receipt's signer is ${s.publicKey}`,
    );
    steps.push({
      step: "key",
      ok: true,
      detail: `${s.keyType} key registered and active at block ${log.blockNumber}`,
    });
    return { chainId: Number(chainId), contract, txHash: log.transactionHash, blockNumber: log.blockNumber };
  } finally {
    if (!opts.provider) provider.destroy();
  }
}

/** Replays GatewayRegistered / GatewayKeyRotated / GatewayStatusChanged up to (block, logIndex). */
async function keyAt(
  provider: JsonRpcProvider,
  contract: string,
  gatewayId: string,
  block: number,
  logIndex: number,
): Promise<{ status: number; keyType: string; publicKey: string }> {
  const names = ["GatewayRegistered", "GatewayKeyRotated", "GatewayStatusChanged"];
  const topics = names.map((n) => registryIface.getEvent(n)?.topicHash ?? "");
  let logs;
  try {
    logs = await provider.getLogs({
      address: contract,
      topics: [topics, gatewayId.toLowerCase()],
      fromBlock: 0,
      toBlock: block,
    });
  } catch (e) {
    throw new Fail("CHAIN_UNREACHABLE", `registry log query failed: ${(e as Error).message.split("\n")[0]}`);
  }
  logs.sort((x, y) => x.blockNumber - y.blockNumber || x.index - y.index);
  const st = { status: 0, keyType: "none", publicKey: "" };
  for (const l of logs) {
    if (l.blockNumber === block && l.index >= logIndex) break;
    const p = registryIface.parseLog(l);
    if (!p) continue;
    if (p.name === "GatewayRegistered" || p.name === "GatewayKeyRotated") {
      st.keyType = KEY_TYPES[Number(p.args.getValue("keyType"))] ?? "none";
      st.publicKey = String(p.args.getValue("publicKey")).toLowerCase();
      if (p.name === "GatewayRegistered") st.status = 1;
    } else st.status = Number(p.args.getValue("status"));
  }
  return st;
}
