/**
 * A module-resolution trace for a spawned Node process: `--import REGISTER` installs a resolve hook
 * that appends a line to the file named by `VIGIL_TRACE_FILE` for every resolved URL matching
 * `watched`. The line is the regex's first capture group, or, without one, the URL and its parent.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** Writes the hook to a fresh temporary folder; returns it and the file to pass to `--import`. */
export function importTraceHook(watched: RegExp): { dir: string; register: string } {
  const dir = mkdtempSync(join(tmpdir(), "vigil-import-trace-"));
  const hooks = join(dir, "hooks.mjs");
  writeFileSync(
    hooks,
    `import { appendFileSync } from "node:fs";
const watched = ${watched.toString()};
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const m = watched.exec(r.url);
  if (m) appendFileSync(process.env.VIGIL_TRACE_FILE, (m[1] ?? r.url + " <- " + context.parentURL) + "\\n");
  return r;
}
`,
  );
  const register = join(dir, "register.mjs");
  writeFileSync(
    register,
    `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
  );
  return { dir, register };
}
