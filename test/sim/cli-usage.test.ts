// `vigil sim` flags that used to be accepted and then misbehaved are usage errors (exit 2, one
// line, before any connection): a --seed that `>>> 0` would have reduced, a --skew-ms that pushes
// timestamps out of the frame's range, and a --sensor-fault limited to a device that is not
// simulated. Each case spawns the real CLI; the broker URL points at a closed port with a short
// connect timeout, so a flag that got through would end in a quick transport failure (exit 1).
import { describe, expect, it } from "vitest";
import { freePort, runVigil } from "../helpers/procs.ts";

async function sim(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const port = await freePort();
  return runVigil([
    "sim",
    "--mqtt",
    `mqtt://127.0.0.1:${port}`,
    "--connect-timeout-ms",
    "100",
    "--frames",
    "1",
    ...args,
  ]);
}

/** Exit 2 and exactly one line on stderr matching `re`. */
function usage(r: { code: number | null; stderr: string }, re: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toMatch(/^vigil sim: [^\n]*\n$/);
  expect(r.stderr).toMatch(re);
}

describe("vigil sim usage errors", () => {
  it("input: --seed is a whole number in [0, 4294967295] (1.5 and -1 no longer alias 1 and 4294967295)", async () => {
    const [half, neg, big] = await Promise.all([
      sim(["--seed", "1.5"]),
      sim(["--seed=-1"]),
      sim(["--seed", "4294967296"]),
    ]);
    usage(half, /--seed must be a whole number, got "1\.5"/);
    usage(neg, /--seed must be a number in \[0, 4294967295\], got "-1"/);
    usage(big, /--seed must be a number in \[0, 4294967295\], got "4294967296"/);
  }, 60_000);

  it("input: --skew-ms is bounded to one day either way, bounds excluded (a frame skewed by exactly the gateway's default ingest.maxSkewMs crosses it on its way)", async () => {
    const [past, future, day, help] = await Promise.all([
      sim(["--skew-ms=-1e16"]),
      sim(["--skew-ms", "86400001"]),
      sim(["--skew-ms", "-86400000"]),
      runVigil(["sim", "--help"]),
    ]);
    const range = /--skew-ms must be a number in \(-86400000, 86400000\), bounds excluded/;
    usage(past, range);
    usage(past, /got "-1e16"/);
    usage(future, /got "86400001"/);
    // `--skew-ms -86400000` (a negative number as its own word) is the range error too, not "needs a value".
    usage(day, range);
    usage(day, /got "-86400000"/);
    expect(help.stdout).toMatch(
      /--skew-ms MS +constant device clock skew, in \(-86400000, 86400000\), bounds excluded/,
    );
  }, 60_000);

  it('input: a negative number given as its own word gets the range check, not a misleading "needs a value"', async () => {
    const [rate, seed, drain] = await Promise.all([
      sim(["--rate", "-1"]),
      sim(["--seed", "-1"]),
      sim(["--drain-ms", "-5"]),
    ]);
    usage(rate, /--rate must be a number ≥ 0, got "-1"/);
    usage(seed, /--seed must be a number in \[0, 4294967295\], got "-1"/);
    usage(drain, /--drain-ms must be a number ≥ 0, got "-5"/);
  }, 60_000);

  it("input: an --mqtt URL that cannot be parsed, names no host or has port 0 is a usage error at once", async () => {
    const run = (url: string) => runVigil(["sim", "--mqtt", url, "--frames", "1"]);
    const [big, empty, zero] = await Promise.all([
      run("mqtt://127.0.0.1:99999"),
      run("mqtt://"),
      run("mqtt://127.0.0.1:0"),
    ]);
    usage(
      big,
      /--mqtt "mqtt:\/\/127\.0\.0\.1:99999" is not a valid URL \(a port must be 1\.\.65535\); write it as mqtt:\/\/HOST:PORT/,
    );
    usage(empty, /--mqtt "mqtt:\/\/" names no host; write it as mqtt:\/\/HOST:PORT/);
    usage(zero, /--mqtt "mqtt:\/\/127\.0\.0\.1:0": port 0 is not a broker's port/);
  }, 60_000);

  it("input: --subset, --split without --profile cmapss are refused as such before their value is checked; --profile ignores case", async () => {
    const [subset, upper] = await Promise.all([
      sim(["--subset", "FD009"]),
      sim(["--profile", "CWRU", "--devices", "1"]),
    ]);
    usage(subset, /--subset applies only to --profile cmapss/);
    // Accepted: it gets as far as the (closed) broker.
    expect(upper.code, upper.stderr).toBe(1);
    expect(upper.stderr).toMatch(/^sim: 1 cwru device → MQTT/);
  }, 60_000);

  it("input: the --sensor-fault examples of --help are accepted with the profile they name", async () => {
    const help = await runVigil(["sim", "--help"]);
    const examples = [...help.stdout.matchAll(/(stuck:[a-z0-9_]+@60\+80) \((rotating|cmapss|cwru)\)/g)].map(
      (m) => [m[2]!, m[1]!] as const,
    );
    expect(examples.map(([p]) => p).sort()).toEqual(["cmapss", "cwru", "rotating"]);
    for (const [profile, spec] of examples) {
      const r = await sim(["--profile", profile, "--devices", "1", "--sensor-fault", spec]);
      // Not a usage error: the run gets as far as the (closed) broker.
      expect(r.code, `${profile} ${spec}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(/no MQTT connection/);
    }
  }, 90_000);

  it("input: a --sensor-fault #ID that is not a simulated device is named with the simulated range; --help says the ids are decimal", async () => {
    const [nine, shifted, help] = await Promise.all([
      sim(["--devices", "4", "--sensor-fault", "nan:0@0#2/9"]),
      sim(["--first-id", "10", "--devices", "2", "--sensor-fault", "stuck:1@5+3#10,nan:0@0#16"]),
      runVigil(["sim", "--help"]),
    ]);
    usage(nine, /sensor fault device 9 is not one of the simulated devices 1\.\.4 \(ids are decimal\)/);
    // 16 is 0x10: hex ids are not what #IDS means
    usage(shifted, /sensor fault device 16 is not one of the simulated devices 10\.\.11 \(ids are decimal\)/);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/#ID\/ID… limits it to those devices: decimal ids/);
  }, 60_000);

  it("input: --probe-interval-ms is 0 (never) or a whole number of ms in [100, 86400000]; --help gives the protocol's one probe a minute as the default", async () => {
    const [half, neg, small, big, help] = await Promise.all([
      sim(["--probe-interval-ms", "1500.5"]),
      sim(["--probe-interval-ms=-1"]),
      sim(["--probe-interval-ms", "50"]),
      sim(["--probe-interval-ms", "86400001"]),
      runVigil(["sim", "--help"]),
    ]);
    usage(half, /--probe-interval-ms must be a whole number, got "1500\.5"/);
    usage(neg, /--probe-interval-ms must be a number in \[0, 86400000\], got "-1"/);
    usage(small, /--probe-interval-ms must be 0 \(never probe\) or at least 100, got "50"/);
    usage(big, /--probe-interval-ms must be a number in \[0, 86400000\], got "86400001"/);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--probe-interval-ms MS +a stopped device/);
    expect(help.stdout).toMatch(/\(default 60000; the protocol allows one\s+probe a minute/);
  }, 60_000);
});
