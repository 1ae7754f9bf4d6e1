/**
 * An ethers v6 provider over an {@link RpcClient} (rpc.ts: the RPC pool with several endpoints,
 * health checks, failover, per-request timeout, typed errors) instead of one URL, so that
 * ethers' Contract and Wallet (ABI coding, gas estimation, signing) run over the pool.
 *
 * ethers' JsonRpcApiProvider queues every request and hands it to `_send` (ethers 6
 * providers/provider-jsonrpc.js: "a sub-class MUST override _send" and "MUST call _start()");
 * here each request goes to `RpcClient.request`, one at a time: batching is off
 * (`batchMaxCount: 1`) because the pool sends single requests and fails over per request.
 *
 * Errors are translated once, by the pool: a JSON-RPC error answer becomes a typed ChainError
 * (errors.ts `translateRpcError`: a revert decoded with the pool's `ifaces`, nonce and funds
 * errors by the node's message), a transport failure a ChainNetworkError. `_send` rethrows it as
 * is; ethers passes an error that is not its own through unchanged, and `translateEthersError`
 * returns a ChainError as is. So the pool must be built with the ABIs whose custom errors can
 * appear ({@link CONTRACT_IFACES} of ethers-client.ts for the registry client).
 */
import {
  JsonRpcApiProvider,
  keccak256,
  Network,
  type JsonRpcError,
  type JsonRpcPayload,
  type JsonRpcResult,
} from "ethers";
import { AlreadyKnownError } from "./errors.ts";
import type { RpcClient } from "./rpc.ts";

export class RpcClientProvider extends JsonRpcApiProvider {
  readonly #rpc: RpcClient;

  /**
   * @param rpc The connection; not closed by `destroy()` (its owner closes it).
   * @param chainId The deployment's chain id: the network is static, so no request is made
   *   before the first call (the endpoints may be down at start).
   */
  constructor(rpc: RpcClient, chainId: bigint) {
    const network = Network.from(chainId);
    super(network, { staticNetwork: network, batchMaxCount: 1, cacheTimeout: -1 });
    this.#rpc = rpc;
    // Requests are dispatched from now on; with a static network nothing is sent here.
    this._start();
  }

  /** The endpoint that serves requests now (redacted). */
  get currentUrl(): string {
    return this.#rpc.currentUrl;
  }

  override async _send(
    payload: JsonRpcPayload | JsonRpcPayload[],
  ): Promise<Array<JsonRpcResult | JsonRpcError>> {
    // One payload with batching off; a list (never sent with batchMaxCount 1) one by one.
    const out: JsonRpcResult[] = [];
    for (const p of Array.isArray(payload) ? payload : [payload]) {
      const params = Array.isArray(p.params) ? p.params : [p.params];
      out.push({ id: p.id, result: await this.#request(p.method, params) });
    }
    return out;
  }

  async #request(method: string, params: readonly unknown[]): Promise<unknown> {
    try {
      return await this.#rpc.request(method, params);
    } catch (e) {
      // The pool resends a request that timed out to the next endpoint; when the first had taken
      // the transaction, the next may answer "already known". That is this very transaction
      // (same signed bytes), so it was sent: its hash is the answer, as anchoring's tx-sender.ts
      // counts it. Thrown, the caller would send the report again with a new nonce.
      if (
        method === "eth_sendRawTransaction" &&
        e instanceof AlreadyKnownError &&
        typeof params[0] === "string"
      )
        return keccak256(params[0]);
      throw e;
    }
  }
}
