/**
 * Where firmware transfers stand, persisted so a gateway restart resumes them (PROTOCOL.md,
 * "Gateway rules", 5.). The device is authoritative for the offset; the gateway persists which
 * release it was sending to which device and in which phase, so it knows to offer it again.
 * The lead backs this interface with the store; {@link MemoryFirmwareProgressStore} is the
 * in-memory implementation for tests and single-process use.
 */

/**
 * `interrupted`: the device stopped answering (NO_RESPONSE while offering, TOO_MANY_RETRIES while
 * transferring). Unlike `failed`, the next offer resumes where the device is.
 */
export type FirmwarePhase = "offering" | "transferring" | "installing" | "done" | "failed" | "interrupted";

export interface FirmwareProgress {
  deviceId: number;
  releaseId: number;
  /** Lowercase hex SHA-256 of the image, so a restart can check it is resuming the same bytes. */
  sha256: string;
  imageSize: number;
  phase: FirmwarePhase;
  /** Bytes the device acknowledged so far (informational: the device says where it is). */
  ackedOffset: number;
  /** Milliseconds since the Unix epoch of this record. */
  updatedMs: number;
  /** Set when phase is "failed" or "interrupted": the FirmwareUpdateError code (and device reason). */
  error?: string;
}

export interface FirmwareProgressStore {
  /** The record of (device, release), or undefined. */
  load(deviceId: number, releaseId: number): Promise<FirmwareProgress | undefined>;
  /** Inserts or replaces the record of (progress.deviceId, progress.releaseId). */
  save(progress: FirmwareProgress): Promise<void>;
  delete(deviceId: number, releaseId: number): Promise<void>;
  /** Every record (a restarting gateway resumes those in "offering", "transferring" or "installing"). */
  list(): Promise<FirmwareProgress[]>;
}

export class MemoryFirmwareProgressStore implements FirmwareProgressStore {
  readonly #records = new Map<string, FirmwareProgress>();
  /** Number of save() calls (tests check that progress writes stay bounded). */
  saves = 0;

  async load(deviceId: number, releaseId: number): Promise<FirmwareProgress | undefined> {
    const r = this.#records.get(key(deviceId, releaseId));
    return r && { ...r };
  }
  async save(progress: FirmwareProgress): Promise<void> {
    this.saves++;
    this.#records.set(key(progress.deviceId, progress.releaseId), { ...progress });
  }
  async delete(deviceId: number, releaseId: number): Promise<void> {
    this.#records.delete(key(deviceId, releaseId));
  }
  async list(): Promise<FirmwareProgress[]> {
    return [...this.#records.values()].map((r) => ({ ...r }));
  }
}

function key(deviceId: number, releaseId: number): string {
  return `${deviceId}:${releaseId}`;
}
