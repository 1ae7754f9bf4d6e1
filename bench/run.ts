/**
 * `npm run bench -- <name> [args]` runs bench/<name>.ts. Each benchmark prints a readable
 * table and, as its last line, one JSON object with its figures.
 */
import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const name = process.argv[2];
const available = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts")
  .map((f) => f.slice(0, -3));
if (!name || name === "--help" || name === "-h") {
  console.log(`usage: npm run bench -- <name> [args]\navailable: ${available.join(", ")}`);
  process.exit(name ? 0 : 2);
}
const file = join(here, `${name}.ts`);
if (!existsSync(file)) {
  console.error(`unknown benchmark "${name}"; available: ${available.join(", ")}`);
  process.exit(2);
}
process.argv.splice(2, 1);
try {
  await import(pathToFileURL(file).href);
} catch (e) {
  // A mistyped option is the user's error, not a crash: one line and the usage, no stack trace.
  const code = (e as NodeJS.ErrnoException).code;
  if (code !== "ERR_PARSE_ARGS_UNKNOWN_OPTION" && code !== "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") throw e;
  console.error(
    `bench ${name}: ${(e as Error).message}; its options are listed at the top of bench/${name}.ts`,
  );
  process.exit(2);
}
