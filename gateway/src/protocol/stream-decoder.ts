/**
 * Incremental COBS frame splitter for byte streams (serial). Bounded: it never holds more
 * than one maximum-size encoded frame (MAX_ENCODED bytes). After garbage, an oversized run
 * or any decode error it resynchronises on the next 0x00 delimiter (hardware/PROTOCOL.md).
 */
import { cobsDecodeInto } from "./cobs.ts";
import { FrameError } from "./errors.ts";
import { decodeFrame, MAX_ENCODED, MAX_FRAME, type Frame } from "./frame.ts";

export interface DecodedFrame {
  frame: Frame;
  /** The unencoded frame bytes (header, payload, CRC): the canonical record. */
  raw: Buffer;
}

export interface StreamDecoderSink {
  frame(decoded: DecodedFrame): void;
  reject(error: FrameError): void;
}

export class StreamDecoder {
  /** Encoded bytes of the frame in progress (bounded by MAX_ENCODED). */
  readonly #pending = Buffer.allocUnsafe(MAX_ENCODED);
  #pendingLen = 0;
  /** True while skipping an oversized run until the next delimiter. */
  #discarding = false;
  readonly #scratch = Buffer.allocUnsafe(MAX_FRAME);
  #bytesDiscarded = 0;

  /** Bytes currently buffered; never exceeds MAX_ENCODED. */
  get buffered(): number {
    return this.#pendingLen;
  }

  /** Total bytes dropped while resynchronising after oversized runs. */
  get bytesDiscarded(): number {
    return this.#bytesDiscarded;
  }

  /** Feeds a chunk of bytes; calls the sink for every complete frame or rejection. */
  push(chunk: Uint8Array, sink: StreamDecoderSink): void {
    let start = 0;
    const n = chunk.length;
    while (start < n) {
      const z = chunk.indexOf(0, start);
      const end = z === -1 ? n : z;
      if (this.#discarding) {
        this.#bytesDiscarded += end - start;
      } else if (this.#pendingLen + (end - start) > MAX_ENCODED) {
        this.#bytesDiscarded += this.#pendingLen + (end - start);
        this.#pendingLen = 0;
        this.#discarding = true;
        sink.reject(new FrameError("OVERSIZED", `no delimiter within ${MAX_ENCODED} bytes`));
      } else if (z !== -1 && this.#pendingLen === 0) {
        // Fast path: the whole frame is inside this chunk.
        if (end > start) this.#emit(chunk, start, end, sink);
      } else {
        if (chunk instanceof Buffer) chunk.copy(this.#pending, this.#pendingLen, start, end);
        else this.#pending.set(chunk.subarray(start, end), this.#pendingLen);
        this.#pendingLen += end - start;
        if (z !== -1) {
          const len = this.#pendingLen;
          this.#pendingLen = 0;
          if (len > 0) this.#emit(this.#pending, 0, len, sink);
        }
      }
      if (z === -1) break;
      this.#discarding = false;
      start = z + 1;
    }
  }

  /** Reports a trailing partial frame (stream ended without a delimiter) and clears state. */
  flush(sink: StreamDecoderSink): void {
    if (this.#pendingLen > 0)
      sink.reject(new FrameError("TRUNCATED", `stream ended inside a frame (${this.#pendingLen} bytes)`));
    this.#pendingLen = 0;
    this.#discarding = false;
  }

  #emit(src: Uint8Array, start: number, end: number, sink: StreamDecoderSink): void {
    const len = cobsDecodeInto(src, start, end, this.#scratch);
    if (len < 0) {
      sink.reject(new FrameError("BAD_COBS", `invalid COBS block of ${end - start} bytes`));
      return;
    }
    const raw = Buffer.from(this.#scratch.subarray(0, len));
    let frame: Frame;
    try {
      frame = decodeFrame(raw);
    } catch (e) {
      if (e instanceof FrameError) {
        sink.reject(e);
        return;
      }
      throw e;
    }
    sink.frame({ frame, raw });
  }
}
