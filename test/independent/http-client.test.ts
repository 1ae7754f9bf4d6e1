/**
 * The independent operator / monitoring client (http-client.ts, written from
 * gateway/src/http/README.md alone) against a real `vigil start`: the embedded broker on a free
 * loopback port, `http.port` 0, fed by `vigil sim --profile cwru` so counters, results and the
 * page's deltas move; once loopback-only without a token, once with `http.allowRemote` and an
 * access token file; and the start-up errors the README names.
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { freePort, stop } from "../helpers/procs.ts";
import { spawnVigil, until, type VigilChild } from "../helpers/vigil-child.ts";
import { startGateway, type Started } from "../helpers/http-gateway.ts";
import {
  ask,
  checkConnectionLimit,
  checkEvents,
  checkHostRule,
  checkJson,
  checkMetrics,
  checkOperatorActions,
  checkRemotePeer,
  operatorToken,
  checkRoutes,
  checkSseLimit,
  checkToken,
  documentedMetrics,
  headerTimeout,
  metricsProblems,
  summaryProblems,
  valueOf,
  type Target,
} from "./http-client.ts";
import { readFileSync } from "node:fs";

const README = "gateway/src/http/README.md";
const children: ChildProcess[] = [];
const vigil = (args: string[]): VigilChild => spawnVigil(children, args);

afterAll(async () => {
  for (const p of children) await stop(p);
});

const start = (http: Record<string, unknown>, prepare?: (dataDir: string) => void): Promise<Started> =>
  startGateway(children, http, prepare);

function sim(url: string): ChildProcess {
  // cwru: healthy, then a bearing fault (alerts); 5 frames/s per device for up to 60 s.
  return vigil(["sim", "--mqtt", url, "--profile", "cwru", "--devices", "3", "--rate", "5", "--duration", "60", "--seed", "3", "--healthy", "20"]); // prettier-ignore
}

it(
  "loopback-only, no token: every rule of the README holds on a live gateway",
  { timeout: 90_000 },
  async () => {
    const g = await start({});
    const t: Target = { base: g.base };
    const slow = headerTimeout(t);
    sim(g.mqtt);
    await until(
      "frames accepted",
      async () => {
        const m = await checkMetrics(t, README);
        return (
          valueOf(m.families, "vigil_ingest_frames_accepted_total") > 20 &&
          valueOf(m.families, "vigil_inference_windows_run_total") > 0 &&
          valueOf(m.families, "vigil_alerts_active") > 0
        );
      },
      60_000,
    );
    const problems = [
      ...(await checkRoutes(t)),
      ...(await checkHostRule(t, true)),
      ...(await checkJson(t, { updatesEnabled: false })),
      ...(await checkEvents(t, { expectDelta: true })),
      ...(await checkOperatorActions(t, { dataDir: g.dataDir, updatesEnabled: false })),
      ...(await checkSseLimit(t)),
    ];
    const metrics = await checkMetrics(t, README);
    problems.push(...metrics.problems);
    expect(problems).toEqual([]);
    // The counters move, and the requests above are counted (unknown paths as `other`).
    expect(
      valueOf(metrics.families, "vigil_ingest_frames_received_total", { source: "mqtt" }),
    ).toBeGreaterThan(20);
    expect(
      valueOf(metrics.families, "vigil_http_requests_total", { path: "other", code: "404" }),
    ).toBeGreaterThan(0);
    expect(valueOf(metrics.families, "vigil_http_requests_total", { code: "421" })).toBeGreaterThan(0);
    // The shapes were checked on real content (devices, models, alerts), and the check can fail.
    const summary = JSON.parse((await ask(t, "/api/summary")).body) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(summary.devices).toHaveLength(3);
    expect(JSON.parse((await ask(t, "/api/alerts")).body).active.length).toBeGreaterThan(0);
    delete summary.totals.accepted;
    summary.devices[0].extra = 1;
    expect(summaryProblems(summary, "s")).toEqual([
      "s.totals: no accepted",
      "s.devices[0]: extra is not in the README",
    ]);

    // The header timeout, measured on a connection opened at the start.
    const s = await slow;
    expect(s.answer.split("\r\n")[0]).toBe("HTTP/1.1 408 Request Timeout");
    expect(s.ms).toBeGreaterThanOrEqual(9_500);
    expect(s.ms).toBeLessThan(15_000);
    expect(await checkConnectionLimit(t)).toEqual([]);
  },
);

// One gateway with `http.allowRemote` and an access token (its first line) for the next two tests.
const TOKEN = "a1b2c3d4".repeat(8);
let remoteGateway: Promise<Started> | undefined;
const withToken = () =>
  (remoteGateway ??= start({ allowRemote: true, authTokenFile: "token" }, (dir) => {
    writeFileSync(join(dir, "token"), `${TOKEN}\nnot the token\n`, { mode: 0o600 });
  }));

it(
  "with http.allowRemote and an access token: the token rules and the operator token",
  { timeout: 90_000 },
  async () => {
    const token = TOKEN;
    const g = await withToken();
    const t: Target = { base: g.base, token };
    const problems = [
      ...(await checkToken({ ...t, token })),
      ...(await checkHostRule(t, false)),
      ...(await checkRoutes(t)),
      ...(await checkJson(t, { updatesEnabled: false })),
      ...(await checkEvents(t, { expectDelta: false })),
      ...(await checkOperatorActions(t, { dataDir: g.dataDir, updatesEnabled: false })),
      ...(await checkMetrics(t, README)).problems,
    ];
    expect(problems).toEqual([]);
  },
);

// A peer that is not loopback, without any listener beyond loopback: the test connects to the
// 127.0.0.1 listener from an address of this machine's own interface (none on a loopback-only host).
const OWN_ADDRESS = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === "IPv4" && !a.internal)?.address;

it.runIf(OWN_ADDRESS)(
  "operator actions only from a loopback peer, also with http.allowRemote",
  { timeout: 90_000 },
  async () => {
    const token = TOKEN;
    const g = await withToken();
    const operator = operatorToken(g.dataDir);
    expect(operator.problems).toEqual([]);
    const t: Target = { base: g.base, token };
    expect(await checkRemotePeer(t, OWN_ADDRESS!, operator.token)).toEqual([]);
    // The same request from loopback passes the gate (updates are off: 409).
    const local = await ask(t, "/api/updates/check", {
      method: "POST",
      headers: { "x-vigil-operator": operator.token! },
    });
    expect(local.status).toBe(409);
  },
);

// (A non-loopback http.host, and allowRemote without a token: test/http/server.test.ts "args".)
it("start-up errors name the setting; a port in use is one sentence", { timeout: 90_000 }, async () => {
  const holder: Server = createServer();
  await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
  const busy = (holder.address() as { port: number }).port;
  const run = async (http: Record<string, unknown>, prepare?: (dir: string) => void) => {
    const dataDir = mkdtempSync(join(tmpdir(), "http-client-bad-"));
    prepare?.(dataDir);
    const config = join(dataDir, "config.json");
    const port = await freePort();
    writeFileSync(
      config,
      JSON.stringify({
        dataDir,
        attest: { enabled: false },
        mqtt: { embedded: { port } },
        http,
        log: { level: "warn" },
      }),
    );
    const p = vigil(["start", "-c", config]);
    await until("exit", () => p.exitCode !== null, 60_000).catch(() => undefined);
    return { code: p.exitCode, log: p.log() };
  };
  const token = (mode: number, text: string) => (dir: string) => {
    writeFileSync(join(dir, "token"), text);
    chmodSync(join(dir, "token"), mode);
  };
  try {
    const [mode, short, inUse] = await Promise.all([
      run({ port: 0, authTokenFile: "token" }, token(0o644, `${"a".repeat(40)}\n`)),
      run({ port: 0, authTokenFile: "token" }, token(0o600, `${"a".repeat(31)}\n`)),
      run({ port: busy }),
    ]);
    expect(mode.code, mode.log).not.toBe(0);
    expect(mode.log).toContain("http.authTokenFile");
    expect(short.code, short.log).not.toBe(0);
    expect(short.log).toContain("http.authTokenFile");
    expect(inUse.code, inUse.log).not.toBe(0);
    expect(inUse.log).toContain(
      `vigil start: 127.0.0.1:${busy} is already in use; stop the other process or set http.port (--http-port; 0 picks a free port).`,
    );
  } finally {
    holder.close();
  }
});

it("the checks can fail: a tampered exposition breaks the README's table", () => {
  const doc = documentedMetrics(readFileSync(README, "utf8"));
  expect(doc.length).toBeGreaterThan(60);
  const base = doc
    .map((d) => {
      const labels = d.labels.map((l) => `${l}="${l === "device" ? "00000001" : "x"}"`).join(",");
      return `# HELP ${d.name} h\n# TYPE ${d.name} ${d.type}\n${d.type === "histogram" ? "" : `${d.name}${labels ? `{${labels}}` : ""} 1\n`}`;
    })
    .join("");
  const problems = metricsProblems(base, doc);
  expect(problems).toContainEqual(
    expect.stringContaining("vigil_ingest_durable_latency_seconds: no samples"),
  );
  expect(
    metricsProblems(base.replace("# TYPE vigil_ready gauge", "# TYPE vigil_ready counter"), doc),
  ).toContainEqual("vigil_ready: TYPE counter, README says gauge");
  expect(metricsProblems(base.replace('device="00000001"', 'device="1"'), doc)).toContainEqual(
    expect.stringContaining("is not 8 hex digits"),
  );
  expect(metricsProblems(`${base}vigil_nope 1\n`, doc)).toContainEqual(
    "sample vigil_nope without a TYPE line before it",
  );
  expect(metricsProblems(base.replace('{source="x"} 1', '{source="x",} 1 x'), doc)).toContainEqual(
    expect.stringContaining("unparsable line"),
  );
  expect(ask).toBeTypeOf("function");
});
