/**
 * Receipt verification with one precise failure reason per step. The checks and the field rules are
 * specified in RECEIPTS.md ("Checks, in order"); this file implements them.
 *
 * A receipt names its own registry (EIP-712 domain) — which proves nothing on its own: anyone can
 * deploy a VigilRegistry, register a gateway id there with their own key and anchor whatever they
 * like. So verification is pinned to a trust anchor the auditor supplies ({@link TrustAnchor}: the
 * registry address and chain id, from a deployment file or given explicitly, optionally the gateway
 * id and the site). On-chain checks refuse to run without one, and every result says what it was
 * checked against.
 *
 * Offline (receipt only):
 *  1. MALFORMED        not a vigil-receipt/1 (shape of every field, including `anchor` and `signer`)
 *  2. TAMPERED_FRAME   raw frame fails the protocol codec (CRC), disagrees with the receipt's frame
 *                      fields, or does not hash to `leaf` (frame receipts)
 *     TAMPERED_LEAF    INFERENCE/ALERT/SENSOR_FAULT preimage does not decode, disagrees with the
 *                      receipt's decoded fields or kind, or does not hash to `leaf` (leaf receipts)
 *  3. BAD_PROOF        leaf + proof do not give header.root, or leafIndex is outside the batch, or the
 *                      proof's length is not the depth of leaf `leafIndex` in a tree of leafCount leaves
 *  4. TAMPERED_HEADER  header + domain do not hash to `digest`, `head` is not keccak256(prevHead ‖
 *                      hashStruct(header)), the entry's timestamp is outside the header's range, or a
 *                      non-zero header modelHash differs from a leaf receipt's model hash
 *  5. BAD_SIGNATURE    the signature does not verify for `signer`, or `signer.address` is not the
 *                      address `signer.publicKey` names (secp256k1) / is present for a P-256 key
 *  6. WRONG_SIGNER     the signer is not the expected key (`expectSigner`)
 *  7. WRONG_CHAIN / WRONG_REGISTRY / WRONG_GATEWAY  the signed domain's chain id or registry, or the
 *                      header's gateway id, differ from the trust anchor
 *  8. ANCHOR_MISMATCH  `anchor.chainId` / `anchor.contract` differ from the signed domain, or the
 *                      anchor names a block without a transaction
 *  9. DUPLICATE        (bundles) an earlier receipt of the bundle has the same leaf under the same
 *                      batch digest
 * Online (RPC and trust anchor); the registry's gateway events are read first, so a receipt of a
 * gateway or key the registry never had costs no anchor lookup:
 * 10. WRONG_CHAIN      the RPC's chain id is not the pinned one
 * 11. KEY_REVOKED      no GatewayRegistered event of the gateway (never registered there, or before
 *                      the first block searched)
 * 12. WRONG_SIGNER     the registry never held the receipt's signer as the gateway's key
 * 13. WRONG_SITE       the gateway is registered at another site than the pinned one
 * 14. NOT_ANCHORED     no BatchAnchored(gatewayId, seq, root) event of the pinned registry carries
 *                      hashStruct(header)
 * 15. ANCHOR_MISMATCH  a non-null `anchor.txHash`, `blockNumber` or `blockHash` differs from that event's
 * 16. KEY_REVOKED      the gateway was not Active when the batch was anchored
 * 17. WRONG_SIGNER     the registry's key for the gateway at that moment is not the receipt's signer
 * 18. NOT_FINAL        the anchor has fewer confirmations than `minConfirmations`, or is not at or
 *                      below the `finalized` block when `requireFinalized` (both off by default)
 *     CHAIN_UNREACHABLE the online checks could not run
 *     CHAIN_DISAGREE   (cross-check.ts) endpoints asked for the same receipt gave different verdicts
 * Key history, sites and anchors are read from the registry's events (bounded eth_getLogs from the
 * deployment block to the head read once per run), so a pruned (non-archive) node suffices; lookups
 * are cached per verifier: a bundle costs one walk of the registry's gateway events and one anchor
 * lookup per batch that passes 11-13.
 */
import { Interface, getAddress } from "ethers";
import { VigilRegistryArtifact } from "../../../contracts/artifacts/index.ts";
import { batchDigest, hashBatchHeader, nextHead } from "../chain/eip712.ts";
import { bytesToHex, hexToBytes, isAddress, type Hex } from "../core/hex.ts";
import { verifyDigest } from "../chain/keys.ts";
import { ChainError, ChainNetworkError, RpcWrongChainError } from "../chain/errors.ts";
import { DEFAULT_LOG_RANGE, blockNumber, scanLogs, type ChainLog } from "../chain/logs.ts";
import { RpcPool, type RpcClient } from "../chain/rpc.ts";
import { decodeFrame, deviceIdHex, FrameType } from "../protocol/frame.ts";
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
  | "WRONG_REGISTRY"
  | "WRONG_CHAIN"
  | "WRONG_GATEWAY"
  | "WRONG_SITE"
  | "NOT_ANCHORED"
  | "ANCHOR_MISMATCH"
  | "KEY_REVOKED"
  | "NOT_FINAL"
  | "DUPLICATE"
  | "CHAIN_UNREACHABLE"
  /** Cross-checked endpoints gave different verdicts (cross-check.ts). */
  | "CHAIN_DISAGREE";

