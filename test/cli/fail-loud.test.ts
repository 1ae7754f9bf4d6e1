/**
 * The start-up table of README "When the gateway refuses to start": one test per dependency,
 * each spawning the real `vigil start`. A fatal row exits non-zero with ONE line on stderr naming
 * the problem and the fix, and no stack trace; a degraded row starts and keeps retrying.
 */
import { spawn, type ChildProcess } from "node:child_process";
import {
  copyFileSync,
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Aedes } from "aedes";
import { afterEach, describe, expect, it, vi } from "vitest";
import { writeKeystore } from "../../gateway/src/attest/keystore.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { ClassicLevel } from "classic-level";
import { M_FORMAT, STORE_FORMAT } from "../../gateway/src/store/format.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { freePort, stop } from "../helpers/procs.ts";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const PASS = "fail-loud-passphrase";
const children: ChildProcess[] = [];
const servers: Server[] = [];
const sockets: Socket[] = [];
const cleanupBrokers: Aedes[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) await stop(c);
  for (const b of cleanupBrokers.splice(0)) await new Promise<void>((r) => b.close(() => r()));
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

function spawnVigil(args: string[], env: Record<string, string> = {}): ChildProcess & { out: Run } {
  const p = spawn(process.execPath, ["bin/vigil.js", ...args], {
    env: { ...process.env, VIGIL_KEYSTORE_PASSPHRASE: PASS, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  }) as ChildProcess & { out: Run };
  p.out = { code: null, stdout: "", stderr: "" };
  p.stdout!.on("data", (d: Buffer) => (p.out.stdout += d.toString()));
  p.stderr!.on("data", (d: Buffer) => (p.out.stderr += d.toString()));
  children.push(p);
  return p;
}

/** Runs `vigil start` to its exit (fatal rows). */
async function startFails(cfg: object, env?: Record<string, string>): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-fatal-"));
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify({ dataDir: join(dir, "data"), models: { enabled: false }, ...cfg }));
  const p = spawnVigil(["start", "-c", file, "--log-level", "error"], env);
  p.out.code = await new Promise<number | null>((res) => p.once("exit", (c) => res(c)));
  return p.out;
}

/** The fatal contract: exit 1, exactly one line on stderr, no stack, matching `re`. */
function expectFatal(r: Run, re: RegExp): void {
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^vigil start: /);
  expect(lines[0]).toMatch(re);
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

/** A TCP listener that accepts and never answers. */
function listen(): Promise<number> {
  return new Promise((res) => {
    const s = createServer((sock) => void sockets.push(sock));
    servers.push(s);
    s.listen(0, "127.0.0.1", () => res((s.address() as { port: number }).port));
  });
}

async function keyedDataDir(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-fatal-data-"));
  await writeKeystore(join(dir, "gateway.key"), generateKey("secp256k1"), PASS, { N: 1 << 10 });
  const zero = `0x${"11".repeat(20)}`;
  writeFileSync(
    join(dir, "deployment.json"),
    JSON.stringify({
      format: "vigil-deployment/1",
      chainId: "31337",
      contracts: { VigilRegistry: { address: zero }, VigilReleases: { address: zero } },
    }),
  );
  return dir;
}

