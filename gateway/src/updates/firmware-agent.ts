/**
 * The firmware update agent: offers the Active firmware release of a target to the sensors of
 * that target over their serial line (protocol v1.1, FirmwareSession), with the same rules as
 * the model agent — approved and not revoked, the right target, never backwards (by version, and
 * by security counter where the device's is known; its bootloader refuses older images too),
 * verified fetch (fetch.ts), a failure keeps the old firmware and is not retried for that device
 * until a different release appears or an operator asks (bytes that were only unreachable,
 * FETCH_FAILED, and a device busy with another release, REFUSED/BUSY, are tried again at the next
 * check or HELLO; a failed download only after the release's backoff, shared by every device, so
 * a boot loop of HELLOs does not hammer a content host that is down). A release is downloaded
 * once for all its devices (firmware-cache.ts): devices that need it at the same time wait on the
 * same download, and later ones reuse it while any transfer of it runs; a device whose last
 * FW_STATUS says its slot is smaller than the release is refused without a download, as the
 * device itself would refuse it (`FW_REFUSED`, TOO_LARGE). Wrong bytes from the
 * sources (a size, hash or CID mismatch) are the sources' fault at first: they extend that
 * backoff too, and are remembered for a device only after `mismatchAttempts` of its downloads in
 * a row got wrong bytes. stop() aborts every download under way. A device that stops answering
 * (NO_RESPONSE, TOO_MANY_RETRIES) has not failed: its transfer is offered again, resuming, at its
 * next HELLO. Transfer progress is persisted in
 * the store ({@link StoreFirmwareProgressStore}), so a gateway restart resumes a transfer by
 * offering again. Images are staged in `<dir>/firmware-staging` only while a transfer needs them,
 * and removed at stop().
 *
 * It plugs into SerialSource as its `firmware` hook: it sees every decoded frame first, routes
 * FW_STATUS / FW_CHUNK_ACK to the device's session and consumes them; a HELLO tells it a
 * device's target (by default its profile) and the version it runs, and a HELLO of a target the
 * last check did not read starts a check.
 */
import { readdirSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import cron from "node-cron";
import type { ReleaseRecord } from "../chain/client.ts";
import { systemClock, type Clock } from "../core/clock.ts";
import { silentLogger, type Logger } from "../core/log.ts";
import type { FirmwareLink, SerialFirmwareHook } from "../ingest/serial/serial-source.ts";
import {
  deviceIdHex,
  FrameType,
  type Frame,
  type HelloFrame,
  type FirmwareVersion,
} from "../protocol/frame.ts";
import {
  compareVersions,
  parseFirmwareImage,
  versionText,
  type FirmwareImageInfo,
} from "../protocol/firmware-image.ts";
import { isTransient, UpdateError, type UpdateErrorCode } from "./errors.ts";
import { retryBackoffMs } from "./backoff.ts";
import { fetchArtifact } from "./fetch.ts";
import { SharedDownloads, type ImageLease } from "./firmware-cache.ts";
import { FirmwareSession, type FirmwareSessionOptions } from "./firmware/session.ts";
import type { FirmwareProgress, FirmwareProgressStore } from "./firmware/progress.ts";
import type { InstallReporter, ReleaseSource, UpdateStateStore } from "./model-agent.ts";
import { viewTimeMs } from "./view-age.ts";
import {
  MAX_FIRMWARE_VERSION_PART,
  firmwareVersionNumber,
  firmwareVersionOf,
  targetId,
} from "./release-meta.ts";

/** The store's update records that also list by prefix (FrameStore has all three). */
export interface ListableStateStore extends UpdateStateStore {
  metaEntries(prefix: string): Promise<Array<[string, Buffer]>>;
}

/** {@link FirmwareProgressStore} in the store's update records (`fw/progress/<device>/<release>`). */
export class StoreFirmwareProgressStore implements FirmwareProgressStore {
  constructor(private readonly state: ListableStateStore) {}
  #key(d: number, r: number): string {
    return `updates/fw/progress/${d}/${r}`;
  }
  async load(deviceId: number, releaseId: number): Promise<FirmwareProgress | undefined> {
    const b = await this.state.getMeta(this.#key(deviceId, releaseId));
    return b && b.length > 0 ? (JSON.parse(b.toString("utf8")) as FirmwareProgress) : undefined;
  }
  async save(p: FirmwareProgress): Promise<void> {
    await this.state.putMeta(this.#key(p.deviceId, p.releaseId), Buffer.from(JSON.stringify(p)));
  }
  async delete(deviceId: number, releaseId: number): Promise<void> {
    await this.state.putMeta(this.#key(deviceId, releaseId), Buffer.alloc(0));
  }
  async list(): Promise<FirmwareProgress[]> {
    const out: FirmwareProgress[] = [];
    for (const [, v] of await this.state.metaEntries("updates/fw/progress/"))
      if (v.length > 0) out.push(JSON.parse(v.toString("utf8")) as FirmwareProgress);
    return out;
  }
}

// Re-exported: the release layout (release-meta.ts) owns the packing; `vigil release` uses it too.
export { MAX_FIRMWARE_VERSION_PART, firmwareVersionNumber, firmwareVersionOf };

/** The security counter a firmware release declares in its metrics (`{"securityCounter":N}`), if any. */
function declaredSecurityCounter(metrics: string | undefined): number | undefined {
  try {
    const c = (JSON.parse(metrics ?? "") as { securityCounter?: unknown } | null)?.securityCounter;
    return typeof c === "number" ? c : undefined;
  } catch {
    return undefined;
  }
}

export interface FirmwareAgentOptions {
  releases: ReleaseSource;
  state: ListableStateStore;
  reporter?: InstallReporter | undefined;
  /** `<dataDir>/updates`; images are staged in its `firmware-staging` folder. */
  dir: string;
  ipfsGateway?: string | undefined;
  fetchTimeoutMs?: number;
  /**
   * A release whose image is larger than this is refused on every device before it is fetched
   * (`TOO_LARGE`, remembered per device), bytes: the image is held in memory while its transfers
   * run, and a device's own slot is not known before its first FW_STATUS. Default 16 777 216 (16 MiB).
   */
  maxFirmwareBytes?: number;
  /**
   * Wait after a release's first failed download (FETCH_FAILED, or wrong bytes: a size, hash or
   * CID mismatch) before any device's check or HELLO fetches it again, ms; doubled after each
   * failed download in a row (at most 6 h, the model agent's schedule: backoff.ts). Default
   * 60 000; 0: no backoff.
   */
  fetchRetryMs?: number;
  /**
   * The downloads of a release in a row that a device waited on and whose sources all delivered
   * wrong bytes (size, hash or CID mismatch) before the release is remembered as failed on that
   * device. Default 8.
   */
  mismatchAttempts?: number;
  /**
   * Whether a device may be updated now: the same answer as ingest's admission (registered and
   * not suspended or revoked). Asked at its HELLO and before every offer. Default: every device.
   */
  admitted?: (deviceId: number) => boolean;
  /** A device's firmware target from its HELLO. Default: its profile. */
  targetOf?: (hello: HelloFrame) => string;
  /** Session timeouts and limits (FirmwareSessionOptions). */
  session?: Pick<
    FirmwareSessionOptions,
    "offerTimeoutMs" | "maxOffers" | "ackTimeoutMs" | "maxRewinds" | "installTimeoutMs" | "timers"
  >;
  log?: Logger;
  /** Called after every install or refusal (publish the status). */
  onChange?: () => void;
  /**
   * A check whose chain view (the source's newest block) is older than this fails, and nothing is
   * offered until a check succeeds (view-age.ts), ms. Default 3 600 000 (updates.staleAfterMs).
   */
  staleAfterMs?: number;
  /** The local clock the view's age and the download backoff are measured with. Default the system clock. */
  clock?: Clock;
}

/** fetchArtifact's content errors: wrong bytes from the sources, their fault until it lasts. */
const WRONG_BYTES: ReadonlySet<string> = new Set<UpdateErrorCode>([
  "SIZE_MISMATCH",
  "HASH_MISMATCH",
  "CID_MISMATCH",
]);

/** Default of {@link FirmwareAgentOptions.maxFirmwareBytes}: 16 MiB, above any MCU's update slot. */
export const DEFAULT_MAX_FIRMWARE_BYTES = 16 * 1024 * 1024;

/**
 * A release's verified image, read once and shared by all its transfers: one Buffer per release,
 * not one per device. Not chunks read from the staged file as the transfer goes, because
 * FirmwareSession (firmware/session.ts) takes the whole image: it hashes it for the offer, and its
 * go-back-N pump cuts chunks synchronously at every acknowledgement, loss or rewind, so reading
 * from the file would make every step of the protocol asynchronous. The image has the release's
 * size (the fetch checks it), which a device's slot bounds (a device whose slot is known to be
 * smaller gets no download at all).
 */
interface StagedImage {
  bytes: Buffer;
  /** Its header, or why it is not a valid image (MANIFEST_MISMATCH on every device). */
  info: FirmwareImageInfo | { invalid: string };
}

interface Device {
  id: number;
  target: string;
  firmware: FirmwareVersion;
  link: FirmwareLink;
}

/** A device's last refused release (any refusal, transient ones included), for `vigil update retry`. */
export interface FirmwareDeviceFailure {
  releaseId: string;
  /** The `counters.rejected` label (UpdateError code, or `FW_` + FirmwareUpdateError code). */
  code: string;
  /** One line: what refused it and why (for FW_REFUSED / FW_REVERTED it ends with the device's reason). */
  reason: string;
  atMs: number;
}

/** A device as the update status lists it. */
export interface FirmwareDeviceStatus {
  id: number;
  target: string;
  /** The version it announced ("1.0.0"). */
  firmware: string;
  /** The release being fetched or sent to it now. */
  updating?: string;
  lastFailure?: FirmwareDeviceFailure;
}

export interface FirmwareAgentCounters {
  /** Checks finished (failed ones included): transfers the check started are under way by then. */
  checks: number;
  checkErrors: number;
  offers: number;
  installs: number;
  /** Installs per device id. */
  installsByDevice: Record<number, number>;
  reports: number;
  reportErrors: number;
  /** FW_STATUS / FW_CHUNK_ACK with no session for the device (stale replies). */
  strayReplies: number;
  /**
   * Store reads or writes that failed: an update stopped before its offer (tried again at the
   * next check or HELLO), or a transfer's progress not saved (the transfer goes on).
   */
  storeErrors: number;
  /** Refused releases / failed transfers by reason (UpdateError codes, and FirmwareUpdateError codes prefixed `FW_`). */
  rejected: Record<string, number>;
  /**
   * Transfers the device stopped answering (NO_RESPONSE, TOO_MANY_RETRIES: a disconnect, or no
   * update support). Not a failure: offered again, resuming where the device is, at its next HELLO.
   */
  interrupted: number;
}

export class FirmwareUpdateAgent implements SerialFirmwareHook {
  readonly counters: FirmwareAgentCounters = {
    checks: 0,
    checkErrors: 0,
    offers: 0,
    installs: 0,
    installsByDevice: {},
    reports: 0,
    reportErrors: 0,
    strayReplies: 0,
    storeErrors: 0,
    rejected: {},
    interrupted: 0,
  };
  readonly progress: StoreFirmwareProgressStore;
  readonly #o: FirmwareAgentOptions;
  readonly #log: Logger;
  readonly #devices = new Map<number, Device>();
  readonly #sessions = new Map<number, Promise<void>>();
  readonly #live = new Map<number, FirmwareSession>();
  /** Active release per target, from the last check. */
  readonly #active = new Map<string, ReleaseRecord>();
  /**
   * Targets the last successful check read: a HELLO of another target asks for a check, unless the
   * last check failed (then the schedule's next check, so a device rebooting in a loop while the
   * chain is unreachable does not make one failed check per HELLO).
   */
  #read = new Set<string>();
  #lastCheckFailed = false;
  /** The check a HELLO asked for, while it runs; `#checkAgain`: another HELLO asked meanwhile. */
  #helloCheck: Promise<void> | undefined;
  #checkAgain = false;
  /** Devices whose transfer was interrupted: offered again at their next HELLO, not at checks. */
  readonly #awaitHello = new Set<number>();
  /**
   * Per device, the update under way (from before its fetch until it settles) and, once it asked
   * for the image, its hold on the release's shared download.
   */
  readonly #inFlight = new Map<number, { releaseId: bigint; lease?: ImageLease<StagedImage> }>();
  /** Per device, the security counter of its last FW_STATUS (images below it are refused). */
  readonly #counterSeen = new Map<number, number>();
  /** Per device, the `slot_size` of its last FW_STATUS (larger images are refused, not fetched). */
  readonly #slotSeen = new Map<number, number>();
  /**
   * The downloads of releases, one per release (key `<sha256>:<release id>`) for all its devices:
   * kept while a transfer holds it; dropping one removes its staged file.
   */
  readonly #images = new SharedDownloads<StagedImage>(() => this.#sweepStaging());
  readonly #lastFailure = new Map<number, FirmwareDeviceFailure>();
  /**
   * Per release, its failed downloads in a row: one backoff shared by every device, so HELLOs
   * (a boot loop) and checks do not fetch it again before `nextMs`. In memory: a restart retries.
   */
  readonly #fetchBackoff = new Map<bigint, { attempts: number; nextMs: number }>();
  /**
   * Per device, its downloads in a row of one release that got wrong bytes; a download of it that
   * gets the verified bytes ends the count. In memory, like the backoff: a restart counts anew.
   */
  readonly #mismatches = new Map<number, { releaseId: bigint; attempts: number }>();
  /** Downloads under way, with the read of the file (stop() waits for them to end, their partial files removed). */
  readonly #fetching = new Set<Promise<unknown>>();
  /** Aborted by stop(): ends every download under way at once (fetch.ts `signal`). */
  #abort = new AbortController();
  readonly #clock: Clock;
  readonly #staging: string;

  constructor(o: FirmwareAgentOptions) {
    this.#o = o;
    this.#log = o.log ?? silentLogger;
    this.#clock = o.clock ?? systemClock;
    this.progress = new StoreFirmwareProgressStore(o.state);
    this.#staging = join(o.dir, "firmware-staging");
  }

  /** SerialFirmwareHook: routes firmware replies to sessions; learns devices from HELLO. */
  onFrame(frame: Frame, link: FirmwareLink): boolean {
    // Held only for a device this agent serves (admitted at its HELLO, and still): anything on a
    // serial line can send FW_STATUS with invented ids, and these maps would grow with each one.
    if (
      frame.type === FrameType.FwStatus &&
      this.#devices.has(frame.deviceId) &&
      this.#o.admitted?.(frame.deviceId) !== false
    ) {
      this.#counterSeen.set(frame.deviceId, frame.securityCounter);
      this.#slotSeen.set(frame.deviceId, frame.slotSize);
    }
    const s = this.#live.get(frame.deviceId);
    if (s?.handle(frame)) return true;
    if (frame.type === FrameType.FwStatus || frame.type === FrameType.FwChunkAck) {
      this.counters.strayReplies++;
      return true;
    }
    if (frame.type === FrameType.Hello) {
      // An unknown or revoked device is never offered firmware (ingest NACKs its HELLO).
      if (this.#o.admitted?.(frame.deviceId) === false) {
        this.#devices.delete(frame.deviceId);
        this.#counterSeen.delete(frame.deviceId);
        this.#slotSeen.delete(frame.deviceId);
        return false;
      }
      const target = this.#o.targetOf?.(frame) ?? frame.profile;
      this.#awaitHello.delete(frame.deviceId); // back (PROTOCOL.md, "Gateway rules", 5.)
      this.#devices.set(frame.deviceId, { id: frame.deviceId, target, firmware: frame.firmware, link });
      const rel = this.#active.get(target);
      if (rel) this.#consider(frame.deviceId, rel);
      // A target the last check did not read (its first device since then, the first after a
      // start included): checked now rather than at the next scheduled check.
      else if (this.#task && !this.#lastCheckFailed && !this.#read.has(target)) this.#checkForHello();
    }
    return false;
  }

  /** One check at a time for HELLOs of unread targets; HELLOs during it ask for one more after it. */
  #checkForHello(): void {
    if (this.#helloCheck) {
      this.#checkAgain = true;
      return;
    }
    this.#helloCheck = this.check().finally(() => {
      this.#helloCheck = undefined;
      if (!this.#checkAgain) return;
      this.#checkAgain = false;
      if (!this.#lastCheckFailed && [...this.#devices.values()].some((d) => !this.#read.has(d.target)))
        this.#checkForHello();
    });
  }

  /** Devices whose last FW_STATUS (security counter, slot size) is held: only devices it serves. */
  get statusesHeld(): number {
    return Math.max(this.#counterSeen.size, this.#slotSeen.size);
  }

  /** Devices seen, with their target, firmware, the update under way and the last refusal. */
  devices(): FirmwareDeviceStatus[] {
    return [...this.#devices.values()].map((d) => {
      const updating = this.#inFlight.get(d.id)?.releaseId.toString();
      const lastFailure = this.#lastFailure.get(d.id);
      return {
        id: d.id,
        target: d.target,
        firmware: versionText(d.firmware),
        ...(updating === undefined ? {} : { updating }),
        ...(lastFailure === undefined ? {} : { lastFailure }),
      };
    });
  }

  /**
   * Reads the Active release of every target seen and offers it where it is newer. Resolves once
   * the transfers are started (not finished: see {@link idle}); counted in `counters.checks` then.
   */
  async check(): Promise<void> {
    try {
      await this.#checkOnce();
    } finally {
      this.counters.checks++;
    }
  }

  async #checkOnce(): Promise<void> {
    try {
      await viewTimeMs(this.#o.releases, this.#clock.nowMs(), this.#o.staleAfterMs ?? 3_600_000);
      const targets = new Set([...this.#devices.values()].map((d) => d.target));
      for (const t of targets) {
        const rel = await this.#o.releases.activeRelease("firmware", targetId("firmware", t));
        if (rel) this.#active.set(t, rel);
        else this.#active.delete(t);
      }
      this.#read = targets;
      this.#lastCheckFailed = false;
    } catch (e) {
      this.#lastCheckFailed = true;
      this.counters.checkErrors++;
      this.#log.warn({ err: (e as Error).message }, "firmware update check failed");
      // What the chain said before may have changed (a revocation): nothing is offered from a
      // view that could not be refreshed, until a check succeeds again.
      this.#active.clear();
      return;
    }
    await this.#retryReports();
    for (const d of this.#devices.values()) {
      const rel = this.#active.get(d.target);
      if (rel) this.#consider(d.id, rel);
    }
  }

  /** Waits for every running transfer to settle. */
  async idle(): Promise<void> {
    while (this.#sessions.size > 0) await Promise.allSettled([...this.#sessions.values()]);
  }

  /**
   * Forgets that `releaseId` failed on `deviceId` (operator request), and the release's download
   * backoff; resolves true when it had failed there.
   */
  async retry(deviceId: number, releaseId: bigint): Promise<boolean> {
    this.#fetchBackoff.delete(releaseId);
    if (this.#mismatches.get(deviceId)?.releaseId === releaseId) this.#mismatches.delete(deviceId);
    const key = `updates/fw/failed/${deviceId}/${releaseId}`;
    const failed = await this.#o.state.getMeta(key);
    await this.#o.state.putMeta(key, Buffer.alloc(0));
    return failed !== undefined && failed.length > 0;
  }

  /** Forgets that `releaseId` failed, on every device it failed on (operator request); resolves with those devices. */
  async retryEverywhere(releaseId: bigint): Promise<number[]> {
    this.#fetchBackoff.delete(releaseId);
    for (const [d, m] of this.#mismatches) if (m.releaseId === releaseId) this.#mismatches.delete(d);
    const devices: number[] = [];
    for (const [k, v] of await this.#o.state.metaEntries("updates/fw/failed/")) {
      const m = /^updates\/fw\/failed\/(\d+)\/(\d+)$/.exec(k);
      if (!m || v.length === 0 || BigInt(m[2]!) !== releaseId) continue;
      if (await this.retry(Number(m[1]), releaseId)) devices.push(Number(m[1]));
    }
    return devices;
  }

  #task: { stop(): unknown } | undefined;

  /**
   * Checks on a node-cron schedule (and at once), after removing what earlier runs left staged
   * (a download cut by a crash, images of finished transfers, and firmware images that versions
   * before `firmware-staging` left in the shared `<dir>/staging`).
   */
  start(schedule: string): void {
    if (this.#abort.signal.aborted) this.#abort = new AbortController();
    this.#sweepStaging();
    void this.#sweepLegacyStaging();
    this.#task = cron.schedule(schedule, () => void this.check());
    void this.check();
  }

  /**
   * Stops the schedule and every session (shutdown; persisted progress lets the next start
   * resume) and aborts every download under way (not a refusal: fetched again when needed).
   * Resolves once those downloads ended and removed their partial files, and the staged images
   * are removed (a transfer not offered yet is not offered any more: fetched again when needed).
   */
  async stop(): Promise<void> {
    this.#task?.stop();
    this.#abort.abort();
    for (const s of this.#live.values()) s.stop();
    this.#images.clear(); // the sessions hold their image in memory: no staged file is read again
    await Promise.allSettled([...this.#fetching]);
    this.#sweepStaging();
  }

  #consider(deviceId: number, rel: ReleaseRecord): void {
    if (this.#sessions.has(deviceId) || this.#awaitHello.has(deviceId)) return;
    // Revoked or suspended since its HELLO: not offered (a transfer under way is not cut).
    if (this.#o.admitted?.(deviceId) === false) return;
    this.#inFlight.set(deviceId, { releaseId: rel.id });
    const p = this.#install(deviceId, rel)
      // What #install does not handle itself is a store failure (reading what failed or was
      // offered before, recording the outcome): counted and logged, and the next check or HELLO
      // considers the device again. Caught here, or the rejection would end the process.
      .catch((e: unknown) =>
        this.#storeFailed(
          deviceId,
          rel,
          e,
          "firmware update state cannot be read or written; tried again at the next check",
        ),
      )
      .finally(() => {
        this.#sessions.delete(deviceId);
        this.#live.delete(deviceId);
        // Installed, refused or interrupted: its hold on the image ends; the last holder's removes
        // the staged file (fetched again when a device needs it later).
        this.#inFlight.get(deviceId)?.lease?.release();
        this.#inFlight.delete(deviceId);
        this.#sweepStaging();
      });
    this.#sessions.set(deviceId, p);
  }

  /**
   * Removes every staged image and `.part` download but those of the releases' shared downloads
   * under way or held by a transfer. Never throws: what cannot be removed is logged and tried next time.
   */
  #sweepStaging(): void {
    const keep = new Set(this.#images.keys().map((k) => k.slice(0, 64)));
    let names: string[];
    try {
      names = readdirSync(this.#staging);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT")
        this.#log.warn({ err: (e as Error).message }, "firmware staging folder cannot be read");
      return;
    }
    for (const n of names) if (!keep.has(n.slice(0, 64))) this.#remove(join(this.#staging, n));
  }

  /**
   * Versions before `firmware-staging` staged firmware images in `<dir>/staging` (the model
   * agent's) and left them: removes those whose sha256 a transfer record names, nothing else.
   */
  async #sweepLegacyStaging(): Promise<void> {
    const dir = join(this.#o.dir, "staging");
    try {
      const shas = new Set((await this.progress.list()).map((p) => p.sha256));
      for (const n of readdirSync(dir))
        if (shas.has(n.slice(0, 64)) && (n.length === 64 || n.endsWith(".part"))) this.#remove(join(dir, n));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT")
        this.#log.warn({ err: (e as Error).message }, "old firmware staging cannot be cleaned");
    }
  }

  #remove(path: string): void {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch (e) {
      this.#log.warn({ path, err: (e as Error).message }, "staged firmware file cannot be removed");
    }
  }

  #storeFailed(deviceId: number, rel: ReleaseRecord, e: unknown, what: string): void {
    this.counters.storeErrors++;
    this.#log.warn(
      { deviceId: deviceIdHex(deviceId), releaseId: rel.id.toString(), err: (e as Error).message },
      what,
    );
  }

  /**
   * Counts and logs a refusal; remembers it for the device unless `transient` (tried again at the
   * next check or HELLO, or as `retry` says).
   */
  async #refuse(
    deviceId: number,
    rel: ReleaseRecord,
    code: string,
    reason: string,
    transient = isTransient(code),
    retry = "tried again at the next check",
  ): Promise<void> {
    this.counters.rejected[code] = (this.counters.rejected[code] ?? 0) + 1;
    this.#lastFailure.set(deviceId, { releaseId: rel.id.toString(), code, reason, atMs: Date.now() });
    this.#o.onChange?.();
    this.#log.warn(
      { deviceId: deviceIdHex(deviceId), releaseId: rel.id.toString(), code },
      `firmware release ${rel.id} for device ${deviceIdHex(deviceId)} refused: ${reason}${transient ? `; ${retry}` : ""}`,
    );
    if (!transient)
      await this.#o.state.putMeta(
        `updates/fw/failed/${deviceId}/${rel.id}`,
        Buffer.from(`${code}: ${reason}`),
      );
  }

  async #install(deviceId: number, rel: ReleaseRecord): Promise<void> {
    const stopped = this.#abort.signal;
    const dev = this.#devices.get(deviceId);
    if (!dev) return;
    // Runs it, or something newer: compared as (major, minor, patch). A version that names no
    // firmware goes on, to be refused below (the image's header cannot match it).
    const wanted = firmwareVersionOf(rel.version);
    if (wanted && compareVersions(dev.firmware, wanted) >= 0) return;
    const failed = await this.#o.state.getMeta(`updates/fw/failed/${deviceId}/${rel.id}`);
    if (failed && failed.length > 0) return;
    // Its last download failed (the content host down): not fetched again before the backoff ends.
    const backoff = this.#fetchBackoff.get(rel.id);
    if (backoff && this.#clock.nowMs() < backoff.nextMs) return;
    // The device's security counter: its last FW_STATUS, else that of what this agent installed there.
    const floor = this.#counterSeen.get(deviceId) ?? (await this.#installedCounter(deviceId));
    // The cached record may be minutes old: the chain's word now, before any byte is sent (a
    // release revoked since the last check is never offered). Unreadable: not now, not remembered.
    let current: ReleaseRecord | null;
    try {
      current = await this.#o.releases.getRelease(rel.id);
    } catch (e) {
      this.counters.checkErrors++;
      this.#log.warn(
        { releaseId: rel.id.toString(), deviceId, err: (e as Error).message },
        "firmware release status unreadable; not offered now",
      );
      return;
    }
    if (current) rel = current;
    try {
      if (!current) throw new UpdateError("NOT_ACTIVE", `release ${rel.id} is not on chain`);
      if (rel.status === "revoked") throw new UpdateError("REVOKED", `release ${rel.id} is revoked`);
      if (rel.status !== "active") throw new UpdateError("NOT_ACTIVE", `release ${rel.id} is ${rel.status}`);
      if (rel.kind !== "firmware" || rel.target !== targetId("firmware", dev.target))
        throw new UpdateError(
          "WRONG_TARGET",
          `release ${rel.id} is not a firmware release for ${dev.target}`,
        );
    } catch (e) {
      return this.#failed(deviceId, rel, e);
    }
    // The device's slot, from its last FW_STATUS: an image that cannot fit is refused before any
    // download with the device's own answer to its offer (PROTOCOL.md, "Device rules": TOO_LARGE
    // if image_size > slot_size): the same code and reason, counted and remembered as its
    // FW_REFUSED is, so the status and `vigil update retry` say the same either way; the log says
    // which. Not known yet (no FW_STATUS since the start): offered, and the device answers.
    const maxBytes = this.#o.maxFirmwareBytes ?? DEFAULT_MAX_FIRMWARE_BYTES;
    if (rel.size > BigInt(maxBytes))
      return this.#refuse(
        deviceId,
        rel,
        "TOO_LARGE",
        `release ${rel.id}'s image is ${rel.size} bytes, above updates.maxFirmwareBytes (${maxBytes}); raise it if this gateway can hold the image, then run vigil update retry ${rel.id}`,
      );
    const slot = this.#slotSeen.get(deviceId);
    if (slot !== undefined && rel.size > BigInt(slot)) {
      this.#log.info(
        {
          deviceId: deviceIdHex(deviceId),
          releaseId: rel.id.toString(),
          slotSize: slot,
          size: rel.size.toString(),
        },
        `firmware release ${rel.id} (${rel.size} bytes) does not fit device ${deviceIdHex(deviceId)}'s ${slot}-byte slot (its last FW_STATUS): not downloaded, not offered`,
      );
      return this.#refuse(
        deviceId,
        rel,
        "FW_REFUSED",
        `device ${deviceIdHex(deviceId)} refused release ${rel.id}: TOO_LARGE`,
      );
    }
    // One download per release for all its devices: joined while under way or held by a transfer.
    const key = `${shaOf(rel)}:${rel.id}`;
    // A download that failed while this device was reading the chain: not started again before the backoff ends.
    const b = this.#fetchBackoff.get(rel.id);
    if (!this.#images.has(key) && b && this.#clock.nowMs() < b.nextMs) return;
    const lease = this.#images.acquire(key, () => this.#load(rel));
    this.#inFlight.set(deviceId, { releaseId: rel.id, lease }); // let go when the update settles (#consider)
    let image: Buffer;
    let info: FirmwareImageInfo;
    try {
      const staged = await lease.value;
      this.#mismatches.delete(deviceId); // the release's bytes: earlier wrong ones are forgotten
      if ("invalid" in staged.info) throw new UpdateError("MANIFEST_MISMATCH", staged.info.invalid);
      image = staged.bytes;
      info = staged.info;
      const number = firmwareVersionNumber(info.version); // MANIFEST_INVALID for a part above 999
      if (number !== rel.version)
        throw new UpdateError(
          "MANIFEST_MISMATCH",
          `the image header says version ${versionText(info.version)} (${number}), the release ${rel.version}`,
        );
      const declared = declaredSecurityCounter(rel.metrics);
      if (declared !== undefined && declared !== info.securityCounter)
        throw new UpdateError(
          "MANIFEST_MISMATCH",
          `the image's security counter is ${info.securityCounter}, the release declares ${declared}`,
        );
      if (floor !== undefined && info.securityCounter < floor)
        throw new UpdateError(
          "NOT_NEWER",
          `the image's security counter ${info.securityCounter} is below device ${deviceIdHex(deviceId)}'s ${floor} (rollback refused)`,
        );
    } catch (e) {
      return this.#failed(deviceId, rel, e);
    }
    const prior = await this.progress.load(deviceId, Number(rel.id));
    // stop() ran while the image or the progress was read: no transfer starts after it.
    if (stopped.aborted) return;
    const session = new FirmwareSession({
      deviceId,
      releaseId: Number(rel.id),
      image,
      send: (fr) => dev.link.send(fr),
      progressStore: this.progress,
      onProgress: (p) => {
        if (p.persistError !== undefined)
          this.#storeFailed(
            deviceId,
            rel,
            p.persistError,
            "firmware transfer progress cannot be saved; the transfer goes on",
          );
      },
      ...this.#o.session,
      // A transfer this gateway left as failed is restarted; an unfinished one is resumed by the offer.
      restart: prior?.phase === "failed",
    });
    this.#live.set(deviceId, session);
    this.counters.offers++;
    this.#log.info(
      { deviceId: deviceIdHex(deviceId), releaseId: rel.id.toString(), resume: prior?.ackedOffset ?? 0 },
      `offering firmware release ${rel.id}`,
    );
    try {
      const res = await session.start();
      dev.firmware = res.firmware;
      this.counters.installs++;
      this.counters.installsByDevice[deviceId] = (this.counters.installsByDevice[deviceId] ?? 0) + 1;
      try {
        await this.#o.state.putMeta(
          `updates/fw/installed/${deviceId}`,
          Buffer.from(
            JSON.stringify({
              releaseId: rel.id.toString(),
              version: rel.version.toString(),
              securityCounter: session.info.securityCounter,
              bytesSent: res.bytesSent,
              totalMs: res.totalMs,
            }),
          ),
        );
      } catch (e) {
        // The device runs it: a record that cannot be written is no refusal of the release.
        this.#storeFailed(deviceId, rel, e, "firmware install cannot be recorded; the device runs it");
      }
      this.#log.info(
        { deviceId: deviceIdHex(deviceId), releaseId: rel.id.toString(), totalMs: res.totalMs },
        `device ${deviceIdHex(deviceId)} runs firmware release ${rel.id}`,
      );
      await this.#report(rel);
      this.#o.onChange?.();
    } catch (e) {
      const code = `FW_${(e as { code?: string }).code ?? "ERROR"}`;
      if (code === "FW_STOPPED") return; // shutdown: resumed at the next start
      if (code === "FW_NO_RESPONSE" || code === "FW_TOO_MANY_RETRIES") {
        // The device went quiet (a disconnect, or no update support): not remembered as failed.
        this.counters.interrupted++;
        this.#awaitHello.add(deviceId);
        this.#o.onChange?.();
        this.#log.warn(
          { deviceId: deviceIdHex(deviceId), releaseId: rel.id.toString(), code },
          `device ${deviceIdHex(deviceId)} stopped answering during firmware release ${rel.id}; offered again, resuming, at its next HELLO`,
        );
        return;
      }
      // BUSY: the device holds another release (installing it) and changed nothing; not remembered.
      const busy = code === "FW_REFUSED" && (e as { reason?: string }).reason === "BUSY";
      await this.#refuse(
        deviceId,
        rel,
        code,
        (e as Error).message.split("\n")[0]!,
        busy || isTransient(code),
      );
    }
  }

  /**
   * Refuses `rel` on the device for `e` (an UpdateError, else FETCH_FAILED), as its code says:
   * nothing for a stop, wrong bytes as the sources' fault at first, FETCH_FAILED within the backoff.
   */
  #failed(deviceId: number, rel: ReleaseRecord, e: unknown): Promise<void> | undefined {
    const err = e instanceof UpdateError ? e : new UpdateError("FETCH_FAILED", (e as Error).message);
    if (err.code === "INTERRUPTED") return; // stop(): no refusal, fetched again when needed
    if (WRONG_BYTES.has(err.code)) return this.#wrongBytes(deviceId, rel, err);
    const b = err.code === "FETCH_FAILED" ? this.#fetchBackoff.get(rel.id) : undefined;
    if (b) {
      const next = new Date(b.nextMs).toISOString();
      return this.#refuse(
        deviceId,
        rel,
        err.code,
        `${err.shortMessage} (download attempt ${b.attempts} in a row; not fetched again before ${next})`,
        true,
        `tried again at the first check or HELLO from ${next} on`,
      );
    }
    return this.#refuse(deviceId, rel, err.code satisfies UpdateErrorCode, err.shortMessage);
  }

  /**
   * Refuses `rel` on the device for wrong bytes from its sources (`err`, the release's backoff
   * already extended by #fetch): remembered only at the device's `mismatchAttempts`-th such
   * download in a row (one source's truncated or wrong answer says nothing about the release).
   */
  #wrongBytes(deviceId: number, rel: ReleaseRecord, err: UpdateError): Promise<void> {
    const max = this.#o.mismatchAttempts ?? 8;
    const m = this.#mismatches.get(deviceId);
    const attempts = (m?.releaseId === rel.id ? m.attempts : 0) + 1;
    const tried = `${err.shortMessage} (wrong bytes from its sources, attempt ${attempts} of ${max}`;
    if (attempts >= max) {
      this.#mismatches.delete(deviceId);
      return this.#refuse(deviceId, rel, err.code, `${tried}: remembered as failed)`, false);
    }
    this.#mismatches.set(deviceId, { releaseId: rel.id, attempts });
    // No backoff when another device's download got the verified bytes since.
    const b = this.#fetchBackoff.get(rel.id);
    if (!b) return this.#refuse(deviceId, rel, err.code, `${tried})`, true);
    const next = new Date(b.nextMs).toISOString();
    return this.#refuse(
      deviceId,
      rel,
      err.code,
      `${tried}; not fetched again before ${next})`,
      true,
      `tried again at the first check or HELLO from ${next} on`,
    );
  }

  /**
   * Downloads `rel`'s image and reads it into memory, once for all the devices that need it
   * (#images); stop() waits for it.
   */
  #load(rel: ReleaseRecord): Promise<StagedImage> {
    const p = (async (): Promise<StagedImage> => {
      const f = await this.#fetch(rel);
      const bytes = await readFile(f.path);
      try {
        return { bytes, info: parseFirmwareImage(bytes) };
      } catch (e) {
        return { bytes, info: { invalid: (e as Error).message } };
      }
    })();
    this.#fetching.add(p);
    const done = (): void => void this.#fetching.delete(p);
    p.then(done, done);
    return p;
  }

  /**
   * Downloads `rel`'s image (aborted by stop()). A FETCH_FAILED or wrong bytes start or extend the
   * release's backoff, once per download: the devices that waited on it count as one.
   */
  async #fetch(rel: ReleaseRecord): Promise<Awaited<ReturnType<typeof fetchArtifact>>> {
    try {
      const f = await fetchArtifact(
        { uris: rel.uris, size: rel.size, sha256: rel.contentHash },
        {
          stagingDir: this.#staging,
          ipfsGateway: this.#o.ipfsGateway,
          timeoutMs: this.#o.fetchTimeoutMs ?? 120_000,
          signal: this.#abort.signal,
        },
      );
      this.#fetchBackoff.delete(rel.id);
      return f;
    } catch (e) {
      if (e instanceof UpdateError && (e.code === "FETCH_FAILED" || WRONG_BYTES.has(e.code))) {
        const attempts = (this.#fetchBackoff.get(rel.id)?.attempts ?? 0) + 1;
        const nextMs = this.#clock.nowMs() + retryBackoffMs(this.#o.fetchRetryMs ?? 60_000, attempts);
        this.#fetchBackoff.set(rel.id, { attempts, nextMs });
      }
      throw e;
    }
  }

  /** The security counter of the release this agent last installed on the device (store), if known. */
  async #installedCounter(deviceId: number): Promise<number | undefined> {
    const b = await this.#o.state.getMeta(`updates/fw/installed/${deviceId}`);
    if (!b || b.length === 0) return undefined;
    try {
      const c = (JSON.parse(b.toString("utf8")) as { securityCounter?: unknown }).securityCounter;
      return typeof c === "number" ? c : undefined; // none in records of earlier versions
    } catch {
      return undefined;
    }
  }

  /** Install reports in flight, by release id (an install and a check never report one release twice). */
  readonly #reporting = new Map<bigint, Promise<void>>();

  #report(rel: ReleaseRecord): Promise<void> {
    const running = this.#reporting.get(rel.id);
    if (running) return running;
    const p = this.#sendReport(rel).finally(() => this.#reporting.delete(rel.id));
    this.#reporting.set(rel.id, p);
    return p;
  }

  async #sendReport(rel: ReleaseRecord): Promise<void> {
    if (!this.#o.reporter) return;
    const key = `updates/fw/reported/${rel.id}`;
    try {
      const done = await this.#o.state.getMeta(key);
      if (done && done.length > 0) return;
      await this.#o.reporter.report(rel.id);
      this.counters.reports++;
      await this.#o.state.putMeta(key, Buffer.from("1"));
    } catch (e) {
      this.counters.reportErrors++;
      this.#log.warn(
        { releaseId: rel.id.toString(), err: (e as Error).message },
        "firmware install report failed; retried at the next check",
      );
    }
  }

  /**
   * Sends again the install reports that failed: for each target's Active release that a device
   * of this gateway runs (installed by this agent) and that is not reported yet. Only Active
   * releases: the chain refuses a report of a revoked one, and a superseded one is not current.
   */
  async #retryReports(): Promise<void> {
    if (!this.#o.reporter) return;
    const installed = new Set<string>();
    try {
      for (const [, v] of await this.#o.state.metaEntries("updates/fw/installed/"))
        if (v.length > 0) installed.add((JSON.parse(v.toString("utf8")) as { releaseId: string }).releaseId);
    } catch (e) {
      this.counters.reportErrors++;
      this.#log.warn(
        { err: (e as Error).message },
        "installed firmware cannot be read; reports retried at the next check",
      );
      return;
    }
    for (const rel of this.#active.values()) if (installed.has(rel.id.toString())) await this.#report(rel);
  }
}

/** Lowercase hex sha256 of a release's file, as fetch.ts names it in staging. */
function shaOf(rel: ReleaseRecord): string {
  return rel.contentHash.replace(/^0x/, "").toLowerCase();
}
