/**
 * How a promise ends within `ms`: "resolved", the error it rejected with, or "still running" (a
 * bound on the outcome, not a synchronisation: the update agents' stops and aborts must not wait
 * for a download's 20 s or more).
 */
export async function within(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise((res) => (timer = setTimeout(() => res("still running"), ms)));
  try {
    return await Promise.race([
      p.then(
        () => "resolved",
        (e: unknown) => e,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
