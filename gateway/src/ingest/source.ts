/** A running ingest source (serial port, MQTT broker or subscription). */
export interface IngestSource {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Source-level counters (reconnects, I/O errors) for the log line and metrics. */
  stats(): Record<string, number>;
  /** Clients connected now, for a source that accepts clients (the embedded broker). */
  clients?(): number;
  /**
   * What the embedded broker keeps for stored sessions (clean = false) now: the sessions, and the
   * messages and payload bytes queued for them until acknowledged (bounded: `mqtt.embedded.limits`).
   */
  storedSessions?(): { sessions: number; messages: number; inbound: number; bytes: number };
  /**
   * Whether the source reaches its input now (the external broker's connection, the serial port
   * open); absent for a source that is always up once started (the embedded broker).
   */
  connected?(): boolean;
}
