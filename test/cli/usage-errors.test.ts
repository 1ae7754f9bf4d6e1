/**
 * User mistakes get one line naming the mistake (and the fix or the closest valid word), a usage
 * exit status, and never a stack trace. Each case spawns the real CLI.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { freePort } from "../helpers/procs.ts";

const run = promisify(execFile);
interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bin/vigil.js without any keystore passphrase in the environment. */
async function vigil(args: string[], env: Record<string, string> = {}): Promise<Out> {
  const base = { ...process.env };
  delete base.VIGIL_KEYSTORE_PASSPHRASE;
  delete base.VIGIL_KEYSTORE_PASSPHRASE_FILE;
  return run(process.execPath, ["bin/vigil.js", ...args], { env: { ...base, ...env }, timeout: 30_000 }).then(
    (r) => ({ code: 0, ...r }),
    (e: Out) => e,
  );
}

function oneLine(r: Out, code: number, re: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).toMatch(re);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/Node\.js v\d/);
}

describe("CLI user mistakes", () => {
  it("behavior: a missing --key-file is named before any RPC is tried", async () => {
    const r = await vigil([
      "chain",
      "deploy",
      "--rpc",
      "http://127.0.0.1:9",
      "--key-file",
      "/nonexistent/deployer.key",
    ]);
    oneLine(r, 1, /^vigil chain: --key-file \/nonexistent\/deployer\.key does not exist\.\n$/);
  }, 90_000);

  it("input: a number flag below its bound names the bound, not an infinite range; a port HTTP clients refuse is named as such", async () => {
    const d = await vigil(["demo", "--duration", "0"]);
    oneLine(d, 2, /^vigil demo: --duration must be a number ≥ 1, got "0" \(see "vigil demo --help"\)\n$/);
    // Refused before anything starts (it used to end in a stack trace after a full set-up).
    oneLine(
      await vigil(["demo", "--devices", "2.5"]),
      2,
      /^vigil demo: --devices must be a whole number, got "2\.5"/,
    );
    const p = await vigil(["status", "--url", "http://127.0.0.1:1"]);
    oneLine(
      p,
      1,
      /^vigil status: http:\/\/127\.0\.0\.1:1 uses a port that HTTP clients refuse \(the Fetch standard's blocked ports\): give the gateway another http\.port\.?\n$/,
    );
    // vigil update talks to the same endpoint: the same sentence (it said "(TypeError)").
    oneLine(
      await vigil(["update", "status", "--url", "http://127.0.0.1:1"]),
      1,
      /^vigil update: http:\/\/127\.0\.0\.1:1 uses a port that HTTP clients refuse/,
    );
  }, 90_000);

  it("behavior: a serial path that does not exist", async () => {
    const r = await vigil(["sim", "--serial", "/dev/ttyNOPE", "--frames", "1"]);
    oneLine(r, 1, /^vigil sim: \/dev\/ttyNOPE does not exist; check the device is plugged in/);
  }, 90_000);

  it("behavior: a non-MQTT URL for sim --mqtt", async () => {
    const r = await vigil(["sim", "--mqtt", "http://127.0.0.1:1883", "--frames", "1"]);
    oneLine(
      r,
      2,
      /--mqtt must be an MQTT broker URL \(mqtt:\/\/, mqtts:\/\/, ws:\/\/, wss:\/\/ or tcp:\/\/\)/,
    );
  }, 90_000);

  it("behavior: an unreachable broker for sim --mqtt is one line after the connect timeout", async () => {
    const { freePort } = await import("../helpers/procs.ts");
    const port = await freePort(); // nothing listens there
    const r = await vigil([
      "sim",
      "--mqtt",
      `mqtt://127.0.0.1:${port}`,
      "--connect-timeout-ms",
      "300",
      "--frames",
      "1",
    ]);
    oneLine(
      r,
      1,
      new RegExp(`\\nvigil sim: no MQTT connection to mqtt://127\\.0\\.0\\.1:${port}/? within 300 ms\\.\\n$`),
    );
  }, 90_000);

  it("behavior: an unknown subcommand is a usage error before any passphrase is asked for", async () => {
    const r = await vigil(["keys", "rotat"]);
    oneLine(r, 2, /unknown keys command "rotat"; did you mean rotate\?/);
    expect(r.stderr).not.toMatch(/PASSPHRASE/);
    const c = await vigil(["strat"]);
    oneLine(c, 2, /unknown command "strat"; did you mean start\?/);
    // --version was an unknown command (with the whole help after it).
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
    for (const v of ["--version", "version", "-V"]) {
      const r = await vigil([v]);
      expect([r.code, r.stdout, r.stderr], v).toEqual([
        0,
        `vigil ${pkg.version} (Node ${process.versions.node})\n`,
        "",
      ]);
    }
    // store named its subcommands but offered no did-you-mean, and checked the flags first.
    oneLine(
      await vigil(["store", "chek", "--to", "/tmp/x"]),
      2,
      /^vigil store: unknown store command "chek"; did you mean check\? \(see "vigil store --help"\)\n$/,
    );
  }, 90_000);

  it("behavior: an unreadable keystore is reported as unreadable, not as bad JSON", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-usage-"));
    mkdirSync(join(dir, "gateway.key"), { mode: 0o700 });
    const cfg = join(dir, "c.json");
    writeFileSync(cfg, JSON.stringify({ dataDir: dir }));
    const r = await vigil(["keys", "show", "-c", cfg], { VIGIL_KEYSTORE_PASSPHRASE: "a passphrase" });
    oneLine(r, 1, /keystore .*gateway\.key cannot be read \(EISDIR\)/);
    expect(r.stderr).not.toMatch(/JSON/);
  }, 90_000);

  it("behavior: enum errors list the allowed values; typo'd flags and values get a did-you-mean", async () => {
    // A flag's value is a usage error naming the flag (exit 2), not the setting it feeds (exit 1).
    oneLine(
      await vigil(["start", "--log-level", "loud"]),
      2,
      /--log-level must be one of fatal, error, warn, info, debug, trace, silent, got "loud"/,
    );
    oneLine(
      await vigil(["start", "--mqtt-auth", "bogus"]),
      2,
      /--mqtt-auth must be one of none, registry, got "bogus"/,
    );
    oneLine(
      await vigil(["start", "--admission", "closed"]),
      2,
      /--admission must be one of open, registry, got "closed"/,
    );
    oneLine(await vigil(["start", "--baud", "9600"]), 2, /--baud goes with --serial PATH/);
    // Node's three-line parser messages become one line naming the flag; access and token use
    // the same parser (did-you-mean, their own name)
    oneLine(
      await vigil(["start", "--mqtt-port", "-1"]),
      2,
      /^vigil start: --mqtt-port needs a value; a value that starts with "-" is written --mqtt-port=-VALUE/,
    );
    oneLine(
      await vigil(["token", "--bogus"]),
      2,
      /^vigil token: unknown option --bogus \(see "vigil token --help"\)$/m,
    );
    oneLine(
      await vigil(["access", "list", "--gatway-id", "x"]),
      2,
      /^vigil access: unknown option --gatway-id; did you mean --gateway-id\? \(see "vigil access --help"\)$/m,
    );
    // An unknown action or command is refused before any file or the chain is read.
    oneLine(
      await vigil([
        "access",
        "sensor",
        "regster",
        "--gateway-id",
        `0x${"00".repeat(32)}`,
        "--sensor",
        "0000002a",
      ]),
      2,
      /^vigil access: unknown sensor action "regster" \(register, suspend, resume, revoke\); did you mean register\?/,
    );
    oneLine(
      await vigil(["access", "lst"]),
      2,
      /^vigil access: unknown access command "lst"; did you mean list\?/,
    );
    const help = await vigil(["access", "sensor", "-h"]);
    expect([help.code, help.stdout]).toEqual([0, expect.stringMatching(/^usage: vigil access/)]);
    oneLine(
      await vigil(["demo", "--faults", "bogus=1"]),
      2,
      /^vigil demo: --faults: fault "bogus" is unknown; known: corrupt/,
    );
    // extra arguments are refused, not ignored
    oneLine(await vigil(["keys", "show", "extra"]), 2, /^vigil keys: unexpected argument "extra"/);
    oneLine(
      await vigil(["release", "approve", "1", "2"]),
      2,
      /^vigil release: one release id, got 2 \(see "vigil release approve --help"\)$/m,
    );
    // device ids are whole u32 numbers: no fractions, no wrap past 0xffffffff to 0
    oneLine(await vigil(["sim", "--first-id", "1.5"]), 2, /--first-id must be a whole number, got "1\.5"/);
    oneLine(
      await vigil(["sim", "--first-id", "4294967295", "--devices", "2"]),
      2,
      /--first-id 4294967295 with --devices 2 runs past the last device id/,
    );
    // A replayed dataset that is missing: its own fix, not the models.dir one.
    const data = await vigil(["sim", "--profile", "cmapss"], { VIGIL_CMAPSS_DIR: "/nonexistent-vigil" });
    oneLine(
      data,
      1,
      /^vigil sim: \/nonexistent-vigil\/train_FD001\.txt: not found .*set VIGIL_CMAPSS_DIR\.\n$/,
    );
    oneLine(
      await vigil(["sim", "--profile", "rotatng"]),
      2,
      /--profile must be one of rotating, cmapss, cwru, got "rotatng"; did you mean rotating\?/,
    );
    oneLine(
      await vigil(["start", "--dat-dir", "x"]),
      2,
      /unknown option --dat-dir; did you mean --data-dir\?/,
    );
  }, 90_000);

  it("input: number flags are decimal and in range everywhere (Number() took 0x10 as 16; demo's --seed 1.5 aliased 1)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-usage-"));
    const deployment = join(dir, "deployment.json");
    writeFileSync(
      deployment,
      JSON.stringify({
        format: "vigil-deployment/1",
        chainId: "31337",
        deployBlock: 0,
        contracts: { VigilRegistry: { address: `0x${"44".repeat(20)}` } },
      }),
    );
    const key = join(dir, "reader.key");
    writeFileSync(key, `0x${"11".repeat(32)}\n`, { mode: 0o600 });
    const token = ["token", "--deployment", deployment, "--gateway-id", `0x${"ab".repeat(32)}`];
    const cases: [string[], RegExp][] = [
      [["demo", "--seed", "1.5"], /^vigil demo: --seed must be a whole number, got "1\.5"/],
      [["demo", "--seed=-1"], /^vigil demo: --seed must be a number in \[0, 4294967295\], got "-1"/],
      [
        [...token, "--reader-key-file", key, "--hours", "0x5"],
        /^vigil token: --hours must be a number in \[0, 24\], got "0x5"/,
      ],
      [
        [...token, "--reader-key-file", key, "--hours", "0"],
        /^vigil token: --hours must be more than 0, got "0"/,
      ],
      [["update", "check", "--wait", "0x10"], /^vigil update: --wait must be a number ≥ 0, got "0x10"/],
    ];
    for (const [args, re] of cases) oneLine(await vigil(args), 2, re);
    // --help wins over a bad value, as in every other command (update read --wait first).
    const h = await vigil(["update", "check", "--wait", "x", "--help"]);
    expect(h.code, h.stderr).toBe(0);
    expect(h.stdout).toMatch(/^usage: vigil update /);
  }, 120_000);

  it('doc: the flag values README "When the gateway refuses to start" lists are usage errors naming the flag (exit 2), not fatal errors naming a setting (exit 1)', async () => {
    const readme = readFileSync("README.md", "utf8");
    const row = /^\| a flag's value (.+?) \| (.+?) \|/m.exec(readme);
    expect(row?.[2]).toMatch(/exit status 2/);
    const examples = [...row![1]!.matchAll(/`(--[a-z-]+) ([^`]+)`/g)].map((m) => [
      m[1]!,
      m[2]!.replace("…", "127.0.0.1:1"),
    ]);
    expect(examples.length).toBeGreaterThan(3);
    for (const [flag, value] of examples) {
      // --baud goes with a port; nothing starts, so /dev/null is never opened. The flag comes
      // last: a later --mqtt-port would win over the one shown.
      const extra = flag === "--baud" ? ["--serial", "/dev/null"] : [];
      oneLine(
        await vigil(["start", "--no-http", ...extra, flag!, value!]),
        2,
        new RegExp(`^vigil start: ${flag}\\b[^\\n]* \\(see "vigil start --help"\\)\\n$`),
      );
    }
  }, 90_000);

  it("behavior: chain and release usage errors point at the --help to read, as other commands' do; a property of every object is no subcommand", async () => {
    const lines = await Promise.all(
      [
        ["chain", "deploy"],
        ["chain", "deplyo"],
        ["chain", "constructor"],
        ["release", "toString"],
        ["toString"],
      ].map((a) => vigil(a)),
    );
    oneLine(lines[0]!, 2, /^vigil chain: --rpc URL is required \(see "vigil chain deploy --help"\)\n$/);
    oneLine(
      lines[1]!,
      2,
      /^vigil chain: unknown chain command "deplyo"; did you mean deploy\? \(see "vigil chain --help"\)\n$/,
    );
    oneLine(
      lines[2]!,
      2,
      /^vigil chain: unknown chain command "constructor" \(see "vigil chain --help"\)\n$/,
    );
    oneLine(
      lines[3]!,
      2,
      /^vigil release: unknown release command "toString" \(see "vigil release --help"\)\n$/,
    );
    oneLine(lines[4]!, 2, /^vigil: unknown command "toString"\n/);
  }, 90_000);

  it('behavior: release publish names a --manifest or --file that does not exist (not "not readable JSON")', async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-usage-"));
    const model = join(dir, "m.onnx");
    writeFileSync(model, "not read: the manifest is checked first");
    const publish = (...a: string[]) =>
      vigil(["release", "publish", "--kind", "model", "--target", "t", "--dry-run", ...a]);
    const [manifest, file, folder] = await Promise.all([
      publish("--file", model, "--manifest", join(dir, "m.json")),
      publish("--file", join(dir, "nope.onnx"), "--manifest", join(dir, "m.json")),
      publish("--file", dir, "--manifest", join(dir, "m.json")),
    ]);
    oneLine(
      manifest,
      2,
      /^vigil release: --manifest \S+\/m\.json does not exist \(see "vigil release publish --help"\)\n$/,
    );
    oneLine(file, 2, /^vigil release: --file \S+\/nope\.onnx does not exist /);
    oneLine(folder, 2, /^vigil release: --file \S+ is not a file /);
  }, 90_000);

  it("behavior: vigil receipt --store WRONG never creates a store", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-usage-"));
    const wrong = join(dir, "not-a-store");
    const r = await vigil(["receipt", "--store", wrong, "--device", "1"]);
    oneLine(r, 1, /holds no Vigil store/);
    expect(existsSync(wrong)).toBe(false);
    // A gateway's data folder (what vigil store --data-dir takes): the error names its store.
    const data = join(dir, "data");
    mkdirSync(join(data, "store", "db"), { recursive: true });
    writeFileSync(join(data, "store", "db", "CURRENT"), "MANIFEST-000001\n");
    const d = await vigil(["receipt", "--store", data, "--device", "1"]);
    oneLine(d, 1, /is a gateway's data folder: its store is --store \S+\/data\/store\)\n$/);
    // And the other way round: vigil store takes the data folder.
    const s = await vigil(["store", "check", "--data-dir", join(data, "store")]);
    expect(s.code).toBe(1);
    expect(s.stdout).toMatch(
      /\/data\/store is a store folder: give the data folder that holds it, --data-dir \S+\/data\)\n$/,
    );
  }, 90_000);

  it("behavior: an RPC that does not answer is a reason and a non-zero exit from every one-shot command, never a silent exit 13", async () => {
    // 13 is Node's "unsettled top-level await": the retry wait between two attempts did not keep
    // the process alive, so it ended with no output at all.
    const port = await freePort();
    const rpc = `http://127.0.0.1:${port}`;
    const dir = mkdtempSync(join(tmpdir(), "vigil-usage-"));
    const vectors = JSON.parse(readFileSync("test/vectors/receipts.json", "utf8")) as {
      trust: { chainId: number; registry: string };
      vectors: { receipt: unknown }[];
    };
    const receipt = join(dir, "r.json");
    writeFileSync(receipt, JSON.stringify(vectors.vectors[0]!.receipt));
    const { chainId, registry } = vectors.trust;
    const v = await vigil([
      "verify",
      receipt,
      "--registry",
      registry,
      "--chain-id",
      String(chainId),
      "--rpc",
      rpc,
    ]);
    expect(v.code, v.stdout + v.stderr).toBe(1);
    expect(v.stdout).toContain(`CHAIN_UNREACHABLE: chain id query failed: RPC endpoint unreachable: ${rpc}`);
    const deployment = join(dir, "deployment.json");
    writeFileSync(
      deployment,
      JSON.stringify({
        format: "vigil-deployment/1",
        chainId: String(chainId),
        deployBlock: 0,
        contracts: { VigilRegistry: { address: registry }, VigilReleases: { address: registry } },
      }),
    );
    const gw = "0x" + "01".repeat(32);
    const a = await vigil(["access", "list", "--gateway-id", gw, "--rpc", rpc, "--deployment", deployment]);
    // the line ends with the fix (fatalLine), as every command's error line does
    oneLine(
      a,
      1,
      new RegExp(
        `RPC endpoint unreachable: http://127\\.0\\.0\\.1:${port}[^;\\n]*; check the RPC URL \\(--rpc, chain\\.rpcUrl\\) and that the node is running and reachable\\.$`,
        "m",
      ),
    );
  }, 90_000);

  it("behavior: a file or folder a command cannot create or read is one line naming the path, the reason and the fix", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-usage-"));
    const file = join(dir, "a-file");
    writeFileSync(file, "");
    const start = await vigil(["start", "--data-dir", join(file, "sub"), "--no-http", "--mqtt-port", "0"]);
    oneLine(
      start,
      1,
      /^vigil start: cannot mkdir .*a-file\/sub\/store: a part of the path is not a folder \(ENOTDIR\); check the path/,
    );
    const init = await vigil(["init", "--out", join(file, "vigil.json")]);
    oneLine(init, 1, /^vigil init: cannot mkdir .*a-file: a file of that name is in the way \(EEXIST\)/);
    // attest.keystore in a subfolder of the data folder: keys init creates it (0700)
    const config = join(dir, "c.json");
    writeFileSync(config, JSON.stringify({ dataDir: join(dir, "d"), attest: { keystore: "keys/g.key" } }));
    const keys = await vigil(["keys", "init", "-c", config], {
      VIGIL_KEYSTORE_PASSPHRASE: "correct horse battery",
    });
    expect(keys.code, keys.stderr).toBe(0);
    expect(statSync(join(dir, "d", "keys")).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "d", "keys", "g.key")).mode & 0o777).toBe(0o600);
  }, 90_000);

  it("security: a bad --url for status and update is echoed with its credentials redacted", async () => {
    for (const args of [["status"], ["update", "status"]]) {
      const r = await vigil([...args, "--url", "https://user:S3cret@127.0.0.1:1"]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('got "https://***:***@127.0.0.1:1"');
      expect(r.stderr).not.toContain("S3cret");
    }
  }, 60_000);

  it("behavior: doctor --json with an RPC that does not answer prints JSON only (no library line on stdout)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-usage-"));
    const port = await freePort();
    writeFileSync(
      join(dir, "deployment.json"),
      JSON.stringify({
        format: "vigil-deployment/1",
        chainId: "31337",
        deployBlock: 0,
        contracts: { VigilRegistry: { address: "0x" + "44".repeat(20) } },
      }),
    );
    const config = join(dir, "c.json");
    writeFileSync(
      config,
      JSON.stringify({
        dataDir: join(dir, "d"),
        http: { port: 0 },
        mqtt: { embedded: { port: 0 } },
        chain: { rpcUrl: `http://127.0.0.1:${port}`, deployment: join(dir, "deployment.json") },
      }),
    );
    const r = await vigil(["doctor", "-c", config, "--json"]);
    expect(r.code, r.stderr).toBe(1);
    const doc = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; status: string }[] };
    expect(doc.ok).toBe(false);
    expect(doc.checks.find((c) => c.name === "rpc")?.status).toBe("fail");
  }, 90_000);

  it("behavior: a mistyped benchmark option is one line with the usage's place, not a stack trace", async () => {
    const r = await run(process.execPath, ["--import", "tsx", "bench/run.ts", "e2e", "--no-build"], {
      timeout: 30_000,
    }).then(
      (x) => ({ code: 0, ...x }),
      (e: Out) => e,
    );
    oneLine(
      r,
      2,
      /^bench e2e: unknown option --no-build; its options are listed at the top of bench\/e2e\.ts$/m,
    );
  }, 60_000);
  it("behavior: a flag that does nothing where it is given is a usage error naming where it applies, not silently ignored", async () => {
    const leaf = "ab".repeat(32);
    const gw = `0x${"11".repeat(32)}`;
    const addr = `0x${"22".repeat(20)}`;
    const sensor = (action: string, ...more: string[]): string[] => [
      "access",
      "sensor",
      action,
      "--gateway-id",
      gw,
      "--sensor",
      "00000001",
      ...more,
    ];
    const cases: [string[], RegExp][] = [
      [["keys", "show", "--force"], /--force applies only to "vigil keys init"/],
      [["keys", "show", "--type", "p256"], /--type applies only to "vigil keys init" and "rotate"/],
      [["keys", "init", "--rpc", "http://127.0.0.1:1"], /--rpc applies only to "vigil keys rotate"/],
      // Before the passphrase and the chain (rotate read it only after the registry's answer).
      [["keys", "rotate", "--type", "rsa"], /^vigil keys: --type must be one of secp256k1, p256, got "rsa"/],
      [["update", "status", "--wait", "5"], /--wait applies only to "vigil update check" and "retry"/],
      [
        ["receipt", "--store", "x", "--device", "1", "--seq", "3", "--from", "0"],
        /--seq names one frame: it cannot be combined with --from or --to/,
      ],
      [
        ["receipt", "--store", "x", "--leaf", leaf, "--to", "0"],
        /--leaf cannot be combined with --device, --seq, --from or --to/,
      ],
      [["store", "check", "--data-dir", "x", "--to", "y"], /--to applies only to "vigil store salvage"/],
      [["sim", "--baud", "9600"], /--baud applies only to --serial/],
      [
        ["sim", "--serial", "/dev/null", "--connect-timeout-ms", "500"],
        /--connect-timeout-ms applies only to MQTT/,
      ],
      [["sim", "--profile", "cwru", "--subset", "FD002"], /--subset applies only to --profile cmapss/],
      [["sim", "--profile", "cmapss", "--life", "50"], /--life applies only to --profile rotating/],
      [["sim", "--healthy", "30"], /--healthy applies only to --profile cwru/],
      // A sensor's key is checked before the deployment or the chain is read (none is given here).
      [sensor("suspend", "--public-key", addr), /--public-key applies only to "sensor register"/],
      [sensor("register", "--key-type", "p256"), /--key-type goes with --public-key/],
      [
        sensor("register", "--public-key", "0x1234"),
        /--public-key for secp256k1 must be 0x and 20 bytes of hex \(the key's address\), got "0x1234"/,
      ],
      [
        sensor("register", "--public-key", addr, "--key-type", "p256"),
        /--public-key for p256 must be 0x and 64 bytes of hex/,
      ],
      [
        sensor("register", "--public-key", addr, "--key-type", "rsa"),
        /--key-type must be one of secp256k1, p256, got "rsa"/,
      ],
      // access's commands share one option table: a flag another command reads did nothing.
      [
        ["access", "list", "--gateway-id", gw, "--key-file", "k"],
        /^vigil access: --key-file does nothing for "vigil access list" \(see "vigil access --help"\)\n$/,
      ],
      [["token", "--rpc", "http://127.0.0.1:1"], /^vigil token: --rpc does nothing for "vigil token"/],
      [
        ["access", "export-mosquitto", "--key-file", "k"],
        /--key-file does nothing for "vigil access export-mosquitto"/,
      ],
      [
        ["access", "device-password", "--days", "3"],
        /--days does nothing for "vigil access device-password"/,
      ],
      [sensor("suspend", "--hours", "3"), /--hours does nothing for "vigil access sensor"/],
      [
        ["access", "export-mosquitto", "--site", "plant-a"],
        /--site does nothing for "vigil access export-mosquitto"; did you mean --site-name\?/,
      ],
      // Reader grants: --days bounded (1e305 ended in a stack trace), a bad --gateway-id named
      // before the deployment or the chain is read.
      [
        ["access", "reader", "grant", "--reader", addr, "--gateway-id", gw, "--days", "1e305"],
        /--days must be a number in \[0, 36500\], got "1e305"/,
      ],
      [
        ["access", "reader", "grant", "--reader", addr, "--gateway-id", gw, "--days", "0"],
        /--days must be more than 0/,
      ],
      [
        ["access", "reader", "revoke", "--reader", addr, "--gateway-id", gw, "--days", "3"],
        /--days applies only to "reader grant"/,
      ],
      [
        ["access", "reader", "grant", "--reader", addr, "--gateway-id", "0x12"],
        /--gateway-id must be 32 bytes of hex, got "0x12"/,
      ],
      // Every address flag gets the same one line (cli/args.ts addressFlag), before any file or chain.
      [
        ["access", "reader", "grant", "--reader", "0x12", "--gateway-id", gw],
        /--reader must be an address \(0x \+ 40 hex digits\), got "0x12"/,
      ],
      [
        ["release", "grant-role", "--role", "approver", "--account", "bob.eth"],
        /--account must be an address \(0x \+ 40 hex digits\), got "bob\.eth"/,
      ],
      [
        ["verify", "receipt.json", "--registry", `${addr}00`, "--chain-id", "1"],
        /--registry must be an address \(0x \+ 40 hex digits\), got "0x[0-9a-f]{42}"/,
      ],
      // Counts are whole numbers.
      [["sim", "--window", "2.5"], /--window must be a whole number, got "2\.5"/],
      [["sim", "--profile", "cwru", "--healthy", "1.5"], /--healthy must be a whole number, got "1\.5"/],
      // An empty value (an unset shell variable) fell back to the default in silence: start ran on
      // ./.vigil for --data-dir "".
      [["start", "--data-dir", ""], /--data-dir needs a value, got an empty one/],
      [["start", "--mqtt-url", ""], /--mqtt-url needs a value, got an empty one/],
      [["sim", "--serial", ""], /--serial needs a value, got an empty one/],
      // Numbers are decimal: Number() took " 0x10" as 16 and "" as 0.
      [["start", "--mqtt-port", " 0x10"], /--mqtt-port must be a number in \[0, 65535\], got " 0x10"/],
      [["start", "--http-port", "0b11"], /--http-port must be a number in \[0, 65535\], got "0b11"/],
      // Ports are whole numbers, written as digits: 1.5 failed later as a config error (exit 1),
      // and 1e3 listened on port 1000.
      [["start", "--mqtt-port", "1.5"], /--mqtt-port must be a whole number, got "1\.5"/],
      [["start", "--http-port", "1.5"], /--http-port must be a whole number, got "1\.5"/],
      [["start", "--mqtt-port", "1e3"], /--mqtt-port must be a whole number, got "1e3"/],
      [["sim", "--window", "1e1"], /--window must be a whole number, got "1e1"/],
    ];
    for (const [args, re] of cases) oneLine(await vigil(args), 2, re);
    // A hand-written deployment file without VigilReleases: one line naming the field, no stack trace.
    const dir = mkdtempSync(join(tmpdir(), "vigil-no-releases-"));
    const noReleases = join(dir, "deployment.json");
    writeFileSync(
      noReleases,
      JSON.stringify({
        format: "vigil-deployment/1",
        chainId: "31337",
        contracts: { VigilRegistry: { address: addr } },
      }),
    );
    const rpc = `http://127.0.0.1:${await freePort()}`;
    for (const args of [
      ["access", "list", "--gateway-id", gw, "--rpc", rpc, "--deployment", noReleases],
      sensor("suspend", "--rpc", rpc, "--deployment", noReleases),
    ])
      oneLine(
        await vigil(args),
        1,
        /^vigil access: the deployment file has no contracts\.VigilReleases\.address/m,
      );
    // A bad --rpc is the caller's usage error too (it was exit 1 for chain deploy), redacted.
    oneLine(
      await vigil(["chain", "deploy", "--rpc", "foo?key=abc"]),
      2,
      /--rpc: not a valid RPC URL: foo\?key=\*\*\* \(unparseable\)/,
    );
    oneLine(
      await vigil(["keys", "rotate", "--rpc", "ws://127.0.0.1:1"], {
        VIGIL_KEYSTORE_PASSPHRASE: "x".repeat(12),
      }),
      2,
      /--rpc: RPC URL must be http:\/\/ or https:\/\/, got ws:\/\/127\.0\.0\.1:1/,
    );
  }, 120_000);
});
