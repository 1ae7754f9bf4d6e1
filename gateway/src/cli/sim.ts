/** `vigil sim`: run simulated devices against a gateway over serial or MQTT. */
// The simulator itself is imported when it runs (`vigil sim --help` must not load it).
import type { FaultRates, ScriptedSensorFault } from "../../../device-sim/src/faults.ts";
import type { ProfileName, Simulator, SimReport, SimSnapshot } from "../../../device-sim/src/simulator.ts";
import type { Transport } from "../../../device-sim/src/transports/types.ts";
import { existsSync, statSync } from "node:fs";
import { redactUrl, UsageError, VigilError } from "../core/errors.ts";
import { didYouMean, int, num, parse, refuseFlags } from "./args.ts";

export const SIM_HELP = `usage: vigil sim [options]

Simulated microcontrollers sending protocol-v1 frames to a gateway.

Transport (one of):
  --serial PATH          tty to write COBS frames to (/dev/ttyUSB0, or a socat pty)
  --baud N               --serial: baud rate (default 115200)
  --mqtt URL             broker URL (default mqtt://127.0.0.1:1883, the gateway's embedded broker);
                         a refused connection is retried (the cause printed at once), a host not
                         found, a server that does not speak MQTT and a refused CONNECT fail at once;
                         a device's credentials (mqtt://0000000A:SECRET@HOST:PORT, for a gateway
                         with --mqtt-auth registry: the id's 8 hex digits and its secret) run that
                         one device (--devices 1, --first-id its id: the defaults then)
  --connect-timeout-ms MS  --mqtt: give up when the broker has not answered within MS (default 30000)

Devices and signals:
  --devices N            number of devices (default 4)
  --profile NAME         rotating | cmapss | cwru (default rotating); cwru replays real bearing
                         vibration (CWRU held-out recordings): healthy, then a fault
  --subset FD00x         cmapss: C-MAPSS subset to replay (default FD001)
  --split train|test     cmapss: C-MAPSS split (default train: units run to failure)
  --life N               rotating: mean frames until failure (default 600)
  --healthy N            cwru: frames of healthy running before the fault (default seeded 40..119)
  --seed N               seed, a whole number in [0, 4294967295]; same seed, same values and
                         faults (default 1; timestamps are the clock's, boot_id is --boot-id's)
  --rate HZ              frames per second per device; 0 = as fast as ACKs allow (default 10)
  --duration S           stop generating after S seconds (default: until sources end;
                         SIGINT/SIGTERM also stop generating and drain, a second one exits at once)
  --frames N             stop generating after N frames per device (cwru: every device replays
                         N frames; without it, its healthy frames + 200)
  --first-id N           first device id (default 1)
  --boot-id N            boot_id of every device's first boot, a whole number in [0, 4294967295]
                         (default: a random one per run: a new run is a new boot of each device,
                         as hardware/PROTOCOL.md requires, so a gateway stores it although it
                         holds an earlier run's frames; a reboot fault adds 1, mod 2^32). A
                         boot_id a gateway has seen before continues that boot: its frames are
                         refused (NACK SCHEMA_MISMATCH, counted SEQ_REUSED) and abandoned
  --skew-ms MS           constant device clock skew, in (-86400000, 86400000), bounds excluded
                         (one day, the gateway's default ingest.maxSkewMs; default 0). A frame
                         ages on its way and while it waits for a resend: a skew within seconds
                         of the gateway's limit gets it refused ABSURD_TIMESTAMP

Faults:
  --faults SPEC          fault probabilities, KIND=P,…, e.g. corrupt=0.01,drop=0.02 or all=0.005
                         (all= includes reboot); KIND one of:
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
                         index, e.g. stuck:vib_kurt@60+80 (rotating), stuck:s11@60+80 (cmapss),
                         stuck:kurtosis@60+80 (cwru) (the gateway raises a sensor-fault alert);
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

Output: progress lines and the final "sim: done" line on stderr (--json: JSON lines on stdout),
with the NACK reasons counted ("nacked: REASON=N …"); then a warning line when frames were
abandoned (their NACK reasons and the fix) and, over MQTT, when no gateway's retained status
(vigil/v1/+/+/status) came from the broker by the end of the run: a plain broker with no gateway
behind it PUBACKs every frame, so "acked" then does not mean stored.

Exit status: 0 when no frame is still pending after the drain, no device is still stopped and at
least one frame was acknowledged (frames abandoned, overflowed or lost at a reboot are counted in
the report, not waited for, and named in a warning line; a device that was refused and resumed
counts as any other); 1, with one line naming the cause and the fix, when frames are still
pending, a device is still stopped (UNKNOWN_DEVICE, REVOKED_DEVICE), frames were generated but
none was acknowledged (e.g. all refused ABSURD_TIMESTAMP), or the transport fails (the port is not
a tty, the broker refuses or is not MQTT); 2 for a usage error.
`;

