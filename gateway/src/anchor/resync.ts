/**
 * `vigil anchor resync`: reconciles the store's anchor records with what the registry holds, for the
 * states the anchoring service does not repair by itself (a reorg deeper than the finality depth, a
 * chain reset, a store restored from a backup, records from before finality tracking). Every change
 * is stated in one sentence; with `dryRun` nothing is written.
 *
 * 1. Records the chain contradicts (checked from `fromSeq`, default the first anchor not final and at
 *    least the last 100): a transaction that is gone or moved is replaced by where the chain has the
 *    batch's BatchAnchored event (same header hash); block hash and finality are refreshed.
 * 2. Anchored here but not on chain (the registry's head is lower): the records above the head are
 *    removed; the service anchors those batches again, unchanged, when the gateway runs. Not when
 *    the endpoint is below a block those records name and still has an older anchor's block as
 *    recorded (a lagging replica, not a reorg or a reset), nor when nothing tells the two apart;
 *    `chainReset` removes them anyway.
 * 3. On chain but not recorded here: recorded, after checking the header hash against the store.
 * Conflicts that cannot be repaired (the registry holds another header at a seq, or more batches
 * than this store sealed) are reported and left alone.
 */
import { hashBatchHeader } from "../chain/eip712.ts";
import type { Hex } from "../core/hex.ts";
import { toEip712Header } from "../attest/header.ts";
import type { AnchorRecord, FrameStore } from "../store/types.ts";
import type { AnchorChain } from "./chain.ts";

export interface ResyncOptions {
  store: FrameStore;
  chain: Pick<
    AnchorChain,
    | "chainId"
    | "registryAddress"
    | "getHead"
    | "findAnchor"
    | "locate"
    | "finalizedBlock"
    | "latestBlock"
    | "blockHashAt"
  >;
  gatewayId: Hex;
  /** Finality depth recorded in new records (0 with the finalized tag). */
  confirmations: number;
  /** First anchored seq to check against the chain. Default: the first non-final one, at most 100 back. */
  fromSeq?: number;
  dryRun?: boolean;
  /**
   * The chain was reset (a new dev chain, a redeployed registry at the same address): remove
   * records above the registry's head even where the endpoint cannot show that they are gone.
   * Default false.
   */
  chainReset?: boolean;
  nowUs?: () => number;
}

export interface ResyncReport {
  dryRun: boolean;
  /** Batches of the gateway the registry holds. */
  chainSeq: number;
  sealed: number;
  anchoredBefore: number;
  anchoredAfter: number;
  /** Records checked against the chain. */
  checked: number;
  updated: number;
  removed: number;
  recorded: number;
  /** What was done (or would be, with dryRun), one sentence each. */
  actions: string[];
  /** What could not be repaired. */
  conflicts: string[];
}