describe("vigil start: fatal at start-up (exit 1, one sentence with the fix)", () => {
  it("behavior: embedded broker port already in use", async () => {
    const port = await listen();
    const r = await startFails({ mqtt: { embedded: { port } } });
    expectFatal(r, new RegExp(`127\\.0\\.0\\.1:${port}.*EADDRINUSE.*--mqtt-port`));
  }, 90_000);

  it("behavior: the embedded broker's WebSocket port in use names that listener's setting", async () => {
    const port = await listen();
    const r = await startFails({ mqtt: { embedded: { port: 0, websocket: { port } } } });
    expectFatal(
      r,
      new RegExp(
        `127\\.0\\.0\\.1:${port} \\(mqtt\\.embedded\\.websocket\\.port\\).*EADDRINUSE.*set mqtt\\.embedded\\.websocket\\.port to a free port\\.$`,
      ),
    );
  }, 90_000);

  it("behavior: a broker host that is no address of this machine (TEST-NET-1, RFC 5737)", async () => {
    const r = await startFails({ mqtt: { embedded: { port: 0, host: "192.0.2.1", insecure: true } } });
    expectFatal(
      r,
      /192\.0\.2\.1:0 .*EADDRNOTAVAIL.*set mqtt\.embedded\.host \(--mqtt-host\) to an address of this machine/,
    );
  }, 90_000);

  it("behavior: a model whose sha256 does not match its manifest", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-fatal-models-"));
    for (const f of readdirSync("models/rotating").filter((n) => n.startsWith("rotating-v1.")))
      copyFileSync(join("models/rotating", f), join(dir, f));
    appendFileSync(join(dir, "rotating-v1.onnx"), "x");
    const r = await startFails({ mqtt: { embedded: { port: 0 } }, models: { dir } });
    expectFatal(r, /rotating-v1\.onnx: sha256 .* does not match the manifest.*restore it/);
  }, 90_000);

  it("behavior: a models.dir that does not exist (inference would be off in silence)", async () => {
    const r = await startFails({
      mqtt: { embedded: { port: 0 } },
      models: { dir: "/nonexistent-vigil-models" },
    });
    expectFatal(
      r,
      /models\.dir: \/nonexistent-vigil-models does not exist; fix the path .*models\.enabled to false/,
    );
  }, 90_000);

  it("behavior: an external broker that refuses the gateway's CONNECT (not authorised): no retry can help", async () => {
    const broker = await Aedes.createBroker({
      authenticate: (_c, _u, _p, cb) => {
        const e = Object.assign(new Error("not authorised"), { returnCode: 5 });
        cb(e as never, false);
      },
    });
    const server = createServer(broker.handle);
    servers.push(server);
    cleanupBrokers.push(broker);
    await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
    const port = (server.address() as { port: number }).port;
    const r = await startFails({
      mqtt: {
        embedded: { enabled: false },
        url: `mqtt://u:secret@127.0.0.1:${port}`,
        connectTimeoutMs: 5000,
      },
    });
    expectFatal(
      r,
      /the broker refused the gateway's CONNECT \(CONNACK 5: Not authorized\); check mqtt\.url \(--mqtt-url\), its credentials/,
    );
    expect(r.stderr).not.toContain("secret");
  }, 90_000);

  it("behavior: no ingest source enabled", async () => {
    const r = await startFails({ mqtt: { embedded: { enabled: false } } });
    expectFatal(r, /no ingest source is enabled.*--serial PATH/);
  }, 90_000);

  it("behavior: the store is locked by another process", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-fatal-lock-"));
    const held = new LevelFrameStore({ dir: join(dir, "store"), reserveBytes: 0, minFreeBytes: 0 });
    await held.open();
    try {
      const r = await startFails({ dataDir: dir, mqtt: { embedded: { port: 0 } } });
      expectFatal(r, /locked by another process.*stop the other process/);
    } finally {
      await held.close();
    }
  }, 90_000);

  it("behavior: the store is corrupt (damaged LevelDB manifest)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-fatal-corrupt-"));
    const s = new LevelFrameStore({ dir: join(dir, "store"), reserveBytes: 0, minFreeBytes: 0 });
    await s.open();
    await s.close();
    const db = join(dir, "store", "db");
    const manifest = readdirSync(db).find((n) => n.startsWith("MANIFEST-"))!;
    writeFileSync(join(db, manifest), Buffer.alloc(64, 0xa5));
    const r = await startFails({ dataDir: dir, mqtt: { embedded: { port: 0 } } });
    expectFatal(r, /corruption.*vigil store check.*vigil store salvage/);
  }, 90_000);

  it("behavior: the store was written by a newer Vigil (a newer store format)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-fatal-format-"));
    const s = new LevelFrameStore({ dir: join(dir, "store"), reserveBytes: 0, minFreeBytes: 0 });
    await s.open();
    await s.close();
    const db = new ClassicLevel<Buffer, Buffer>(join(dir, "store", "db"), {
      keyEncoding: "buffer",
      valueEncoding: "buffer",
    });
    await db.put(M_FORMAT, Buffer.of(0, 0, 0, STORE_FORMAT + 1));
    await db.close();
    const r = await startFails({ dataDir: dir, mqtt: { embedded: { port: 0 } } });
    expectFatal(r, /written by a newer Vigil \(store format 2; .*run the newer version again/);
  }, 90_000);

  it("behavior: keystore missing", async () => {
    const dir = await keyedDataDir();
    const r = await startFails({
      dataDir: dir,
      mqtt: { embedded: { port: 0 } },
      chain: { deployment: "deployment.json" },
      attest: { keystore: "nope.key" },
    });
    expectFatal(r, /nope\.key does not exist; create it with "vigil keys init"/);
  }, 90_000);

  it("behavior: keystore passphrase wrong", async () => {
    const dir = await keyedDataDir();
    const r = await startFails(
      { dataDir: dir, mqtt: { embedded: { port: 0 } }, chain: { deployment: "deployment.json" } },
      { VIGIL_KEYSTORE_PASSPHRASE: "not-the-passphrase" },
    );
    expectFatal(r, /could not be decrypted.*VIGIL_KEYSTORE_PASSPHRASE/);
  }, 90_000);

  it("behavior: keystore readable by others", async () => {
    const dir = await keyedDataDir();
    const { chmodSync } = await import("node:fs");
    chmodSync(join(dir, "gateway.key"), 0o644);
    const r = await startFails({
      dataDir: dir,
      mqtt: { embedded: { port: 0 } },
      chain: { deployment: "deployment.json" },
    });
    expectFatal(r, /accessible by group or others.*chmod 600/);
  }, 90_000);

  it("behavior: the HTTP access token file readable by others (http.authTokenFile)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-fatal-token-"));
    writeFileSync(join(dir, "http.token"), `${"t".repeat(40)}\n`, { mode: 0o644 });
    const r = await startFails({
      dataDir: dir,
      mqtt: { embedded: { port: 0 } },
      http: { port: 0, allowRemote: true, authTokenFile: "http.token" },
    });
    expectFatal(
      r,
      /http\.authTokenFile: .*http\.token is accessible by group or others \(mode 0644\); run: chmod 600/,
    );
    expect(r.stderr).not.toContain("t".repeat(40));
  }, 90_000);

  it("behavior: deployment file missing", async () => {
    const dir = await keyedDataDir();
    const r = await startFails({
      dataDir: dir,
      mqtt: { embedded: { port: 0 } },
      chain: { deployment: "elsewhere.json" },
    });
    expectFatal(r, /elsewhere\.json.*point chain\.deployment .* "vigil chain deploy"/);
  }, 90_000);

  it("behavior: anchoring configured without a sender key", async () => {
    const dir = await keyedDataDir();
    const r = await startFails(
      {
        dataDir: dir,
        mqtt: { embedded: { port: 0 } },
        chain: { deployment: "deployment.json", rpcUrl: "http://127.0.0.1:9" },
      },
      { VIGIL_CHAIN_SENDER_KEY: "" },
    );
    expectFatal(r, /chain\.senderKeyFile: .*VIGIL_CHAIN_SENDER_KEY/);
    // A malformed key in the environment: named once, and the fix is the variable, not a setting.
    const bad = await startFails(
      {
        dataDir: dir,
        mqtt: { embedded: { port: 0 } },
        chain: { deployment: "deployment.json", rpcUrl: "http://127.0.0.1:9" },
      },
      { VIGIL_CHAIN_SENDER_KEY: "nothex" },
    );
    expectFatal(
      bad,
      /^vigil start: VIGIL_CHAIN_SENDER_KEY: does not hold a 32-byte hex private key; correct the environment variable VIGIL_CHAIN_SENDER_KEY/,
    );
  }, 90_000);
});

