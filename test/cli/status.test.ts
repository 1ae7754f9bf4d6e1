/**
 * `vigil status`: the one-screen summary read from a running gateway's local HTTP API. The
 * real path runs the CLI as a child process against a real gateway (Runtime with the embedded
 * broker, LevelDB store, the package's models, simulated devices over MQTT); the layout rules
 * (value beside threshold, bounded alert lines, what is failing) are checked on the formatter.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  formatStatus,
  StatusError,
  statusCommand,
  statusExitCode,
  statusUrl,
} from "../../gateway/src/cli/status.ts";
import { UsageError } from "../../gateway/src/core/errors.ts";
import type { AlertView } from "../../gateway/src/http/live.ts";
import type { PageStats } from "../../gateway/src/http/page-model.ts";
import { HttpServer, OPERATOR_TOKEN_FILE } from "../../gateway/src/http/server.ts";
import { FakeSource } from "../http/fake-source.ts";
import { startFleet, type Fleet } from "../helpers/fleet.ts";
import { freePort, runVigil } from "../helpers/procs.ts";

const vigil = runVigil;

function summary(over: Partial<PageStats> = {}): PageStats {
  const t = 1_760_000_000_000;
  return {
    t,
    gateway: { id: `0x${"ab".repeat(32)}`, name: "line-3", site: "plant-a" },
    readiness: {
      ready: true,
      phase: "running",
      failing: [],
      warnings: [],
      store: { state: "ok", lastError: null },
      sources: [],
    },
    totals: {
      accepted: 123_456,
      duplicates: 12,
      rejected: 40,
      deviceErrors: 2,
      windowsRun: 3_000,
      windowsSkipped: 5,
      alertsRaised: 9,
      alertsCleared: 2,
      alertsActive: 7,
      batchesSealed: 31,
      batchesAnchored: 30,
      sealerBacklog: 0,
    },
    rates: { accepted: 200, rejected: 0.5, duplicates: 0, windows: 10 },
    rejections: [
      { reason: "BAD_CRC", total: 30, rate: 0.4 },
      { reason: "TRUNCATED", total: 10, rate: 0.1 },
    ],
    devices: [
      {
        d: "00000001",
        profile: "rotating",
        fw: "1.0.0",
        rate: 20,
        accepted: 100,
        rejected: 1,
        gaps: 2,
        errors: 0,
        lastMs: t - 1000,
        quality: { faults: 0, withheld: 0, mode: "first-cycle" },
      },
      {
        d: "00000002",
        profile: "rotating",
        fw: "1.0.0",
        rate: 0,
        accepted: 50,
        rejected: 0,
        gaps: 0,
        errors: 2,
        lastMs: t - 600_000,
        quality: { faults: 1, withheld: 12, mode: "mid-life" },
      },
    ],
    models: [
      {
        name: "rotating-v1-health",
        version: "1.0.0",
        sha256: "0x00",
        role: "live",
        profiles: ["rotating"],
        outputs: [],
        windowsRun: 3000,
        usPerWindow: 12,
        shadow: null,
      } as PageStats["models"][number],
    ],
    batches: [
      {
        seq: 31,
        leaves: 420,
        sealedMs: t - 2000,
        root: "0x",
        tx: `0x${"cd".repeat(32)}`,
        block: 88,
        anchored: true,
      } as PageStats["batches"][number],
    ],
    sealing: true,
    anchor: { enabled: true, backlog: 1, failures: 0, lastError: null },
    store: { state: "ok", liveBytes: 5 * 1024 * 1024, pending: 0 },
    inference: { frameToResultP50Ms: 1.2, frameToResultP99Ms: 3.4, runP99Ms: 0.1 },
    registry: null,
    ...over,
  };
}

function alert(i: number, severity: AlertView["severity"], value: number): AlertView {
  return {
    alertId: `a${i}`,
    state: "raised",
    device: `0000000${i}`,
    profile: "rotating",
    severity,
    ruleId: `p-fail-${severity}`,
    output: "p_fail",
    op: ">",
    threshold: severity === "critical" ? 0.9 : 0.6,
    value,
    sinceMs: 1_760_000_000_000 - 65_000 - i,
    atMs: 1_760_000_000_000 - 65_000 - i,
    model: "rotating-v1-health@1.0.0",
    leaf: `0x${String(i).repeat(64)}`,
  };
}

describe("vigil status: layout", () => {
  it("behavior: alerts show their value beside the threshold, worst first, at most five lines plus a count", () => {
    const active = [alert(1, "warning", 0.7), ...[2, 3, 4, 5, 6, 7].map((i) => alert(i, "critical", 0.93))];
    const text = formatStatus(summary(), { active, recent: [] }, "http://127.0.0.1:9479");
    const lines = text.trimEnd().split("\n");
    expect(lines[0]).toBe(
      "vigil status: line-3 (site plant-a, gateway 0xabababab…abab) at http://127.0.0.1:9479",
    );
    expect(lines).toContain("  state      ready (running)");
    const alertLines = lines.filter((l) => l.startsWith("    critical") || l.startsWith("    warning"));
    expect(alertLines).toHaveLength(5);
    expect(alertLines[0]).toBe(
      "    critical device 00000007: p_fail 0.93 > 0.9 (p-fail-critical) for 65 s, leaf 0x77777777…7777",
    );
    expect(lines).toContain("    … 2 more (vigil status --json, or the live page)");
    expect(text).toContain("device ERROR frames 2");
    expect(text).toContain("  devices    2 (1 silent for more than 60 s)");
    expect(text).toContain("  rejected   BAD_CRC 30, TRUNCATED 10");
    expect(text).toContain(
      "  data       1 device(s) with sensor faults (00000002: 1 channel) · 12 windows withheld for data quality",
    );
    expect(text).toContain("latest #31 (420 leaves) anchored in 0xcdcdcdcd…cdcd block 88");
    expect(lines.length).toBeLessThanOrEqual(24);
    expect(statusExitCode(summary())).toBe(0);
  });

  it("behavior: a gateway that is not ready says what is failing and exits 1; warnings and anchoring errors are shown", () => {
    const s = summary({
      readiness: {
        ready: false,
        phase: "running",
        failing: [
          { check: "store", reason: "low-space", detail: "free disk space is below store.minFreeBytes" },
        ],
        warnings: [{ check: "anchor", reason: "retrying", detail: "3 failures" }],
        store: { state: "low-space", lastError: null },
        sources: [],
      },
      anchor: { enabled: true, backlog: 4, failures: 3, lastError: "connection refused" },
      inference: null,
      models: [],
    });
    const text = formatStatus(s, { active: [], recent: [] }, "http://127.0.0.1:9479");
    expect(text).toContain(
      "  state      NOT READY: store low-space (free disk space is below store.minFreeBytes)",
    );
    expect(text).toContain("  warning    anchor retrying: 3 failures");
    expect(text).toContain("  anchor     retrying after 3 failures: connection refused; outbox 4");
    expect(text).toContain("  inference  no models loaded: frames are stored and sealed, not inferred");
    expect(statusExitCode(s)).toBe(1);
  });

  it("behavior: with sealing off (no chain.deployment) nothing claims that frames are sealed or batches wait", () => {
    const s = summary({
      sealing: false,
      batches: [],
      totals: { ...summary().totals, batchesSealed: 0, batchesAnchored: 0 },
      anchor: { enabled: false, backlog: 0, failures: 0, lastError: null },
      inference: null,
      models: [],
    });
    const text = formatStatus(s, { active: [], recent: [] }, "http://127.0.0.1:9479");
    expect(text).toContain(
      "  batches    off (no chain.deployment, or attest.enabled false): frames are stored, not sealed\n",
    );
    expect(text).toContain("  anchor     off (no chain.rpcUrl)\n");
    expect(text).toContain("  inference  no models loaded: frames are stored, not inferred\n");
    expect(text).not.toMatch(/sealed batches|stored and sealed/);
    // Sealing on, anchoring off: the outbox is named.
    const on = formatStatus(
      summary({ anchor: { enabled: false, backlog: 2, failures: 0, lastError: null } }),
      { active: [], recent: [] },
      "http://127.0.0.1:9479",
    );
    expect(on).toContain("  anchor     off (no chain.rpcUrl): sealed batches wait in the outbox\n");
  });
});

describe("vigil status: finding the gateway", () => {
  it("args: --url, the config's http settings, or the defaults; a switched-off or any-port endpoint and a bad URL are refused with the fix", () => {
    expect(statusUrl({})).toBe("http://127.0.0.1:9479");
    expect(statusUrl({ url: "http://localhost:1234/whatever" })).toBe("http://localhost:1234");
    expect(() => statusUrl({ url: "ftp://x" })).toThrowError(UsageError);
    expect(() => statusUrl({ url: "nope" })).toThrowError(
      /--url must be an http:\/\/ URL, got "nope \(unparseable\)"/,
    );
    const dir = mkdtempSync(join(tmpdir(), "vigil-status-"));
    const conf = (http: object) => {
      const f = join(dir, `${Math.random()}.json`);
      writeFileSync(f, JSON.stringify({ http }));
      return f;
    };
    expect(statusUrl({ config: conf({ host: "::1", port: 9500 }) })).toBe("http://[::1]:9500");
    const off = conf({ enabled: false });
    expect(() => statusUrl({ config: off })).toThrowError(
      `the HTTP endpoint is switched off in ${off} (http.enabled false); vigil status reads it, so enable it or pass --url`,
    );
    expect(() => statusUrl({ config: conf({ port: 0 }) })).toThrowError(/http\.port is 0 .*pass --url/);
  });

  it("error: nothing listening, or something that is not a gateway, is one sentence (no stack), exit 1", async () => {
    const port = await freePort();
    const r = await vigil(["status", "--url", `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      `vigil status: no gateway answers at http://127.0.0.1:${port} (ECONNREFUSED): is it running (vigil start)? Otherwise pass --url, or -c with the config it runs with.\n`,
    );
    const other = createServer((_q, s) => s.writeHead(404).end("nope"));
    await new Promise<void>((res) => other.listen(0, "127.0.0.1", res));
    const url = `http://127.0.0.1:${(other.address() as { port: number }).port}`;
    try {
      await expect(statusCommand(["--url", url])).rejects.toThrowError(StatusError);
      await expect(statusCommand(["--url", url])).rejects.toThrowError(
        /answered HTTP 404: is this a Vigil gateway's endpoint/,
      );
    } finally {
      other.close();
    }
  });
});

/** Writes the access token (http.token, 0600) to the data folder `dir` and a config naming both for the endpoint on `port`; returns the config's path. */
function tokenConfig(dir: string, token: string, port: number): string {
  writeFileSync(join(dir, "http.token"), `${token}\n`, { mode: 0o600 });
  const cfg = join(dir, "vigil.json");
  writeFileSync(cfg, JSON.stringify({ dataDir: dir, http: { port, authTokenFile: "http.token" } }));
  return cfg;
}

