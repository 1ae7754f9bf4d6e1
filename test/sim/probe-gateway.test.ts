// `vigil sim` (the CLI as a child process) against a real gateway (Runtime, embedded MQTT broker
// on 127.0.0.1, in-memory store) that does not know the simulated device yet: the device is NACKed
// UNKNOWN_DEVICE and stops (nothing but its probes reaches the gateway, HELLO + its oldest kept
// frame, at most once per --probe-interval-ms); the test then admits it the way a SIGHUP reload of
// ingest.allow does (Ingest.setAdmission), and the next probe resumes it: ERROR code 2 names the
// frames its window dropped while stopped (later ones the frames it drops while running), its kept
// frames are stored, none twice, and the run exits 0 (hardware/PROTOCOL.md, "A stopped device").
// Every frame the device publishes is recorded where ingest receives it. Synchronised on the sim's JSON progress lines and
// the gateway's counters; the sim is stopped by its own PID.
import { spawn, type ChildProcess } from "node:child_process";
import { afterEach, describe, expect, it, vi } from "vitest";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { ListAdmission } from "../../gateway/src/core/admission.ts";
import { FrameType, type Frame } from "../../gateway/src/protocol/frame.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { stop } from "../helpers/procs.ts";

let rt: Runtime | undefined;
let sim: ChildProcess | undefined;
afterEach(async () => {
  await stop(sim, "SIGKILL");
  sim = undefined;
  await rt?.stop();
  rt = undefined;
});

interface Snapshot {
  type: "progress" | "report";
  generated: number;
  acked: number;
  pending: number;
  stopped: number;
  probes: number;
  resumes: number;
  overflowed: number;
  droppedWhileStopped: number;
  overflowReports: number;
  dupAcks: number;
  nacked: Record<string, number>;
}

const DEVICE = 1;
const PROBE_MS = 1500;

