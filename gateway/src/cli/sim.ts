/** `vigil sim`: run simulated devices against a gateway over serial or MQTT. */
// The simulator itself is imported when it runs (`vigil sim --help` must not load it).
import type { FaultRates, ScriptedSensorFault } from "../../../device-sim/src/faults.ts";
import type { ProfileName, Simulator, SimSnapshot } from "../../../device-sim/src/simulator.ts";
import type { Transport } from "../../../device-sim/src/transports/types.ts";
import { existsSync } from "node:fs";
import { redactUrl, UsageError, VigilError } from "../core/errors.ts";
import { didYouMean, int, num, parse, refuseFlags } from "./args.ts";

export const SIM_HELP = `usage: vigil sim [options]

Simulated microcontrollers sending protocol-v1 frames to a gateway.

Transport (one of):
  --serial PATH          tty to write COBS frames to (/dev/ttyUSB0, or a socat pty)
  --baud N               --serial: baud rate (default 115200)
  --mqtt URL             broker URL (default mqtt://127.0.0.1:1883, the gateway's embedded broker)
  --connect-timeout-ms MS  --mqtt: give up when the broker has not answered within MS (default 30000)

Devices and signals:
  --devices N            number of devices (default 4)
  --profile NAME         rotating | cmapss | cwru (default rotating); cwru replays real bearing
                         vibration (CWRU held-out recordings): healthy, then a fault
  --subset FD00x         cmapss: C-MAPSS subset to replay (default FD001)
  --split train|test     cmapss: C-MAPSS split (default train: units run to failure)
  --life N               rotating: mean frames until failure (default 600)
  --healthy N            cwru: frames of healthy running before the fault (default seeded 40..119)
  --seed N               seed, a whole number in [0, 4294967295]; same seed, same frames and
                         faults (default 1)
  --rate HZ              frames per second per device; 0 = as fast as ACKs allow (default 10)
  --duration S           stop generating after S seconds (default: until sources end;
                         SIGINT/SIGTERM also stop generating and drain, a second one exits at once)
  --frames N             stop generating after N frames per device (cwru: every device replays
                         N frames; without it, its healthy frames + 200)
  --first-id N           first device id (default 1)
  --skew-ms MS           constant device clock skew, in [-86400000, 86400000] (one day, the
                         gateway's default ingest.maxSkewMs; default 0)

Faults (e.g. --faults corrupt=0.01,drop=0.02 or all=0.005; all= includes reboot):
  corrupt truncate drop duplicate reorder garbage    link, probability per frame
  nan clockJump stuck drift spike                    values, probability per frame
  disconnect reboot                                  session, probability per pass of the send
                                                     loop (about every 5 ms; back to back at
                                                     --rate 0); reboot: one device restarts (a
                                                     new boot, HELLO) and loses its
                                                     unacknowledged frames; a stopped device
                                                     (below) restarts as a fresh one
  --sensor-fault SPEC    scripted sensor faults for a demo, KIND:CHANNEL@FROM[+FRAMES][#ID/ID…],
                         comma-separated; KIND nan | stuck | spike (×5); CHANNEL a HELLO name or
                         index, e.g. stuck:s11@60+80 (the gateway raises a sensor-fault alert);
                         #ID/ID… limits it to those devices: decimal ids (as --first-id, not the
                         hex of MQTT topics), each one of the simulated devices
  --resend-ms MS         first resend timeout (default 500, doubles to 8000); over MQTT also how
                         long a PUBACK waits for a NACK before it counts as an acknowledgement
                         (the gateway PUBACKs refused frames too, then NACKs them)
  --window N             unacknowledged frames a device keeps (sent, or waiting for room on the
                         link); when full it drops the oldest, counts it as overflowed and
                         reports it with ERROR code 2 (batched: at most one a second per device,
                         naming the frames dropped since the last), as an MCU with a RAM ring
                         does (default 256)
  --drain-ms MS          wait for outstanding ACKs at the end (default 10000)
  --probe-interval-ms MS  a stopped device (below) probes every MS: 0 = never, else a whole
                         number in [100, 86400000] (default 60000; the protocol allows one
                         probe a minute: shorter is for development and tests)
  --json                 JSON lines on stdout: {"type":"progress",…} snapshots, then {"type":"report",…}
  --progress-ms MS       progress interval (default 1000)
  -h, --help             this text

A device the gateway refuses (NACK UNKNOWN_DEVICE, REVOKED_DEVICE) is stopped, as
hardware/PROTOCOL.md ("A stopped device") says: it keeps its unacknowledged frames and samples
on into its window (when full it drops the oldest), but sends no DATA, no ERROR and no HELLO,
reconnects included. Every --probe-interval-ms, the first one that long after the stop, it
probes: HELLO, then its oldest kept frame. An ACK of that frame (over MQTT: its PUBACK with no
NACK UNKNOWN_DEVICE / REVOKED_DEVICE within --resend-ms, since refused frames are PUBACKed too)
means it was registered meanwhile (vigil access sensor register, ingest.allow): it resumes,
sends ERROR code 2 naming the frames its window dropped while stopped, then its kept frames. A
refusal or no reply keeps it stopped until the next probe. A reboot fault is a reset: the device
starts a new boot as a fresh one (its kept frames are lost with its RAM, as on any reboot) and
sends, or is stopped again if the gateway refuses its HELLO. A stopped device that probes keeps
generation going (--frames, --duration or SIGINT end it); the drain waits for the reply to a
probe already sent, not for the next probe. Progress and report count stopped devices, probes,
resumes and droppedWhileStopped (overflowReports: the ERROR code 2 frames sent).

A device does what a NACK asks (hardware/PROTOCOL.md, NACK table), over MQTT whether or not the
frame was PUBACKed first: SCHEMA_MISMATCH, HELLO then the resend; ABSURD_TIMESTAMP,
SEQ_OUT_OF_RANGE and unknown reasons, the frame is dropped (counted abandoned, not acked).

Exit status: 0 when no frame is still pending after the drain and no device is still stopped
(frames abandoned, overflowed or lost at a reboot are counted in the report, not waited for; a
device that was refused and resumed counts as any other), 1 when frames are still pending, a
device is still stopped (UNKNOWN_DEVICE, REVOKED_DEVICE) or the transport fails (one line), 2 for
a usage error.
`;

