// `vigil sim` against an embedded broker with registry access control (mqtt.embedded.auth
// "registry"), where a device may publish only its own frames and read only its own NACKs
// (gateway/src/access/README.md). With a device's credentials in --mqtt the simulator runs that
// one device and its frames are stored; before, it subscribed to every device's NACKs, was refused
// (SUBACK 0x80) and retried for --connect-timeout-ms as if the broker were down. Credentials that
// may not read NACKs fail at once with the fix. The CLI runs as a child process against the real
// broker of test/access/rig.ts (registry view, password file, ingest on loopback).
import { afterEach, describe, expect, it } from "vitest";
import { accessRig, DEV_A, DEV_B, hex8, SECRET, type AccessRig } from "../access/rig.ts";
import { runVigil } from "../helpers/procs.ts";

let rig: AccessRig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

const lastLine = (stderr: string): string => stderr.trimEnd().split("\n").at(-1)!;
type Report = { acked: number; generated: number; abandoned: number; nacked: Record<string, number> };
const reportOf = (stdout: string): Report => JSON.parse(stdout.trim().split("\n").at(-1)!) as Report;

/** The rig's broker URL with credentials. */
const withCredentials = (url: string, user: string, password: string): string => {
  const u = new URL(url);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.toString();
};

describe("vigil sim with registry access control", () => {
  it("behavior: a device's credentials run that one device; its frames are acknowledged and stored, and no plain-broker warning is given", async () => {
    rig = await accessRig();
    const url = withCredentials(rig.url, hex8(DEV_A), SECRET);
    const r = await runVigil(["sim", "--mqtt", url, "--frames", "12", "--rate", "0", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(reportOf(r.stdout)).toMatchObject({ generated: 12, acked: 12, abandoned: 0, nacked: {} });
    expect(r.stderr).toContain(`sim: 1 rotating device → MQTT mqtt://`);
    expect(r.stderr).not.toContain(SECRET);
    // The status topic is not the device's to read: nothing is known, so nothing is warned.
    expect(r.stderr).not.toMatch(/warning/);
    const stored = rig.sink.records.filter((f) => f.deviceId === DEV_A);
    expect(stored).toHaveLength(12);
  }, 60_000);

  it("error: a device's credentials with --devices 2 or another --first-id are a usage error naming the fix", async () => {
    rig = await accessRig();
    const url = withCredentials(rig.url, hex8(DEV_B), SECRET);
    for (const extra of [
      ["--devices", "2"],
      ["--first-id", String(DEV_A)],
    ]) {
      const r = await runVigil(["sim", "--mqtt", url, "--frames", "1", ...extra]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(
        `--mqtt logs in as device ${hex8(DEV_B)}, which may publish only its own frames: run that one device (leave --devices and --first-id out, or --devices 1 --first-id ${DEV_B}), one vigil sim per device`,
      );
    }
    expect(rig.sink.records).toHaveLength(0);
  }, 60_000);

  it("error: credentials that may not read NACKs (a reader's) fail at once, not after --connect-timeout-ms, with the fix", async () => {
    rig = await accessRig();
    const token = await rig.token(rig.reader);
    const url = withCredentials(rig.url, token.username, token.password);
    const t0 = Date.now();
    const r = await runVigil(["sim", "--mqtt", url, "--frames", "1", "--connect-timeout-ms", "60000"]);
    expect(r.code, r.stderr).toBe(1);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(lastLine(r.stderr)).toMatch(
      /^vigil sim: no MQTT connection to mqtt:\/\/\*\*\*:\*\*\*@127\.0\.0\.1:\d+: the broker refused the subscription to vigil\/v1\/ingest\/\+\/nack \(SUBACK 0x80\): a broker with access control lets a device read only its own NACKs .* mqtt:\/\/DEVICE_ID:SECRET@HOST:PORT/,
    );
    expect(r.stderr).not.toContain(token.password);
  }, 60_000);
});