describe("vigil sim: a device registered while the simulator runs", () => {
  it("behavior: refused, it sends only its probes; admitted, the next probe resumes it: ERROR code 2, its kept frames stored once, exit 0", async () => {
    const store = new MemoryFrameStore();
    rt = new Runtime({
      config: resolveConfig({
        dataDir: "/nonexistent-vigil-test",
        site: "probe-site",
        mqtt: { embedded: { host: "127.0.0.1", port: 0 } },
        http: { enabled: false },
        attest: { enabled: false, gatewayName: "gw-probe" },
        models: { enabled: false },
        ingest: { allow: ["ffffffff"] },
        log: { statsIntervalMs: 0 },
      }),
      store,
    });
    await rt.start();
    const url = rt.embedded!.url;

    // Every frame the device publishes, as ingest receives it (refused ones included: the broker
    // passes only accepted frames on to subscribers).
    const seen: Array<{ at: number; frame: Frame }> = [];
    const handle = rt.ingest.handle.bind(rt.ingest);
    rt.ingest.handle = (decoded, source) => {
      seen.push({ at: Date.now(), frame: decoded.frame });
      return handle(decoded, source);
    };

    sim = spawn(
      process.execPath,
      [
        "bin/vigil.js",
        "sim",
        "--mqtt",
        url,
        "--devices",
        "1",
        "--rate",
        "20",
        "--frames",
        "100000",
        "--window",
        "8",
        "--resend-ms",
        "200",
        "--probe-interval-ms",
        String(PROBE_MS),
        "--progress-ms",
        "100",
        "--drain-ms",
        "10000",
        "--json",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const lines: Snapshot[] = [];
    let buf = "";
    let stderr = "";
    sim.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split("\n");
      buf = parts.pop()!;
      for (const l of parts) if (l.trim()) lines.push(JSON.parse(l) as Snapshot);
    });
    sim.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((res) => sim!.once("exit", (code) => res(code)));
    const last = (): Snapshot | undefined => lines.at(-1);
    const counters = () => rt!.ingest.counters;
    const refusals = () => counters().snapshot().rejected.UNKNOWN_DEVICE ?? 0;

    // 1. Refused at once: stopped, and the gateway NACKed its HELLO and first frame(s).
    await vi.waitFor(() => expect(last()?.stopped, stderr).toBe(1), { timeout: 20_000, interval: 20 });
    expect(refusals()).toBeGreaterThanOrEqual(2);
    expect(last()!.probes).toBe(0);

    // 2. Its first probe is refused too (NACK UNKNOWN_DEVICE): it stays stopped.
    await vi.waitFor(() => expect(last()!.probes).toBeGreaterThanOrEqual(1), {
      timeout: 10_000,
      interval: 20,
    });
    const probeHello = (i: number) => seen.filter((s, j) => j > 0 && s.frame.type === FrameType.Hello)[i];
    await vi.waitFor(() => expect(probeHello(0)).toBeDefined(), { timeout: 5000, interval: 20 });
    const firstProbeAt = seen.indexOf(probeHello(0)!);
    await vi.waitFor(() => expect(seen.length).toBeGreaterThanOrEqual(firstProbeAt + 2), {
      timeout: 5000,
      interval: 20,
    });
    // The refusal of the probe reached the device (the sim counts the NACKs it received).
    const refusedBefore = firstProbeAt; // HELLO and the frames sent before the stop, one NACK each
    await vi.waitFor(() => expect(last()!.nacked.UNKNOWN_DEVICE).toBeGreaterThanOrEqual(refusedBefore + 2), {
      timeout: 5000,
      interval: 20,
    });
    expect(last()!.stopped).toBe(1);
    expect(last()!.resumes).toBe(0);

    // 3. Registered now (what a SIGHUP reload of ingest.allow does): the next probe resumes it.
    rt.ingest.setAdmission(new ListAdmission(new Set([DEVICE, 0xffffffff])));
    await vi.waitFor(() => expect(last()!.resumes).toBe(1), { timeout: PROBE_MS * 3, interval: 20 });
    const resumedAcked = last()!.acked;
    // Let it run on a little (50 more frames acknowledged), then end generation: SIGINT, drain, exit.
    await vi.waitFor(() => expect(last()!.acked).toBeGreaterThanOrEqual(resumedAcked + 50), {
      timeout: 20_000,
      interval: 20,
    });
    sim.kill("SIGINT");
    const code = await exited;
    const report = lines.at(-1)!;
    expect(report.type).toBe("report");
    expect(code, stderr).toBe(0);
    expect(report).toMatchObject({ stopped: 0, resumes: 1, pending: 0 });
    const probes = report.probes;
    expect(probes).toBeGreaterThanOrEqual(2);

    // What the gateway got between the stop and the resume: HELLO + one DATA frame per probe, the
    // probes at least the interval apart; then the ERROR report before any other frame.
    const afterStop = seen.slice(firstProbeAt);
    const resumeAt = 2 * probes;
    expect(afterStop.slice(0, resumeAt).map((s) => s.frame.type)).toEqual(
      Array.from({ length: probes }, () => [FrameType.Hello, FrameType.Data]).flat(),
    );
    // Seen here, after the broker's delivery: the spacing at the device is the unit tests' (injected
    // time); here it only has to show probes are paced, not sent back to back.
    for (let i = 2; i < resumeAt; i += 2)
      expect(afterStop[i]!.at - afterStop[i - 2]!.at).toBeGreaterThanOrEqual(PROBE_MS / 2);
    const err = afterStop[resumeAt]!.frame;
    expect(err).toMatchObject({ type: FrameType.Error, deviceId: DEVICE, code: 2 });
    expect(report.droppedWhileStopped).toBeGreaterThan(0);
    expect(err.type === FrameType.Error && err.message).toBe(
      `resend ring full while stopped: ${report.droppedWhileStopped} oldest frames dropped`,
    );
    // Frames its full window dropped after the resume (while running) are reported too, batched
    // (overflow-report.test.ts): every dropped frame is named once, and the gateway counted every
    // report.
    const errors = seen.flatMap((s) => (s.frame.type === FrameType.Error ? [s.frame] : []));
    expect(errors.every((e) => e.code === 2)).toBe(true);
    expect(errors.length).toBe(report.overflowReports);
    const named = errors.map((e) => Number(/ (\d+) oldest frames dropped/.exec(e.message)?.[1]));
    expect(named.reduce((a, b) => a + b, 0)).toBe(report.overflowed);
    expect(counters().devices.get(DEVICE)?.errors.get(2)).toBe(errors.length);

    // Stored: every frame the device saw acknowledged, each once; the rest were dropped by its full
    // window: while it was stopped (never stored), or, right after the resume while the window was
    // still full, in flight (stored: their PUBACK then found no frame, a dupAck).
    const stored: number[] = [];
    for await (const f of store.framesByDevice(DEVICE)) stored.push(f.seq);
    expect(new Set(stored).size).toBe(stored.length);
    expect(counters().accepted).toBe(stored.length);
    expect(report.acked + report.overflowed).toBe(report.generated);
    expect(report.overflowed - report.droppedWhileStopped).toBe(report.dupAcks);
    expect(stored.length).toBe(report.acked + report.dupAcks);
    // The probe that resumed it carried the oldest kept frame: everything older was dropped.
    const resumingProbe = afterStop[resumeAt - 1]!.frame;
    expect(resumingProbe.type).toBe(FrameType.Data);
    const probeSeq = resumingProbe.type === FrameType.Data ? resumingProbe.seq : -1;
    expect(Math.min(...stored)).toBe(probeSeq);
  }, 90_000);
});
