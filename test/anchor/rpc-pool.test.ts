/**
 * RpcPool: an endpoint the health check finds serving another chain is never sent a request,
 * also when an earlier probe had found it on the right chain (a provider repointed, a node
 * restarted on another network). The transport is a fetch stand-in that answers per host.
 */
import { describe, expect, it } from "vitest";
import { RpcWrongChainError } from "../../gateway/src/chain/errors.ts";
import { RpcPool } from "../../gateway/src/chain/rpc.ts";

/**
 * A fetch whose hosts serve `chains[host]` (undefined: down); records every non-probe request.
 * Hosts in `failing` answer requests (not probes) with HTTP 503 and a JSON-RPC -32603 body.
 */
function hosts(chains: Record<string, bigint | undefined>, failing = new Set<string>()) {
  const served: string[] = [];
  const fetchFn = (async (url: string, init: { body: string }) => {
    const { id, method } = JSON.parse(init.body) as { id: number; method: string };
    const host = new URL(url).hostname;
    const chain = chains[host];
    if (chain === undefined)
      throw Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNREFUSED" } });
    const probe = method === "eth_chainId" || method === "eth_blockNumber";
    if (!probe && failing.has(host))
      return new Response(
        JSON.stringify({ jsonrpc: "2.0", id, error: { code: -32603, message: "internal error" } }),
        { status: 503 },
      );
    if (!probe) served.push(`${method}@${host}`);
    const result = method === "eth_chainId" ? `0x${chain.toString(16)}` : "0x10";
    return new Response(JSON.stringify({ jsonrpc: "2.0", id, result }), { status: 200 });
  }) as unknown as typeof fetch;
  return { served, fetchFn };
}

/** A pool of `urls` on chain 10 over `fetchFn`, with no background health checks. */
const poolOf = (urls: string[], fetchFn: typeof fetch): RpcPool =>
  new RpcPool({ urls, expectedChainId: 10n, healthCheckIntervalMs: 0, fetch: fetchFn });

describe("RpcPool and endpoints on another chain", () => {
  it("error: an endpoint repointed to another chain after a good probe gets no request; with the other one down, the request fails as WRONG_CHAIN", async () => {
    const chains: Record<string, bigint | undefined> = { "a.example": 10n, "b.example": 10n };
    const { served, fetchFn } = hosts(chains);
    const pool = poolOf(["http://a.example/", "http://b.example/"], fetchFn);
    try {
      await pool.checkHealth();
      chains["b.example"] = 8453n;
      await pool.checkHealth();
      chains["a.example"] = undefined;
      await expect(pool.request("eth_call", [{}, "latest"])).rejects.toBeInstanceOf(RpcWrongChainError);
      expect(served).toEqual([]);
      // the right chain back on A: served there
      chains["a.example"] = 10n;
      await pool.request("eth_call", [{}, "latest"]);
      expect(served).toEqual(["eth_call@a.example"]);
    } finally {
      pool.close();
    }
  });

  it("behavior: an HTTP 5xx whose body is a JSON-RPC internal error moves the request to the next endpoint", async () => {
    const { served, fetchFn } = hosts({ "a.example": 10n, "b.example": 10n }, new Set(["a.example"]));
    const pool = poolOf(["http://a.example/", "http://b.example/"], fetchFn);
    try {
      await pool.request("eth_call", [{}, "latest"]);
      expect(served).toEqual(["eth_call@b.example"]);
      expect(pool.status().failovers).toBe(1);
    } finally {
      pool.close();
    }
  });

  it("error: a single endpoint found on another chain is not used", async () => {
    const chains: Record<string, bigint | undefined> = { "c.example": 10n };
    const { served, fetchFn } = hosts(chains);
    const pool = poolOf(["http://c.example/"], fetchFn);
    try {
      await pool.checkHealth();
      chains["c.example"] = 1n;
      await pool.checkHealth();
      await expect(pool.request("eth_getTransactionCount", [])).rejects.toBeInstanceOf(RpcWrongChainError);
      expect(served).toEqual([]);
    } finally {
      pool.close();
    }
  });
});

/** A fetch whose hosts (all on chain 10) report `heads[host]` as their latest block. */
function heads(heads: Record<string, number>) {
  const served: string[] = [];
  const fetchFn = (async (url: string, init: { body: string }) => {
    const { id, method } = JSON.parse(init.body) as { id: number; method: string };
    const host = new URL(url).hostname;
    if (method !== "eth_chainId" && method !== "eth_blockNumber") served.push(`${method}@${host}`);
    const result = method === "eth_chainId" ? "0xa" : `0x${heads[host]!.toString(16)}`;
    return new Response(JSON.stringify({ jsonrpc: "2.0", id, result }), { status: 200 });
  }) as unknown as typeof fetch;
  return { served, fetchFn };
}

