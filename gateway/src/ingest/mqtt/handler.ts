/**
 * MQTT ingest logic shared by the embedded broker and the external-broker subscription:
 * topic → frame (binary or JSON) → ingest → what to do with the PUBLISH.
 */
import { FrameError } from "../../protocol/errors.ts";
import { decodeFrame, deviceIdHex, parseDeviceIdHex, WITHHOLD_PUBACK_NACKS } from "../../protocol/frame.ts";
import { decodeJsonFrame } from "../../protocol/json.ts";
import type { DecodedFrame } from "../../protocol/stream-decoder.ts";
import { nackTopic, parseIngestTopic } from "../../protocol/topics.ts";
import type { Ingest, IngestReply } from "../ingest.ts";
import { encodeNack } from "../replies.ts";

/**
 * `ack`: PUBACK now (stored, duplicate, or refused for good — MQTT 3.1.1 has no negative
 * PUBACK, so refusals are PUBACKed and reported with a NACK frame on `…/nack`).
 * `retry`: do not acknowledge; the sender must redeliver (store unavailable).
 */
export interface MqttVerdict {
  action: "ack" | "retry";
  nack?: { topic: string; payload: Buffer };
  /**
   * False for a PUBLISH that is not a device frame ingest accepted (undecodable, or NACKed): the
   * embedded broker acknowledges it but passes it to no subscriber (auditors read raw frames).
   */
  forward: boolean;
}

const ACK: MqttVerdict = { action: "ack", forward: true };
const DROP: MqttVerdict = { action: "ack", forward: false };

export class MqttIngestHandler {
  constructor(private readonly ingest: Ingest) {}

  /** True for topics this handler consumes. */
  static handles(topic: string): boolean {
    return parseIngestTopic(topic) !== undefined;
  }

  handle(topic: string, payload: Buffer): MqttVerdict | Promise<MqttVerdict> {
    const t = parseIngestTopic(topic);
    if (!t) return DROP;
    let decoded: DecodedFrame;
    try {
      decoded = t.json ? decodeJsonFrame(payload) : { frame: decodeFrame(payload), raw: payload };
      const topicId = parseDeviceIdHex(t.deviceHex);
      if (topicId === undefined || !("deviceId" in decoded.frame) || decoded.frame.deviceId !== topicId)
        throw new FrameError("TOPIC_MISMATCH", `topic device "${t.deviceHex}" does not match the frame`);
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
      this.ingest.rejectUndecodable(e, "mqtt");
      return DROP;
    }
    const r = this.ingest.handle(decoded, "mqtt");
    return r instanceof Promise ? r.then(verdictFor) : verdictFor(r);
  }
}

function verdictFor(reply: IngestReply): MqttVerdict {
  if (reply.kind !== "nack") return ACK;
  const nack = {
    topic: nackTopic(deviceIdHex(reply.deviceId)),
    payload: encodeNack(reply),
  };
  // STORE_UNAVAILABLE, RATE_LIMITED, BUSY: the frame must be redelivered later.
  return { action: WITHHOLD_PUBACK_NACKS.has(reply.reason) ? "retry" : "ack", nack, forward: false };
}
