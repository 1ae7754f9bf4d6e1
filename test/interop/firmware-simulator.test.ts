/**
 * The full device simulator (device-sim/src/simulator.ts) over a real pty pair, with a small
 * scripted gateway on the other end: a simulated MCU receives new firmware while it keeps
 * sending DATA, and comes back with the new version in its HELLO; and the simulator's serial
 * devices honour a BUSY NACK (nothing sent for retry_after_ms, the NACKed frame first after).
 */
import { SerialPort } from "serialport";
import { afterEach, describe, expect, it } from "vitest";
import { factoryFirmware } from "../../device-sim/src/firmware/index.ts";
import { Simulator } from "../../device-sim/src/simulator.ts";
import { SerialTransport } from "../../device-sim/src/transports/serial.ts";
import { cobsEncode } from "../../gateway/src/protocol/cobs.ts";
import {
  encodeFrame,
  FrameType,
  NackReason,
  type Frame,
  type NackFrame,
} from "../../gateway/src/protocol/frame.ts";
import { StreamDecoder } from "../../gateway/src/protocol/stream-decoder.ts";
import { buildFirmwareImage } from "../../gateway/src/protocol/firmware-image.ts";
import { FirmwareSession } from "../../gateway/src/updates/firmware/session.ts";
import { ptyPair, type PtyPair } from "../helpers/procs.ts";

/** A scripted gateway: ACKs DATA (or answers with `reply`), routes FW frames to a session. */
class MiniGateway {
  readonly seen: Array<{ frame: Frame; atMs: number }> = [];
  session: FirmwareSession | undefined;
  /** Decides the answer to a DATA frame; default ACK. */
  reply: (f: Frame & { type: typeof FrameType.Data }) => Frame | undefined = (f) => ({
    type: FrameType.Ack,
    deviceId: f.deviceId,
    firstSeq: f.seq,
    count: 1,
    gatewayTimeUs: Date.now() * 1000,
  });
  #port: SerialPort | undefined;
  readonly #dec = new StreamDecoder();

  async open(path: string): Promise<void> {
    const p = new SerialPort({ path, baudRate: 115200, autoOpen: false });
    await new Promise<void>((res, rej) => p.open((e) => (e ? rej(e) : res())));
    p.on("data", (chunk: Buffer) =>
      this.#dec.push(chunk, {
        frame: ({ frame }) => {
          this.seen.push({ frame, atMs: Date.now() });
          if (frame.type === FrameType.Data) {
            const r = this.reply(frame);
            if (r) this.send(r);
          } else this.session?.handle(frame);
        },
        reject: () => undefined,
      }),
    );
    p.on("error", () => undefined);
    this.#port = p;
  }

  send = (f: Frame): void => {
    this.#port?.write(cobsEncode(encodeFrame(f)));
  };

  hellos(deviceId: number): string[] {
    return this.seen
      .map((s) => s.frame)
      .filter((f) => f.type === FrameType.Hello && f.deviceId === deviceId)
      .map((f) =>
        f.type === FrameType.Hello ? `${f.firmware.major}.${f.firmware.minor}.${f.firmware.patch}` : "",
      );
  }

  async close(): Promise<void> {
    const p = this.#port;
    if (p?.isOpen) await new Promise<void>((res) => p.close(() => res()));
  }
}

/**
 * The simulator's serial link, logging on the device side, in order and on the device's clock
 * (Date.now(), which the BUSY hold uses too): each NACK as it reaches the devices, each DATA frame
 * they put on the line. Timing the hold there needs no allowance for the pty's latency.
 */
class RecordingSerialTransport extends SerialTransport {
  readonly log: Array<
    { kind: "nack"; frame: NackFrame; atMs: number } | { kind: "data"; seq: number; atMs: number }
  > = [];
  override open(onControl: (f: Frame) => void): Promise<void> {
    return super.open((f) => {
      // Before the device handles it: its hold starts at this time or a little later.
      if (f.type === FrameType.Nack) this.log.push({ kind: "nack", frame: f, atMs: Date.now() });
      onControl(f);
    });
  }
  override send(deviceId: number, raw: Uint8Array, seq?: number, opts?: { force?: boolean }): boolean {
    const sent = super.send(deviceId, raw, seq, opts);
    // After the device decided to send: no earlier than the time it checked its hold.
    if (sent && seq !== undefined) this.log.push({ kind: "data", seq, atMs: Date.now() });
    return sent;
  }
}