describe("RpcPool and endpoints behind the chain", () => {
  it("behavior: a preferred endpoint more than maxLagBlocks behind another (frozen, lagging) is skipped until it catches up; the status says why", async () => {
    const h = { "a.example": 100, "b.example": 100 };
    const { served, fetchFn } = heads(h);
    const switches: string[] = [];
    const pool = new RpcPool({
      urls: ["http://a.example/", "http://b.example/"],
      expectedChainId: 10n,
      healthCheckIntervalMs: 0,
      maxLagBlocks: 5,
      fetch: fetchFn,
      onFailover: (e) => switches.push(`${e.from}->${e.to}: ${e.reason}`),
    });
    try {
      await pool.checkHealth();
      h["b.example"] = 105; // 5 behind: within the allowance
      await pool.checkHealth();
      await pool.request("eth_call", [{}, "latest"]);
      h["b.example"] = 106; // A froze at 100: 6 behind
      await pool.checkHealth();
      await pool.request("eth_call", [{}, "latest"]);
      expect(served).toEqual(["eth_call@a.example", "eth_call@b.example"]);
      expect(pool.status().endpoints[0]).toMatchObject({
        healthy: false,
        blockNumber: 100,
        lastError: "6 blocks behind the highest endpoint (block 106)",
      });
      expect(switches).toEqual(["0->1: 6 blocks behind the highest endpoint (block 106)"]);
      h["a.example"] = 107; // caught up: preferred again
      h["b.example"] = 107;
      await pool.checkHealth();
      await pool.request("eth_call", [{}, "latest"]);
      expect(served.at(-1)).toBe("eth_call@a.example");
      expect(pool.status().endpoints[0]).toMatchObject({ healthy: true, lastError: null });
    } finally {
      pool.close();
    }
  });

  it("behavior: a single endpoint has nothing to lag behind: it serves whatever its head", async () => {
    const h = { "a.example": 100 };
    const { served, fetchFn } = heads(h);
    const pool = new RpcPool({
      urls: ["http://a.example/"],
      expectedChainId: 10n,
      healthCheckIntervalMs: 0,
      fetch: fetchFn,
    });
    try {
      await pool.checkHealth();
      await pool.request("eth_call", [{}, "latest"]);
      expect(served).toEqual(["eth_call@a.example"]);
      expect(pool.status().endpoints[0]).toMatchObject({ healthy: true });
    } finally {
      pool.close();
    }
  });

  it("error: maxLagBlocks must be a whole number ≥ 0", () => {
    expect(() => new RpcPool({ urls: ["http://a.example/"], maxLagBlocks: -1 })).toThrow(/maxLagBlocks/);
  });
});

describe("RpcPool and oversized answers", () => {
  it("error: an answer larger than maxResponseBytes is not read further: a bad response, and the request moves to the next endpoint", async () => {
    const { createServer } = await import("node:http");
    let sentByHuge = 0;
    let hugeClosed!: () => void;
    const hugeGone = new Promise<void>((res) => (hugeClosed = res));
    // A: a valid JSON-RPC answer padded to 64 MiB, streamed without a Content-Length.
    const huge = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "application/json" });
      res.on("close", () => hugeClosed());
      const pad = Buffer.alloc(64 * 1024, 0x20);
      res.write('{"jsonrpc":"2.0","id":1,"result":"0x1"');
      const more = (): void => {
        while (sentByHuge < 64 * 1024 * 1024 && !res.destroyed) {
          sentByHuge += pad.length;
          if (!res.write(pad)) return void res.once("drain", more);
        }
        if (!res.destroyed) res.end("}");
      };
      more();
    });
    // B: a plain answer.
    const plain = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        const { id } = JSON.parse(body) as { id: number };
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ jsonrpc: "2.0", id, result: "0x2a" }));
      });
    });
    const listen = (s: ReturnType<typeof createServer>): Promise<number> =>
      new Promise((res) => s.listen(0, "127.0.0.1", () => res((s.address() as { port: number }).port)));
    const [a, b] = [await listen(huge), await listen(plain)];
    const pool = new RpcPool({
      urls: [`http://127.0.0.1:${a}/`, `http://127.0.0.1:${b}/`],
      healthCheckIntervalMs: 0,
      maxResponseBytes: 1024 * 1024,
    });
    try {
      expect(await pool.request("eth_blockNumber")).toBe("0x2a");
      const st = pool.status();
      expect(st.failovers).toBe(1);
      expect(st.endpoints[0]!.lastError).toMatch(
        /the answer is larger than 1048576 bytes \(not read further\)/,
      );
      await hugeGone;
      // The reader stopped: far less than the 64 MiB was sent.
      expect(sentByHuge).toBeLessThan(32 * 1024 * 1024);
    } finally {
      pool.close();
      huge.closeAllConnections();
      plain.closeAllConnections();
      await new Promise<void>((res) => huge.close(() => res()));
      await new Promise<void>((res) => plain.close(() => res()));
    }
  });
});

