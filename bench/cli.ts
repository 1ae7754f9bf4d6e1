/**
 * `npm run bench -- cli [--runs N]`: start-up time of `vigil --help` and of every
 * `vigil <command> --help` from the compiled build (dist/, built first when missing or older than
 * the sources), against `node -e ""` measured in the same run (the floor no command can beat).
 * Goal (issue 9): ≤ 0.5 s for each. Each row is the median of N runs (default 7), interleaved so
 * machine noise hits every row alike. Last line: one JSON object.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../gateway/src/core/paths.ts";
import { benchOptions, int } from "./lib/options.ts";

const runs = benchOptions(import.meta.url, { runs: { type: "string" } }, (a) => int("runs", a.runs, 7, 1));
const root = packageRoot();
const main = join(root, "dist/gateway/src/cli/main.js");
const GOAL_S = 0.5;

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}
if (!existsSync(main) || statSync(main).mtimeMs < newest(join(root, "gateway/src"))) {
  process.stderr.write("building dist/ (npm run build)…\n");
  const b = spawnSync("npm", ["run", "-s", "build"], { cwd: root, stdio: "inherit" });
  if (b.status !== 0) process.exit(1);
}

const COMMANDS = [
  "start",
  "sim",
  "demo",
  "status",
  "doctor",
  "init",
  "keys",
  "chain",
  "store",
  "receipt",
  "verify",
  "anchor",
  "access",
  "token",
  "release",
  "update",
];
const rows: Array<{ name: string; args: string[] }> = [
  { name: "node -e '' (floor)", args: ["-e", ""] },
  { name: "vigil --help", args: [main, "--help"] },
  ...COMMANDS.map((c) => ({ name: `vigil ${c} --help`, args: [main, c, "--help"] })),
];
const times = rows.map(() => [] as number[]);
for (let r = 0; r < runs; r++)
  rows.forEach((row, i) => {
    const t0 = process.hrtime.bigint();
    const p = spawnSync(process.execPath, row.args, { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (p.status !== 0)
      throw new Error(`${row.name} exited ${p.status}: ${p.stderr.toString().slice(0, 300)}`);
    times[i]!.push(s);
  });

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const floor = median(times[0]!);
console.log(`CLI start-up from dist/, median of ${runs} runs (goal ≤ ${GOAL_S} s each)`);
console.log("command".padEnd(26) + "seconds".padStart(9) + "× node".padStart(9) + "  goal");
const out: Record<string, number> = {};
let allMet = true;
rows.forEach((row, i) => {
  const m = median(times[i]!);
  const met = i === 0 || m <= GOAL_S;
  allMet &&= met;
  out[row.name] = Math.round(m * 1000) / 1000;
  console.log(
    row.name.padEnd(26) +
      m.toFixed(3).padStart(9) +
      (m / floor).toFixed(2).padStart(9) +
      (i === 0 ? "" : met ? "  met" : "  MISSED"),
  );
});
console.log(JSON.stringify({ bench: "cli", runs, goalS: GOAL_S, allMet, medianS: out }));
