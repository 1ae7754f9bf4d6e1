/**
 * Every command the documentation shows exists with exactly the flags shown: each `vigil …`
 * (also `npx vigil`, `bin/vigil.js`, `npm run vigil --`) in every Markdown file of the repository
 * is run in-process with `--help` appended, so its options are parsed strictly (an unknown flag or
 * subcommand fails) without touching a chain, a keystore or a store; every `npm run NAME` names a
 * script of package.json. Placeholders (`…`, `<…>`) stand for a value and are kept as values.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CLI_COMMANDS as commands } from "../helpers/cli-commands.ts";

const docs = execFileSync("git", ["ls-files", "*.md"], { encoding: "utf8" }).split("\n").filter(Boolean);
const scripts = Object.keys(
  (JSON.parse(readFileSync("package.json", "utf8")) as { scripts: object }).scripts,
);

/** Shell lines of ```sh / ```bash blocks (continuations joined) and inline code spans. */
function snippets(md: string): string[] {
  const out: string[] = [];
  for (const block of md.matchAll(/```(?:sh|bash|shell|console)?\n([\s\S]*?)```/g))
    out.push(...(block[1] ?? "").replace(/\\\n\s*/g, " ").split("\n"));
  for (const span of md.replace(/```[\s\S]*?```/g, "").matchAll(/`([^`\n]+)`/g)) out.push(span[1] ?? "");
  // In tables, `keys init\|show` lists alternatives: the first one stands for all.
  return out.map((s) =>
    s
      .replace(/^\$ /, "")
      .replace(/\s+#.*$/, "")
      .replace(/(\S+?)(?:\\\|\S+)+/g, "$1")
      .trim(),
  );
}

const VIGIL =
  /(?:^|&&\s*|;\s*|\|\s*)(?:sudo (?:-u \S+ )?)?(?:env (?:\S+=\S+ )+)?(?:(?:\S+=\S+ )+)?(?:npx vigil|vigil|(?:node )?\S*bin\/vigil\.js|npm run vigil --) ([a-z][^|;&]*)/g;

function vigilCommands(md: string): string[][] {
  const out: string[][] = [];
  for (const s of snippets(md))
    for (const m of s.matchAll(VIGIL)) {
      const argv = (m[1] ?? "").trim().split(/\s+/).filter(Boolean);
      if (!argv.length || !(argv[0]! in commands)) {
        // Prose like "vigil is …" or "vigil …": only words that look like a subcommand count.
        if (argv[0] && /^[a-z]+$/.test(argv[0]) && argv.length > 1 && argv[1]!.startsWith("-"))
          out.push(argv);
        continue;
      }
      out.push(argv);
    }
  return out;
}

describe("commands in the documentation", () => {
  afterEach(() => vi.restoreAllMocks());

  const found = docs.flatMap((file) =>
    vigilCommands(readFileSync(file, "utf8")).map((argv) => ({ file, argv })),
  );

  it("behavior: the docs show commands (the extraction finds them)", () => {
    expect(found.length).toBeGreaterThan(20);
    const shown = new Set(found.map((f) => f.argv[0]));
    for (const c of ["start", "sim", "demo", "keys", "chain", "receipt", "verify", "store", "doctor", "init"])
      expect(shown, c).toContain(c);
  });

  it("behavior: every vigil command shown, with every flag shown, is accepted by the CLI", async () => {
    const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const failures: string[] = [];
    for (const { file, argv } of found) {
      const [cmd, ...rest] = argv;
      const run = commands[cmd!];
      if (!run) {
        failures.push(`${file}: "vigil ${argv.join(" ")}": no such command`);
        continue;
      }
      // Prose names a flag without its value (`vigil receipt --leaf`): then a value is supplied.
      let code = 0;
      let stderr = "";
      for (const args of [rest, [...rest, "VALUE"]]) {
        err.mockClear();
        try {
          code = await run([...args, "--help"]);
          stderr = err.mock.calls.map((c) => String(c[0])).join("");
        } catch (e) {
          code = -1;
          stderr = (e as Error).message;
        }
        if (!/ needs a value/.test(stderr)) break;
      }
      if (code !== 0 || stderr)
        failures.push(`${file}: "vigil ${argv.join(" ")}": exit ${code} ${stderr.trim()}`);
    }
    expect(out).toHaveBeenCalled();
    expect(failures).toEqual([]);
  });

  it("behavior: every npm run script shown exists in package.json", () => {
    const failures: string[] = [];
    for (const file of docs)
      for (const s of snippets(readFileSync(file, "utf8")))
        for (const m of s.matchAll(/npm run ([a-z][\w:-]*)/g))
          if (!scripts.includes(m[1]!)) failures.push(`${file}: npm run ${m[1]}`);
    expect(failures).toEqual([]);
  });

  it("behavior: every VIGIL_* environment variable the code reads is in the README", () => {
    const files = execFileSync(
      "git",
      ["ls-files", "gateway/src", "device-sim/src", "bin", "bench", "models/eval", "contracts/scripts"],
      { encoding: "utf8" },
    )
      .split("\n")
      .filter((f) => /\.(ts|js)$/.test(f));
    // `env.X` / `env["X"]` reads, and names handed to loadSenderKey (which reads env[name]).
    const reads = [
      /env\.(VIGIL_[A-Z0-9_]+)/g,
      /env\[["'](VIGIL_[A-Z0-9_]+)["']\]/g,
      /loadSenderKey\([^,]*,\s*["'](VIGIL_[A-Z0-9_]+)["']/g,
    ];
    const read = new Set(
      files.flatMap((f) => {
        const text = readFileSync(f, "utf8");
        return reads.flatMap((re) => [...text.matchAll(re)].map((m) => m[1]!));
      }),
    );
    for (const v of [
      "VIGIL_CHAIN_KEY",
      "VIGIL_CHAIN_SENDER_KEY",
      "VIGIL_KECCAK",
      "VIGIL_CMAPSS_DIR",
      "VIGIL_DIST",
    ])
      expect(read, v).toContain(v);
    const readme = readFileSync("README.md", "utf8");
    expect([...read].filter((v) => !readme.includes(`\`${v}\``))).toEqual([]);
  });

  it("error: the check fails for a flag the CLI does not have", async () => {
    vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    await expect(commands["start"]!(["--no-such-flag", "--help"])).rejects.toThrow(
      /unknown option --no-such-flag/,
    );
  });
});
