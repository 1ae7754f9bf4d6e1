import type { Frame } from "../../../gateway/src/protocol/frame.ts";

/** How simulated devices reach the gateway. */
export interface Transport {
  readonly name: string;
  /** Opens the link; `onControl` receives ACK/NACK/ERROR frames from the gateway. */
  open(onControl: (frame: Frame) => void): Promise<void>;
  /**
   * Sends an unencoded frame. `seq` is set for a genuine DATA frame: transports whose
   * acknowledgement is implicit (MQTT PUBACK) report it through `onDelivered`. Returns whether
   * the frame went on the link now: false when disconnected, when the in-flight window is full,
   * or when the link still owns an earlier transmission of it (MQTT: a PUBLISH awaiting its
   * PUBACK) — the device keeps it and tries again later. `force` sends a second copy anyway
   * (the duplicate fault: a device that republishes).
   */
  send(deviceId: number, raw: Uint8Array, seq?: number, opts?: { force?: boolean }): boolean;
  /**
   * True while the link itself still owns an earlier transmission of (device, seq) (an MQTT
   * PUBLISH awaiting its PUBACK): the device must not resend it at the application level.
   */
  inFlight?(deviceId: number, seq: number): boolean;
  /** Puts raw noise on the link (serial: bytes then a delimiter; MQTT: one payload). */
  sendNoise(deviceId: number, bytes: Uint8Array): void;
  /**
   * Milliseconds from each DATA PUBLISH to its PUBACK since the last call (MQTT only), then
   * forgets them: the simulator reports their percentiles per progress interval and per run.
   */
  takeAckLatencies?(): Float64Array;
  /** Implicit acknowledgement hook (MQTT PUBACK), set by the simulator. */
  onDelivered?: (deviceId: number, seq: number) => void;
  /**
   * Called when the link came back by itself after it was lost (MQTT: the transport's own
   * reconnect), not after `reconnect()`: the devices must say HELLO again (hardware/PROTOCOL.md,
   * HELLO: "sent after boot and after every reconnect"). Set by the simulator.
   */
  onReconnected?: () => void;
  /** Drops the connection (cable pulled, Wi-Fi lost) until `reconnect`. */
  disconnect(): Promise<void>;
  reconnect(): Promise<void>;
  readonly connected: boolean;
  /** Resolves when written data has been handed to the OS. */
  drain(): Promise<void>;
  close(): Promise<void>;
}
