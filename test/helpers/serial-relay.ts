/**
 * A serial "cable" between two pty pairs: gateway ⇄ [A.a | A.b] ⇄ relay ⇄ [B.a | B.b] ⇄ device.
 * The relay copies bytes both ways and can
 * - pace each direction to a UART's rate (baud / 10 bytes per second for 8N1), because a pty
 *   moves ~16 MB/s and ignores the baud rate (ENVIRONMENT.md); bytes are delivered in order,
 *   in slices of at most one millisecond's worth, never earlier than the line could carry them;
 * - rewrite whole frames on the way to the device (an attacker or a broken relay), via `tamper`.
 */
import { SerialPort } from "serialport";
import { cobsEncode } from "../../gateway/src/protocol/cobs.ts";
import { encodeFrame, type Frame } from "../../gateway/src/protocol/frame.ts";
import { StreamDecoder } from "../../gateway/src/protocol/stream-decoder.ts";
import { ptyPair, type PtyPair } from "./procs.ts";

export interface RelayOptions {
  /** Pace both directions to this baud rate (8N1: baud / 10 bytes/s). Default: no pacing. */
  baud?: number;
  /** Rewrites frames going to the device; return the frame to forward (or undefined to drop it). */
  tamper?: (frame: Frame) => Frame | undefined;
}

/** Delivers bytes no faster than `bytesPerSecond`, in order. */
class Pacer {
  readonly #queue: Buffer[] = [];
  #queued = 0;
  #credit = 0;
  #last = 0;
  #timer: NodeJS.Timeout | undefined;
  delivered = 0;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly out: (b: Buffer) => void,
  ) {}

  push(b: Buffer): void {
    this.#queue.push(b);
    this.#queued += b.length;
    if (!this.#timer) {
      this.#last = performance.now();
      this.#credit = 0;
      this.#tick();
    }
  }

  #tick = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    // Credit accrues only while bytes wait (an idle line does not bank capacity).
    this.#credit = Math.min(
      this.#credit + ((now - this.#last) * this.bytesPerSecond) / 1000,
      this.bytesPerSecond,
    );
    this.#last = now;
    let n = Math.floor(this.#credit);
    const parts: Buffer[] = [];
    while (n > 0 && this.#queue.length > 0) {
      const head = this.#queue[0]!;
      if (head.length <= n) {
        parts.push(head);
        this.#queue.shift();
        n -= head.length;
      } else {
        parts.push(head.subarray(0, n));
        this.#queue[0] = head.subarray(n);
        n = 0;
      }
    }
    const sent = parts.reduce((a, p) => a + p.length, 0);
    this.#credit -= sent;
    this.#queued -= sent;
    this.delivered += sent;
    if (sent > 0) this.out(Buffer.concat(parts));
    if (this.#queued > 0) this.#timer = setTimeout(this.#tick, 1);
  };

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

export class SerialRelay {
  /** Path the gateway opens. */
  readonly gatewayPath: string;
  /** Path the device opens. */
  readonly devicePath: string;
  /** Bytes carried gateway → device and device → gateway. */
  readonly carried = { toDevice: 0, toGateway: 0 };
  #ports: SerialPort[] = [];
  #pacers: Pacer[] = [];

  private constructor(
    private readonly a: PtyPair,
    private readonly b: PtyPair,
    private readonly opts: RelayOptions,
  ) {
    this.gatewayPath = a.a;
    this.devicePath = b.b;
  }

  static async start(opts: RelayOptions = {}): Promise<SerialRelay> {
    const a = await ptyPair();
    const b = await ptyPair().catch(async (e: unknown) => {
      await a.stop();
      throw e;
    });
    const r = new SerialRelay(a, b, opts);
    await r.#open();
    return r;
  }

  async #open(): Promise<void> {
    const open = async (path: string) => {
      const p = new SerialPort({ path, baudRate: 115200, autoOpen: false });
      await new Promise<void>((res, rej) => p.open((e) => (e ? rej(e) : res())));
      p.on("error", () => undefined);
      this.#ports.push(p);
      return p;
    };
    const gw = await open(this.a.b);
    const dev = await open(this.b.a);
    const bps = this.opts.baud ? this.opts.baud / 10 : 0;
    const toDevice = (b: Buffer) => {
      this.carried.toDevice += b.length;
      dev.write(b);
    };
    const toGateway = (b: Buffer) => {
      this.carried.toGateway += b.length;
      gw.write(b);
    };
    const down = bps ? this.#pacer(bps, toDevice) : toDevice;
    const up = bps ? this.#pacer(bps, toGateway) : toGateway;
    if (this.opts.tamper) {
      const tamper = this.opts.tamper;
      const dec = new StreamDecoder();
      gw.on("data", (chunk: Buffer) =>
        dec.push(chunk, {
          frame: ({ frame }) => {
            const f = tamper(frame);
            if (f) down(cobsEncode(encodeFrame(f)));
          },
          reject: () => undefined,
        }),
      );
    } else {
      gw.on("data", (chunk: Buffer) => down(chunk));
    }
    dev.on("data", (chunk: Buffer) => up(chunk));
  }

  #pacer(bps: number, out: (b: Buffer) => void): (b: Buffer) => void {
    const p = new Pacer(bps, out);
    this.#pacers.push(p);
    return (b) => p.push(b);
  }

  async stop(): Promise<void> {
    for (const p of this.#pacers) p.stop();
    for (const p of this.#ports) if (p.isOpen) await new Promise<void>((res) => p.close(() => res()));
    await this.a.stop();
    await this.b.stop();
  }
}
