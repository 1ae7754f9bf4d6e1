// `npm run models:eval [-- --dir models/cmapss] [--only fd001] [--latency-runs N] [--write]`
// Runs the three evaluations in order, each in its own process: evaluate.ts (every C-MAPSS model),
// evaluate-rotating.ts, evaluate-cwru.ts. All three run even when one fails; the exit status is the
// worst of theirs (1: a hash differs or a model is worse than its manifest claims).
//   --latency-runs N   goes to all three.
//   --dir, --only, --write are the C-MAPSS evaluation's (evaluate.ts): with any of them only that one
//                      runs (--write records metrics.conditions in the C-MAPSS manifests, never in the
//                      rotating or CWRU manifest; their own --write is `npx tsx models/eval/evaluate-….ts`).
// An unknown option, or an option of evaluate-rotating.ts alone (--manifest, --faults, --mean-life,
// --seeds), is one line and exit 2 before anything runs (suite.ts, options.ts).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { commandLine } from "./options.ts";
import { planEvaluations, runEvaluations, summary, USAGE, type Evaluation } from "./suite.ts";

/** One evaluation in its own process on this terminal; its exit status (a signal or a failed start: 1). */
function run(e: Evaluation): Promise<number> {
  const file = fileURLToPath(new URL(e.script, import.meta.url));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", file, ...e.args], { stdio: "inherit" });
    child.on("error", (err) => {
      process.stderr.write(`models:eval: ${e.script} did not start: ${err.message}\n`);
      resolve(1);
    });
    child.on("exit", (code) => resolve(code ?? 1));
  });
}

const evaluations = commandLine("models:eval", USAGE, planEvaluations);
const { codes, exitCode } = await runEvaluations(evaluations, run);
if (evaluations.length > 1) process.stderr.write(`models:eval: ${summary(evaluations, codes)}\n`);
else if (exitCode !== 2)
  process.stderr.write(
    "models:eval: C-MAPSS only (--dir, --only and --write are its options); the rotating and CWRU evaluations were not run\n",
  );
process.exitCode = exitCode;