/** --skew-ms bound: one day, the gateway's default ingest.maxSkewMs. */
const MAX_SKEW_MS = 86_400_000;
/** --probe-interval-ms: 0 (never) or [MIN, MAX]; the default is the protocol's one probe a minute. */
const MIN_PROBE_INTERVAL_MS = 100;
const MAX_PROBE_INTERVAL_MS = 86_400_000;

/** --probe-interval-ms: 0 = never probe, else a whole number of ms in [100, 86400000]. */
function probeInterval(v: string | undefined): number {
  const ms = int("probe-interval-ms", v, 60_000, 0, MAX_PROBE_INTERVAL_MS);
  if (ms > 0 && ms < MIN_PROBE_INTERVAL_MS)
    throw new UsageError(
      `--probe-interval-ms must be 0 (never probe) or at least ${MIN_PROBE_INTERVAL_MS}, got "${v}"`,
    );
  return ms;
}

export async function simCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, {
    serial: { type: "string" },
    baud: { type: "string" },
    mqtt: { type: "string" },
    "connect-timeout-ms": { type: "string" },
    devices: { type: "string" },
    profile: { type: "string" },
    subset: { type: "string" },
    split: { type: "string" },
    life: { type: "string" },
    healthy: { type: "string" },
    "sensor-fault": { type: "string" },
    seed: { type: "string" },
    rate: { type: "string" },
    duration: { type: "string" },
    frames: { type: "string" },
    "first-id": { type: "string" },
    "skew-ms": { type: "string" },
    faults: { type: "string" },
    "resend-ms": { type: "string" },
    window: { type: "string" },
    "drain-ms": { type: "string" },
    "probe-interval-ms": { type: "string" },
    json: { type: "boolean" },
    "progress-ms": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) {
    process.stdout.write(SIM_HELP);
    return 0;
  }
  if (v.serial && v.mqtt) throw new UsageError("choose one transport: --serial or --mqtt");
  if (v.serial) refuseFlags(v, ["connect-timeout-ms"], "applies only to MQTT (--mqtt), not to --serial");
  else refuseFlags(v, ["baud"], "applies only to --serial");
  const [
    { parseFaultRates, parseScriptedFaults },
    { PROFILE_NAMES, Simulator },
    { MqttTransport },
    { SerialTransport },
  ] = await Promise.all([
    import("../../../device-sim/src/faults.ts"),
    import("../../../device-sim/src/simulator.ts"),
    import("../../../device-sim/src/transports/mqtt.ts"),
    import("../../../device-sim/src/transports/serial.ts"),
  ]);
  const profile = (v.profile ?? "rotating") as ProfileName;
  if (!PROFILE_NAMES.includes(profile))
    throw new UsageError(
      `--profile must be one of ${PROFILE_NAMES.join(", ")}, got "${v.profile}"${didYouMean(String(v.profile), [...PROFILE_NAMES])}`,
    );
  const subset = (v.subset ?? "FD001").toUpperCase();
  if (!/^FD00[1-4]$/.test(subset)) throw new UsageError(`--subset must be FD001..FD004, got "${v.subset}"`);
  const split = v.split ?? "train";
  if (split !== "train" && split !== "test")
    throw new UsageError(`--split must be one of train, test, got "${split}"`);
  const cmapss = { subset: subset as "FD001", split: split as "train" | "test" };
  if (profile !== "cmapss") refuseFlags(v, ["subset", "split"], "applies only to --profile cmapss");
  if (profile !== "rotating") refuseFlags(v, ["life"], "applies only to --profile rotating");
  if (profile !== "cwru") refuseFlags(v, ["healthy"], "applies only to --profile cwru");
  let faults: FaultRates;
  try {
    faults = parseFaultRates(v.faults ?? "");
  } catch (e) {
    throw new UsageError(`--faults: ${(e as Error).message}`);
  }
  let sensorFaults: ScriptedSensorFault[];
  try {
    sensorFaults = parseScriptedFaults(v["sensor-fault"] ?? "");
  } catch (e) {
    throw new UsageError(`--sensor-fault: ${(e as Error).message}`);
  }
  const url = v.mqtt ?? "mqtt://127.0.0.1:1883";
  if (!/^(mqtts?|wss?|tcp):\/\//i.test(url))
    throw new UsageError(
      `--mqtt must be an MQTT broker URL (mqtt://, mqtts://, ws://, wss:// or tcp://), got "${redactUrl(url)}"`,
    );
  if (v.serial && !existsSync(v.serial))
    throw new VigilError(
      "SERIAL_IO",
      `${v.serial} does not exist; check the device is plugged in (ls /dev/serial/by-id/) or create a pty pair with socat`,
    );
  const devices = int("devices", v.devices, 4, 1, 100_000);
  const firstId = int("first-id", v["first-id"], 1, 0, 0xffffffff);
  if (firstId + devices - 1 > 0xffffffff)
    throw new UsageError(
      `--first-id ${firstId} with --devices ${devices} runs past the last device id (0xffffffff)`,
    );
  const transport: Transport = v.serial
    ? new SerialTransport({ path: v.serial, baudRate: int("baud", v.baud, 115200, 300) })
    : new MqttTransport({
        url,
        connectTimeoutMs: num("connect-timeout-ms", v["connect-timeout-ms"], 30_000, 100),
      });
  // The first SIGINT/SIGTERM ends generation and lets the devices drain; a second one ends at once.
  const ctrl = new AbortController();
  const stop = new AbortController();
  const tty = process.stderr.isTTY;
  let sim: Simulator;
  try {
    sim = simulator();
  } catch (e) {
    // e.g. a --sensor-fault channel that is not one of the profile's channels, or a device id
    // that is not simulated
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
  const onSig = (): void => (stop.signal.aborted ? ctrl.abort() : stop.abort());
  process.on("SIGINT", onSig);
  process.on("SIGTERM", onSig);
  function simulator(): Simulator {
    return new Simulator({
      transport,
      devices,
      seed: int("seed", v.seed, 1, 0, 0xffffffff),
      rate: num("rate", v.rate, 10, 0),
      ...(v.duration !== undefined ? { durationS: num("duration", v.duration, 0, 0) } : {}),
      ...(v.frames !== undefined ? { framesPerDevice: int("frames", v.frames, 0, 0) } : {}),
      profile,
      meanLife: num("life", v.life, 600, 20),
      cmapss,
      ...(v.healthy !== undefined ? { cwru: { healthyFrames: int("healthy", v.healthy, 0, 0) } } : {}),
      faults,
      sensorFaults,
      firstDeviceId: firstId,
      // Keeps timestamps far inside 0..2^53-1 µs (frame.ts), clock-jump fault (+10 years) included.
      clockSkewMs: num("skew-ms", v["skew-ms"], 0, -MAX_SKEW_MS, MAX_SKEW_MS),
      resendMs: num("resend-ms", v["resend-ms"], 500, 10),
      window: int("window", v.window, 256, 1, 10_000_000),
      drainMs: num("drain-ms", v["drain-ms"], 10_000, 0),
      probeIntervalMs: probeInterval(v["probe-interval-ms"]),
      signal: ctrl.signal,
      stopSignal: stop.signal,
      progressMs: num("progress-ms", v["progress-ms"], 1000, 50),
      onProgress: (s) =>
        v.json
          ? process.stdout.write(JSON.stringify({ type: "progress", ...s }) + "\n")
          : process.stderr.write(`${progressLine(s)}${tty ? "\r" : "\n"}`),
    });
  }
  process.stderr.write(
    `sim: ${sim.devices.length} ${profile} devices → ${v.serial ? `serial ${v.serial}` : `MQTT ${redactUrl(url)}`}\n`,
  );
  let report;
  try {
    report = await sim.run();
  } catch (e) {
    // Transport failures (port cannot be opened, broker never answers) are the user's setup,
    // not a bug: one line, no stack.
    if (e instanceof VigilError) throw e;
    throw new VigilError("SIM_TRANSPORT", (e as Error).message.replace(/^Error: /, ""), { cause: e });
  }
  process.off("SIGINT", onSig);
  process.off("SIGTERM", onSig);
  if (tty) process.stderr.write("\n");
  if (v.json) process.stdout.write(JSON.stringify({ type: "report", ...report }) + "\n");
  else process.stderr.write(`sim: done ${progressLine(report)}\n`);
  // A device still stopped by the gateway (unknown, revoked) is a failed run, even with nothing
  // pending; one that was refused, probed and resumed is not.
  return report.pending === 0 && report.stopped === 0 ? 0 : 1;
}

export function progressLine(s: SimSnapshot): string {
  const faults = Object.entries(s.faults)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k}=${n}`)
    .join(" ");
  const rate = s.elapsedS > 0 ? Math.round(s.generated / s.elapsedS) : 0;
  const stops =
    s.stopped || s.probes || s.resumes
      ? ` stopped=${s.stopped} probes=${s.probes} resumes=${s.resumes} droppedWhileStopped=${s.droppedWhileStopped}`
      : "";
  return (
    `t=${s.elapsedS.toFixed(1)}s generated=${s.generated} (${rate}/s) acked=${s.acked} pending=${s.pending} ` +
    `resent=${s.resent} abandoned=${s.abandoned}${stops}${faults ? ` faults: ${faults}` : ""}`
  );
}