describe("vigil status and vigil update against an endpoint with an access token", () => {
  it("security: without the token the answer is 401 and one sentence naming the fix; with -c and the gateway's config both commands send it", async () => {
    const token = "a".repeat(20) + "0123456789abcdef";
    const server = new HttpServer({ source: new FakeSource(), port: 0, authToken: token });
    await server.start();
    try {
      const cfg = tokenConfig(mkdtempSync(join(tmpdir(), "vigil-status-token-")), token, server.port);
      const bare = await vigil(["status", "--url", server.url]);
      expect(bare.code).toBe(1);
      expect(bare.stderr).toBe(
        `vigil status: ${server.url} needs its access token (http.authTokenFile): pass -c with the config the gateway runs with.\n`,
      );
      const withConfig = await vigil(["status", "-c", cfg]);
      expect(withConfig.code, withConfig.stderr).toBe(0);
      expect(withConfig.stdout).toContain("gw-test");
      const update = await vigil(["update", "status", "-c", cfg]);
      expect(update.stdout + update.stderr).toContain("updates are not enabled");
      expect(`${bare.stderr}${withConfig.stdout}${update.stdout}${update.stderr}`).not.toContain(token);
    } finally {
      await server.stop();
    }
  });
});

describe("vigil update's operator actions behind an access token", () => {
  it("security: check and retry send the operator token the gateway wrote to its dataDir; without that file they fail with one sentence and reach nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-operator-token-"));
    const token = "b".repeat(20) + "0123456789abcdef";
    const calls: string[] = [];
    const updates = {
      status: () => ({ type: "updates", atMs: 1, model: null, firmware: null }),
      check: async () => void calls.push("check"),
      retry: async (id: bigint) => {
        calls.push(`retry ${id}`);
        return { model: true, firmwareDevices: [] };
      },
    };
    const server = new HttpServer({
      source: Object.assign(new FakeSource(), { updates }),
      port: 0,
      authToken: token,
      operatorTokenFile: join(dir, OPERATOR_TOKEN_FILE),
    });
    await server.start();
    try {
      const cfg = tokenConfig(dir, token, server.port);
      const check = await vigil(["update", "check", "-c", cfg, "--wait", "0"]);
      expect([check.code, check.stderr]).toEqual([0, ""]);
      const retry = await vigil(["update", "retry", "7", "-c", cfg, "--wait", "0"]);
      expect([retry.code, retry.stderr]).toEqual([0, ""]);
      expect(calls).toEqual(["check", "retry 7", "check"]);
      // --json --wait 0: the gateway's answer to the request, not nothing.
      const json = await vigil(["update", "check", "-c", cfg, "--wait", "0", "--json"]);
      expect([json.code, json.stderr]).toEqual([0, ""]);
      expect(JSON.parse(json.stdout)).toEqual({
        accepted: true,
        status: { type: "updates", atMs: 1, model: null, firmware: null },
      });
      calls.splice(0);

      // Another dataDir holding the access token but no operator token: the user cannot act.
      const other = mkdtempSync(join(tmpdir(), "vigil-operator-token-"));
      const cfg2 = tokenConfig(other, token, server.port);
      const refused = await vigil(["update", "check", "-c", cfg2, "--wait", "0"]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toBe(
        `vigil update: the operator token: ${join(other, OPERATOR_TOKEN_FILE)} cannot be read (ENOENT); ` +
          "the gateway writes it at every start: is it running with this config, and may this user read its dataDir?\n",
      );
      expect(calls).toEqual([]);
      const status = await vigil(["update", "status", "-c", cfg2]);
      // Reading is not an operator action: no operator token needed.
      expect([status.code, status.stderr]).toEqual([0, ""]);
      expect(status.stdout).toContain("no live model");
      expect(`${check.stdout}${retry.stdout}${refused.stderr}${status.stdout}`).not.toContain(token);
    } finally {
      await server.stop();
    }
  });
});