export interface VerifyStep {
  step: string;
  ok: boolean;
  detail: string;
}

export interface AnchorSummary {
  /**
   * True when the fields below were checked on chain (the trusted registry's event); false offline,
   * where they are only what the receipt claims (its `anchor`), unchecked.
   */
  checked: boolean;
  chainId: number;
  contract: string;
  txHash: string | null;
  blockNumber: number | null;
  /** Present when checked on chain: confirmations at verification and the `finalized` tag's verdict. */
  confirmations?: number;
  finalized?: boolean;
}

/**
 * What the auditor trusts. The registry address and chain id are required (from a deployment file,
 * or given explicitly); gateway and site narrow it further.
 */
export interface TrustAnchor {
  chainId: bigint;
  /** VigilRegistry address. */
  registry: string;
  /** First block of every log query: the registry's deployment block. Default 0. */
  fromBlock?: number;
  /** Accept only batches of this gateway id. */
  gatewayId?: string;
  /** Accept only gateways registered at this site (bytes32). */
  site?: string;
  /** The site's name when given by name (messages). */
  siteName?: string;
  /** Where the pin came from, e.g. "deployment.json" or "--registry" (messages). */
  source?: string;
}

/** What a successful verification was checked against (named in the output). */
export interface CheckedAgainst {
  registry: string;
  chainId: number;
  source: string | null;
  gatewayId: string;
  gatewayPinned: boolean;
  /** The gateway's registered site (on chain), or the pinned one offline; null when unknown. */
  site: string | null;
  sitePinned: boolean;
  siteName: string | null;
  onChain: boolean;
  /**
   * What the batch signer's key was checked against: "registered" (on chain: the gateway's key in
   * the registry when the batch was anchored), "pinned" (`expectSigner`), or "unchecked" (offline
   * without `expectSigner`: any key that signs for the trusted registry and gateway passes).
   */
  signer: "registered" | "pinned" | "unchecked";
}

export type VerifyResult =
  | {
      ok: true;
      steps: VerifyStep[];
      anchored: AnchorSummary | null;
      /** null when no trust anchor was given (offline checks against the receipt's own claims only). */
      checkedAgainst: CheckedAgainst | null;
    }
  | { ok: false; reason: VerifyFailure; message: string; steps: VerifyStep[] };

export interface VerifyOptions {
  /** Pins the registry and chain (and optionally gateway and site). Required for on-chain checks. */
  trust?: TrustAnchor;
  /** Enables the on-chain checks: one URL, or several of the same chain (failover). */
  rpcUrl?: string | readonly string[];
  /** Injected JSON-RPC client (tests, benchmarks). */
  rpc?: RpcClient;
  /** Pin the signer (address or P-256 x‖y): WRONG_SIGNER if the receipt names another key. */
  expectSigner?: string;
  /** Largest eth_getLogs range. Default 10 000. */
  logBlockRange?: number;
  /** Timeout of one JSON-RPC request, ms. Default 10 000. */
  rpcTimeoutMs?: number;
  /**
   * On chain: NOT_FINAL unless the anchor's block has at least this many confirmations (the block
   * itself counts as 1). Default 0: confirmations are reported, not required.
   */
  minConfirmations?: number;
  /**
   * On chain: NOT_FINAL unless the anchor's block is at or below the chain's `finalized` block
   * (a node without the tag fails it). Default false: reported, not required.
   */
  requireFinalized?: boolean;
}

/**
 * Receipt fields no offline check covers (RECEIPTS.md "Field by field"): positions in the gateway's
 * log, the gateway's clocks, its clock-trust mark and finality view, and the anchor's transaction, block and block hash —
 * those three are checked on chain (ANCHOR_MISMATCH). `leafIndex` is bounded (see proofLength), not
 * committed. Every other field is checked.
 */
export const INFORMATIONAL_OFFLINE: readonly string[] = [
  "frame.index",
  "frame.clockUnverified",
  "inference.index",
  "alert.index",
  "sensorFault.index",
  "batch.sealedAtUs",
  "anchor.txHash",
  "anchor.blockNumber",
  "anchor.blockHash",
  "anchor.final",
  "anchor.confirmations",
  "anchor.anchoredAtUs",
];

/** The fields left informational when the receipt is also checked on chain. */
export const INFORMATIONAL_ONLINE: readonly string[] = INFORMATIONAL_OFFLINE.filter(
  (f) => !["anchor.txHash", "anchor.blockNumber", "anchor.blockHash"].includes(f),
);