export async function resyncAnchors(o: ResyncOptions): Promise<ResyncReport> {
  const { store, chain } = o;
  const gw = o.gatewayId.toLowerCase() as Hex;
  const dry = o.dryRun ?? false;
  const nowUs = o.nowUs ?? (() => Date.now() * 1000);
  // The head at the block the lag check below uses, whichever endpoint of a pool answers.
  const latest = await chain.latestBlock();
  const head = await chain.getHead(gw, latest.number);
  const h = Number(head.seq);
  const n = store.lastBatchSeq();
  const a = store.anchoredThrough();
  const r: ResyncReport = {
    dryRun: dry,
    chainSeq: h,
    sealed: n,
    anchoredBefore: a,
    anchoredAfter: a,
    checked: 0,
    updated: 0,
    removed: 0,
    recorded: 0,
    actions: [],
    conflicts: [],
  };
  const verb = (done: string, would: string): string => (dry ? would : done);
  const finalBlock = await chain.finalizedBlock(latest.number); // judged at the block read above
  const headerHash = async (s: number): Promise<Hex | undefined> => {
    const b = await store.getBatch(s);
    return b ? hashBatchHeader(toEip712Header(b.header)) : undefined;
  };
  const base = (tx: string, block: number, blockHash: string): AnchorRecord => ({
    chainId: Number(chain.chainId),
    contract: chain.registryAddress.toLowerCase(),
    txHash: tx,
    blockNumber: block,
    blockHash,
    confirmations: o.confirmations,
    final: block <= finalBlock,
    anchoredAtUs: nowUs(),
  });

  if (h > n)
    r.conflicts.push(
      `the registry holds ${h} batches of gateway ${gw} but this store sealed only ${n}: another gateway uses this id, or the store was restored from an older backup`,
    );

  // 1. Existing records the chain may contradict.
  const upTo = Math.min(a, h);
  let from = o.fromSeq ?? Math.max(1, upTo - 99);
  if (o.fromSeq === undefined)
    for (let s = upTo; s >= 1 && upTo - s < 100_000; s--) {
      const rec = await store.getAnchor(s);
      if (!rec || rec.final !== false) break;
      from = Math.min(from, s);
    }
  let firstBad: number | undefined;
  for (let s = Math.max(1, from); s <= upTo; s++) {
    r.checked++;
    const rec = await store.getAnchor(s);
    const want = await headerHash(s);
    const loc = rec?.txHash ? await chain.locate(rec.txHash as Hex) : null;
    const ev = loc?.events.find((e) => e.gatewayId === gw && Number(e.seq) === s);
    if (loc && ev && ev.headerHash === want) {
      const fin = loc.blockNumber <= finalBlock;
      if (
        rec &&
        (rec.blockHash !== loc.blockHash ||
          rec.blockNumber !== loc.blockNumber ||
          (rec.final ?? true) !== fin)
      ) {
        if (!dry)
          await store.updateAnchor(s, {
            ...rec,
            blockNumber: loc.blockNumber,
            blockHash: loc.blockHash,
            final: fin,
          });
        r.updated++;
        r.actions.push(
          `batch ${s}: ${verb("updated", "would update")} its record to block ${loc.blockNumber} (${loc.blockHash.slice(0, 10)}…), ${fin ? "final" : "not final yet"}`,
        );
      }
      continue;
    }
    const found = await chain.findAnchor(gw, BigInt(s), latest.number);
    if (found && found.headerHash === want) {
      if (!dry)
        await store.updateAnchor(s, {
          ...(rec ?? base(found.txHash, found.blockNumber, found.blockHash)),
          ...base(found.txHash, found.blockNumber, found.blockHash),
        });
      r.updated++;
      r.actions.push(
        `batch ${s}: its record named transaction ${rec?.txHash ?? "none"}, which the chain does not have; the chain has the batch in ${found.txHash} (block ${found.blockNumber}): record ${verb("updated", "would be updated")}`,
      );
      continue;
    }
    r.conflicts.push(
      found
        ? `batch ${s}: the registry anchored another header under this seq (header hash ${found.headerHash}, this store's is ${want})`
        : `batch ${s}: the registry counts it as anchored but no BatchAnchored event of it was found`,
    );
    firstBad ??= s;
  }

  // 2. Recorded here, not on chain: remove the records above the registry's head.
  const lagging =
    a > h && firstBad === undefined && !o.chainReset ? await lagOf(store, h, a, latest.number, chain) : null;
  if (lagging) r.conflicts.push(lagging);
  else if (a > h && firstBad === undefined) {
    if (!dry) r.removed = await store.rewindAnchors(h);
    else r.removed = a - h;
    r.anchoredAfter = h;
    r.actions.push(
      `batches ${h + 1}..${a}: recorded as anchored, but the registry holds only ${h}: records ${verb("removed", "would be removed")}; the gateway anchors these batches again (same headers) when it runs`,
    );
  }

  // 3. On chain, not recorded here.
  if (h > a && firstBad === undefined) {
    for (let s = a + 1; s <= Math.min(h, n); s++) {
      const found = await chain.findAnchor(gw, BigInt(s), latest.number);
      const want = await headerHash(s);
      if (!found || found.headerHash !== want) {
        r.conflicts.push(
          found
            ? `batch ${s}: the registry anchored another header under this seq (header hash ${found.headerHash}, this store's is ${want})`
            : `batch ${s}: the registry counts it as anchored but no BatchAnchored event of it was found`,
        );
        break;
      }
      if (!dry) await store.markAnchored(s, base(found.txHash, found.blockNumber, found.blockHash));
      r.recorded++;
      r.anchoredAfter = s;
      r.actions.push(
        `batch ${s}: anchored on chain in ${found.txHash} (block ${found.blockNumber}) but not recorded here: ${verb("recorded", "would be recorded")}`,
      );
    }
  }
  return r;
}

