/**
 * A flag is written with one placeholder wherever it is shown: in every usage line and option
 * list of `vigil … --help` (run through bin/vigil.js, as an operator runs it), in the CLI's own
 * messages ("--deployment FILE is required"), and in the Markdown that quotes it. `--out FILE` in
 * a usage line and `--out PATH` in the option list below it read as two different things.
 *
 * A few flags mean different things in different commands (`--to` is a time for `vigil receipt`
 * and a folder for `vigil store salvage`): DIFFERS lists them, and they are checked per command.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { CLI_COMMANDS as commands } from "../helpers/cli-commands.ts";

/** `vigil ARGS` through bin/vigil.js, as an operator runs it. */
function vigil(...args: string[]): string {
  return execFileSync(process.execPath, ["bin/vigil.js", ...args], { encoding: "utf8" });
}

/** Flags whose value is a different kind of thing in different commands. */
const DIFFERS: Record<string, string> = {
  "--to": "vigil receipt: a time; vigil store salvage: a folder",
  "--site": "vigil init: the config's site name; elsewhere a site's name or its 0x id",
};

/** `--flag PLACEHOLDER`: an upper-case word, or alternatives (`NAME|HEX32`, `model|firmware`). */
const FLAG_WITH_VALUE =
  /(?<![\w-])(--[a-z][a-z0-9-]*)[ =]((?:[A-Z][A-Z0-9_]*|[a-z0-9-]+)(?:\|(?:[A-Z][A-Z0-9_]*|[a-z0-9-]+))+|[A-Z][A-Z0-9_]*)(?![\w.:/-])/g;

interface Use {
  flag: string;
  placeholder: string;
  where: string;
  command: string;
}

function uses(text: string, where: string, command: string): Use[] {
  return [...text.matchAll(FLAG_WITH_VALUE)].map((m) => ({
    flag: m[1]!,
    placeholder: m[2]!,
    where,
    command,
  }));
}

/**
 * `vigil ARGS --help`, in process: starting bin/vigil.js (tsx) forty times took over a minute on
 * a busy machine. `vigil --help` and the help main.ts prints without loading a command are
 * checked against it by running bin/vigil.js.
 */
async function helpOf(args: string[]): Promise<string> {
  const [cmd, ...rest] = args;
  const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  try {
    const code = await commands[cmd!]!([...rest, "--help"]);
    expect(code, `vigil ${args.join(" ")} --help`).toBe(0);
    return out.mock.calls.map((c) => String(c[0])).join("");
  } finally {
    out.mockRestore();
  }
}

/** The subcommands a command's help names: its "commands:" list and its usage lines. */
function subcommands(command: string, help: string): string[] {
  const subs = new Set<string>();
  const list = /^commands:\n((?: {2}\S.*\n| {4,}.*\n)+)/im.exec(help)?.[1] ?? "";
  for (const m of list.matchAll(/^ {2}([a-z][a-z-]*)(?: ([a-z][a-z-]*)(?= {2}))?/gm))
    subs.add(m[2] ? `${m[1]} ${m[2]}` : m[1]!);
  for (const m of help.matchAll(new RegExp(`vigil ${command} ([a-z][a-z-]*)\\b`, "g"))) subs.add(m[1]!);
  const alt = new RegExp(`vigil ${command} <([a-z-]+(?:\\|[a-z-]+)+)>`).exec(help)?.[1];
  for (const s of alt?.split("|") ?? []) subs.add(s);
  return [...subs];
}

async function allHelp(top: string): Promise<{ args: string[]; text: string }[]> {
  const names = [...(/^Commands:\n((?: {2}\S.*\n)+)/m.exec(top)?.[1] ?? "").matchAll(/^ {2}([a-z]+)/gm)]
    .map((m) => m[1]!)
    // help and version print one thing each and take no flags.
    .filter((c) => c !== "help" && c !== "version");
  expect(Object.keys(commands).sort()).toEqual([...names].sort());
  const out: { args: string[]; text: string }[] = [];
  for (const c of names) out.push({ args: [c], text: await helpOf([c]) });
  for (const { args, text } of [...out])
    for (const s of subcommands(args[0]!, text)) {
      const a = [args[0]!, ...s.split(" ")];
      out.push({ args: a, text: await helpOf(a) });
    }
  return out;
}

/** "flag: PLACEHOLDER (where), OTHER (where)" for every flag shown with more than one placeholder. */
function conflicts(all: Use[]): string[] {
  const groups = new Map<string, Use[]>();
  for (const u of all) {
    const key = u.flag in DIFFERS ? `${u.flag} in vigil ${u.command}` : u.flag;
    groups.set(key, [...(groups.get(key) ?? []), u]);
  }
  const out: string[] = [];
  for (const [key, us] of groups) {
    const seen = new Map<string, string>();
    for (const u of us) if (!seen.has(u.placeholder)) seen.set(u.placeholder, u.where);
    if (seen.size > 1) out.push(`${key}: ${[...seen].map(([p, w]) => `${p} (${w})`).join(", ")}`);
  }
  return out.sort();
}

