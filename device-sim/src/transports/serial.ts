/**
 * Serial transport: COBS frames on a tty (a USB-serial adapter, or one end of a socat pty
 * pair in tests). All simulated devices share the line like MCUs behind a concentrator;
 * ACK/NACK frames carry the device id.
 */
import { SerialPort } from "serialport";
import { cobsEncode } from "../../../gateway/src/protocol/cobs.ts";
import type { Frame } from "../../../gateway/src/protocol/frame.ts";
import { StreamDecoder } from "../../../gateway/src/protocol/stream-decoder.ts";
import type { Transport } from "./types.ts";
import { SimError } from "../errors.ts";

/**
 * A port that cannot be opened, in words and with the fix: a path that is not a tty (a file,
 * /dev/null: serialport's "Inappropriate ioctl for device setting custom baud rate"), a
 * directory, a device the user may not open. Anything else keeps serialport's message.
 */
export function serialOpenError(path: string, e: unknown): SimError {
  const msg = String((e as Error)?.message ?? e).replace(/^Error: /, "");
  const notTty = /Inappropriate ioctl|ENOTTY|Is a directory|EISDIR/i.test(msg);
  const denied = /Permission denied|EACCES/i.test(msg);
  const line = notTty
    ? `${path} is not a serial port (a tty); give the adapter's tty (ls /dev/serial/by-id/) or one end of a socat pty pair (socat pty,raw,echo=0,link=/tmp/ttyV0 pty,raw,echo=0,link=/tmp/ttyV1)`
    : denied
      ? `${path}: permission denied; add your user to the group that owns it (ls -l ${path}; often dialout), then log in again`
      : `${path}: ${msg}`;
  return new SimError("SIM_CONNECT", line, { cause: e });
}

export interface SerialTransportOptions {
  path: string;
  /** Default 115200 (a pty ignores it). */
  baudRate?: number;
}

export class SerialTransport implements Transport {
  readonly name = "serial";
  #port: SerialPort | undefined;
  #onControl: ((f: Frame) => void) | undefined;
  readonly #decoder = new StreamDecoder();
  #connected = false;
  /** Control frames from the gateway that failed to decode (noise on the return path). */
  controlRejects = 0;

  constructor(private readonly opts: SerialTransportOptions) {}

  get connected(): boolean {
    return this.#connected;
  }

  async open(onControl: (f: Frame) => void): Promise<void> {
    this.#onControl = onControl;
    await this.reconnect();
  }

  async reconnect(): Promise<void> {
    const port = new SerialPort({
      path: this.opts.path,
      baudRate: this.opts.baudRate ?? 115200,
      autoOpen: false,
    });
    await new Promise<void>((res, rej) =>
      port.open((e) => (e ? rej(serialOpenError(this.opts.path, e)) : res())),
    );
    port.on("data", (chunk: Buffer) =>
      this.#decoder.push(chunk, {
        frame: ({ frame }) => this.#onControl?.(frame),
        reject: () => this.controlRejects++,
      }),
    );
    port.on("error", () => undefined);
    this.#port = port;
    this.#connected = true;
    // A leading delimiter flushes whatever partial frame the gateway may hold from before.
    port.write(Buffer.from([0]));
  }

  send(_deviceId: number, raw: Uint8Array, _seq?: number, _opts?: { force?: boolean }): boolean {
    if (!this.#connected || !this.#port) return false;
    this.#port.write(cobsEncode(raw));
    return true;
  }

  sendNoise(_deviceId: number, bytes: Uint8Array): void {
    if (this.#connected) this.#port?.write(Buffer.concat([bytes, Buffer.from([0])]));
  }

  async drain(): Promise<void> {
    const p = this.#port;
    if (p && this.#connected) await new Promise<void>((res) => p.drain(() => res()));
  }

  async disconnect(): Promise<void> {
    const p = this.#port;
    this.#connected = false;
    this.#port = undefined;
    if (p?.isOpen) {
      await new Promise<void>((res) => p.drain(() => res()));
      await new Promise<void>((res) => p.close(() => res()));
    }
  }

  async close(): Promise<void> {
    await this.disconnect();
  }
}
