/**
 * Every `vigil …` command in hardware/pi/README.md exists today with exactly the flags shown:
 * each one is run in-process with `--help` appended, so its options are parsed strictly (an
 * unknown flag or subcommand is an error) without touching a chain, a keystore or a config.
 * The installer's own options are covered by test/interop/pi-install.test.ts.
 */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { chainCommand } from "../../gateway/src/cli/chain.ts";
import { KEYS_HELP, keysCommand } from "../../gateway/src/cli/keys.ts";
import { simCommand } from "../../gateway/src/cli/sim.ts";
import { startCommand } from "../../gateway/src/cli/start.ts";
import { doctorCommand } from "../../gateway/src/cli/doctor.ts";
import { initCommand } from "../../gateway/src/cli/init.ts";
import { statusCommand } from "../../gateway/src/cli/status.ts";

const readme = readFileSync("hardware/pi/README.md", "utf8");

/** Commands the README announces as not there yet ("Coming, not in this version yet"). */
const ANNOUNCED = new Set<string>([]);

const commands: Record<string, (argv: string[]) => Promise<number>> = {
  chain: chainCommand,
  keys: keysCommand,
  sim: simCommand,
  start: startCommand,
  doctor: doctorCommand,
  init: initCommand,
  status: statusCommand,
};

/** `vigil …` invocations in code blocks (continuation lines joined) and in inline code spans. */
function vigilCommands(md: string): string[][] {
  const snippets: string[] = [];
  for (const block of md.matchAll(/```sh\n([\s\S]*?)```/g))
    snippets.push(...(block[1] ?? "").replace(/\\\n\s*/g, " ").split("\n"));
  for (const span of md.replace(/```[\s\S]*?```/g, "").matchAll(/`([^`\n]+)`/g)) snippets.push(span[1] ?? "");
  const out: string[][] = [];
  // Each command of a pipeline or && list (`sudo cat F | sudo -u vigil env … vigil doctor …`).
  for (const s of snippets.flatMap((x) => x.replace(/\s+#.*$/, "").split(/\s(?:\||&&)\s/))) {
    // The program position: optionally after `sudo [-u USER]` and `env NAME=VALUE …`.
    const m = /^(?:sudo (?:-u \S+ )?)?(?:env (?:\S+=\S+ )+)?(?:npx )?vigil ([a-z].*)$/.exec(s.trim());
    if (!m?.[1]) continue;
    const argv = m[1].split(/\s+/).filter(Boolean);
    if (argv[0] === "…") continue; // "npx vigil …": prose, not a command
    out.push(argv);
  }
  return out;
}

describe("hardware/pi/README.md commands", () => {
  afterEach(() => vi.restoreAllMocks());

  const found = vigilCommands(readme);

  it("behavior: the README shows the whole operator path", () => {
    const shown = found.map((a) => a.slice(0, 2).join(" "));
    for (const c of [
      "keys init",
      "keys show",
      "chain deploy",
      "chain grant-operator",
      "chain register-gateway",
      "chain verify",
      "init -o",
      "doctor -c",
    ])
      expect(shown).toContain(c);
  });

  it("behavior: each command and every flag it shows is accepted by today's CLI", async () => {
    const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    for (const argv of found) {
      const [cmd, ...rest] = argv;
      if (ANNOUNCED.has(cmd ?? "")) continue;
      const run = commands[cmd ?? ""];
      expect(run, `"vigil ${argv.join(" ")}": no such command`).toBeDefined();
      if (cmd === "keys") expect(KEYS_HELP).toContain(`  ${rest[0]} `);
      err.mockClear();
      const code = await run!([...rest, "--help"]);
      const stderr = err.mock.calls.map((c) => String(c[0])).join("");
      expect({ command: `vigil ${argv.join(" ")}`, code, stderr }).toEqual({
        command: `vigil ${argv.join(" ")}`,
        code: 0,
        stderr: "",
      });
    }
    expect(out).toHaveBeenCalled();
  });

  it("error: the check fails for a flag the CLI does not have", async () => {
    vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    expect(await chainCommand(["grant-operator", "--operator", "0x1", "--help"])).toBe(2);
    await expect(keysCommand(["init", "--passphrase-file", "x", "--help"])).rejects.toThrow(
      /unknown option --passphrase-file/,
    );
  });
});
