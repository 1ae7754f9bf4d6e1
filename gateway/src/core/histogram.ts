/**
 * A fixed-size log-bucketed latency histogram in µs: 8 buckets per power of two from 1 µs to
 * ~2^27 µs (≈ 134 s), so quantiles carry ≤ 9 % relative error. Recording is allocation-free.
 */
const PER_OCTAVE = 8;
const OCTAVES = 27;
const BUCKETS = PER_OCTAVE * OCTAVES + 1;

export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  count = 0;
  sumUs = 0;
  maxUs = 0;

  /** Records `times` samples of `us` (default one). */
  record(us: number, times = 1): void {
    const v = us < 1 ? 1 : us;
    let b = Math.ceil(Math.log2(v) * PER_OCTAVE);
    if (b >= BUCKETS) b = BUCKETS - 1;
    this.#counts[b]! += times;
    this.count += times;
    this.sumUs += us * times;
    if (us > this.maxUs) this.maxUs = us;
  }

  /** Upper bound of the bucket holding quantile q (0..1); 0 when empty. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.#counts[b]!;
      if (seen >= rank) return Math.min(2 ** (b / PER_OCTAVE), this.maxUs);
    }
    return this.maxUs;
  }

  snapshot(): { count: number; p50Us: number; p90Us: number; p99Us: number; maxUs: number; meanUs: number } {
    const r = (x: number): number => Math.round(x * 10) / 10;
    return {
      count: this.count,
      p50Us: r(this.quantile(0.5)),
      p90Us: r(this.quantile(0.9)),
      p99Us: r(this.quantile(0.99)),
      maxUs: r(this.maxUs),
      meanUs: r(this.count ? this.sumUs / this.count : 0),
    };
  }

  reset(): void {
    this.#counts.fill(0);
    this.count = 0;
    this.sumUs = 0;
    this.maxUs = 0;
  }
}
