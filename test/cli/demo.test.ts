/**
 * What `vigil demo` prints: the live view's layout (progress bar on a terminal, plain lines
 * otherwise, alerts above the block), the alert line with its value beside its threshold, the
 * reconciliation's arithmetic, and a real short demo run as a child process — without a
 * terminal (plain lines) and under `script` (a real pty, so the redrawn block) — with --keep
 * leaving a passphrase file that opens the kept keystore.
 */
import { spawn } from "node:child_process";
import { readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  alertLine,
  LiveView,
  liveLines,
  progress,
  reconciliationLines,
  type GatewayFigures,
} from "../../gateway/src/cli/demo-view.ts";
import { loadKeystore } from "../../gateway/src/attest/keystore.ts";
import { registrationPublicKey } from "../../gateway/src/chain/keys.ts";
import type { SimSnapshot } from "../../device-sim/src/simulator.ts";
import { which } from "../helpers/procs.ts";

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    p.on("close", (code) => res({ code, out }));
  });
}

const G: GatewayFigures = {
  devices: 3,
  accepted: 1234,
  duplicates: 5,
  outOfOrder: 1,
  gaps: 2,
  rejected: { BAD_CRC: 3, NON_FINITE: 1 },
  stored: 2000,
  batchesSealed: 4,
  batchesAnchored: 3,
  anchorError: null,
  windowsRun: 700,
  windowsSkipped: 2,
  alertsRaised: 2,
  alertsCleared: 1,
};
const snap = (generated: number, acked: number): SimSnapshot =>
  ({ generated, acked, pending: generated - acked, resent: 4, abandoned: 0 }) as SimSnapshot;

describe("demo view", () => {
  it("behavior: progress toward --duration, with a bar on a terminal and without one otherwise, capped at 100 %", () => {
    expect(progress(15, 30, { bar: true, width: 10 })).toBe("[█████░░░░░]  50 %  15.0 / 30 s");
    expect(progress(15, 30, { bar: false })).toBe(" 50 %  15.0 / 30 s");
    expect(progress(31, 30, { bar: true, width: 4 })).toBe("[████] 100 %  30.0 / 30 s");
  });

  it("behavior: an alert line shows the value beside the threshold and where it clears", () => {
    expect(
      alertLine({
        state: "raised",
        severity: "critical",
        device: "00000003",
        value: 0.9341,
        rule: { id: "failure-critical", output: "p_fail", op: ">=", threshold: 0.9, clear: 0.7 },
      }),
    ).toBe(
      "  ALERT raised critical device 00000003: p_fail 0.934 (threshold >= 0.9, clears below 0.7) rule failure-critical",
    );
    expect(
      alertLine({
        state: "raised",
        severity: "warning",
        device: "00001000",
        value: 47.24,
        rule: { id: "rul-warning", output: "rul", op: "<=", threshold: 50, clear: 60 },
      }),
    ).toContain("rul 47.24 (threshold <= 50, clears above 60)");
  });

  it("behavior: on a terminal the block is redrawn in place and alerts appear above it; otherwise plain lines, no escape codes", () => {
    let tty = "";
    const v = new LiveView({ write: (s: string) => (tty += s) }, true, 1000);
    const block = liveLines(3, 30, G, [{ label: "rotating", s: snap(1240, 1234) }], true);
    expect(block).toHaveLength(5);
    expect(block[0]).toMatch(/^ {2}devices generating \[█{3}░{27}\] {2}10 %/);
    expect(block[1]).toContain("accepted 1,234 of 1,240 generated");
    expect(block[1]).toContain("rejected 4 (BAD_CRC 3, NON_FINITE 1)");
    v.render(block);
    v.log("  ALERT x");
    v.render(block);
    const firstDraw = block.join("\n") + "\n";
    // Redraw: cursor to the block's first line (CSI n F), erase to the end (CSI J).
    expect(tty).toBe(firstDraw + `\x1b[5F\x1b[J  ALERT x\n` + firstDraw + `\x1b[5F\x1b[J` + firstDraw);

    // Lines wider than the terminal are cut (a wrapped line would break the redraw).
    let narrow = "";
    new LiveView({ write: (s: string) => (narrow += s) }, true, 40).render(block);
    expect(
      narrow
        .split("\n")
        .slice(0, -1)
        .every((l) => l.length <= 39),
    ).toBe(true);
    expect(narrow.split("\n")[1]).toMatch(/…$/);

    let plain = "";
    const p = new LiveView({ write: (s: string) => (plain += s) }, false);
    const lines = liveLines(3, 30, G, [{ label: "rotating", s: snap(1240, 1234) }], false);
    p.render(lines);
    p.log("  ALERT x");
    p.render(lines);
    expect(plain).not.toContain("\x1b");
    expect(plain).not.toContain("█");
    expect(plain.split("\n").filter((l) => l.startsWith("  devices generating"))).toHaveLength(2);
  });

  it("behavior: the reconciliation explains how generated frames split, and flags what it cannot explain", () => {
    const base = {
      generated: 4123,
      acked: 4116,
      abandoned: 7,
      pending: 0,
      overflowed: 0,
      lostAtReboot: 0,
      accepted: 4116,
      duplicates: 30,
      framesStored: 4116,
      modelLeaves: 900,
    };
    const lines = reconciliationLines(base);
    expect(lines[0]).toBe(
      "  frames generated 4,123 = acknowledged 4,116 + abandoned 7 (refused for good, e.g. an absurd timestamp) + still waiting for an ACK at the end 0",
    );
    expect(lines[1]).toContain("acknowledged 4,116 = accepted by the gateway 4,116");
    expect(lines[2]).toBe(
      "  log entries 5,016 = frames 4,116 + model leaves 900 (inference results and alerts, sealed with the frames)",
    );
    expect(reconciliationLines({ ...base, generated: 4125 })[0]).toMatch(/ \+ unexplained 2$/);
  });
});

