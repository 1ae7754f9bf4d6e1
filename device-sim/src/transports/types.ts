import type { Frame } from "../../../gateway/src/protocol/frame.ts";

/** How simulated devices reach the gateway. */
export interface Transport {
  readonly name: string;
  /** Opens the link; `onControl` receives ACK/NACK/ERROR frames from the gateway. */
  open(onControl: (frame: Frame) => void): Promise<void>;
  /**
   * Sends an unencoded frame. `seq` is set for a genuine DATA frame: transports whose
   * acknowledgement is implicit (MQTT PUBACK) report it through `onDelivered`.
   */
  send(deviceId: number, raw: Uint8Array, seq?: number): void;
  /** Puts raw noise on the link (serial: bytes then a delimiter; MQTT: one payload). */
  sendNoise(deviceId: number, bytes: Uint8Array): void;
  /** Implicit acknowledgement hook (MQTT PUBACK), set by the simulator. */
  onDelivered?: (deviceId: number, seq: number) => void;
  /** Drops the connection (cable pulled, Wi-Fi lost) until `reconnect`. */
  disconnect(): Promise<void>;
  reconnect(): Promise<void>;
  readonly connected: boolean;
  /** Resolves when written data has been handed to the OS. */
  drain(): Promise<void>;
  close(): Promise<void>;
}
