/**
 * The gateway's end of a firmware transfer over a serial port, for tests and the benchmark:
 * a SerialPort, the StreamDecoder, and FirmwareSession.handle() for what comes back. In the
 * product the SerialSource owns the port and routes FW_STATUS / FW_CHUNK_ACK the same way.
 */
import { SerialPort } from "serialport";
import { cobsEncode } from "../../gateway/src/protocol/cobs.ts";
import { encodeFrame, FrameType, type Frame } from "../../gateway/src/protocol/frame.ts";
import { StreamDecoder } from "../../gateway/src/protocol/stream-decoder.ts";
import type { FirmwareSession } from "../../gateway/src/updates/firmware/session.ts";

export class GatewayFirmwarePort {
  session: FirmwareSession | undefined;
  readonly hellos: Array<{ deviceId: number; bootId: number; firmware: string }> = [];
  readonly received: Frame[] = [];
  rejects = 0;
  bytesWritten = 0;
  readonly #decoder = new StreamDecoder();
  #port: SerialPort | undefined;

  constructor(readonly path: string) {}

  async open(): Promise<void> {
    const port = new SerialPort({ path: this.path, baudRate: 115200, autoOpen: false });
    await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
    port.on("data", (chunk: Buffer) =>
      this.#decoder.push(chunk, {
        frame: ({ frame }) => {
          this.received.push(frame);
          if (frame.type === FrameType.Hello) {
            const v = frame.firmware;
            this.hellos.push({
              deviceId: frame.deviceId,
              bootId: frame.bootId,
              firmware: `${v.major}.${v.minor}.${v.patch}`,
            });
          }
          this.session?.handle(frame);
        },
        reject: () => this.rejects++,
      }),
    );
    port.on("error", () => undefined);
    this.#port = port;
  }

  /** The `send` callback of a FirmwareSession. */
  send = (frame: Frame): void => {
    const wire = cobsEncode(encodeFrame(frame));
    this.bytesWritten += wire.length;
    this.#port?.write(wire);
  };

  async close(): Promise<void> {
    const p = this.#port;
    this.#port = undefined;
    if (p?.isOpen) await new Promise<void>((res) => p.close(() => res()));
  }
}
