/**
 * The simulator: N devices, deterministic for a seed, paced at `rate` frames/s per device,
 * with fault injection on values, frames, the link and the session. Link faults that destroy
 * a frame replace its first transmission; the device's resend timer then recovers it, the
 * way a real MCU recovers from line noise.
 */
import { randomInt } from "node:crypto";
import { decodeFrame, FrameType, type Frame } from "../../gateway/src/protocol/frame.ts";
import { SimFirmwareHooks, type SimFirmwareOptions } from "./firmware/sim-hooks.ts";
import { FrameError } from "../../gateway/src/protocol/errors.ts";
import { SimDevice, type Pending } from "./device.ts";
import { FaultCounters, type FaultRates, type ScriptedSensorFault } from "./faults.ts";
import { cmapssSources, type CmapssSplit, type CmapssSubset } from "./profiles/cmapss.ts";
import { cwruSources } from "./profiles/cwru.ts";
import { RotatingMachine } from "./profiles/rotating.ts";
import type { SignalSource } from "./profiles/types.ts";
import { Rng } from "./rng.ts";
import type { Transport } from "./transports/types.ts";

export type ProfileName = "rotating" | "cmapss" | "cwru";
export const PROFILE_NAMES: readonly ProfileName[] = ["rotating", "cmapss", "cwru"];

export interface SimulatorOptions {
  transport: Transport;
  /** Number of devices. Default 4. For C-MAPSS, device i replays unit i mod the subset's unit count. */
  devices?: number;
  /** Seed; equal seeds give equal frames and faults. Default 1. */
  seed?: number;
  /** Frames per second per device; 0 = as fast as the link accepts. Default 10. */
  rate?: number;
  /** Stop generating after this many seconds. Default: until every source ends. */
  durationS?: number;
  /** Stop generating after this many frames per device. */
  framesPerDevice?: number;
  profile?: ProfileName;
  /** Mean life in frames for the rotating profile. Default 600. */
  meanLife?: number;
  cmapss?: { subset?: CmapssSubset; split?: CmapssSplit };
  /** `cwru` profile (real CWRU bearing data, profiles/cwru.ts): frames of healthy running, total frames. */
  cwru?: { healthyFrames?: number; frames?: number };
  faults?: FaultRates;
  /**
   * Deterministic sensor faults (NaN, stuck, spike on a named channel from a given frame); one
   * limited to a device id that is not simulated is a RangeError.
   */
  sensorFaults?: readonly ScriptedSensorFault[];
  /** First device id; devices get consecutive ids. Default 1. */
  firstDeviceId?: number;
  /**
   * The boot_id of every device's first boot (its first HELLO), a whole number in [0, 2^32); a
   * `reboot` fault adds one (mod 2^32). Default: a random one per Simulator, not drawn from the
   * seed: a new run is a new boot of every device (PROTOCOL.md: "a device must increment
   * `boot_id` … on every boot"), so a gateway that stored an earlier run's frames stores this
   * run's too. The same boot_id as an earlier run against the same gateway continues that boot:
   * its reused sequence numbers are refused (NACK SCHEMA_MISMATCH, SEQ_REUSED).
   */
  bootId?: number;
  /** Device clock skew in ms applied to every device (within the gateway's tolerance). */
  clockSkewMs?: number;
  /** Resend timeout, ms; also how long a probe waits for its reply. Default 500. */
  resendMs?: number;
  /**
   * A device stopped by NACK UNKNOWN_DEVICE / REVOKED_DEVICE probes every this many ms (HELLO,
   * then its oldest kept frame; the first probe this long after the stop) and resumes when the
   * probe frame is acknowledged (PROTOCOL.md, "A stopped device"). 0 = never probe. Default
   * 60 000: the protocol allows at most one probe a minute; shorter is for development and tests.
   */
  probeIntervalMs?: number;
  /** Unacknowledged frames kept per device. Default 256. */
  window?: number;
  /**
   * How long to wait for outstanding ACKs after generation stops, ms. Default 10 000. Frames of a
   * device stopped by the gateway (UNKNOWN_DEVICE, REVOKED_DEVICE) are not waited for: they stay
   * pending in the report. The drain waits only for the reply to a probe already sent (and for
   * the PUBACKs of PUBLISHes the link still owns, MQTT), not for the next probe; a device that
   * resumes during the drain is drained like the others. Over MQTT it also waits `resendMs` after
   * the last PUBACK, for a NACK that would take its frame back (SimDevice.settle).
   */
  drainMs?: number;
  /**
   * Called with every DATA frame a device saw acknowledged (its exact bytes), once: lets a test
   * check, frame by frame, that what the devices saw acknowledged is what the store holds. Over
   * MQTT a PUBACK counts once no NACK followed it within `resendMs` (SimDevice.settle).
   */
  onAcked?: (deviceId: number, raw: Buffer) => void;
  /** Called every `progressMs` with a snapshot. */
  onProgress?: (s: SimSnapshot) => void;
  /** Default 1000. */
  progressMs?: number;
  /** Firmware updates (PROTOCOL.md, "Firmware update"): which devices have update code (device-sim/src/firmware). */
  firmware?: SimFirmwareOptions;
  /** Ends the run at once (no drain). */
  signal?: AbortSignal;
  /** Ends generation; the drain (resends of unacknowledged frames, up to `drainMs`) still runs. */
  stopSignal?: AbortSignal;
}

