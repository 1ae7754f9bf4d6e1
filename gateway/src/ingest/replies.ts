/**
 * Turns ingest replies into ACK/NACK frames. ACKs are coalesced: frames made durable by the
 * same group commit resolve in the same tick, so consecutive sequences of a device go out as
 * one ACK range (PROTOCOL.md, ACK `first_seq`/`count`).
 */
import { encodeFrame, FrameType } from "../protocol/frame.ts";
import type { Clock } from "../core/clock.ts";
import type { IngestCounters } from "./counters.ts";
import type { IngestReply } from "./ingest.ts";

/** The NACK frame of a refusal (with `retryAfterMs` for BUSY), for serial and MQTT alike. */
export function encodeNack(reply: Extract<IngestReply, { kind: "nack" }>): Buffer {
  return encodeFrame({
    type: FrameType.Nack,
    deviceId: reply.deviceId,
    seq: reply.seq,
    reason: reply.reason,
    ...(reply.retryAfterMs !== undefined ? { retryAfterMs: reply.retryAfterMs } : {}),
  });
}

export class ReplyBatcher {
  readonly #acks = new Map<number, number[]>();
  #scheduled = false;

  constructor(
    private readonly write: (frame: Buffer) => void,
    private readonly clock: Clock,
    private readonly counters: IngestCounters,
  ) {}

  push(reply: IngestReply): void {
    if (reply.kind === "none") return;
    if (reply.kind === "nack") {
      this.counters.nacksSent++;
      this.write(encodeNack(reply));
      return;
    }
    let list = this.#acks.get(reply.deviceId);
    if (!list) this.#acks.set(reply.deviceId, (list = []));
    list.push(reply.seq);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  #flush = (): void => {
    this.#scheduled = false;
    const now = this.clock.nowUs();
    for (const [deviceId, seqs] of this.#acks) {
      seqs.sort((a, b) => a - b);
      let first = 0;
      let count = 0;
      const emit = () => {
        this.counters.acksSent++;
        this.write(
          encodeFrame({ type: FrameType.Ack, deviceId, firstSeq: first, count, gatewayTimeUs: now }),
        );
      };
      for (const s of seqs) {
        if (count > 0 && s === first + count - 1) continue; // the same sequence twice
        if (count > 0 && s === first + count && count < 0xffff) {
          count++;
          continue;
        }
        if (count > 0) emit();
        first = s;
        count = 1;
      }
      if (count > 0) emit();
    }
    this.#acks.clear();
  };
}