describe("RpcPool and Retry-After", () => {
  /** A fetch whose hosts answer HTTP 429 with `retryAfter[host]` while it is set; counts what each host was sent. */
  function limited(retryAfter: Record<string, string | undefined>) {
    const sent: Record<string, number> = {};
    const fetchFn = (async (url: string, init: { body: string }) => {
      const { id, method } = JSON.parse(init.body) as { id: number; method: string };
      const host = new URL(url).hostname;
      sent[host] = (sent[host] ?? 0) + 1;
      const ra = retryAfter[host];
      if (ra !== undefined)
        return new Response('{"error":"too many requests"}', { status: 429, headers: { "retry-after": ra } });
      const result = method === "eth_chainId" ? "0xa" : "0x10";
      return new Response(JSON.stringify({ jsonrpc: "2.0", id, result }), { status: 200 });
    }) as unknown as typeof fetch;
    return { sent, fetchFn };
  }

  it("error: an endpoint that answered 429 with Retry-After is sent nothing, requests nor probes, until then; alone, requests fail at once as rate limited (a wait longer than a request's timeout)", async () => {
    let now = 1_000_000;
    const ra: Record<string, string | undefined> = { "a.example": "30" };
    const { sent, fetchFn } = limited(ra);
    const pool = new RpcPool({
      urls: ["http://a.example/"],
      healthCheckIntervalMs: 0,
      fetch: fetchFn,
      nowMs: () => now,
    });
    try {
      await expect(pool.request("eth_blockNumber")).rejects.toMatchObject({ code: "CHAIN_RATE_LIMIT" });
      expect(sent["a.example"]).toBe(1);
      ra["a.example"] = undefined; // it would answer now, but asked for 30 s
      now += 15_000; // 15 s left: longer than a request's timeout (10 s), so not waited out
      await expect(pool.request("eth_blockNumber")).rejects.toThrow(/rate limited, retry after 15 s/);
      await pool.checkHealth();
      expect(sent["a.example"]).toBe(1);
      now += 15_000;
      expect(await pool.request("eth_blockNumber")).toBe("0x10");
      expect(sent["a.example"]).toBe(2);
    } finally {
      pool.close();
    }
  });

  it("behavior: with another endpoint, requests go there while the first waits out its Retry-After (at most 300 s), then back to the preferred one at the next probe", async () => {
    let now = 1_000_000;
    const ra: Record<string, string | undefined> = { "a.example": "3600" };
    const { sent, fetchFn } = limited(ra);
    const pool = new RpcPool({
      urls: ["http://a.example/", "http://b.example/"],
      healthCheckIntervalMs: 0,
      fetch: fetchFn,
      nowMs: () => now,
    });
    try {
      for (let i = 0; i < 5; i++) expect(await pool.request("eth_blockNumber")).toBe("0x10");
      expect(sent).toEqual({ "a.example": 1, "b.example": 5 });
      ra["a.example"] = undefined;
      now += 299_000;
      await pool.checkHealth(); // still held: not probed
      expect(sent["a.example"]).toBe(1);
      now += 1_000; // the 3600 s asked for is held to MAX_RETRY_AFTER_S
      await pool.checkHealth();
      expect(await pool.request("eth_blockNumber")).toBe("0x10");
      expect(pool.status().current).toBe(0);
    } finally {
      pool.close();
    }
  });

  it("behavior: a Retry-After shorter than a request's timeout is waited out within the request, which then succeeds", async () => {
    const ra: Record<string, string | undefined> = { "a.example": "1" };
    const { sent, fetchFn } = limited(ra);
    const pool = new RpcPool({ urls: ["http://a.example/"], healthCheckIntervalMs: 0, fetch: fetchFn });
    try {
      const t0 = Date.now();
      const first = pool.request("eth_blockNumber");
      ra["a.example"] = undefined; // the first answer (429, 1 s) is already on its way
      expect(await first).toBe("0x10");
      // The second request went out only once the second asked for had passed (before, 200 ms).
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
      expect(sent["a.example"]).toBe(2);
    } finally {
      pool.close();
    }
  });
});
