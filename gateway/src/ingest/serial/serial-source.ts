/**
 * Serial ingest: one tty (USB-serial adapter or a pty), COBS frames in, ACK/NACK frames out.
 * An unplugged or failing port is reopened with exponential backoff (250 ms → 5 s); nothing
 * the device sent before is lost, because the device resends whatever was not ACKed.
 */
import type { SerialPortStream } from "@serialport/stream";
import { systemClock, type Clock } from "../../core/clock.ts";
import { cobsEncode } from "../../protocol/cobs.ts";
import type { FrameError } from "../../protocol/errors.ts";
import { encodeFrame, type Frame } from "../../protocol/frame.ts";
import type { DecodedFrame } from "../../protocol/stream-decoder.ts";
import { SourceError } from "../errors.ts";
import type { Ingest } from "../ingest.ts";
import { ReplyBatcher } from "../replies.ts";
import type { IngestSource } from "../source.ts";
import { FrameDecoderStream } from "./frame-decoder-stream.ts";

/** A serialport binding (the platform's, or `@serialport/binding-mock`). */
export type SerialBinding = ConstructorParameters<typeof SerialPortStream>[0]["binding"];

export interface SerialSourceOptions {
  path: string;
  /** Default 115200. */
  baudRate?: number;
  /** First reopen delay, ms. Default 250; doubles up to `maxBackoffMs`. */
  backoffMs?: number;
  /** Default 5000. */
  maxBackoffMs?: number;
  clock?: Clock;
  onError?: (e: SourceError) => void;
  /**
   * The serialport binding (default: the platform's, through `serialport`). Tests inject
   * `@serialport/binding-mock` to run open, reopen-with-backoff and replies without a device.
   */
  binding?: SerialBinding;
  /**
   * Firmware updates over this line (updates/firmware-agent.ts): sees every decoded frame first;
   * the frames it consumes (FW_STATUS, FW_CHUNK_ACK) do not reach ingest. HELLO and DATA always do.
   */
  firmware?: SerialFirmwareHook;
}

/** A device link the firmware agent sends FW_OFFER / FW_CHUNK / FW_ABORT frames through. */
export interface FirmwareLink {
  readonly name: string;
  send(frame: Frame): void;
}

/** Declared here (ingest), implemented by the update agent, plugged in by runtime.ts. */
export interface SerialFirmwareHook {
  /** Returns true when the frame was a firmware reply it consumed. */
  onFrame(frame: Frame, link: FirmwareLink): boolean;
}

export class SerialSource implements IngestSource {
  readonly name: string;
  #port: SerialPortStream | undefined;
  #stopped = false;
  #backoff: number;
  #timer: NodeJS.Timeout | undefined;
  readonly #batcher: ReplyBatcher;
  readonly #counters = { opens: 0, reopens: 0, ioErrors: 0, handlerErrors: 0 };
  /** This line as a firmware link (frames are written only while the port is open). */
  readonly link: FirmwareLink;

  constructor(
    private readonly ingest: Ingest,
    private readonly opts: SerialSourceOptions,
  ) {
    this.name = `serial:${opts.path}`;
    this.#backoff = opts.backoffMs ?? 250;
    this.#batcher = new ReplyBatcher((f) => this.#write(f), opts.clock ?? systemClock, ingest.counters);
    this.link = { name: this.name, send: (f) => this.#write(encodeFrame(f)) };
  }

  stats(): Record<string, number> {
    return { ...this.#counters };
  }

  get isOpen(): boolean {
    return this.#port?.isOpen ?? false;
  }

  /** Whether the port is open now (false while it is missing or being reopened). */
  connected(): boolean {
    return this.isOpen;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    await this.#open().catch((e: unknown) => this.#fail(e));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    const p = this.#port;
    this.#port = undefined;
    if (p?.isOpen) await new Promise<void>((res) => p.close(() => res()));
  }

  #write(frame: Buffer): void {
    const p = this.#port;
    if (p?.isOpen) p.write(cobsEncode(frame));
  }

  async #open(): Promise<void> {
    const settings = { path: this.opts.path, baudRate: this.opts.baudRate ?? 115200, autoOpen: false };
    // serialport (and its native binding) is imported when a port is first opened: a gateway
    // without serial sources never loads it (gateway/src/infer/README.md "Where the RSS goes").
    const port = this.opts.binding
      ? new (await import("@serialport/stream")).SerialPortStream({ ...settings, binding: this.opts.binding })
      : new (await import("serialport")).SerialPort(settings);
    await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
    if (this.#stopped) {
      port.close();
      return;
    }
    this.#counters.opens++;
    if (this.#counters.opens > 1) this.#counters.reopens++;
    this.#backoff = this.opts.backoffMs ?? 250;
    this.#port = port;
    const decoder = new FrameDecoderStream();
    // Ingest answers every input with a reply; a throw (or a rejection) is a bug. It is reported
    // and counted, and no reply is sent, so nothing is acknowledged that was not stored (the
    // device sends the frame again). Thrown here, it would end the process from a stream event.
    decoder.on("reject", (e: FrameError) => {
      try {
        this.#batcher.push(this.ingest.rejectUndecodable(e, "serial"));
      } catch (err) {
        this.#handlerFailed(err);
      }
    });
    decoder.on("data", (d: DecodedFrame) => {
      try {
        if (this.opts.firmware?.onFrame(d.frame, this.link)) return;
        const r = this.ingest.handle(d, "serial");
        if (r instanceof Promise)
          r.then((reply) => this.#batcher.push(reply)).catch((err: unknown) => this.#handlerFailed(err));
        else this.#batcher.push(r);
      } catch (err) {
        this.#handlerFailed(err);
      }
    });
    port.pipe(decoder);
    port.on("error", (e) => this.#fail(e));
    port.on("close", () => {
      port.unpipe(decoder);
      if (this.#port === port) this.#port = undefined;
      if (!this.#stopped) this.#fail(new SourceError("SERIAL_IO", this.opts.path, "port closed"));
    });
  }

  #handlerFailed(err: unknown): void {
    this.#counters.handlerErrors++;
    this.opts.onError?.(
      new SourceError(
        "SERIAL_IO",
        this.opts.path,
        `ingest handler failed: ${(err as Error)?.message ?? String(err)}`,
        {
          cause: err,
        },
      ),
    );
  }

  #fail(cause: unknown): void {
    this.#counters.ioErrors++;
    this.opts.onError?.(
      cause instanceof SourceError
        ? cause
        : new SourceError(
            "SERIAL_IO",
            this.opts.path,
            cause instanceof Error ? cause.message : String(cause),
            {
              cause,
            },
          ),
    );
    if (this.#stopped || this.#timer || this.#port?.isOpen) return;
    const delay = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, this.opts.maxBackoffMs ?? 5000);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#stopped) void this.#open().catch((e: unknown) => this.#fail(e));
    }, delay);
  }
}
