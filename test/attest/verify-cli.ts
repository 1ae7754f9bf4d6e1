/** `vigil verify` run in-process for the on-chain verification tests: exit code and both streams. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { verifyCommand } from "../../gateway/src/cli/verify.ts";

export async function verifyCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await verifyCommand(args, { out: (s) => void (out += s), err: (s) => void (err += s) });
  return { code, out, err };
}

/** Writes `doc` as JSON to `dir/name` and returns the path. */
export function jsonFile(dir: string, name: string, doc: unknown): string {
  const f = join(dir, name);
  writeFileSync(f, JSON.stringify(doc));
  return f;
}