/** The flags a help text offers: the first of each option line, and every flag of its usage lines. */
function offered(help: string): string[] {
  const flags = new Set<string>();
  for (const m of help.matchAll(/^ {2,}(?:-[a-zA-Z], )?(--[a-z][a-z0-9-]*)/gm)) flags.add(m[1]!);
  const usage = /^usage:[^\n]*\n(?: {2,}\S[^\n]*\n)*/m.exec(help)?.[0] ?? "";
  for (const m of usage.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*)/g)) flags.add(m[1]!);
  flags.delete("--help");
  return [...flags];
}

/** Whether `vigil ARGS --help` parses: exit 0 and nothing on stderr. */
async function parses(args: string[]): Promise<boolean> {
  const [cmd, ...rest] = args;
  const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  try {
    return (await commands[cmd!]!([...rest, "--help"])) === 0 && err.mock.calls.length === 0;
  } catch {
    return false;
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

let helps: { args: string[]; text: string }[] = [];
beforeAll(async () => {
  helps = await allHelp(vigil("--help"));
}, 120_000);

describe("flags shown in help texts", () => {
  it("behavior: every flag a help text offers is one its command parses", async () => {
    const failures: string[] = [];
    let checked = 0;
    for (const h of helps) {
      const cmd = h.args[0]!;
      // A help shared by several subcommands offers the flags of each: one of them must take it.
      const forms = helps.filter((o) => o.args[0] === cmd).map((o) => o.args);
      for (const flag of offered(h.text)) {
        checked++;
        let ok = false;
        for (const f of forms) {
          // A boolean, or a value (some are checked before --help is: a number there).
          ok =
            (await parses([...f, flag])) ||
            (await parses([...f, flag, "VALUE"])) ||
            (await parses([...f, flag, "1"]));
          if (ok) break;
        }
        if (!ok)
          failures.push(`vigil ${h.args.join(" ")} --help offers ${flag}, which no ${cmd} command parses`);
      }
    }
    expect(checked).toBeGreaterThan(150);
    expect(failures).toEqual([]);
  });
});

describe("placeholders of flags", () => {
  it("behavior: each flag has one placeholder in every help text, message and document", async () => {
    // main.ts prints the help of heavy commands without loading them: the same text.
    for (const c of ["chain", "release"])
      expect(vigil(c, "--help"), c).toBe(helps.find((h) => h.args.join(" ") === c)?.text);
    // The collection finds the commands and their subcommands.
    const shown = helps.map((h) => h.args.join(" "));
    for (const c of [
      "chain deploy",
      "chain verify",
      "release publish",
      "access sensor register",
      "store salvage",
    ])
      expect(shown).toContain(c);
    const fromHelp = helps.flatMap((h) => uses(h.text, `vigil ${h.args.join(" ")} --help`, h.args[0]!));
    expect(fromHelp.length).toBeGreaterThan(100);
    // The CLI's sources: messages like "--rpc URL is required" and the usage in doc comments.
    const sources = execFileSync("git", ["ls-files", "gateway/src/cli"], { encoding: "utf8" })
      .split("\n")
      .filter((f) => f.endsWith(".ts"));
    const fromSources = sources.flatMap((f) => {
      const command = /cli\/(?:help\/)?([a-z]+)/.exec(f)?.[1] ?? "";
      return uses(readFileSync(f, "utf8"), f, command === "start-run" ? "start" : command);
    });
    // The Markdown quotes commands: a flag there is counted when the line names its command.
    const docs = execFileSync("git", ["ls-files", "*.md"], { encoding: "utf8" }).split("\n").filter(Boolean);
    const fromDocs = docs.flatMap((f) =>
      readFileSync(f, "utf8")
        .split("\n")
        .flatMap((line, i) => {
          const command = /vigil ([a-z]+)/.exec(line)?.[1] ?? "";
          return uses(line, `${f}:${i + 1}`, command);
        }),
    );
    // A flag in a document or a message that no help text shows is not compared (tools of their
    // own, e.g. `npm run bench -- --rate N`).
    const known = new Set(fromHelp.map((u) => u.flag));
    expect(
      conflicts([...fromHelp, ...[...fromSources, ...fromDocs].filter((u) => known.has(u.flag))]),
    ).toEqual([]);
  }, 120_000);

  it("error: two placeholders for one flag are reported", () => {
    const a = uses("usage: x [--out FILE]\n  --out PATH  the file", "help", "chain");
    expect(conflicts(a)).toEqual(["--out: FILE (help), PATH (help)"]);
  });
});