describe("vigil start: degraded and retrying (starts, says so, keeps going)", () => {
  async function startsAnyway(cfg: object, warn: RegExp): Promise<void> {
    const dir = (cfg as { dataDir?: string }).dataDir ?? mkdtempSync(join(tmpdir(), "vigil-degraded-"));
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ dataDir: dir, models: { enabled: false }, ...cfg }));
    writeFileSync(
      file,
      JSON.stringify({ dataDir: dir, models: { enabled: false }, log: { statsIntervalMs: 0 }, ...cfg }),
    );
    const p = spawnVigil(["start", "-c", file, "--log-level", "info"], {
      VIGIL_CHAIN_SENDER_KEY: `0x${"22".repeat(32)}`,
    });
    // Logs are JSON lines on stderr.
    await vi.waitFor(
      () => {
        expect(p.out.stderr).toMatch(warn);
        expect(p.out.stderr).toMatch(/"msg":"gateway started"/);
      },
      { timeout: 30_000, interval: 50 },
    );
    expect(p.exitCode).toBeNull();
    const exited = new Promise<number | null>((res) => p.once("exit", (c) => res(c)));
    p.kill("SIGTERM");
    expect(await exited).toBe(0);
  }

  it("behavior: a serial port that does not exist (yet) is retried", async () => {
    await startsAnyway(
      { serial: [{ path: "/dev/ttyVIGILNOPE" }], mqtt: { embedded: { enabled: false } } },
      /ttyVIGILNOPE/,
    );
  }, 90_000);

  it("behavior: free disk space below store.minFreeBytes: starts, says so, refuses frames", async () => {
    await startsAnyway(
      { mqtt: { embedded: { port: 0 } }, store: { minFreeBytes: 2 ** 52 } },
      /"component":"store","state":"low-space".*refuses new frames/,
    );
  }, 90_000);

  it("behavior: an external broker that does not answer: starts without it (a /readyz warning), connects once it answers", async () => {
    // A listener that accepts and never answers CONNECT (a broker that hangs, or not a broker).
    const port = await listen();
    const blackhole = servers.at(-1)!;
    const dir = mkdtempSync(join(tmpdir(), "vigil-degraded-broker-"));
    const file = join(dir, "config.json");
    writeFileSync(
      file,
      JSON.stringify({
        dataDir: dir,
        models: { enabled: false },
        log: { statsIntervalMs: 0 },
        http: { port: 0 },
        mqtt: { embedded: { enabled: false }, url: `mqtt://127.0.0.1:${port}`, connectTimeoutMs: 4000 },
      }),
    );
    const p = spawnVigil(["start", "-c", file, "--log-level", "info"]);
    let page = "";
    await vi.waitFor(
      () => {
        expect(p.out.stderr).toMatch(
          /no CONNACK within 4 s: started without the broker, reconnecting every second/,
        );
        page = /"page":"(http:[^"]+)"/.exec(p.out.stderr)?.[1] ?? "";
        expect(page).not.toBe("");
      },
      { timeout: 60_000, interval: 50 },
    );
    // The silent broker is waited for once: neither the alerts connection nor the online status
    // waits another connectTimeoutMs (each did: the start took three times as long).
    const at = (re: RegExp): number =>
      Number(/"time":(\d+)/.exec(p.out.stderr.split("\n").find((l) => re.test(l)) ?? "")?.[1]);
    const gap = at(/gateway started/) - at(/no CONNACK within/);
    expect(gap).toBeGreaterThanOrEqual(0);
    expect(gap).toBeLessThan(4000);
    expect(p.out.stderr).not.toMatch(/did not acknowledge the online status/);
    const sourcesWarning = async () =>
      (
        (await (await fetch(`${page}/readyz`)).json()) as {
          ready: boolean;
          warnings: { check: string; reason: string }[];
        }
      ).warnings.filter((w) => w.check === "sources");
    expect(await sourcesWarning()).toEqual([expect.objectContaining({ reason: "disconnected" })]);
    // The broker comes up on that port: the gateway connects (reconnecting every second).
    for (const sock of sockets.splice(0)) sock.destroy();
    await new Promise((r) => blackhole.close(r));
    servers.splice(servers.indexOf(blackhole), 1);
    const broker = await Aedes.createBroker();
    cleanupBrokers.push(broker);
    const server = createServer(broker.handle);
    servers.push(server);
    await new Promise<void>((res) => server.listen(port, "127.0.0.1", res));
    await vi.waitFor(async () => expect(await sourcesWarning()).toEqual([]), {
      timeout: 30_000,
      interval: 100,
    });
    expect(p.exitCode).toBeNull();
    const exited = new Promise<number | null>((res) => p.once("exit", (c) => res(c)));
    p.kill("SIGTERM");
    expect(await exited).toBe(0);
  }, 90_000);

  it('behavior: ingest.allow / ingest.revoked beside admission "registry" are said to be unused at start (as at a reload)', async () => {
    const dir = await keyedDataDir();
    await startsAnyway(
      {
        dataDir: dir,
        mqtt: { embedded: { port: 0 } },
        ingest: { admission: "registry", allow: ["0000002a"] },
        chain: { deployment: "deployment.json", rpcUrl: `http://127.0.0.1:${await freePort()}` },
      },
      /"ignored":\["ingest\.allow","ingest\.revoked"\].*not used with ingest\.admission \\"registry\\": the registry decides who may send/,
    );
  }, 90_000);

  it("behavior: an RPC endpoint that does not answer: batches wait in the outbox", async () => {
    const dir = await keyedDataDir();
    const port = await freePort();
    await startsAnyway(
      {
        dataDir: dir,
        mqtt: { embedded: { port: 0 } },
        chain: {
          deployment: "deployment.json",
          rpcUrl: `http://127.0.0.1:${port}`,
          anchorIntervalMs: 100,
        },
        attest: { batchIntervalMs: 100 },
      },
      /"component":"chain".*127\.0\.0\.1.*chain not reachable at start-up/,
    );
  }, 90_000);
});

describe("vigil start: stopping while starting", () => {
  it("behavior: SIGTERM during start-up lets the start finish, then stops in order with exit 0", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-stop-early-"));
    const file = join(dir, "config.json");
    // Models on: loading them is the slow part of the start, after the first log line.
    writeFileSync(
      file,
      JSON.stringify({ dataDir: dir, mqtt: { embedded: { port: 0 } }, log: { statsIntervalMs: 0 } }),
    );
    const p = spawnVigil(["start", "-c", file]);
    const exited = new Promise<number | null>((res) => p.once("exit", (c) => res(c)));
    // The first line is logged inside the runtime's start (no deployment: not sealing).
    await vi.waitFor(() => expect(p.out.stderr).toMatch(/not sealed/), { timeout: 30_000, interval: 10 });
    p.kill("SIGTERM");
    expect(await exited).toBe(0);
    const msgs = p.out.stderr
      .split("\n")
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs.at(-1)).toBe("stopped");
    rmSync(dir, { recursive: true, force: true });
  }, 90_000);
});
