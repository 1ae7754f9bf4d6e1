/**
 * The one retry schedule of the update agents for a release whose sources failed: the model
 * agent's wrong bytes (model-agent.ts, `mismatchRetryMs`) and the firmware agent's failed downloads
 * (firmware-agent.ts, `fetchRetryMs`).
 */

/** Longest wait between two attempts at one release, ms (6 h). */
export const MAX_RETRY_BACKOFF_MS = 6 * 3_600_000;

/**
 * The wait after the `attempts`-th failure in a row (1 for the first): `firstMs`, doubled after
 * every further failure, at most {@link MAX_RETRY_BACKOFF_MS}.
 */
export function retryBackoffMs(firstMs: number, attempts: number): number {
  return Math.min(firstMs * 2 ** Math.max(0, attempts - 1), MAX_RETRY_BACKOFF_MS);
}