const HEX32 = /^0x[0-9a-fA-F]{64}$/;
const ZERO32 = "0x" + "00".repeat(32);
const STATUS = ["unregistered", "active", "suspended", "revoked"];
const KEY_TYPES = ["none", "secp256k1", "p256"];
const registryIface = new Interface(VigilRegistryArtifact.abi as never);
const BATCH_ANCHORED = registryIface.getEvent("BatchAnchored")!.topicHash;
const KEY_EVENTS = ["GatewayRegistered", "GatewayKeyRotated", "GatewayStatusChanged"].map(
  (n) => registryIface.getEvent(n)!.topicHash,
);

/** The RPC answers for another chain than the trusted registry's (online check 9). */
function wrongChain(served: bigint, trusted: bigint): Fail {
  return new Fail(
    "WRONG_CHAIN",
    `the RPC serves chain ${served}, the trusted registry is on chain ${trusted}`,
  );
}

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
  // -0 is refused too: it is not how an integer is written (RECEIPTS.md: safe integers).
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && !Object.is(v, -0);
}

/** `v` is a string and matches `re` (RegExp.test would take ["0x…"] for its string form). */
function hexOf(v: unknown, re: RegExp): boolean {
  return typeof v === "string" && re.test(v);
}

const HEX_BYTES = /^0x(?:[0-9a-fA-F]{2})+$/;

/**
 * Length of the proof of leaf `i` in the tree of `n` leaves laid out like OpenZeppelin's
 * SimpleMerkleTree (leaf i at node 2n−2−i; a node k has depth ⌊log2(k+1)⌋).
 */
export function proofLength(i: number, n: number): number {
  return Math.floor(Math.log2(2 * n - 1 - i));
}

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
    m(hexOf(r.frame.deviceId, /^[0-9a-f]{8}$/), "frame.deviceId");
    for (const k of ["index", "seq", "receivedUs", "timestampUs"] as const)
      m(isSafeUint(r.frame[k]), `frame.${k}`);
    m(
      r.frame.clockUnverified === undefined || typeof r.frame.clockUnverified === "boolean",
      "frame.clockUnverified",
    );
  } else {
    const x: Partial<ReceiptInference & ReceiptAlert> | undefined = leafFields(r);
    m(x && typeof x === "object", r.kind);
    m(typeof x!.preimage === "string" && HEX_BYTES.test(x!.preimage), `${r.kind}.preimage`);
    m(typeof x!.deviceId === "string" && /^[0-9a-f]{8}$/.test(x!.deviceId), `${r.kind}.deviceId`);
    m(isSafeUint(x!.index), `${r.kind}.index`);
    m(isSafeUint(x!.timestampUs), `${r.kind}.timestampUs`);
    for (const k of ["modelHash", "inputWindowHash"] as const) m(hexOf(x![k], HEX32), `${r.kind}.${k}`);
    if (r.kind === "inference")
      m(
        Array.isArray(x!.outputs) && x!.outputs.every((v) => typeof v === "number" || v === null),
        "inference.outputs",
      );
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
    m(hexOf(b.header[k], HEX32), `batch.header.${k}`);
  for (const k of ["seq", "leafCount", "firstTimestamp", "lastTimestamp"] as const)
    m(isSafeUint(b.header[k]), `batch.header.${k}`);
  m(b.header.leafCount < 2 ** 32, "batch.header.leafCount"); // uint32 in the EIP-712 struct
  m(hexOf(b.head, HEX32) && hexOf(b.digest, HEX32), "batch.head/digest");
  m(typeof b.signature === "string" && HEX_BYTES.test(b.signature), "batch.signature");
  m(b.signer.keyType === "secp256k1" || b.signer.keyType === "p256", "batch.signer.keyType");
  m(typeof b.signer.publicKey === "string" && HEX_BYTES.test(b.signer.publicKey), "batch.signer.publicKey");
  m(b.signer.address === undefined || isAddress(b.signer.address), "batch.signer.address");
  m(isSafeUint(b.sealedAtUs), "batch.sealedAtUs");
  m(
    typeof b.domain.name === "string" &&
      typeof b.domain.version === "string" &&
      isSafeUint(b.domain.chainId) &&
      isAddress(b.domain.verifyingContract),
    "batch.domain",
  );
  const a = r.anchor as Record<string, unknown> | null | undefined;
  m(a === null || (a !== undefined && typeof a === "object"), "anchor");
  if (a) {
    m(isSafeUint(a.chainId), "anchor.chainId");
    m(isAddress(a.contract), "anchor.contract");
    m(a.txHash === null || (typeof a.txHash === "string" && HEX32.test(a.txHash)), "anchor.txHash");
    m(a.blockNumber === null || isSafeUint(a.blockNumber), "anchor.blockNumber");
    m(
      a.blockHash === undefined ||
        a.blockHash === null ||
        (typeof a.blockHash === "string" && HEX32.test(a.blockHash)),
      "anchor.blockHash",
    );
    m(a.final === undefined || typeof a.final === "boolean", "anchor.final");
    m(isSafeUint(a.confirmations), "anchor.confirmations");
    m(isSafeUint(a.anchoredAtUs), "anchor.anchoredAtUs");
  }
}

