/**
 * {@link RegistryEventSource} over a {@link FakeChain}: the events its clients' transactions
 * emitted, with the fake's block hashes (which change when `FakeChain.reorg` replaces blocks).
 * `offline` makes every call fail like an unreachable RPC endpoint.
 */
import { ChainNetworkError } from "./errors.ts";
import type { ChainHead, RegistryEvent, RegistryEventSource } from "./events.ts";
import type { FakeChain } from "./fake-client.ts";

export class FakeRegistryEvents implements RegistryEventSource {
  /** When true every call rejects with ChainNetworkError (an RPC outage). */
  offline = false;
  /** Calls of events(), for tests that count round trips. */
  requests = 0;

  constructor(private readonly chain: FakeChain) {}

  #check(): void {
    if (this.offline) throw new ChainNetworkError("fake://chain", { reason: "ECONNREFUSED" });
  }

  async head(): Promise<ChainHead> {
    this.#check();
    const n = Number(this.chain.block);
    return { number: n, hash: this.chain.blockHash(n) };
  }

  async blockHash(n: number): Promise<string | undefined> {
    this.#check();
    return n <= Number(this.chain.block) ? this.chain.blockHash(n) : undefined;
  }

  async events(from: number, to: number): Promise<RegistryEvent[]> {
    this.#check();
    this.requests++;
    return this.chain.events
      .filter((e) => e.block >= from && e.block <= to)
      .map((e) => ({ ...e, blockHash: this.chain.blockHash(e.block) }));
  }

  close(): void {}
}
