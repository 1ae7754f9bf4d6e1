// Strict command-line options of the evaluation scripts (run-all.ts, evaluate.ts, evaluate-rotating.ts,
// evaluate-cwru.ts): an unknown option, a missing value or a value out of range is ONE line on stderr
// naming it, with the script's usage, and exit status 2, before any model is loaded; `--help` prints the
// usage (exit 0). A mistyped option must never be silently ignored: the run would report on something
// other than what was asked for (or, with --write, rewrite a manifest nobody meant to touch).
import { parseArgs, type ParseArgsConfig } from "node:util";
import { int, num, parse } from "../../gateway/src/cli/args.ts";
import { UsageError } from "../../gateway/src/core/errors.ts";

export { int, num, UsageError };

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>
>["values"];

/**
 * Parses `argv` strictly against `options` and hands the values to `read`, which checks them and
 * returns the settings. Any mistake is a {@link UsageError} naming the option.
 */
export function parseOptions<const O extends Options, R>(
  argv: string[],
  options: O,
  read: (values: Values<O>) => R,
): R {
  return read(parse(argv, options).values as Values<O>);
}

/**
 * A script's own command line (default: this process's arguments) read by `read`: a {@link UsageError}
 * becomes one line on stderr and exit 2; `--help`/`-h` prints the usage (exit 0). `script` names the
 * script in the message (`models:eval`, `evaluate-cwru.ts`); `usage` is its one-line usage.
 */
export function commandLine<R>(
  script: string,
  usage: string,
  read: (argv: string[]) => R,
  argv: string[] = process.argv.slice(2),
): R {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`usage: ${usage}\n`);
    process.exit(0);
  }
  let message: string;
  try {
    return read(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    message = e.message;
  }
  process.stderr.write(`${script}: ${message} (usage: ${usage})\n`);
  process.exit(2);
}

/** {@link parseOptions} on this script's command line, through {@link commandLine}. */
export function evalOptions<const O extends Options, R>(
  script: string,
  usage: string,
  options: O,
  read: (values: Values<O>) => R,
): R {
  return commandLine(script, usage, (argv) => parseOptions(argv, options, read));
}