/**
 * Why the records of batches `h + 1..a` must not be removed, or null when they may be. An endpoint
 * below the block of one of them cannot show that it is gone. It is judged by the newest record at or
 * below the endpoint's latest block: the endpoint has that block as recorded (it shares this store's
 * chain, only behind: a lagging replica) → not removed; another hash (a reorg or a reset chain) →
 * removed; no such record → it cannot be told, not removed.
 */
async function lagOf(
  store: FrameStore,
  h: number,
  a: number,
  latest: number,
  chain: Pick<AnchorChain, "blockHashAt">,
): Promise<string | null> {
  let past: { seq: number; block: number } | undefined;
  for (let s = a; s > h; s--) {
    const b = (await store.getAnchor(s))?.blockNumber;
    if (b != null && b > latest && (past === undefined || b > past.block)) past = { seq: s, block: b };
  }
  if (!past) return null;
  const behind = `the RPC endpoint is at block ${latest}, below block ${past.block} where batch ${past.seq}'s anchor was recorded`;
  for (let s = a; s >= 1; s--) {
    const rec = await store.getAnchor(s);
    if (rec?.blockNumber == null || !rec.blockHash || rec.blockNumber > latest) continue;
    const hash = await chain.blockHashAt(rec.blockNumber);
    if (hash !== null && hash !== rec.blockHash.toLowerCase()) return null; // another chain: reorg or reset
    return `batches ${h + 1}..${a}: not removed: ${behind}, and it has block ${rec.blockNumber} of batch ${s}'s anchor as recorded: it lags behind the chain this store anchored on (or a reorg left it shorter): wait until it passes block ${past.block}, or run resync against an endpoint that is synced; if the chain was reset, pass --chain-reset`;
  }
  return `batches ${h + 1}..${a}: not removed: ${behind}, and no anchor recorded at or below that block tells a lagging endpoint from a reset chain: wait until it passes block ${past.block}, or run resync against an endpoint that is synced; if the chain was reset, pass --chain-reset`;
}

/** The report as lines for a terminal. */
export function formatResync(r: ResyncReport): string {
  const lines = [
    `registry: ${r.chainSeq} batches anchored; store: ${r.sealed} sealed, ${r.anchoredBefore} recorded as anchored${r.dryRun ? " (dry run: nothing written)" : ""}`,
    `checked ${r.checked} anchor records against the chain`,
    ...r.actions.map((x) => `  ${x}`),
  ];
  if (r.actions.length === 0 && r.conflicts.length === 0)
    lines.push("  nothing to do: the store agrees with the chain");
  for (const c of r.conflicts) lines.push(`  CONFLICT ${c}`);
  const backlog = r.sealed - r.anchoredAfter;
  lines.push(
    `now ${r.anchoredAfter} recorded as anchored (${r.updated} updated, ${r.removed} removed, ${r.recorded} added); ${backlog} batches wait to be anchored${r.conflicts.length ? "; conflicts need an operator" : ""}`,
  );
  return lines.join("\n") + "\n";
}