describe("vigil status against a running gateway", () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await startFleet({ devices: 3, rate: 20, durationS: 120 });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it("behavior: prints the gateway's summary on one screen and exits 0 when ready; --json has the same data", async () => {
    await expect
      .poll(() => fleet.rt.ingest.counters.snapshot().accepted, { timeout: 20_000 })
      .toBeGreaterThan(100);
    const r = await vigil(["status", "--url", fleet.url]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      new RegExp(
        `^vigil status: gw-[\\w.-]+ \\(site site-1, gateway 0x[0-9a-f]{8}…[0-9a-f]{4}\\) at ${fleet.url}$`,
      ),
    );
    expect(lines).toContain("  state      ready (running)");
    expect(lines.find((l) => l.startsWith("  devices    "))).toMatch(
      /^ {2}devices {4}3 · [\d.]+ frames\/s accepted/,
    );
    expect(lines.find((l) => l.startsWith("  frames     "))).toMatch(
      /^ {2}frames {5}accepted [\d,]+ · duplicates/,
    );
    // The fleet runs with attest off: no sealing, so no outbox to wait in.
    expect(r.stdout).toContain(
      "  batches    off (no chain.deployment, or attest.enabled false): frames are stored, not sealed\n",
    );
    expect(r.stdout).toContain("  anchor     off (no chain.rpcUrl)\n");
    expect(r.stdout).toContain(`  page       ${fleet.url}/  (metrics ${fleet.url}/metrics)`);
    expect(lines.length).toBeLessThanOrEqual(24);

    const j = await vigil(["status", "--url", fleet.url, "--json"]);
    expect(j.code).toBe(0);
    const doc = JSON.parse(j.stdout) as { url: string; summary: PageStats; alerts: { active: unknown[] } };
    expect(doc.url).toBe(fleet.url);
    expect(doc.summary.devices.map((d) => d.d)).toEqual(["00000001", "00000002", "00000003"]);
    expect(doc.summary.gateway.name).toBe(fleet.rt.config.attest.gatewayName);
    expect(doc.summary.sealing).toBe(false);
    expect(Array.isArray(doc.alerts.active)).toBe(true);
  });
});