/** --skew-ms bound (excluded): one day, the gateway's default ingest.maxSkewMs. */
const MAX_SKEW_MS = 86_400_000;

/** The number flags of `vigil sim`: `--rate -1` is read as `--rate=-1` (a value, then its range check). */
const NUMBER_FLAGS = new Set([
  "baud",
  "connect-timeout-ms",
  "devices",
  "life",
  "healthy",
  "seed",
  "rate",
  "duration",
  "frames",
  "first-id",
  "boot-id",
  "skew-ms",
  "resend-ms",
  "window",
  "drain-ms",
  "probe-interval-ms",
  "progress-ms",
]);

/**
 * `--rate -1` as `--rate=-1` for the number flags: parseArgs reads "-1" as a flag, and the
 * "needs a value" it reports hides the real problem (a negative number, out of range or not).
 */
function joinNegativeNumbers(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (
      /^--[a-z-]+$/.test(a) &&
      NUMBER_FLAGS.has(a.slice(2)) &&
      next !== undefined &&
      /^-(\d|\.\d)/.test(next)
    ) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** --skew-ms: a number strictly inside one day either way. */
function skewMs(v: string | undefined): number {
  const ms = num("skew-ms", v, 0);
  if (!(ms > -MAX_SKEW_MS && ms < MAX_SKEW_MS))
    throw new UsageError(
      `--skew-ms must be a number in (-${MAX_SKEW_MS}, ${MAX_SKEW_MS}), bounds excluded (the gateway's default ingest.maxSkewMs, which a frame crosses on its way), got "${v}"`,
    );
  return ms;
}

/**
 * Checks an --mqtt URL before any connection: a scheme MQTT speaks, a host, and a port (when
 * given) in 1..65535. mqtt.js would otherwise connect `mqtt://` to 127.0.0.1:1883 and throw a
 * stack trace for port 99999.
 */
function mqttUrl(url: string): string {
  if (!/^(mqtts?|wss?|tcp):\/\//i.test(url))
    throw new UsageError(
      `--mqtt must be an MQTT broker URL (mqtt://, mqtts://, ws://, wss:// or tcp://), got "${redactUrl(url)}"`,
    );
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(
      `--mqtt "${redactUrl(url).replace(/ \(unparseable\)$/, "")}" is not a valid URL (a port must be 1..65535); write it as mqtt://HOST:PORT, e.g. mqtt://127.0.0.1:1883`,
    );
  }
  if (!u.hostname)
    throw new UsageError(
      `--mqtt "${redactUrl(url)}" names no host; write it as mqtt://HOST:PORT, e.g. mqtt://127.0.0.1:1883`,
    );
  if (u.port === "0")
    throw new UsageError(
      `--mqtt "${redactUrl(url)}": port 0 is not a broker's port; the port must be 1..65535`,
    );
  return url;
}
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
  const { values: v } = parse(joinNegativeNumbers(argv), {
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
    "boot-id": { type: "string" },
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
    { MqttTransport, deviceOfUsername, urlUsername },
    { SerialTransport },
  ] = await Promise.all([
    import("../../../device-sim/src/faults.ts"),
    import("../../../device-sim/src/simulator.ts"),
    import("../../../device-sim/src/transports/mqtt.ts"),
    import("../../../device-sim/src/transports/serial.ts"),
  ]);
  // Case ignored, as for --subset.
  const profile = (v.profile ?? "rotating").toLowerCase() as ProfileName;
  if (!PROFILE_NAMES.includes(profile))
    throw new UsageError(
      `--profile must be one of ${PROFILE_NAMES.join(", ")}, got "${v.profile}"${didYouMean(profile, [...PROFILE_NAMES])}`,
    );
  // Flags the profile does not use are refused before their values are checked.
  if (profile !== "cmapss") refuseFlags(v, ["subset", "split"], "applies only to --profile cmapss");
  if (profile !== "rotating") refuseFlags(v, ["life"], "applies only to --profile rotating");
  if (profile !== "cwru") refuseFlags(v, ["healthy"], "applies only to --profile cwru");
  const subset = (v.subset ?? "FD001").toUpperCase();
  if (!/^FD00[1-4]$/.test(subset)) throw new UsageError(`--subset must be FD001..FD004, got "${v.subset}"`);
  const split = v.split ?? "train";
  if (split !== "train" && split !== "test")
    throw new UsageError(`--split must be one of train, test, got "${split}"`);
  const cmapss = { subset: subset as "FD001", split: split as "train" | "test" };
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
  const url = mqttUrl(v.mqtt ?? "mqtt://127.0.0.1:1883");
  if (v.serial && !existsSync(v.serial))
    throw new VigilError(
      "SERIAL_IO",
      `${v.serial} does not exist; check the device is plugged in (ls /dev/serial/by-id/) or create a pty pair with socat`,
    );
  // A file or a folder is no tty; a character device that is not one (/dev/null) is caught when
  // the port is opened (serial.ts, serialOpenError).
  if (v.serial && !statSync(v.serial).isCharacterDevice())
    throw new VigilError(
      "SERIAL_IO",
      `${v.serial} is not a serial port (a tty); give the adapter's tty (ls /dev/serial/by-id/) or one end of a socat pty pair (socat pty,raw,echo=0,link=/tmp/ttyV0 pty,raw,echo=0,link=/tmp/ttyV1)`,
    );
  const bootId = v["boot-id"] !== undefined ? int("boot-id", v["boot-id"], 1, 0, 0xffffffff) : undefined;
  // Registry access control lets a device publish only its own frames (access README): its
  // credentials run that one device.
  const credDevice = v.serial ? undefined : deviceOfUsername(urlUsername(url));
  const devices = int("devices", v.devices, credDevice === undefined ? 4 : 1, 1, 100_000);
  const firstId = int("first-id", v["first-id"], credDevice ?? 1, 0, 0xffffffff);
  if (credDevice !== undefined && (devices !== 1 || firstId !== credDevice))
    throw new UsageError(
      `--mqtt logs in as device ${urlUsername(url)}, which may publish only its own frames: run that one device (leave --devices and --first-id out, or --devices 1 --first-id ${credDevice}), one vigil sim per device`,
    );
  if (firstId + devices - 1 > 0xffffffff)
    throw new UsageError(
      `--first-id ${firstId} with --devices ${devices} runs past the last device id (0xffffffff)`,
    );
  const transport: Transport = v.serial
    ? new SerialTransport({ path: v.serial, baudRate: int("baud", v.baud, 115200, 300) })
    : new MqttTransport({
        url,
        connectTimeoutMs: num("connect-timeout-ms", v["connect-timeout-ms"], 30_000, 100),
        onConnectRetry: (cause) =>
          process.stderr.write(
            `sim: no MQTT connection to ${redactUrl(url)} yet (retrying until --connect-timeout-ms): ${cause}\n`,
          ),
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
      ...(bootId !== undefined ? { bootId } : {}),
      // Keeps timestamps far inside 0..2^53-1 µs (frame.ts), clock-jump fault (+10 years) included.
      clockSkewMs: skewMs(v["skew-ms"]),
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
  const target = v.serial ? `serial ${v.serial}` : `MQTT ${redactUrl(url)}`;
  process.stderr.write(
    `sim: ${sim.devices.length} ${profile} device${sim.devices.length === 1 ? "" : "s"} → ${target}\n`,
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
  const verdict = simOutcome(report, {
    target,
    serial: v.serial !== undefined,
    stoppedIds: sim.devices.filter((d) => d.stopped).map((d) => d.id),
    bootIdPinned: bootId !== undefined,
    drainMs: num("drain-ms", v["drain-ms"], 10_000, 0),
    ...(transport instanceof MqttTransport && transport.statusReadable
      ? { gatewayStatus: [...transport.gatewayStatus.values()] }
      : {}),
  });
  for (const w of verdict.warnings) process.stderr.write(`sim: warning: ${w}\n`);
  if (verdict.failure) process.stderr.write(`vigil sim: ${verdict.failure}\n`);
  return verdict.code;
}

/** "ABSURD_TIMESTAMP=10, SCHEMA_MISMATCH=2": NACK reasons by count, the most frequent first. */
function reasonList(nacked: Record<string, number>): string {
  return Object.entries(nacked)
    .filter(([, n]) => n > 0)
    .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
    .map(([k, n]) => `${k}=${n}`)
    .join(", ");
}

/** What to do about the NACK reasons a run got (hardware/PROTOCOL.md, NACK table). */
function nackFix(nacked: Record<string, number>, o: { bootIdPinned: boolean; clockJump: boolean }): string {
  const fixes: string[] = [];
  const has = (k: string): boolean => (nacked[k] ?? 0) > 0;
  if (has("ABSURD_TIMESTAMP"))
    fixes.push(
      o.clockJump
        ? "ABSURD_TIMESTAMP: injected by --faults clockJump, or a --skew-ms beyond the gateway's ingest.maxSkewMs"
        : "ABSURD_TIMESTAMP: the device clocks (--skew-ms) are beyond the gateway's ingest.maxSkewMs: use a smaller --skew-ms or raise ingest.maxSkewMs",
    );
  if (has("SCHEMA_MISMATCH") || has("SEQ_OUT_OF_RANGE"))
    fixes.push(
      o.bootIdPinned
        ? "SCHEMA_MISMATCH/SEQ_OUT_OF_RANGE: the gateway holds other frames under this --boot-id (an earlier run): leave --boot-id out or give an unused one"
        : "SCHEMA_MISMATCH/SEQ_OUT_OF_RANGE: the gateway holds another schema or other frames for this boot of the device: see its log (SEQ_REUSED) and hardware/PROTOCOL.md, NACK table",
    );
  if (has("UNKNOWN_DEVICE"))
    fixes.push(
      "UNKNOWN_DEVICE: register the devices (vigil access sensor register) or add their ids to ingest.allow",
    );
  if (has("REVOKED_DEVICE"))
    fixes.push(
      "REVOKED_DEVICE: resume them (vigil access sensor resume) or take their ids off ingest.revoked",
    );
  if (has("BUSY") || has("RATE_LIMITED"))
    fixes.push("BUSY/RATE_LIMITED: the gateway is overloaded: lower --rate or --devices");
  if (has("STORE_UNAVAILABLE"))
    fixes.push("STORE_UNAVAILABLE: the gateway's store refuses frames (disk space): see its log");
  return fixes.length ? fixes.join("; ") : "see hardware/PROTOCOL.md, NACK table";
}

/** The exit status of a run, the line that says why it failed, and warnings (printed without failing it). */
export interface SimOutcome {
  code: 0 | 1;
  /** One line: the cause and the fix (exit 1). */
  failure?: string;
  warnings: string[];
}

/**
 * Judges a finished run (the exit status in SIM_HELP): a failure for frames still pending, a device
 * still stopped, or nothing acknowledged of what was generated; warnings for abandoned frames and,
 * over MQTT, for a broker on which no gateway's retained status was seen (`gatewayStatus`: the
 * states seen; undefined over serial, and when the broker refused that subscription, as registry
 * access control does for a device's credentials).
 */
export function simOutcome(
  r: SimReport,
  o: {
    target: string;
    serial: boolean;
    stoppedIds: number[];
    bootIdPinned: boolean;
    drainMs: number;
    gatewayStatus?: string[];
  },
): SimOutcome {
  const warnings: string[] = [];
  const reasons = reasonList(r.nacked);
  const fixOpts = { bootIdPinned: o.bootIdPinned, clockJump: (r.faults.clockJump ?? 0) > 0 };
  const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? "" : "s"}`;
  if (o.gatewayStatus !== undefined && !o.gatewayStatus.includes("online"))
    warnings.push(
      o.gatewayStatus.length
        ? `the gateway that publishes its status on ${o.target} is not online (state ${[...new Set(o.gatewayStatus)].join(", ")}): its broker PUBACKs frames nobody stores; start it (vigil start)`
        : `no gateway status (retained vigil/v1/+/+/status) came from ${o.target}: a broker with no gateway behind it PUBACKs every frame, so "acked" does not mean stored; is "vigil start" running with this broker?`,
    );
  if (r.stopped > 0) {
    const ids = o.stoppedIds.map((id) => id.toString(16).padStart(8, "0"));
    const shown = ids.length > 5 ? `${ids.slice(0, 5).join(", ")} … (${ids.length})` : ids.join(", ");
    const refusals = reasonList(
      Object.fromEntries(
        Object.entries(r.nacked).filter(([k]) => k === "UNKNOWN_DEVICE" || k === "REVOKED_DEVICE"),
      ),
    );
    const fix =
      (r.nacked.REVOKED_DEVICE ?? 0) > 0 && !(r.nacked.UNKNOWN_DEVICE ?? 0)
        ? "resume them (vigil access sensor resume) or take their ids off ingest.revoked"
        : (r.nacked.REVOKED_DEVICE ?? 0) > 0
          ? "register them (vigil access sensor register) or add their ids to ingest.allow; a revoked one: vigil access sensor resume, or take it off ingest.revoked"
          : "register them (vigil access sensor register) or add their ids to ingest.allow";
    return {
      code: 1,
      warnings,
      failure: `${plural(r.stopped, "device")} still stopped, refused by the gateway (${refusals || "UNKNOWN_DEVICE/REVOKED_DEVICE"}), ids ${shown} (hex, as in ingest.allow; ${plural(r.pending, "frame")} kept, not stored); ${fix}, then run again`,
    };
  }
  if (r.pending > 0)
    return {
      code: 1,
      warnings,
      failure: `${plural(r.pending, "frame")} still unacknowledged after the drain (--drain-ms ${o.drainMs})${r.acked === 0 ? `, no ACK at all from ${o.target}` : ""}${reasons ? ` (nacked: ${reasons})` : ""}; ${
        o.serial
          ? `is "vigil start --serial" reading the other end of the line?`
          : `is the gateway overloaded? a longer --drain-ms waits for it`
      }${reasons ? `; ${nackFix(r.nacked, fixOpts)}` : ""}`,
    };
  if (r.generated > 0 && r.acked === 0) {
    const lost = [
      r.abandoned ? `${r.abandoned} abandoned` : "",
      r.overflowed ? `${r.overflowed} overflowed` : "",
      r.lostAtReboot ? `${r.lostAtReboot} lost at a reboot` : "",
    ]
      .filter(Boolean)
      .join(", ");
    return {
      code: 1,
      warnings,
      failure: `no frame acknowledged of ${r.generated} generated (${lost || "none sent"}${reasons ? `; nacked: ${reasons}` : ""})${reasons ? `; ${nackFix(r.nacked, fixOpts)}` : ""}`,
    };
  }
  if (r.abandoned > 0)
    warnings.push(
      `${plural(r.abandoned, "frame")} abandoned, refused by the gateway${reasons ? ` (nacked: ${reasons})` : ""}; ${nackFix(r.nacked, fixOpts)}`,
    );
  return { code: 0, warnings };
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
  // Why frames were refused, as --json's "nacked".
  const nacked = Object.entries(s.nacked)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k}=${n}`)
    .join(" ");
  return (
    `t=${s.elapsedS.toFixed(1)}s generated=${s.generated} (${rate}/s) acked=${s.acked} pending=${s.pending} ` +
    `resent=${s.resent} abandoned=${s.abandoned}${stops}${nacked ? ` nacked: ${nacked}` : ""}${faults ? ` faults: ${faults}` : ""}`
  );
}
