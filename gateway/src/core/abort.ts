/** Waiting on a promise that cannot itself be cancelled, until an AbortSignal says stop. */

/**
 * `p`, or a rejection with the signal's reason as soon as it aborts. A value `p` brings after that
 * goes to `dispose`: a wait Node cannot cancel (open() of a hung mount) is abandoned, not awaited.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal, dispose?: (v: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason);
      p.then(
        (v) => dispose?.(v),
        () => undefined,
      );
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) dispose?.(v);
        else resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
