import { parseArgs, type ParseArgsConfig } from "node:util";
import { ChainError } from "../chain/chain-error.ts";
import { parseRpcUrl } from "../chain/rpc-url.ts";
import { editDistance } from "../core/edit-distance.ts";
import { isAddress, type Hex } from "../core/hex.ts";
import { UsageError } from "../core/errors.ts";
import { reportCommandError } from "./fatal.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** The closest of `candidates` to `word` (at most 2 edits, or a prefix), else undefined. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = c.startsWith(word) && word.length >= 3 ? 0.5 : editDistance(word, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(2, Math.floor(word.length / 4)) ? best : undefined;
}

/** ", did you mean X?" for an unknown word, or "" when nothing is close. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const c = closest(word, candidates);
  return c ? `; did you mean ${c}?` : "";
}

/**
 * parseArgs with errors turned into UsageError (exit code 2): the message names the flag, and an
 * unknown flag gets the closest known one ("unknown option --dat-dir; did you mean --data-dir?").
 */
export function parse<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      const flag = /'([^']+)'/.exec(err.message)?.[1] ?? "";
      const names = Object.entries(options).flatMap(([k, o]) => [
        `--${k}`,
        ...(o.short ? [`-${o.short}`] : []),
      ]);
      // A one-letter flag is one edit from every other one-letter flag: "-c" got "did you mean -h?".
      const hint = /^-[^-]$/.test(flag) ? "" : didYouMean(flag.split("=")[0]!, names);
      throw new UsageError(`unknown option ${flag}${hint}`);
    }
    if (err.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
      const arg = /'([^']+)'/.exec(err.message)?.[1] ?? "";
      throw new UsageError(`unexpected argument "${arg}"`);
    }
    // Node's wording names the flag as "'--port <value>'" over three lines; one line instead.
    // "'-c, --config <value>'": the long name ("-c," read as the flag was printed as "-c, needs …").
    const flag = /'(?:-[^-' ], )?(-[^' ]+)/.exec(err.message)?.[1];
    if (flag && /argument is ambiguous/.test(err.message))
      throw new UsageError(`${flag} needs a value; a value that starts with "-" is written ${flag}=-VALUE`);
    if (flag && /argument missing/.test(err.message)) throw new UsageError(`${flag} needs a value`);
    throw new UsageError(err.message.split("\n")[0]!);
  }
  // An empty value (`--data-dir ""`, an unset shell variable) would read as "not given" and fall
  // back to the default in silence.
  // An option whose default is "" (e.g. chain's --metadata) takes an empty value on purpose.
  for (const [k, x] of Object.entries(parsed.values))
    if ((x === "" || (Array.isArray(x) && x.includes(""))) && options[k]?.default !== "")
      throw new UsageError(`--${k} needs a value, got an empty one`);
  return parsed;
}

/** "a number in [1, 5]", "a number ≥ 1", "a number ≤ 5" or "a number", as the bounds are. */
function numberRange(min: number, max: number): string {
  if (Number.isFinite(min) && Number.isFinite(max)) return `a number in [${min}, ${max}]`;
  if (Number.isFinite(min)) return `a number ≥ ${min}`;
  if (Number.isFinite(max)) return `a number ≤ ${max}`;
  return "a number";
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
  // Decimal only: Number() also takes "", " 0x10" and "0b11" (as 0, 16 and 3).
  const n = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < min || n > max)
    throw new UsageError(`--${name} must be ${numberRange(min, max)}, got "${v}"`);
  return n;
}

/** As {@link num}, for counts and ids: a whole number. */
export function int(...args: Parameters<typeof num>): number {
  const n = num(...args);
  // Digits only: "1e3" and "10.0" are whole numbers to Number(), not as a count or a port is written.
  if (args[1] !== undefined && !/^[-+]?\d+$/.test(args[1]))
    throw new UsageError(`--${args[0]} must be a whole number, got "${args[1]}"`);
  return n;
}

/**
 * Refuses flags given where they do nothing (a flag silently ignored reads as obeyed): the first of
 * `flags` present in `values` is a usage error, `--<flag> <where>` (e.g. `--force applies only to
 * "vigil keys init"`).
 */
export function refuseFlags(values: Record<string, unknown>, flags: readonly string[], where: string): void {
  const given = flags.find((f) => values[f] !== undefined);
  if (given !== undefined) throw new UsageError(`--${given} ${where}`);
}

/**
 * Checks an `--rpc` value given on the command line (http:// or https://, rpc.ts `parseRpcUrl`): a
 * bad one is the caller's usage error (exit 2) naming the flag, credentials redacted.
 */
export function rpcFlag(name: string, url: string): string {
  try {
    parseRpcUrl(url);
  } catch (e) {
    if (e instanceof ChainError) throw new UsageError(`--${name}: ${e.shortMessage}`);
    throw e;
  }
  return url;
}

/**
 * A 20-byte 0x address flag (case ignored), returned in lower case; a usage error naming the flag
 * otherwise. Any other text would reach ethers as an ENS name ("network does not support ENS").
 */
export function addressFlag(name: string, v: string): Hex {
  if (!isAddress(v)) throw new UsageError(`--${name} must be an address (0x + 40 hex digits), got "${v}"`);
  return v.toLowerCase() as Hex;
}

/** Checks an enumerated flag value; the error lists every allowed value. */
export function oneOf<T extends string>(
  name: string,
  v: string | undefined,
  allowed: readonly T[],
  def: T,
): T {
  if (v === undefined) return def;
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw new UsageError(`--${name} must be one of ${allowed.join(", ")}, got "${v}"${didYouMean(v, allowed)}`);
}

/**
 * Runs the subcommand `argv[0]` of `vigil <command>` from `table`: no subcommand prints `help`
 * (exit 2; `--help`/`-h`/`help` exit 0), an unknown one is a usage error with a did-you-mean, and a
 * VigilError becomes one line on stderr (exit 2 for usage, 1 otherwise; reportCommandError): a
 * usage error ends with `(see "vigil <command> <subcommand> --help")` (`vigil <command> --help` for
 * an unknown subcommand), any other error with its fix when it does not say one (fatalLine).
 */
export async function runSubcommand(
  command: string,
  help: string,
  table: Record<string, (argv: string[]) => Promise<number>>,
  argv: string[],
): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
      process.stdout.write(help);
      return sub === undefined ? 2 : 0;
    }
    // Own keys only: "constructor" or "toString" is not a subcommand.
    const run = Object.hasOwn(table, sub) ? table[sub] : undefined;
    if (!run)
      throw new UsageError(`unknown ${command} command "${sub}"${didYouMean(sub, Object.keys(table))}`);
    return await run(rest);
  } catch (err) {
    const known = sub !== undefined && Object.hasOwn(table, sub);
    const pointer = `vigil ${command}${known ? ` ${sub}` : ""}`;
    return reportCommandError(command, err, { help: pointer, fixes: true });
  }
}
