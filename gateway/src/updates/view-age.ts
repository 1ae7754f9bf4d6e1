/**
 * How old the chain view an update check acts on is. A frozen or lagging RPC endpoint (or a
 * halted chain) still answers every read, with old state: a release revoked since looks Active,
 * a newer one is never seen (a freeze attack). With one endpoint the RPC pool's lag check
 * cannot see it (it compares endpoints), so the update agents compare the newest block's
 * timestamp with the local clock: a view older than `updates.staleAfterMs` is not acted on, and
 * the freeze alarm counts from the view's time, not from when it was read.
 */
import { VigilError } from "../core/errors.ts";

/** The newest block the release source reads from is older than the limit. */
export class StaleViewError extends VigilError {
  override name = "StaleViewError";
  declare readonly code: "STALE_CHAIN_VIEW";
  constructor(ageMs: number, maxAgeMs: number) {
    super(
      "STALE_CHAIN_VIEW",
      `the RPC endpoint's newest block is ${Math.round(ageMs / 1000)} s old (limit ${Math.round(maxAgeMs / 1000)} s, updates.staleAfterMs): a frozen or lagging endpoint or a halted chain; nothing is installed from it`,
    );
  }
}

/**
 * The time of the view `src` answers from, ms: its newest block's timestamp, at most `nowMs` (a
 * local clock behind the chain's, as before NTP sync, never raises the alarm), or `nowMs` when
 * the source has no chain clock (a local development chain mines only on demand).
 * @throws StaleViewError when that block is more than `maxAgeMs` older than `nowMs`.
 */
export async function viewTimeMs(
  src: { chainTimeS?(): Promise<bigint> },
  nowMs: number,
  maxAgeMs: number,
): Promise<number> {
  if (!src.chainTimeS) return nowMs;
  const atMs = Number(await src.chainTimeS()) * 1000;
  if (nowMs - atMs > maxAgeMs) throw new StaleViewError(nowMs - atMs, maxAgeMs);
  return Math.min(atMs, nowMs);
}