describe("vigil demo, a short run", () => {
  it("behavior: without a terminal, plain lines: the page URL first, the legend, counters, alerts with values, the reconciliation and what to try next; --keep leaves a 0600 passphrase file that opens the keystore", async () => {
    const r = await run(process.execPath, [
      "bin/vigil.js",
      "demo",
      "--duration",
      "4",
      "--devices",
      "2",
      "--rate",
      "20",
      "--keep",
    ]);
    expect(r.code, r.out).toBe(0);
    const out = r.out;
    expect(out).not.toContain("\x1b");
    const page = out.indexOf("  live page http://127.0.0.1:");
    expect(page).toBeGreaterThan(0);
    expect(page).toBeLessThan(out.indexOf("what the counters mean:"));
    expect(out.indexOf("what the counters mean:")).toBeLessThan(out.indexOf("  devices generating"));
    expect(out).toMatch(/^ {2}devices generating 100 % {2}4\.0 \/ 4 s$/m);
    expect(out).toMatch(/^ {2}frames generated [\d,]+ = acknowledged [\d,]+ \+ abandoned \d+ /m);
    expect(out).not.toContain("unexplained");
    for (const m of out.matchAll(/^ {2}ALERT .*$/gm))
      expect(m[0]).toMatch(
        /: \w+ -?[\d.]+ \(threshold (>=|<=) [\d.]+, clears (below|above) [\d.]+\) rule [a-z0-9-]+$/,
      );
    expect(out).toContain("what to try next:");
    const file = /its passphrase in (\S+) \(mode 0600\)/.exec(out)?.[1];
    expect(file, out).toBeDefined();
    expect(statSync(file!).mode & 0o777).toBe(0o600);
    const dir = /the data is kept in (\S+):/.exec(out)![1]!;
    const signer = await loadKeystore(join(dir, "gateway.key"), readFileSync(file!, "utf8").trim());
    expect(out).toContain(`registered with key ${registrationPublicKey(signer.exportKey())}`);
    expect(out).toContain(`npx vigil keys show -c ${join(dir, "config.json")}`);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it("behavior: on a real terminal (pty from script) the block is redrawn in place with a progress bar", async () => {
    const script = which("script");
    if (!script) throw new Error("util-linux `script` is needed for the pty test (Debian: bsdutils)");
    const cmd = `${process.execPath} bin/vigil.js demo --duration 3 --devices 1 --rate 20`;
    const r = await run(script, ["-qfec", cmd, "/dev/null"]);
    expect(r.code, r.out).toBe(0);
    const shown = r.out.replaceAll("\x1b", "<ESC>");
    expect(shown).toMatch(/<ESC>\[\d+F<ESC>\[J {2}devices generating \[[█░]{30}\]/);
    expect(r.out).toMatch(/\[█{30}\] 100 %/);
  }, 120_000);
});
