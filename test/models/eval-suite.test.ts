/**
 * `npm run models:eval` (models/eval/run-all.ts, suite.ts): the options its usage documents reach the
 * evaluation they belong to (npm appends them to the script's last command only, so a `&&` chain gave
 * them to evaluate-cwru.ts, which ignored them), all three evaluations run even when one fails and the
 * worst status is the suite's, and a mistyped option is one line and exit 2 before any model is loaded,
 * here and in each evaluation script run alone.
 */
import { describe, expect, it } from "vitest";
import { runGroup, type GroupRun } from "../helpers/procs.ts";
import { UsageError } from "../../gateway/src/core/errors.ts";
import { planEvaluations, runEvaluations, summary, type Evaluation } from "../../models/eval/suite.ts";

type Out = GroupRun;

/** A command in its own process group, killed whole after `ms` (a run that started evaluating). */
const run = (cmd: string, args: string[], ms = 60_000): Promise<Out> => runGroup(cmd, args, ms);

const tsx = (script: string, args: string[]): Promise<Out> =>
  run(process.execPath, ["--import", "tsx", `models/eval/${script}`, ...args]);

/** One line on stderr, exit 2, no stack trace, nothing evaluated. */
function refused(r: Out, re: RegExp): void {
  expect(r.timedOut, `started evaluating instead of refusing: ${r.stdout.slice(0, 300)}`).toBe(false);
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr.split("\n").filter((l) => l !== "")).toHaveLength(1);
  expect(r.stderr).toMatch(re);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stdout).toBe("");
}

const scripts = (plan: Evaluation[]): [string, string[]][] => plan.map((e) => [e.script, e.args]);

describe("npm run models:eval", () => {
  it("behavior: with no options all three evaluations run, in order, with no options (as CI runs it)", () => {
    expect(scripts(planEvaluations([]))).toEqual([
      ["evaluate.ts", []],
      ["evaluate-rotating.ts", []],
      ["evaluate-cwru.ts", []],
    ]);
  });

  it("behavior: --latency-runs goes to all three; --dir, --only and --write to evaluate.ts alone, then the only one run", () => {
    const runs = ["--latency-runs", "20"];
    expect(scripts(planEvaluations(runs))).toEqual([
      ["evaluate.ts", runs],
      ["evaluate-rotating.ts", runs],
      ["evaluate-cwru.ts", runs],
    ]);
    expect(scripts(planEvaluations(["--only", "fd001", "--latency-runs", "5"]))).toEqual([
      ["evaluate.ts", ["--only", "fd001", "--latency-runs", "5"]],
    ]);
    // --write records C-MAPSS metrics.conditions; it never reaches the rotating or CWRU manifest.
    expect(scripts(planEvaluations(["--write", "--dir", "tmp/m"]))).toEqual([
      ["evaluate.ts", ["--dir", "tmp/m", "--write"]],
    ]);
  });

  it("error: an unknown option, a bad number or an option of the rotating evaluation alone is a usage error", () => {
    expect(() => planEvaluations(["--onlly", "fd001"])).toThrow(
      new UsageError("unknown option --onlly; did you mean --only?"),
    );
    expect(() => planEvaluations(["--latency-runs", "abc"])).toThrow(/--latency-runs must be a number ≥ 1/);
    expect(() => planEvaluations(["--faults", "none"])).toThrow(
      /--faults is an option of the rotating evaluation alone: npx tsx models\/eval\/evaluate-rotating\.ts/,
    );
    expect(() => planEvaluations(["fd001"])).toThrow(/unexpected argument "fd001"/);
  });

  it("behavior: every evaluation runs even when an earlier one fails; the worst status is the suite's", async () => {
    const plan = planEvaluations([]);
    const ran: string[] = [];
    const status: Record<string, number> = {
      "evaluate.ts": 1,
      "evaluate-rotating.ts": 0,
      "evaluate-cwru.ts": 0,
    };
    const r = await runEvaluations(plan, (e) => {
      ran.push(e.script);
      return Promise.resolve(status[e.script]!);
    });
    expect(ran).toEqual(["evaluate.ts", "evaluate-rotating.ts", "evaluate-cwru.ts"]);
    expect(r).toEqual({ codes: [1, 0, 0], exitCode: 1 });
    expect(summary(plan, r.codes)).toBe("C-MAPSS FAILED (exit 1), rotating ok, CWRU ok");
    const ok = await runEvaluations(plan, () => Promise.resolve(0));
    expect(ok.exitCode).toBe(0);
  });

  it("behavior: the documented options reach evaluate.ts through npm (package.json)", async () => {
    // evaluate.ts refuses a manifest name it does not have before loading anything: seeing its own
    // message proves that --only got there (it used to reach evaluate-cwru.ts, ignored, after a full run).
    const r = await run("npm", ["run", "-s", "models:eval", "--", "--only", "fd009"]);
    refused(r, /^evaluate\.ts: --only fd009: no fd009\.manifest\.json in .*models\/cmapss \(there: fd001, /);
    refused(
      await run("npm", ["run", "-s", "models:eval", "--", "--onlly", "fd001"]),
      /^models:eval: unknown option --onlly; did you mean --only\? \(usage: npm run models:eval /,
    );
  }, 150_000);

  it("input: each evaluation script run alone refuses a mistyped option or a bad value in one line", async () => {
    refused(
      await tsx("evaluate.ts", ["--latency-runs", "0"]),
      /^evaluate\.ts: --latency-runs must be a number ≥ 1/,
    );
    refused(
      await tsx("evaluate-rotating.ts", ["--seeds", "9-3"]),
      /^evaluate-rotating\.ts: --seeds must be A-B/,
    );
    refused(await tsx("evaluate-cwru.ts", ["--only", "fd001"]), /^evaluate-cwru\.ts: unknown option --only /);
  }, 200_000);
});