export interface SimSnapshot {
  elapsedS: number;
  devices: number;
  generated: number;
  sent: number;
  acked: number;
  dupAcks: number;
  resent: number;
  pending: number;
  abandoned: number;
  overflowed: number;
  /** Unacknowledged frames lost by device reboots (the `reboot` fault). */
  lostAtReboot: number;
  reboots: number;
  /** Devices stopped by the gateway (NACK UNKNOWN_DEVICE / REVOKED_DEVICE) right now. */
  stopped: number;
  /** Probes sent by stopped devices (HELLO + oldest kept frame; PROTOCOL.md, "A stopped device"). */
  probes: number;
  /** Stopped devices that resumed (a probe acknowledged). */
  resumes: number;
  /** Frames the ring dropped while its device was stopped (included in `overflowed`). */
  droppedWhileStopped: number;
  /** ERROR code 2 frames sent: reports of frames the full rings dropped (`overflowed`). */
  overflowReports: number;
  nacked: Record<string, number>;
  faults: Record<string, number>;
  expectedRejects: Record<string, number>;
  disconnects: number;
  /**
   * Intact copies sent of frames already sent intact once (duplicate faults, resends after a
   * lost or slow ACK, releases of reordered frames): the gateway must count each as a duplicate.
   */
  expectedDuplicates: number;
  /** MQTT: PUBLISH → PUBACK times of DATA frames since the previous snapshot (in the report: the whole run). */
  ackLatencyMs?: LatencySummary;
}

/** Percentiles of a set of latencies, ms (NaN when there were none). */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function summarizeLatencies(xs: Float64Array): LatencySummary {
  const s = Float64Array.from(xs).sort();
  const q = (p: number): number => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN);
  const r = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    count: s.length,
    p50: r(q(0.5)),
    p90: r(q(0.9)),
    p99: r(q(0.99)),
    max: r(s.length ? s[s.length - 1]! : NaN),
  };
}

export interface SimReport extends SimSnapshot {
  /** The boot_id of every device's first boot in this run (SimulatorOptions.bootId). */
  bootId: number;
  /** Ground truth per device: profile and failure step (frame index), for model evaluation. */
  groundTruth: Array<{
    deviceId: number;
    profile: string;
    failureStep: number | undefined;
    framesGenerated: number;
    /** Sequences the device still held unacknowledged at the end. */
    pendingSeqs: number[];
  }>;
}

