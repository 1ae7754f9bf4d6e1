/**
 * Encoders turn alert-stage events into MQTT messages. The gateway ships one (vigil-json.ts, the
 * documented topic scheme v1); another wire format is one new file implementing this interface.
 */
import type { GatewayEvent, StatusEvent } from "./events.ts";

/** One MQTT message as the gateway publishes it. */
export interface EncodedMessage {
  topic: string;
  payload: Buffer | string;
  qos: 0 | 1;
  retain: boolean;
}

export interface AlertEncoder {
  readonly name: string;
  /** The messages for one event (usually one). */
  encode(e: GatewayEvent): EncodedMessage[];
  /**
   * The message a broker publishes when the gateway vanishes without a clean stop (MQTT last
   * will, [MQTT-3.1.2-8]); built from an offline status event with reason "will".
   */
  will(e: StatusEvent): EncodedMessage;
}
