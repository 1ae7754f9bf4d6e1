/**
 * Strict options for every benchmark (`npm run bench -- <name> [args]`): an unknown option, an
 * option without its value, a value that is not a number in range, or two options that cannot go
 * together end the process with ONE line on stderr and exit status 2, before any work starts (a
 * mistyped option must never fall back silently to the default, hours-long run):
 *
 *   bench e2e: --profile-at must be a number > 0, got "abc"; its options are listed at the top of bench/e2e.ts
 *
 * The number and choice checks are the vigil CLI's own (gateway/src/cli/args.ts), so the wording
 * is the same as `vigil … --help` users see.
 */
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { int, num, oneOf, parse, refuseFlags } from "../../gateway/src/cli/args.ts";
import { UsageError } from "../../gateway/src/core/errors.ts";

export { int, num, oneOf, refuseFlags, UsageError };

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>
>["values"];

/**
 * Parses this benchmark's command line (`process.argv.slice(2)`; bench/run.ts removes the name)
 * strictly against `options`, then hands the values to `read`, which turns them into the
 * benchmark's settings with {@link int}, {@link num}, {@link positive}, {@link oneOf},
 * {@link exclusive}, … and returns them. A usage mistake in either step is one line and exit 2.
 * `moduleUrl` is the benchmark's `import.meta.url` (its name in the message).
 */
export function benchOptions<const O extends Options, R>(
  moduleUrl: string,
  options: O,
  read: (values: Values<O>) => R,
  argv: string[] = process.argv.slice(2),
): R {
  const name = basename(fileURLToPath(moduleUrl), ".ts");
  let line: string | undefined;
  try {
    // The CLI's parser: its errors are UsageErrors worded as `vigil … --help` users see them.
    const { values } = parse(argv, options);
    return read(values as Values<O>);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    line = e.message;
  }
  process.stderr.write(`bench ${name}: ${line}; its options are listed at the top of bench/${name}.ts\n`);
  process.exit(2);
}

/** A number > 0 (durations, rates), naming the flag when it is not. */
export function positive(name: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || !(n > 0)) throw new UsageError(`--${name} must be a number > 0, got "${v}"`);
  return n;
}

/** At most one of `flags` (separate runs of one benchmark): two of them is a usage error naming both. */
export function exclusive(values: Record<string, unknown>, flags: readonly string[]): string | undefined {
  const given = flags.filter((f) => values[f] !== undefined);
  if (given.length > 1)
    throw new UsageError(`--${given[0]} and --${given[1]} are separate runs; give one of ${flagList(flags)}`);
  return given[0];
}

/** "--a, --b or --c" */
export function flagList(flags: readonly string[]): string {
  const f = flags.map((x) => `--${x}`);
  return f.length < 2 ? f.join("") : `${f.slice(0, -1).join(", ")} or ${f.at(-1)}`;
}
