/**
 * The registry cache part of the store: what the registry watch (chain/watch.ts) knows about the
 * registry, as entries `(kind, id) → JSON value` plus one meta record (the last processed block,
 * its hash, the events of the unconfirmed blocks, the time of the last refresh). Every save writes
 * the changed entries and the meta in one synced batch, so after a crash the cache and the block it
 * reflects always agree, and the watch resumes from that block.
 *
 * Keys (codec.ts table): `R` 0x00 is the meta record; `R` kind(1 byte, ASCII) id(UTF-8) an entry.
 * The store does not interpret kinds or values; chain/registry-view.ts does.
 */
import type { StoreContext } from "./context.ts";
import { P_REGISTRY, prefixEnd } from "./codec.ts";
import type { KvOp } from "./kv.ts";
import type { StoreUnavailableError } from "./errors.ts";
import type { RegistryCacheEntry, RegistryCacheState } from "./types.ts";

export type { RegistryCacheEntry, RegistryCacheState };

const META_KEY = Buffer.of(P_REGISTRY, 0);

function entryKey(kind: string, id: string): Buffer {
  const k = kind.charCodeAt(0);
  if (kind.length !== 1 || k < 1 || k > 0x7e)
    throw new RangeError(`registry cache kind must be one ASCII character, got "${kind}"`);
  const idBytes = Buffer.from(id, "utf8");
  if (idBytes.length > 200)
    throw new RangeError(`registry cache id is ${idBytes.length} bytes, the limit is 200`);
  return Buffer.concat([Buffer.of(P_REGISTRY, k), idBytes]);
}

export class RegistryCache {
  readonly #c: StoreContext;
  readonly #failed: (err: StoreUnavailableError) => void;

  constructor(c: StoreContext, failed: (err: StoreUnavailableError) => void) {
    this.#c = c;
    this.#failed = failed;
  }

  async load(): Promise<RegistryCacheState> {
    const c = this.#c;
    const metaRaw = await c.read(META_KEY);
    const entries: RegistryCacheEntry[] = [];
    try {
      for await (const [k, v] of c.kv.range({ gte: Buffer.of(P_REGISTRY, 1), lt: prefixEnd(P_REGISTRY) }))
        entries.push({
          kind: String.fromCharCode(k[1]!),
          id: k.subarray(2).toString("utf8"),
          value: JSON.parse(v.toString("utf8")) as unknown,
        });
    } catch (e) {
      throw c.readFailed(e);
    }
    return {
      meta: metaRaw ? (JSON.parse(metaRaw.toString("utf8")) as Record<string, unknown>) : undefined,
      entries,
    };
  }

  /**
   * Writes `changes` and `meta` atomically (synced). With `replace`, every existing entry is
   * deleted first (a full rewrite, e.g. after a reorg deeper than the watch re-reads).
   */
  save(
    changes: readonly RegistryCacheEntry[],
    meta: Record<string, unknown>,
    replace = false,
  ): Promise<void> {
    const c = this.#c;
    return c.metaLock.run(async () => {
      const ops: KvOp[] = [];
      const written = new Set<string>();
      for (const e of changes) {
        const key = entryKey(e.kind, e.id);
        written.add(key.toString("latin1"));
        ops.push(
          e.value === undefined
            ? { type: "del", key }
            : { type: "put", key, value: Buffer.from(JSON.stringify(e.value), "utf8") },
        );
      }
      if (replace) {
        try {
          for await (const [k] of c.kv.range({ gte: Buffer.of(P_REGISTRY, 1), lt: prefixEnd(P_REGISTRY) }))
            if (!written.has(k.toString("latin1"))) ops.push({ type: "del", key: k });
        } catch (e) {
          throw c.readFailed(e);
        }
      }
      ops.push({ type: "put", key: META_KEY, value: Buffer.from(JSON.stringify(meta), "utf8") });
      await c.metaWrite(ops, "saving the registry cache", this.#failed);
    });
  }
}
