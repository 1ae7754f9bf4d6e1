import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../core/errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** parseArgs with errors turned into UsageError (exit code 2, message names the flag). */
export function parse<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Parses a number flag, naming the flag when it is not a number in range. */
export function num(
  name: string,
  v: string | undefined,
  def: number,
  min = -Infinity,
  max = Infinity,
): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new UsageError(`--${name} must be a number in [${min}, ${max}], got "${v}"`);
  return n;
}
