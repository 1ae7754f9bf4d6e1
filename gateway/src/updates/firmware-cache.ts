/**
 * One download per firmware release, shared by every device's transfer (firmware-agent.ts).
 *
 * The first device that needs a release starts its download (`load`); every device that needs the
 * same release while that download runs, or after it succeeded while any transfer still holds
 * it, gets the same promise: one GET, one staged file, one Buffer, whatever the number of
 * sensors. A failed download is dropped at once, failing every device that waited on it with the
 * same error (the agent's backoff decides when a device starts the next one). A succeeded one is
 * kept until its last holder lets go (its transfer settled), then dropped: `onDrop` removes its
 * staged file, and a device that needs the release later downloads it again.
 */

/** A device's hold on a release's shared download. */
export interface ImageLease<T> {
  /** The download's outcome: the same promise for every holder. */
  readonly value: Promise<T>;
  /** Lets go (once; later calls do nothing); the last holder's drops the download. */
  release(): void;
}

interface Entry<T> {
  readonly value: Promise<T>;
  holders: number;
}

export class SharedDownloads<T> {
  readonly #entries = new Map<string, Entry<T>>();
  /** Called with a key whose download was dropped (failed, or let go by its last holder). */
  readonly #onDrop: (key: string) => void;

  constructor(onDrop: (key: string) => void) {
    this.#onDrop = onDrop;
  }

  /** Whether a download of `key` is under way or held. */
  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** The keys of the downloads under way or held. */
  keys(): string[] {
    return [...this.#entries.keys()];
  }

  /** Joins the download of `key` under way or held, or starts one with `load`. */
  acquire(key: string, load: () => Promise<T>): ImageLease<T> {
    let e = this.#entries.get(key);
    if (!e) {
      const entry: Entry<T> = { value: load(), holders: 0 };
      // A failure is dropped at once: holders see it through `value`; the next acquire loads anew.
      entry.value.catch(() => this.#drop(key, entry));
      this.#entries.set(key, entry);
      e = entry;
    }
    const held = e;
    held.holders++;
    let released = false;
    return {
      value: held.value,
      release: () => {
        if (released) return;
        released = true;
        if (--held.holders === 0) this.#drop(key, held);
      },
    };
  }

  /**
   * Forgets every download (the agent's stop): holders keep what they got, their releases then
   * do nothing, and the next acquire of a key loads it again.
   */
  clear(): void {
    this.#entries.clear();
  }

  #drop(key: string, entry: Entry<T>): void {
    if (this.#entries.get(key) !== entry) return; // already dropped (failed, or cleared)
    this.#entries.delete(key);
    this.#onDrop(key);
  }
}
