// What `npm run models:eval` runs (run-all.ts): the three evaluations in order, each in its own
// process, and the options each one gets. Kept apart from run-all.ts so test/models/eval-suite.test.ts
// can check the plan and the "all three run, the worst status wins" rule without running a model.
import { int, parseOptions, UsageError } from "./options.ts";

export const USAGE =
  "npm run models:eval [-- --dir models/cmapss] [--only fd001] [--latency-runs N] [--write]";

/** Options that only `evaluate-rotating.ts` has: refused with the command that takes them. */
const ROTATING_ONLY = ["manifest", "faults", "mean-life", "seeds"] as const;

export interface Evaluation {
  /** for the summary line */
  name: string;
  /** file name in models/eval */
  script: string;
  args: string[];
}

/**
 * The evaluations `npm run models:eval -- <argv>` runs, each with the options it understands:
 * `--latency-runs N` goes to all three; `--dir`, `--only` and `--write` are the C-MAPSS evaluation's
 * (evaluate.ts), and with any of them it is the only one run (`--write` must never rewrite the rotating
 * or CWRU manifest: their own `--write` is `npx tsx models/eval/evaluate-….ts --write`). An unknown
 * option, or one of the rotating evaluation's own, is a {@link UsageError}.
 */
export function planEvaluations(argv: string[]): Evaluation[] {
  return parseOptions(
    argv,
    {
      dir: { type: "string" },
      only: { type: "string" },
      "latency-runs": { type: "string" },
      write: { type: "boolean" },
      manifest: { type: "string" },
      faults: { type: "string" },
      "mean-life": { type: "string" },
      seeds: { type: "string" },
    },
    (a) => {
      const rotating = ROTATING_ONLY.find((k) => a[k] !== undefined);
      if (rotating !== undefined)
        throw new UsageError(
          `--${rotating} is an option of the rotating evaluation alone: npx tsx models/eval/evaluate-rotating.ts --${rotating} …`,
        );
      const latency =
        a["latency-runs"] === undefined
          ? []
          : ["--latency-runs", String(int("latency-runs", a["latency-runs"], 200, 1))];
      const cmapss = [
        ...(a.dir !== undefined ? ["--dir", a.dir] : []),
        ...(a.only !== undefined ? ["--only", a.only] : []),
        ...(a.write ? ["--write"] : []),
      ];
      const first: Evaluation = { name: "C-MAPSS", script: "evaluate.ts", args: [...cmapss, ...latency] };
      if (cmapss.length > 0) return [first];
      return [
        first,
        { name: "rotating", script: "evaluate-rotating.ts", args: latency },
        { name: "CWRU", script: "evaluate-cwru.ts", args: latency },
      ];
    },
  );
}

/**
 * Runs every evaluation in order, whatever the earlier ones' outcome, and returns each one's exit
 * status and the suite's: the worst (highest) of them, 0 when all passed.
 */
export async function runEvaluations(
  evaluations: readonly Evaluation[],
  run: (e: Evaluation) => Promise<number>,
): Promise<{ codes: number[]; exitCode: number }> {
  const codes: number[] = [];
  for (const e of evaluations) codes.push(await run(e));
  return { codes, exitCode: Math.max(0, ...codes) };
}

/** "C-MAPSS ok, rotating FAILED (exit 1), CWRU ok" */
export function summary(evaluations: readonly Evaluation[], codes: readonly number[]): string {
  return evaluations
    .map((e, i) => `${e.name} ${codes[i] === 0 ? "ok" : `FAILED (exit ${codes[i]})`}`)
    .join(", ");
}
