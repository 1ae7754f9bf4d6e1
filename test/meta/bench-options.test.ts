/**
 * Every benchmark's options are strict (bench/lib/options.ts): an unknown option, a value that is
 * not a number in range, an unknown choice or two runs that cannot go together is ONE line on
 * stderr, exit 2, no stack trace, and nothing started (empty stdout, well within seconds) — never
 * a silent fall-back to the default, hours-long run. Each case spawns `npm run bench`'s own
 * entry, bench/run.ts; a case that started the benchmark anyway is stopped (its whole process
 * group) and fails.
 */
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { runGroup, type GroupRun } from "../helpers/procs.ts";

type Out = GroupRun;

/** `node --import tsx bench/run.ts ARGS`, in its own process group, killed whole after `ms`. */
const bench = (args: string[], ms = 30_000): Promise<Out> =>
  runGroup(process.execPath, ["--import", "tsx", "bench/run.ts", ...args], ms);

/** One line naming the benchmark and the mistake, exit 2, no stack trace, nothing run. */
function refused(r: Out, name: string, re: RegExp): void {
  expect(r.timedOut, `bench ${name} started instead of refusing: ${r.stdout.slice(0, 300)}`).toBe(false);
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr.split("\n").filter((l) => l !== "")).toHaveLength(1);
  expect(r.stderr).toMatch(new RegExp(`^bench ${name}: `));
  expect(r.stderr).toMatch(re);
  expect(r.stderr).toMatch(new RegExp(`; its options are listed at the top of bench/${name}\\.ts\\n$`));
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/Node\.js v\d/);
  expect(r.stdout).toBe("");
}

/** Each case's run, two at a time (each is a Node start-up that loads the benchmark's imports). */
async function all(cases: string[][]): Promise<Out[]> {
  const out: Out[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < cases.length; i = next++) out[i] = await bench(cases[i]!);
  };
  await Promise.all([worker(), worker()]);
  return out;
}

/** The benchmarks `npm run bench -- <name>` knows (bench/run.ts lists the same). */
const BENCHES = readdirSync("bench")
  .filter((f) => f.endsWith(".ts") && f !== "run.ts")
  .map((f) => f.slice(0, -3));

describe("benchmark options", () => {
  it("behavior: every benchmark refuses an option it does not have (and a typo gets the closest one)", async () => {
    expect(BENCHES).toEqual(expect.arrayContaining(["anchor", "attest", "cli", "e2e", "gas"]));
    const runs = await all(BENCHES.map((name) => [name, "--no-such-option"]));
    BENCHES.forEach((name, i) => refused(runs[i]!, name, /unknown option --no-such-option/));
    // anchor and attest read process.argv.includes: the typo was ignored and the full run started.
    const [anchor, http] = await all([
      ["anchor", "--quik"],
      ["http", "100"],
    ]);
    refused(anchor!, "anchor", /unknown option --quik; did you mean --quick\?/);
    refused(http!, "http", /unexpected argument "100"/);
  }, 240_000);

  it("input: a value that is not a number in range names the option and the range", async () => {
    const cases: [string[], RegExp][] = [
      [["anchor", "--depth", "abc"], /--depth must be a number ≥ 1, got "abc"/],
      [["cli", "--runs", "0"], /--runs must be a number ≥ 1, got "0"/],
      [["firmware", "--runs", "1.5"], /--runs must be a whole number, got "1\.5"/],
      [["ingest", "--frames", "1e400"], /--frames must be a number ≥ 1, got "1e400"/],
      [["e2e", "--profile-at", "abc"], /--profile-at must be a number > 0, got "abc"/],
      [["e2e", "--overload-at", "0"], /--overload-at must be a number > 0, got "0"/],
      [["e2e", "--window-backlog", "many"], /--window-backlog must be a number in \[1, 1024\], got "many"/],
      [["e2e", "--step-at", "4000,fast"], /--step-at wants frames\/s, comma-separated/],
      [
        ["e2e", "--runner", "wrker"],
        /--runner must be one of inline, worker, got "wrker"; did you mean worker\?/,
      ],
      [["infer", "--sections", "loop,rs"], /--sections must be one of loop, rss, quality, got "rs"/],
      [["idle", "--min-s", "60", "--max-s", "30"], /--max-s \(30\) must be ≥ --min-s \(60\)/],
      [["update", "--runs"], /--runs needs a value/],
    ];
    const runs = await all(cases.map(([args]) => args));
    cases.forEach(([args, re], i) => refused(runs[i]!, args[0]!, re));
  }, 240_000);

  it("error: the single-phase runs of e2e cannot be combined, and the full run's flags are refused with them", async () => {
    const [two, three, flag] = await all([
      ["e2e", "--profile-at", "6000", "--step-at", "4000"],
      ["e2e", "--step-at", "4000", "--overload-at", "9000", "--profile-at", "100"],
      ["e2e", "--overload-at", "9000", "--no-profile"],
    ]);
    refused(
      two!,
      "e2e",
      /--profile-at and --step-at are separate runs; give one of --profile-at, --step-at or --overload-at/,
    );
    refused(three!, "e2e", /--profile-at and --step-at are separate runs/);
    refused(flag!, "e2e", /--no-profile applies only to the full run/);
  }, 120_000);
});
