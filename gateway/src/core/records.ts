/**
 * The boundary between ingest and storage. Ingest hands every accepted DATA frame to a
 * sink and acknowledges it to the sender (serial ACK, MQTT PUBACK) only when the promise
 * resolves, i.e. when the record is durable (group commit + fsync in the level store).
 */
export interface FrameRecord {
  deviceId: number;
  /**
   * Extended sequence number, unique per device across boots: the boot's base plus its u32 seq
   * extended by 2^32 × wraps (RFC 3550 §A.1). A safe integer.
   */
  seq: number;
  /** Gateway clock at arrival, µs since the Unix epoch. */
  receivedUs: number;
  /** Device timestamp (µs); equals receivedUs when the device sent 0 (no clock). */
  timestampUs: number;
  /** Unencoded canonical frame bytes (header, payload, CRC) exactly as received. */
  raw: Buffer;
  /**
   * The device boot the frame belongs to (HELLO `boot_id`: a sequence-number space) and where
   * that boot's sequence numbers start in the device's extended space (`seq` = base + the
   * boot's own extended seq). Undefined for frames of a device that has not sent a HELLO.
   */
  boot?: { id: number; base: number };
  /**
   * The gateway's clock was not known good when the frame arrived (ingest/clock-trust.ts: NTP not
   * synchronised yet, or behind the chain's latest block): `receivedUs` and the timestamp's
   * plausibility check rest on an unverified clock, and a timestamp beyond `ingest.maxSkewMs`
   * was accepted instead of NACKed ABSURD_TIMESTAMP. Stored with the frame; not part of its leaf.
   */
  clockUnverified?: true;
}

export type AppendOutcome = "stored" | "duplicate";

export interface FrameSink {
  /**
   * Resolves when the record is durable ("stored") or was already stored ("duplicate": the
   * sender is acknowledged again and nothing is written twice). Rejects with a typed
   * `VigilError` (e.g. `StoreUnavailableError`) when it cannot be stored: the sender is not
   * acknowledged and keeps the frame.
   */
  append(record: FrameRecord): Promise<AppendOutcome>;
}

/**
 * An INFERENCE, ALERT or SENSOR_FAULT attestation leaf (core/leaf.ts): produced by the inference
 * loop and the alert service, recorded by the store in the same arrival-index space as frames, and sealed
 * into batches with them.
 */
export interface LeafRecord {
  kind: "inference" | "alert" | "sensor-fault";
  /** keccak256(preimage): the Merkle leaf, computed once by its producer. */
  hash: Uint8Array;
  /** Canonical preimage: tag (0x02 / 0x03 / 0x04) ‖ body ‖ pad. */
  preimage: Uint8Array;
  deviceId: number;
  timestampUs: number;
}

/** Receives leaves as they are produced; must not throw. */
export type LeafSink = (leaf: LeafRecord) => void;