let pty: PtyPair | undefined;
let gw: MiniGateway | undefined;
afterEach(async () => {
  await gw?.close();
  await pty?.stop();
  gw = undefined;
  pty = undefined;
});

describe("the device simulator with firmware updates and BUSY, over a pty pair", () => {
  it("behavior: a simulated MCU installs new firmware while sending data and says so in its HELLO", async () => {
    pty = await ptyPair();
    gw = new MiniGateway();
    await gw.open(pty.b);
    const body = new Uint8Array(30_000).map((_, i) => (i * 3) & 0xff);
    const image = buildFirmwareImage({ version: { major: 1, minor: 1, patch: 0 }, securityCounter: 2, body });
    const sim = new Simulator({
      transport: new SerialTransport({ path: pty.a }),
      devices: 2,
      rate: 20,
      durationS: 4,
      drainMs: 2000,
      seed: 9,
      firmware: { for: (id) => (id === 1 ? factoryFirmware({ deviceId: id }) : undefined) },
    });
    const run = sim.run();
    // The device's HELLO and FW_STATUS arrive first; then the gateway offers.
    const g = gw;
    await expect.poll(() => g.hellos(1).length, { timeout: 5000 }).toBe(1);
    const session = new FirmwareSession({ deviceId: 1, releaseId: 3, image, send: g.send });
    g.session = session;
    const result = await session.start();
    const report = await run;
    expect(result.firmware).toEqual({ major: 1, minor: 1, patch: 0 });
    expect(g.hellos(1)).toEqual(["1.0.0", "1.1.0"]);
    expect(g.hellos(2)).toEqual(["1.0.0"]); // the device without update support is untouched
    // DATA kept flowing; every frame was acknowledged except what the install's reset took
    // from the RAM ring (at 20 frames/s and an ACK per frame, at most a frame or two).
    expect(report.acked + report.lostAtReboot).toBe(report.generated);
    expect(report.lostAtReboot).toBeLessThanOrEqual(2);
    expect(report.acked).toBeGreaterThan(100);
    const status = sim.devices[0]!.updater!.status();
    expect(status).toMatchObject({ result: 1, releaseId: 3, securityCounter: 2 });
  });

  it("behavior: after a BUSY NACK a simulated device sends nothing for retry_after_ms, then the NACKed frame first", async () => {
    pty = await ptyPair();
    gw = new MiniGateway();
    await gw.open(pty.b);
    let busySeq = -1;
    const g = gw;
    g.reply = (f) => {
      if (busySeq < 0 && f.seq === 20) {
        busySeq = f.seq;
        return {
          type: FrameType.Nack,
          deviceId: f.deviceId,
          seq: f.seq,
          reason: NackReason.BUSY,
          retryAfterMs: 700,
        };
      }
      return {
        type: FrameType.Ack,
        deviceId: f.deviceId,
        firstSeq: f.seq,
        count: 1,
        gatewayTimeUs: Date.now() * 1000,
      };
    };
    const transport = new RecordingSerialTransport({ path: pty.a });
    const sim = new Simulator({
      transport,
      devices: 1,
      rate: 50,
      framesPerDevice: 80,
      seed: 2,
      drainMs: 5000,
    });
    const report = await sim.run();
    expect(busySeq).toBe(20);
    // Measured where the device got the NACK, not where the gateway sent it (the pty's delay in
    // between is not the device's): from then on it sends nothing for the 700 ms, and the first
    // frame it sends after the hold is the NACKed one.
    const at = transport.log.findIndex((e) => e.kind === "nack");
    const nack = transport.log[at];
    expect(nack).toMatchObject({
      kind: "nack",
      frame: { seq: 20, reason: NackReason.BUSY, retryAfterMs: 700 },
    });
    const sentAfter = transport.log.slice(at + 1).filter((e) => e.kind === "data");
    expect(sentAfter.length).toBeGreaterThan(0);
    expect(sentAfter.filter((e) => e.atMs < nack!.atMs + 700)).toEqual([]);
    expect(sentAfter[0]).toMatchObject({ seq: 20 });
    // …and the gateway got the resent frame.
    expect(
      g.seen.filter((s) => s.frame.type === FrameType.Data && s.frame.seq === 20).length,
    ).toBeGreaterThan(1);
    expect(report.nacked.BUSY).toBe(1);
    expect(report.acked).toBe(80);
  });
});