/** The devices' signal sources, seeded: what each device samples, and when its replay ends. */
export function buildSources(
  opts: Pick<SimulatorOptions, "devices" | "profile" | "cmapss" | "cwru" | "meanLife" | "framesPerDevice">,
  rng: Rng,
): SignalSource[] {
  const n = opts.devices ?? 4;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`devices must be a positive integer, got ${n}`);
  if ((opts.profile ?? "rotating") === "cmapss") {
    // More devices than the subset has units reuse units in order (profiles/cmapss.ts).
    return cmapssSources(opts.cmapss?.subset ?? "FD001", opts.cmapss?.split ?? "train", n);
  }
  // `framesPerDevice` sets the replay's length (the recordings are cycled), so every device sends
  // that many frames; otherwise a replay ends after its healthy frames + 200.
  if (opts.profile === "cwru")
    return cwruSources(n, rng, {
      ...(opts.framesPerDevice !== undefined ? { frames: opts.framesPerDevice } : {}),
      ...opts.cwru,
    });
  return Array.from(
    { length: n },
    (_, i) => new RotatingMachine(rng.fork(`machine-${i}`), { meanLife: opts.meanLife ?? 600 }),
  );
}

/**
 * Refuses scripted sensor faults limited (`#ID/ID…`, decimal ids) to a device that is not
 * simulated: such a fault would silently never fire. RangeError (a usage error in `vigil sim`).
 */
function checkSensorFaultDevices(script: readonly ScriptedSensorFault[], first: number, n: number): void {
  const last = first + n - 1;
  for (const f of script)
    for (const id of f.devices ?? [])
      if (!(id >= first && id <= last))
        throw new RangeError(
          `sensor fault device ${id} is not one of the simulated devices ${first}..${last} (ids are decimal)`,
        );
}

export class Simulator {
  /** Every PUBLISH → PUBACK time of the run (MQTT), for the report's percentiles. */
  #runLatencies: Float64Array | undefined;
  #runLatencyN = 0;