/** f32 values as JSON carries them: NaN and ±Inf become null (JSON has no such numbers, RFC 8259 §6). */
function sameNumber(json: unknown, v: number): boolean {
  return Number.isFinite(v) ? json === v : json === null;
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

function failed(e: unknown, steps: VerifyStep[]): VerifyResult {
  if (e instanceof Fail) {
    steps.push({ step: e.reason, ok: false, detail: e.message });
    return { ok: false, reason: e.reason, message: e.message, steps };
  }
  const msg = (e as Error)?.message ?? String(e);
  return { ok: false, reason: "MALFORMED", message: `receipt could not be checked: ${msg}`, steps };
}

interface KeyEvent {
  block: number;
  index: number;
  name: string;
  keyType?: string;
  publicKey?: string;
  status?: number;
  site?: string;
}

interface AnchorLookup {
  log: ChainLog | undefined;
}

/** A receipt's position in a bundle and the batch leaves of the receipts before it (check 9). */
interface BundleSlot {
  index: number;
  /** "digest|leaf" → position of the first receipt that reached check 9. */
  seen: Map<string, number>;
}

/**
 * Verifies receipts against one trust anchor, caching what it reads from the chain (chain id, head,
 * the registry's gateway events, the anchor of each batch) and signature checks (one per batch), so a
 * bundle costs one walk of the gateway events and one lookup per batch. `close()` releases the RPC
 * connection.
 */
export class ReceiptVerifier {
  readonly #o: VerifyOptions;
  readonly #rpc: RpcClient | undefined;
  readonly #ownsRpc: boolean;
  readonly #trust: TrustAnchor | undefined;
  #chainOk: Promise<bigint> | undefined;
  #tip: Promise<{ latest: number; finalized: number }> | undefined;
  readonly #anchors = new Map<string, Promise<AnchorLookup>>();
  /** Gateway id → its GatewayRegistered/KeyRotated/StatusChanged events, read once per run. */
  #history: Promise<Map<string, KeyEvent[]>> | undefined;
  readonly #sigs = new Map<string, boolean>();
  /**
   * The first CHAIN_UNREACHABLE of this verifier's run: later receipts fail with it at once. Each
   * request already had its retries; without this a stuck endpoint cost every receipt of a bundle
   * the whole retry budget again (a 3-receipt bundle: 6 minutes of silence).
   */
  #unreachable: string | undefined;

  /** @throws TypeError when an RPC is given without a trust anchor (nothing to check it against). */
  constructor(o: VerifyOptions = {}) {
    this.#o = o;
    this.#trust = o.trust;
    if ((o.rpc || o.rpcUrl) && !o.trust)
      throw new TypeError(
        "on-chain verification needs a trust anchor (registry address and chain id): the receipt's own registry proves nothing",
      );
    const need = o.minConfirmations ?? 0;
    if (!(Number.isSafeInteger(need) && need >= 0))
      throw new TypeError(`minConfirmations must be an integer ≥ 0, got ${need}`);
    if ((need > 0 || o.requireFinalized) && !(o.rpc || o.rpcUrl))
      throw new TypeError("minConfirmations and requireFinalized are checked on chain: they need an RPC");
    if (o.trust) {
      if (!isAddress(o.trust.registry))
        throw new TypeError(`trust.registry must be a 20-byte address, got ${o.trust.registry}`);
      if (o.trust.gatewayId !== undefined && !HEX32.test(o.trust.gatewayId))
        throw new TypeError("trust.gatewayId must be 32 bytes of hex");
      if (o.trust.site !== undefined && !HEX32.test(o.trust.site))
        throw new TypeError("trust.site must be 32 bytes of hex");
    }
    this.#rpc =
      o.rpc ??
      (o.rpcUrl
        ? new RpcPool({
            urls: typeof o.rpcUrl === "string" ? [o.rpcUrl] : o.rpcUrl,
            healthCheckIntervalMs: 0,
            ...(o.rpcTimeoutMs !== undefined ? { timeoutMs: o.rpcTimeoutMs } : {}),
            ...(o.trust ? { expectedChainId: o.trust.chainId } : {}),
          })
        : undefined);
    this.#ownsRpc = !o.rpc && this.#rpc !== undefined;
  }

  close(): void {
    if (this.#ownsRpc) this.#rpc?.close();
  }

  /** Verifies a receipt (frame, inference, alert or sensor-fault); never throws (failures are results). */
  async verify(r: AnyReceipt): Promise<VerifyResult> {
    return this.#verify(r, undefined);
  }

  /**
   * Verifies the receipts of a bundle in order, one result each. A receipt that passes the offline
   * checks with the same leaf in the same batch as an earlier one fails DUPLICATE (check 9), naming
   * both positions; the others are verified as by {@link verify}. Never throws.
   */
  async verifyBundle(receipts: readonly AnyReceipt[]): Promise<VerifyResult[]> {
    const seen = new Map<string, number>();
    const out: VerifyResult[] = [];
    for (let index = 0; index < receipts.length; index++)
      out.push(await this.#verify(receipts[index]!, { index, seen }));
    return out;
  }

  async #verify(r: AnyReceipt, slot: BundleSlot | undefined): Promise<VerifyResult> {
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
        const what =
          d.kind === "inference" ? `inference (${d.outputs.length} outputs)` : `${d.kind} ${d.rule}`;
        pass("leaf", `${what} of device ${deviceIdHex(d.deviceId)}, model ${model}, hashes to ${leaf}`);
      }
      return await this.#batch(r, leaf, ts, model, steps, slot);
    } catch (e) {
      return failed(e, steps);
    }
  }

  /** Steps 3-8 and the online checks, the same for every kind of receipt. */
  async #batch(
    r: AnyReceipt,
    leaf: string,
    ts: number,
    model: string | undefined,
    steps: VerifyStep[],
    slot: BundleSlot | undefined,
  ): Promise<VerifyResult> {
    const pass = (step: string, detail: string): void => void steps.push({ step, ok: true, detail });
    // 3. leaf → root, position
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
      h.leafCount >= 1 && r.leafIndex < h.leafCount,
      "BAD_PROOF",
      `leafIndex ${r.leafIndex} is outside the batch of ${h.leafCount}`,
    );
    const depth = proofLength(r.leafIndex, h.leafCount);
    must(
      r.proof.length === depth,
      "BAD_PROOF",
      `a proof of leaf ${r.leafIndex} in a batch of ${h.leafCount} leaves has ${depth} elements, this one has ${r.proof.length}`,
    );
    pass("proof", `leaf ${r.leafIndex} of ${h.leafCount} is in batch ${h.seq} (root ${h.root})`);

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

    // 5./6. signer, signature
    const signer = r.batch.signer;
    const pub = signer.publicKey.toLowerCase();
    if (signer.keyType === "secp256k1") {
      must(
        /^0x[0-9a-f]{40}$/.test(pub),
        "BAD_SIGNATURE",
        "a secp256k1 signer's publicKey is its 20-byte address",
      );
      if (signer.address !== undefined) {
        const a = signer.address;
        must(
          a.toLowerCase() === pub && (a === a.toLowerCase() || a === getAddress(pub)),
          "BAD_SIGNATURE",
          `signer.address ${a} is not the address of signer.publicKey ${signer.publicKey}`,
        );
      }
    } else {
      must(/^0x[0-9a-f]{128}$/.test(pub), "BAD_SIGNATURE", "a P-256 signer's publicKey is x‖y (64 bytes)");
      must(signer.address === undefined, "BAD_SIGNATURE", "a P-256 signer has no address");
    }
    const sigKey = `${signer.keyType}|${pub}|${digest}|${r.batch.signature.toLowerCase()}`;
    let sigOk = this.#sigs.get(sigKey);
    if (sigOk === undefined) {
      sigOk = verifyDigest(signer.keyType, pub as Hex, digest, r.batch.signature as Hex);
      if (this.#sigs.size > 10_000) this.#sigs.clear();
      this.#sigs.set(sigKey, sigOk);
    }
    must(sigOk, "BAD_SIGNATURE", `signature does not verify for ${signer.keyType} key ${signer.publicKey}`);
    if (this.#o.expectSigner !== undefined)
      must(
        this.#o.expectSigner.toLowerCase() === pub,
        "WRONG_SIGNER",
        `batch is signed by ${signer.publicKey}, expected ${this.#o.expectSigner}`,
      );
    pass("signature", `${signer.keyType} signature by ${signer.publicKey}`);

    // 7. the trust anchor (offline part)
    const d = r.batch.domain;
    const t = this.#trust;
    if (t) {
      must(
        BigInt(d.chainId) === t.chainId,
        "WRONG_CHAIN",
        `the batch is signed for chain ${d.chainId}, the trusted registry is on chain ${t.chainId}`,
      );
      must(
        d.verifyingContract.toLowerCase() === t.registry.toLowerCase(),
        "WRONG_REGISTRY",
        `the batch is signed for registry ${d.verifyingContract}, not the trusted registry ${t.registry}${t.source ? ` (${t.source})` : ""}`,
      );
      if (t.gatewayId !== undefined)
        must(
          h.gatewayId.toLowerCase() === t.gatewayId.toLowerCase(),
          "WRONG_GATEWAY",
          `the batch is gateway ${h.gatewayId}'s, not the trusted gateway ${t.gatewayId}`,
        );
      pass("trust", `signed for the trusted registry ${t.registry.toLowerCase()} on chain ${t.chainId}`);
    }

    // 8. the anchor record's own consistency
    const a = r.anchor;
    if (a) {
      must(
        a.chainId === d.chainId && a.contract.toLowerCase() === d.verifyingContract.toLowerCase(),
        "ANCHOR_MISMATCH",
        `the receipt's anchor names registry ${a.contract} on chain ${a.chainId}; the batch is signed for ${d.verifyingContract} on chain ${d.chainId}`,
      );
      must(
        a.txHash !== null || (a.blockNumber === null && (a.blockHash ?? null) === null),
        "ANCHOR_MISMATCH",
        "the receipt's anchor names a block but no transaction",
      );
    }

    // 9. (bundles) each leaf of a signed batch once: a repeat would be counted twice. The digest
    // commits to the domain and the whole header (gateway, seq, root).
    if (slot) {
      const key = `${digest}|${leaf}`;
      const first = slot.seen.get(key);
      must(
        first === undefined,
        "DUPLICATE",
        `receipts[${slot.index}] repeats receipts[${first}]: leaf ${leaf} of batch ${h.seq} (digest ${digest}) of gateway ${h.gatewayId.toLowerCase()}`,
      );
      slot.seen.set(key, slot.index);
    }

    const against = (site: string | null, onChain: boolean): CheckedAgainst | null =>
      t
        ? {
            registry: t.registry.toLowerCase(),
            chainId: Number(t.chainId),
            source: t.source ?? null,
            gatewayId: h.gatewayId.toLowerCase(),
            gatewayPinned: t.gatewayId !== undefined,
            site,
            sitePinned: t.site !== undefined,
            siteName: t.siteName ?? null,
            onChain,
            signer: onChain ? "registered" : this.#o.expectSigner !== undefined ? "pinned" : "unchecked",
          }
        : null;
    if (!this.#rpc)
      return {
        ok: true,
        steps,
        anchored: a
          ? {
              checked: false,
              chainId: a.chainId,
              contract: a.contract,
              txHash: a.txHash,
              blockNumber: a.blockNumber,
            }
          : null,
        checkedAgainst: against(t?.site?.toLowerCase() ?? null, false),
      };
    const on = await this.#online(r, this.#rpc, t!, steps);
    return { ok: true, steps, anchored: on.anchored, checkedAgainst: against(on.site, true) };
  }

  #fail(what: string, e: unknown): never {
    if (e instanceof Fail) throw e;
    // The last endpoint tried serves another chain (the pool never sends a request to one).
    if (e instanceof RpcWrongChainError) throw wrongChain(e.served, e.expected);
    const msg =
      e instanceof ChainError ? e.shortMessage : ((e as Error)?.message ?? String(e)).split("\n")[0];
    this.#unreachable ??= `${what}: ${msg}`;
    throw new Fail("CHAIN_UNREACHABLE", `${what}: ${msg}`);
  }

  async #online(
    r: AnyReceipt,
    rpc: RpcClient,
    t: TrustAnchor,
    steps: VerifyStep[],
  ): Promise<{ anchored: AnchorSummary; site: string | null }> {
    const h = r.batch.header;
    const registry = t.registry.toLowerCase();
    const from = t.fromBlock ?? 0;
    if (this.#unreachable !== undefined)
      throw new Fail("CHAIN_UNREACHABLE", `${this.#unreachable} (earlier in this run: not asked again)`);
    // 10. chain
    this.#chainOk ??= rpc.request<string>("eth_chainId", []).then(BigInt);
    let chainId: bigint;
    try {
      chainId = await this.#chainOk;
    } catch (e) {
      this.#chainOk = undefined;
      this.#fail("chain id query failed", e);
    }
    if (chainId !== t.chainId) throw wrongChain(chainId, t.chainId);

    // The run's view of the chain: every log query ends at the head read here, once.
    this.#tip ??= (async () => {
      const latest = await blockNumber(rpc);
      let finalized = -1;
      try {
        const b = await rpc.request<{ number: string } | null>("eth_getBlockByNumber", ["finalized", false]);
        if (b) finalized = Number(BigInt(b.number));
      } catch (e) {
        if (e instanceof ChainNetworkError) throw e; // a node without the tag: unknown, not an error
      }
      return { latest, finalized };
    })();
    let tip: { latest: number; finalized: number };
    try {
      tip = await this.#tip;
    } catch (e) {
      this.#tip = undefined;
      this.#fail("block query failed", e);
    }

    // 11.-13. before any anchor lookup: the registry has registered this gateway, has held the
    // signer as its key, at the pinned site. The events of the whole registry (or of the pinned
    // gateway) are read once per run, so receipts of gateways or keys it never had cost nothing more.
    this.#history ??= this.#gatewayEvents(rpc, registry, from, t.gatewayId, tip.latest);
    let byGateway: Map<string, KeyEvent[]>;
    try {
      byGateway = await this.#history;
    } catch (e) {
      this.#history = undefined;
      this.#fail("registry log query failed", e);
    }
    const gw = h.gatewayId.toLowerCase();
    const events = byGateway.get(gw) ?? [];
    const registered = events.find((ev) => ev.name === "GatewayRegistered");
    must(
      registered,
      "KEY_REVOKED",
      `no GatewayRegistered event of gateway ${gw} in registry ${registry} between block ${from} and the head (block ${tip.latest}): the gateway is not registered there, or the first block searched is after its registration (--from-block)`,
    );
    const s = r.batch.signer;
    const pub = s.publicKey.toLowerCase();
    must(
      events.some((ev) => ev.keyType === s.keyType && ev.publicKey === pub),
      "WRONG_SIGNER",
      `gateway ${gw} never had ${s.keyType} key ${pub} in registry ${registry} (blocks ${from}–${tip.latest}): the receipt's signer is ${s.publicKey}`,
    );
    const site = registered.site ?? null; // set once, at registration
    if (t.site !== undefined)
      must(
        site === t.site.toLowerCase(),
        "WRONG_SITE",
        `gateway ${gw} is registered at site ${site}, not the trusted site ${t.site}${t.siteName ? ` (${t.siteName})` : ""}`,
      );

    // 14. the BatchAnchored event
    const headerHash = hashBatchHeader(toEip712Header(h));
    const key = `${gw}|${h.seq}|${h.root.toLowerCase()}|${headerHash}`;
    let lookup = this.#anchors.get(key);
    if (!lookup) {
      lookup = this.#findAnchor(
        rpc,
        registry,
        from,
        tip.latest,
        h.gatewayId,
        h.seq,
        h.root,
        headerHash,
        r.anchor?.blockNumber ?? null,
      );
      this.#anchors.set(key, lookup);
      lookup.catch(() => this.#anchors.delete(key));
    }
    let found: AnchorLookup;
    try {
      found = await lookup;
    } catch (e) {
      this.#fail("log query failed", e);
    }
    const log = found.log;
    must(
      log,
      "NOT_ANCHORED",
      `batch ${h.seq} with root ${h.root} is not anchored in the trusted registry ${registry} on chain ${chainId} (searched blocks ${from}–${tip.latest})`,
    );
    // 15. the receipt's anchor fields
    const a = r.anchor;
    if (a) {
      const mismatch = (field: string, theirs: unknown, ours: unknown): string =>
        `the receipt's anchor.${field} is ${String(theirs)}; the chain has ${String(ours)} (tx ${log.transactionHash} in block ${log.blockNumber})`;
      if (a.txHash !== null)
        must(
          a.txHash.toLowerCase() === log.transactionHash,
          "ANCHOR_MISMATCH",
          mismatch("txHash", a.txHash, log.transactionHash),
        );
      if (a.blockNumber !== null)
        must(
          a.blockNumber === log.blockNumber,
          "ANCHOR_MISMATCH",
          mismatch("blockNumber", a.blockNumber, log.blockNumber),
        );
      if (a.blockHash)
        must(
          a.blockHash.toLowerCase() === log.blockHash,
          "ANCHOR_MISMATCH",
          mismatch("blockHash", a.blockHash, log.blockHash),
        );
    }
    const confirmations = Math.max(0, tip.latest - log.blockNumber + 1);
    const finalized = tip.finalized >= log.blockNumber;
    steps.push({
      step: "anchored",
      ok: true,
      detail: `tx ${log.transactionHash} in block ${log.blockNumber} of registry ${registry} (${confirmations} confirmations, ${finalized ? "finalized" : "not finalized yet"})`,
    });

    // 16.-17. the gateway's status and key when the batch was anchored
    const st = { status: 0, keyType: "none", publicKey: "" };
    for (const ev of events) {
      if (ev.block > log.blockNumber || (ev.block === log.blockNumber && ev.index >= log.index)) break;
      if (ev.keyType !== undefined) {
        st.keyType = ev.keyType;
        st.publicKey = ev.publicKey!;
      }
      if (ev.status !== undefined) st.status = ev.status;
    }
    must(
      st.status === 1,
      "KEY_REVOKED",
      st.keyType === "none"
        ? `no GatewayRegistered event of gateway ${gw} in registry ${registry} between block ${from} and the anchor (block ${log.blockNumber}): the first block searched must be at or before the gateway's registration (--from-block)`
        : `gateway ${gw} was ${STATUS[st.status] ?? st.status} in registry ${registry} when batch ${h.seq} was anchored (block ${log.blockNumber})`,
    );
    must(
      st.keyType === s.keyType && st.publicKey === pub,
      "WRONG_SIGNER",
      `the registry's key for gateway ${gw} at block ${log.blockNumber} is ${st.keyType} ${st.publicKey}, the receipt's signer is ${s.publicKey}`,
    );
    steps.push({
      step: "key",
      ok: true,
      detail: `${s.keyType} key registered and active at block ${log.blockNumber}; gateway ${gw} of site ${site}`,
    });
    // 18. finality, when the auditor requires it (a reorg can still remove an anchor before)
    const need = this.#o.minConfirmations ?? 0;
    if (need > 0 || this.#o.requireFinalized) {
      must(
        confirmations >= need,
        "NOT_FINAL",
        `the anchor (block ${log.blockNumber}) has ${confirmations} confirmations, fewer than the ${need} required`,
      );
      must(
        !this.#o.requireFinalized || finalized,
        "NOT_FINAL",
        tip.finalized < 0
          ? `the node reports no finalized block, so the anchor (block ${log.blockNumber}) cannot be shown final`
          : `the anchor (block ${log.blockNumber}) is above the chain's finalized block ${tip.finalized}`,
      );
      steps.push({
        step: "final",
        ok: true,
        detail: `${confirmations} confirmations${finalized ? ", finalized" : ""} (required: ${[
          ...(need > 0 ? [`${need} confirmations`] : []),
          ...(this.#o.requireFinalized ? ["finalized"] : []),
        ].join(", ")})`,
      });
    }
    return {
      anchored: {
        checked: true,
        chainId: Number(chainId),
        contract: registry,
        txHash: log.transactionHash,
        blockNumber: log.blockNumber,
        confirmations,
        finalized,
      },
      site,
    };
  }

  async #findAnchor(
    rpc: RpcClient,
    registry: string,
    fromBlock: number,
    toBlock: number,
    gatewayId: string,
    seq: number,
    root: string,
    headerHash: string,
    hint: number | null,
  ): Promise<AnchorLookup> {
    const filter = {
      address: registry,
      topics: [
        BATCH_ANCHORED,
        gatewayId.toLowerCase(),
        `0x${seq.toString(16).padStart(64, "0")}`,
        root.toLowerCase(),
      ],
    };
    const match = (logs: readonly ChainLog[]): ChainLog | undefined =>
      logs.find((l) => {
        const p = registryIface.parseLog(l);
        return p !== null && String(p.args.getValue("headerHash")).toLowerCase() === headerHash;
      });
    const range = this.#o.logBlockRange ?? DEFAULT_LOG_RANGE;
    // The receipt's block first (one request; not asked when outside the blocks searched); the whole
    // range from the deployment block to the run's head otherwise.
    if (hint !== null && hint >= fromBlock && hint <= toBlock) {
      // A node behind the run's head (another endpoint of the pool) may refuse the block: then the
      // scan below finds the event (ANCHOR_MISMATCH names the block) or reports the node unreachable.
      const l = await scanLogs(rpc, filter, { fromBlock: hint, toBlock: hint, maxRange: range }).then(
        match,
        () => undefined,
      );
      if (l) return { log: l };
    }
    const logs = await scanLogs(rpc, filter, {
      fromBlock,
      toBlock,
      maxRange: range,
      direction: "backward",
      stopWhen: (ls) => match(ls) !== undefined,
    });
    return { log: match(logs) };
  }

  /**
   * GatewayRegistered, GatewayKeyRotated and GatewayStatusChanged events of the registry from
   * `fromBlock` to `toBlock` — of every gateway, or of `gatewayId` when the trust anchor pins one —
   * by gateway id, each gateway's in chain order.
   */
  async #gatewayEvents(
    rpc: RpcClient,
    registry: string,
    fromBlock: number,
    gatewayId: string | undefined,
    toBlock: number,
  ): Promise<Map<string, KeyEvent[]>> {
    const logs = await scanLogs(
      rpc,
      { address: registry, topics: gatewayId === undefined ? [KEY_EVENTS] : [KEY_EVENTS, gatewayId] },
      { fromBlock, toBlock, maxRange: this.#o.logBlockRange ?? DEFAULT_LOG_RANGE },
    );
    const out = new Map<string, KeyEvent[]>();
    for (const l of logs) {
      const p = registryIface.parseLog(l);
      if (!p) continue;
      const ev: KeyEvent = { block: l.blockNumber, index: l.index, name: p.name };
      if (p.name === "GatewayRegistered" || p.name === "GatewayKeyRotated") {
        ev.keyType = KEY_TYPES[Number(p.args.getValue("keyType"))] ?? "none";
        ev.publicKey = String(p.args.getValue("publicKey")).toLowerCase();
      }
      if (p.name === "GatewayRegistered") {
        ev.status = 1;
        ev.site = String(p.args.getValue("site")).toLowerCase();
      }
      if (p.name === "GatewayStatusChanged") ev.status = Number(p.args.getValue("status"));
      const gw = String(p.args.getValue("gatewayId")).toLowerCase();
      const list = out.get(gw);
      if (list) list.push(ev);
      else out.set(gw, [ev]);
    }
    return out;
  }
}

/** Verifies one receipt (a one-shot {@link ReceiptVerifier}); never throws for a bad receipt. */
export async function verifyReceipt(r: AnyReceipt, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const v = new ReceiptVerifier(opts);
  try {
    return await v.verify(r);
  } finally {
    v.close();
  }
}

/**
 * Verifies the receipts of a bundle (a one-shot {@link ReceiptVerifier.verifyBundle}): one result
 * each, a repeated receipt DUPLICATE; never throws for a bad receipt.
 */
export async function verifyBundle(
  receipts: readonly AnyReceipt[],
  opts: VerifyOptions = {},
): Promise<VerifyResult[]> {
  const v = new ReceiptVerifier(opts);
  try {
    return await v.verifyBundle(receipts);
  } finally {
    v.close();
  }
}
