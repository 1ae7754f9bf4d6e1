/**
 * A bounded Transform from serial bytes to decoded frames: the streaming face of
 * StreamDecoder (never buffers more than one maximum encoded frame; resynchronises on the
 * next 0x00). Rejections are emitted as `reject` events, not stream errors, so one bad frame
 * never ends the stream.
 */
import { Transform, type TransformCallback } from "node:stream";
import type { FrameError } from "../../protocol/errors.ts";
import { StreamDecoder, type DecodedFrame, type StreamDecoderSink } from "../../protocol/stream-decoder.ts";

export class FrameDecoderStream extends Transform {
  readonly decoder = new StreamDecoder();
  readonly #sink: StreamDecoderSink = {
    frame: (d: DecodedFrame) => this.push(d),
    reject: (e: FrameError) => this.emit("reject", e),
  };

  constructor() {
    // Object mode on the readable side only; highWaterMark bounds queued frames.
    super({ readableObjectMode: true, readableHighWaterMark: 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.decoder.push(chunk, this.#sink);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.decoder.flush(this.#sink);
    cb();
  }
}