  /** Latencies since the last snapshot (undefined for a transport without them). */
  #takeLatencies(): Float64Array | undefined {
    const lat = this.#opts.transport.takeAckLatencies?.();
    if (!lat) return undefined;
    let run = this.#runLatencies ?? new Float64Array(Math.max(4096, lat.length));
    if (this.#runLatencyN + lat.length > run.length) {
      const grown = new Float64Array(Math.max(run.length * 2, this.#runLatencyN + lat.length));
      grown.set(run.subarray(0, this.#runLatencyN));
      run = grown;
    }
    run.set(lat, this.#runLatencyN);
    this.#runLatencyN += lat.length;
    this.#runLatencies = run;
    return lat;
  }

  readonly devices: SimDevice[];
  readonly counters = new FaultCounters();
  readonly #opts: SimulatorOptions;
  readonly #rng: Rng;
  readonly #byId = new Map<number, SimDevice>();
  /** Frames held back by the reorder fault, sent after the device's next frame. */
  readonly #held = new Map<number, Pending>();
  #sent = 0;
  #expectedDuplicates = 0;
  #disconnects = 0;
  #reboots = 0;
  #start = 0;
  readonly #firmware: SimFirmwareHooks | undefined;
  /** The boot_id of every device's first boot (SimulatorOptions.bootId). */
  readonly bootId: number;

  constructor(opts: SimulatorOptions) {
    this.#opts = opts;
    this.#rng = new Rng(opts.seed ?? 1);
    const sources = buildSources(opts, this.#rng);
    const first = opts.firstDeviceId ?? 1;
    checkSensorFaultDevices(opts.sensorFaults ?? [], first, sources.length);
    this.bootId = opts.bootId ?? randomInt(0, 2 ** 32);
    this.devices = sources.map((source, i) => {
      const updater = opts.firmware?.for(first + i);
      return new SimDevice({
        id: first + i,
        source,
        rng: this.#rng.fork(`device-${i}`),
        faults: opts.faults ?? {},
        counters: this.counters,
        clockSkewUs: (opts.clockSkewMs ?? 0) * 1000,
        resendMs: opts.resendMs ?? 500,
        window: opts.window ?? 256,
        bootId: this.bootId,
        ...(opts.probeIntervalMs !== undefined ? { probeIntervalMs: opts.probeIntervalMs } : {}),
        ...(opts.onAcked ? { onAcked: (raw: Buffer) => opts.onAcked!(first + i, raw) } : {}),
        ...(updater ? { updater } : {}),
        ...(opts.sensorFaults ? { script: opts.sensorFaults } : {}),
      });
    });
    for (const d of this.devices) this.#byId.set(d.id, d);
    this.#firmware = opts.firmware
      ? new SimFirmwareHooks(opts.firmware, (id, raw) => opts.transport.send(id, raw))
      : undefined;
  }

  snapshot(): SimSnapshot {
    const lat = this.#takeLatencies();
    const s: SimSnapshot = {
      elapsedS: this.#start ? (Date.now() - this.#start) / 1000 : 0,
      devices: this.devices.length,
      generated: 0,
      sent: this.#sent,
      acked: 0,
      dupAcks: 0,
      resent: 0,
      pending: 0,
      abandoned: 0,
      overflowed: 0,
      lostAtReboot: 0,
      reboots: this.#reboots,
      stopped: 0,
      probes: 0,
      resumes: 0,
      droppedWhileStopped: 0,
      overflowReports: 0,
      nacked: {},
      faults: { ...this.counters.injected },
      expectedRejects: { ...this.counters.expectedRejects },
      disconnects: this.#disconnects,
      expectedDuplicates: this.#expectedDuplicates,
      ...(lat ? { ackLatencyMs: summarizeLatencies(lat) } : {}),
    };
    for (const d of this.devices) {
      s.generated += d.stats.generated;
      s.acked += d.stats.acked;
      s.dupAcks += d.stats.dupAcks;
      s.resent += d.stats.resent;
      s.pending += d.pending.size;
      s.abandoned += d.stats.abandoned;
      s.overflowed += d.stats.overflowed;
      s.lostAtReboot += d.stats.lostAtReboot;
      if (d.stopped) s.stopped++;
      s.probes += d.stats.probes;
      s.resumes += d.stats.resumes;
      s.droppedWhileStopped += d.stats.droppedWhileStopped;
      s.overflowReports += d.stats.overflowReports;
      for (const [k, v] of Object.entries(d.stats.nacked)) s.nacked[k] = (s.nacked[k] ?? 0) + v;
    }
    return s;
  }

  #onControl = (frame: Frame): void => {
    const dev = this.#byId.get(frame.deviceId);
    if (!dev) return;
    if (frame.type === FrameType.Ack) {
      dev.onAck(frame, Date.now());
      this.#firmware?.onAck(dev);
    } else if (this.#firmware?.onFrame(dev, frame)) {
      // handled by the device's update code
    } else if (frame.type === FrameType.Nack) {
      const resend = dev.onNack(frame, Date.now());
      if (resend) {
        this.#opts.transport.send(dev.id, dev.hello());
        const p = dev.pending.get(frame.seq);
        if (p) this.#transmit(dev, p, false);
      }
    }
  };

  /**
   * Sends a pending DATA frame, applying link faults on first transmission only. False when the
   * link refused it (the frame is then queued on the device); a fault that eats it counts as sent.
   */
  #transmit(dev: SimDevice, p: Pending, first: boolean): boolean {
    const t = this.#opts.transport;
    const f = this.#opts.faults ?? {};
    const r = this.#rng;
    this.#sent++;
    if (first) {
      p.offered = true;
      if (r.chance(f.garbage ?? 0)) {
        const noise = r.bytes(r.int(1, 40));
        this.counters.count("garbage");
        if (t.name === "serial") this.counters.expectGarbage(noise);
        else this.#expectPayload(noise);
        t.sendNoise(dev.id, noise);
      }
      if (r.chance(f.drop ?? 0)) {
        this.counters.count("drop");
        return true;
      }
      if (r.chance(f.corrupt ?? 0)) {
        // Flip one bit after the header: the CRC must catch it (a header flip could turn
        // into a length error instead, which would make the expected reason ambiguous).
        const bad = Buffer.from(p.raw);
        const i = r.int(4, bad.length - 1);
        bad[i] = bad[i]! ^ (1 << r.int(0, 7));
        this.counters.count("corrupt");
        this.counters.expect("BAD_CRC");
        t.send(dev.id, bad);
        return true;
      }
      if (r.chance(f.truncate ?? 0)) {
        const cut = p.raw.subarray(0, r.int(1, p.raw.length - 1));
        this.counters.count("truncate");
        this.counters.expect("TRUNCATED");
        t.send(dev.id, cut);
        return true;
      }
      if (!this.#held.has(dev.id) && r.chance(f.reorder ?? 0)) {
        this.counters.count("reorder");
        this.#held.set(dev.id, p);
        return true;
      }
    }
    if (!this.#sendGenuine(dev, p)) return false;
    if (first && r.chance(f.duplicate ?? 0)) {
      this.counters.count("duplicate");
      this.#sendGenuine(dev, p, true);
    }
    const held = this.#held.get(dev.id);
    if (held && held !== p) {
      this.#held.delete(dev.id);
      this.#sendGenuine(dev, held);
    }
    return true;
  }

  /**
   * Sends the intact frame; a poisoned one must be rejected on every transmission. A frame the
   * link refuses (disconnected, window full) is queued on the device (SimDevice.queue) and goes
   * out, in order, when the link has room (`#sendQueued`); a refused forced copy is dropped.
   */
  #sendGenuine(dev: SimDevice, p: Pending, force = false): boolean {
    if (!this.#opts.transport.send(dev.id, p.raw, p.seq, { force })) {
      if (!force) dev.queue(p);
      return false;
    }
    if (p.poison) this.counters.expect(p.poison);
    else if (p.sends > 0) this.#expectedDuplicates++;
    dev.transmitted(p);
    return true;
  }

  /**
   * A stopped device (UNKNOWN_DEVICE, REVOKED_DEVICE) between its probes: it sends nothing but the
   * probe when one is due (HELLO, then its oldest kept frame), and samples on into its ring
   * (`sample`: generation still runs; a full ring drops the oldest). Returns false when it has
   * resumed (MQTT: its probe's PUBACK stood unrefused for `resendMs`): it then runs as usual.
   */
  #stoppedPass(d: SimDevice, now: number, sample?: { rate: number; maxFrames: number }): boolean {
    if (d.tick(now)) return false;
    if (sample && !d.finished && d.step < sample.maxFrames) {
      let budget = Math.min(this.#target(d, now, sample.rate) - d.step, 1000, sample.maxFrames - d.step);
      // With rate 0 the window is the only flow control: a stopped device fills its ring and waits.
      if (sample.rate === 0) budget = Math.min(budget, (this.#opts.window ?? 256) - d.pending.size);
      for (let i = 0; i < budget; i++) {
        const f = d.nextData(now);
        if (!f) break;
        d.queue(f); // kept, not sent: it goes out when the device resumes
      }
    }
    // Sampled first: the probe frame is the oldest of the ring as this pass leaves it (a sample
    // after it could drop it from a full ring before its ACK arrives; the ACK would still resume
    // the device, but the frame would count as dropped though stored).
    const t = this.#opts.transport;
    const p = d.probeFrame(now);
    if (p && t.connected && t.send(d.id, d.hello()) && this.#sendGenuine(d, p)) {
      this.#sent++;
      d.probeSent(p, now);
    }
    return true;
  }

  /** The step a device should have generated up to by `now` (rate 0: a burst ahead). */
  #target(d: SimDevice, now: number, rate: number): number {
    return rate > 0 ? Math.floor(((now - this.#start) / 1000) * rate) + 1 : d.step + 64;
  }

  /**
   * Reports frames the full ring dropped (ERROR code 2, PROTOCOL.md, "Serial framing: COBS"), at
   * most once per interval (SimDevice.overflowReportDue); a resumed device reports what its ring
   * dropped while it was stopped first, before its kept frames ("A stopped device"). Retried while
   * the link refuses it. Called before the BUSY-hold check: ERROR may be sent during a hold.
   */
  #reportDrops(d: SimDevice, now: number, final = false): void {
    if (d.overflowReportDue(now, final) && this.#opts.transport.send(d.id, d.overflowError()))
      d.dropsReported(now);
  }

  /** Resends due frames that the link does not still own (none for a refused device). */
  #resendDue(d: SimDevice, now: number): void {
    if (d.stopped) return;
    const t = this.#opts.transport;
    const owned = t.inFlight ? (p: Pending) => t.inFlight!(d.id, p.seq) : undefined;
    for (const p of d.dueForResend(now, owned)) if (t.connected) this.#transmit(d, p, false);
  }

  /**
   * Hands queued frames (refused earlier by the link) to it, oldest first, until it refuses
   * again. A frame never offered gets its first transmission (link faults drawn then). A refused
   * device (UNKNOWN_DEVICE, REVOKED_DEVICE) keeps them queued: it sends nothing more.
   */
  #sendQueued(d: SimDevice, now: number): void {
    if (d.stopped) return;
    const t = this.#opts.transport;
    for (let p = d.firstQueued(); p && t.connected; p = d.firstQueued()) {
      const taken = p.offered ? this.#sendGenuine(d, p) : this.#transmit(d, p, true);
      if (!taken) return; // refused again: still first in line
      d.markSent(p, now);
    }
  }

  #expectPayload(bytes: Uint8Array): void {
    try {
      decodeFrame(bytes);
      this.counters.expect("GARBAGE_DECODED_AS_FRAME");
    } catch (e) {
      this.counters.expect(e instanceof FrameError ? e.reason : "UNEXPECTED");
    }
  }

  /**
   * After a reconnect, the link's own or the disconnect fault's, every device says HELLO again
   * (hardware/PROTOCOL.md, HELLO). A link drop is not a reboot: same boot id, same counter, the
   * pending frames are resent. A refused device stays silent: a reconnect is not a re-provisioning.
   */
  #helloAfterReconnect(): void {
    const t = this.#opts.transport;
    for (const d of this.devices) {
      if (d.stopped) continue;
      t.send(d.id, d.hello());
      this.#firmware?.announce(d);
    }
  }

  /** Runs to completion (or abort) and returns the final report. */
  async run(): Promise<SimReport> {
    const o = this.#opts;
    const t = o.transport;
    t.onDelivered = (id, seq) => this.#byId.get(id)?.onDelivered(seq, Date.now());
    t.onReconnected = () => this.#helloAfterReconnect();
    await t.open(this.#onControl);
    this.#start = Date.now();
    for (const d of this.devices) {
      t.send(d.id, d.hello());
      this.#firmware?.announce(d);
    }
    const rate = o.rate ?? 10;
    const endAt = o.durationS !== undefined ? this.#start + o.durationS * 1000 : Infinity;
    const maxFrames = o.framesPerDevice ?? Infinity;
    let lastProgress = this.#start;
    const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

    // A stopped device that probes may still resume, so it keeps generation going (it samples on);
    // one that never probes (probeIntervalMs 0) does not hold the run open.
    const generating = () =>
      !o.signal?.aborted &&
      !o.stopSignal?.aborted &&
      Date.now() < endAt &&
      this.devices.some((d) => !d.finished && d.step < maxFrames && (!d.stopped || d.probes));

    while (generating()) {
      const now = Date.now();
      const window = o.window ?? 256;
      for (const d of this.devices) {
        d.settle(now);
        // A refused device sends nothing but its probes (PROTOCOL.md, "A stopped device").
        if (d.stopped && this.#stoppedPass(d, now, { rate, maxFrames })) continue;
        this.#reportDrops(d, now);
        if (d.held(now)) continue;
        // Due resends first: after a BUSY hold the NACKed frame leads (PROTOCOL.md, NACK BUSY).
        this.#resendDue(d, now);
        this.#sendQueued(d, now);
        if (d.finished || d.step >= maxFrames) continue;
        const target = this.#target(d, now, rate);
        let budget = Math.min(target - d.step, 1000, maxFrames - d.step);
        // With rate 0 the window is the only flow control: never overrun it.
        if (rate === 0) budget = Math.min(budget, window - d.pending.size);
        for (let i = 0; i < budget && t.connected; i++) {
          const p = d.nextData(now);
          if (!p) break;
          // Behind frames the link refused, a new frame waits its turn (no overtaking).
          if (d.hasQueued) d.queue(p);
          else this.#transmit(d, p, true);
        }
      }
      if ((o.faults?.disconnect ?? 0) > 0 && t.connected && this.#rng.chance(o.faults?.disconnect ?? 0)) {
        this.counters.count("disconnect");
        this.#disconnects++;
        await t.disconnect();
        await sleep(this.#rng.int(100, 600));
        await t.reconnect();
        this.#helloAfterReconnect();
      }
      if ((o.faults?.reboot ?? 0) > 0 && t.connected && this.#rng.chance(o.faults?.reboot ?? 0)) {
        const d = this.devices[this.#rng.int(0, this.devices.length - 1)]!;
        this.counters.count("reboot");
        this.#reboots++;
        // A frame held back by the reorder fault was in the lost RAM too.
        const held = this.#held.get(d.id);
        if (held) {
          this.#held.delete(d.id);
          if (!d.pending.has(held.seq)) d.stats.lostAtReboot++;
        }
        this.#firmware?.beforeReboot(d);
        // A reset un-stops a stopped device too: every rebooted device announces its new boot.
        d.reboot();
        t.send(d.id, d.hello());
        this.#firmware?.announce(d);
      }
      if (now - lastProgress >= (o.progressMs ?? 1000)) {
        lastProgress = now;
        o.onProgress?.(this.snapshot());
      }
      await t.drain();
      // Rate 0 spins only while a device can send: stopped devices wait for their next probe.
      await sleep(rate > 0 || this.devices.every((d) => d.stopped) ? 5 : 0);
    }
    // Release frames still held by the reorder fault, then wait for outstanding ACKs.
    // A stopped device keeps its frames (pending in the report) and is not waited for, except
    // for the acknowledgements of transmissions the link still owns (MQTT PUBLISHes awaiting their
    // PUBACK: the gateway PUBACKs refused frames too), which need no sending, and the reply to a
    // probe it sent.
    for (const [id, p] of this.#held) {
      const d = this.#byId.get(id);
      if (d && !d.stopped) this.#sendGenuine(d, p);
    }
    this.#held.clear();
    const drainUntil = Date.now() + (o.drainMs ?? 10_000);
    const owned = (d: SimDevice): boolean => {
      if (!t.inFlight) return false;
      for (const seq of d.pending.keys()) if (t.inFlight(d.id, seq)) return true;
      return false;
    };
    const waiting = (): boolean => {
      const now = Date.now();
      return this.devices.some(
        (d) =>
          d.unreportedDrops > 0 ||
          d.awaitingRefusal(now) ||
          (d.pending.size > 0 && (!d.stopped || owned(d) || d.probeOutstanding(now))),
      );
    };
    while (Date.now() < drainUntil && waiting() && !o.signal?.aborted) {
      const now = Date.now();
      for (const d of this.devices) {
        // A stopped device still probes when one is due; it is waited for only while a reply to
        // its probe may come.
        if (d.stopped && this.#stoppedPass(d, now)) continue;
        this.#reportDrops(d, now, true);
        if (d.held(now)) continue;
        this.#resendDue(d, now);
        this.#sendQueued(d, now);
      }
      await t.drain();
      await sleep(20);
    }
    // Let the last ACKs arrive; PUBACKs no NACK followed within the drain stand.
    await sleep(50);
    for (const d of this.devices) d.settle(Date.now(), true);
    o.onProgress?.(this.snapshot());
    this.#firmware?.close();
    await t.close();
    const last = this.snapshot();
    const run = this.#runLatencies;
    return {
      ...last,
      bootId: this.bootId,
      ...(run ? { ackLatencyMs: summarizeLatencies(run.subarray(0, this.#runLatencyN)) } : {}),
      groundTruth: this.devices.map((d) => ({
        deviceId: d.id,
        profile: d.source.profile,
        failureStep: d.source.failureStep,
        framesGenerated: d.stats.generated,
        pendingSeqs: [...d.pending.keys()],
      })),
    };
  }
}
