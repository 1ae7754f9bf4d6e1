/**
 * Starts a local anvil (Foundry) node for tests, the demo and benchmarks.
 *
 * The npm `anvil` bin is a Node wrapper: killing its PID leaves the real binary running. So this helper
 * spawns the platform binary (node_modules/@foundry-rs/anvil-<platform>/bin/anvil) directly, binds it to
 * 127.0.0.1 with `--port 0`, reads the port from its `Listening on 127.0.0.1:PORT` line, and stops it by
 * its own PID (SIGTERM, which also makes `--state FILE` write the state; SIGKILL after a grace period).
 *
 * Past a few hundred blocks anvil writes its historical states under `$HOME/.foundry/anvil/tmp`
 * and leaves them there when it exits, SIGTERM or SIGKILL (measured: 6.4 MB after 630 empty
 * blocks; the test runs of a few days had left 76 GB and filled the disk). So each anvil gets a
 * HOME of its own in the temporary folder, removed when it exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { VigilError } from "../core/errors.ts";

/** The anvil binary could not be found or did not start. */
export class AnvilStartError extends VigilError {
  override name = "AnvilStartError";
  constructor(message: string, opts: { details?: string; cause?: unknown } = {}) {
    super("ANVIL_START", message, opts);
  }
}

export interface AnvilOptions {
  /** `--network optimism`: OP-Stack flavour, with the RIP-7212 P256VERIFY precompile at 0x100. */
  network?: "optimism";
  /** `--hardfork NAME`, e.g. "cancun", "prague", "osaka". */
  hardfork?: string;
  /** `--chain-id`. */
  chainId?: number;
  /** `--state FILE`: load from and dump to FILE (dumped on SIGTERM, and every stateInterval seconds). */
  state?: string;
  /** `--state-interval SECONDS`. */
  stateInterval?: number;
  /** `--block-time SECONDS` (default: automine). */
  blockTime?: number;
  /** `--gas-limit` of blocks. */
  gasLimit?: bigint;
  /** Extra raw arguments. */
  extraArgs?: string[];
  /** Milliseconds to wait for the listening line (default 20 s). */
  startTimeoutMs?: number;
  /** Explicit binary path (default: the installed platform package). */
  binary?: string;
}

export interface Anvil {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  pid: number;
  /** Its HOME: a temporary folder of its own, removed when it exits (see the file's comment). */
  home: string;
  /** The last lines of anvil's output (for failure messages). */
  output(): string;
  /** Stops anvil by its PID (SIGTERM, then SIGKILL after `graceMs`). Idempotent. */
  stop(graceMs?: number): Promise<void>;
  /** Kills anvil with SIGKILL (simulates a crash; `--state` keeps only the last interval dump). */
  kill(): Promise<void>;
}

/** Private keys of anvil's default dev accounts (mnemonic "test test … junk"); local chains only. */
export const ANVIL_DEV_KEYS = [
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
  "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
  "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
  "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
  "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
  "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
  "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
  "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
] as const;

/** Path of the anvil platform binary installed by @foundry-rs/anvil. */
export function anvilBinary(): string {
  const arch = process.arch === "x64" ? "amd64" : process.arch;
  const pkg = `@foundry-rs/anvil-${process.platform}-${arch}`;
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = dirname(require.resolve(`${pkg}/package.json`));
  } catch (cause) {
    throw new AnvilStartError(`anvil platform package ${pkg} is not installed`, { cause });
  }
  const bin = join(dir, "bin", process.platform === "win32" ? "anvil.exe" : "anvil");
  if (!existsSync(bin)) throw new AnvilStartError(`anvil binary missing at ${bin}`);
  return bin;
}

/** Builds the anvil command-line arguments for `opts` (exported for tests). */
export function anvilArgs(opts: AnvilOptions = {}): string[] {
  const args = ["--host", "127.0.0.1", "--port", "0"];
  if (opts.network) args.push("--network", opts.network);
  if (opts.hardfork) args.push("--hardfork", opts.hardfork);
  if (opts.chainId !== undefined) args.push("--chain-id", String(opts.chainId));
  if (opts.state) args.push("--state", opts.state);
  if (opts.stateInterval !== undefined) args.push("--state-interval", String(opts.stateInterval));
  if (opts.blockTime !== undefined) args.push("--block-time", String(opts.blockTime));
  if (opts.gasLimit !== undefined) args.push("--gas-limit", String(opts.gasLimit));
  args.push(...(opts.extraArgs ?? []));
  return args;
}

/** Starts anvil and resolves once it listens. Always call `stop()` (e.g. in afterAll). */
export async function startAnvil(opts: AnvilOptions = {}): Promise<Anvil> {
  const bin = opts.binary ?? anvilBinary();
  const home = mkdtempSync(join(tmpdir(), "vigil-anvil-"));
  const child: ChildProcess = spawn(bin, anvilArgs(opts), {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, HOME: home },
  });
  child.once("exit", () => rmSync(home, { recursive: true, force: true }));
  let log = "";
  const append = (b: Buffer): void => {
    log = (log + b.toString("utf8")).slice(-8_000); // bounded: only the tail is kept
  };
  child.stderr?.on("data", append);
  let exited = child.exitCode !== null;
  const exitPromise = new Promise<void>((res) => {
    child.once("exit", () => {
      exited = true;
      res();
    });
  });

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      fail(
        new AnvilStartError(`anvil did not start within ${opts.startTimeoutMs ?? 20_000} ms`, {
          details: log,
        }),
      );
    }, opts.startTimeoutMs ?? 20_000);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(err);
    };
    child.once("error", (cause) => fail(new AnvilStartError(`cannot spawn ${bin}`, { cause })));
    const onExit = (code: number | null): void =>
      fail(new AnvilStartError(`anvil exited with code ${code}`, { details: log }));
    child.once("exit", onExit);
    child.stdout?.on("data", (b: Buffer) => {
      append(b);
      const m = /Listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m?.[1]) {
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve(Number(m[1]));
      }
    });
  });
  child.stdout?.removeAllListeners("data");
  child.stdout?.on("data", append);
  child.stdout?.resume();

  const pid = child.pid ?? -1;
  const stopWith = async (signal: NodeJS.Signals, graceMs: number): Promise<void> => {
    if (exited) return;
    child.kill(signal);
    const t = setTimeout(() => {
      if (!exited) child.kill("SIGKILL");
    }, graceMs);
    await exitPromise;
    clearTimeout(t);
  };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid,
    home,
    output: () => log,
    stop: (graceMs = 5_000) => stopWith("SIGTERM", graceMs),
    kill: () => stopWith("SIGKILL", 0),
  };
}
