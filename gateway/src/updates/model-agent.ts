/**
 * The model update agent: follows the Active release of every device profile its live models
 * serve, and installs a newer one the way TUF/Uptane clients do — nothing runs unless the chain
 * approved it, nothing goes backwards, every failure leaves the old model running and says why.
 *
 * One release, in order (each step's failure is an {@link UpdateError} with its code):
 * 1. on chain: Active (NOT_ACTIVE / REVOKED), kind model and target = a served profile
 *    (WRONG_TARGET), version above the installed one (NOT_NEWER; the installed version is the
 *    highest of: the live manifest's, the one persisted in the store, and the one this gateway last
 *    reported on chain — so neither a restart nor a restored old data folder reopens a rollback).
 *    A release of the model file already live (its contentHash = the live sha256) is a new manifest
 *    beside the same ONNX file (thresholds, data-quality rules, alert settings): it installs
 *    through every step below like any release, unless it is the release already live (its pinned
 *    manifest is the live model's file) or the live version's own (same version, not installed
 *    here: the package's release) — both skipped without a word; one older still is NOT_NEWER;
 * 2. fetch (fetch.ts): a model above `maxModelBytes` refused first (TOO_LARGE); model capped at
 *    its size and sha256-checked, manifest pinned by the release's metrics (release-meta.ts),
 *    ipfs:// CIDs recomputed; a release revoked meanwhile is not loaded (REVOKED);
 * 3. the manifest describes the model (model-check.ts: file names plain, no "../") and serves the
 *    live model's profiles; the model loads in onnxruntime (MODEL_INVALID) — the release's own
 *    file, never one of the manifest's `model.variants` (the release's hash does not cover them);
 * 4. shadow: it runs beside the live model on live windows (InferenceLoop.addShadow), in a worker
 *    thread of its own, for `shadowWindows` windows or `shadowMaxMs`; promoted only if every output
 *    was finite and in the manifest's range and its median per-window cost stayed within
 *    `maxCostFactor` × the live one's (SHADOW_FAILED; far beyond it after 5 windows: judged then;
 *    for cost alone tried again after a backoff, `costAttempts`); revoked meanwhile: REVOKED;
 *    the agreement (mean/max |Δ|) is logged and in the status; a phase in which no window ran,
 *    the live model's neither (no frames came), judges nothing: NO_WINDOWS, tried again at the
 *    next check;
 * 5. swap (InferenceLoop.promote: atomic between ticks; alerts keep their hysteresis), persist the
 *    installed version, unload the old model, then a signed `reportInstalled` on chain (a failed
 *    report is retried at the next check; the install stands).
 * A failed release is remembered (in the store) and not tried again until a different release
 * appears or an operator calls `retry(id)`, unless its bytes were only unreachable (FETCH_FAILED,
 * `isTransient`): then the next check tries again. Wrong bytes from its sources (a size, hash or
 * CID mismatch of the model or of the pinned manifest) are the sources' fault at first: tried again
 * after a backoff (`mismatchRetryMs`, doubling), remembered only when `mismatchAttempts` attempts in
 * a row got wrong bytes. Checks run on a node-cron schedule and on demand
 * (`check()`, e.g. on a registry event); when none succeeded for `staleAfterMs` the agent marks
 * itself stale and raises the `update-check-stale` alert (freeze attack).
 */
import { readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import cron from "node-cron";
import type { ReleaseRecord } from "../chain/client.ts";
import { systemClock, type Clock } from "../core/clock.ts";
import type { Hex } from "../core/hex.ts";
import { fileError, VigilError } from "../core/errors.ts";
import { silentLogger, type Logger } from "../core/log.ts";
import type { ModelManifest } from "../infer/features/manifest.ts";
import { InferError } from "../infer/errors.ts";
import type { ShadowStats } from "../infer/lane.ts";
import type { InferenceLoop } from "../infer/loop.ts";
import {
  loadModel,
  readManifest,
  releaseModel,
  sha256File,
  type LoadedModel,
  type RegistryOptions,
} from "../infer/registry.ts";
import { isTransient, UpdateError, type UpdateErrorCode } from "./errors.ts";
import { retryBackoffMs } from "./backoff.ts";
import { fetchArtifact, removeStaleParts } from "./fetch.ts";
import { checkModelAgainstManifest } from "./model-check.ts";
import { parseModelMeta, semverToVersion, targetId } from "./release-meta.ts";
import { viewTimeMs } from "./view-age.ts";
import { makeDirSync } from "../core/make-dir.ts";

/**
 * Load options that make the registry run a release's own file, the manifest's `model.file` (the
 * bytes the chain approved), whatever `model.prefer` or `models.precision` say: its
 * `model.variants` are not part of the release (neither fetched nor covered by its hash).
 */
function releaseFileOnly(manifest: ModelManifest, tuning: RegistryOptions): RegistryOptions {
  return { ...tuning, precision: manifest.model.precision ?? "float32" };
}

/** Where releases are read from: the registry client today, the registry watch's cache later. */
export interface ReleaseSource {
  activeRelease(kind: "model" | "firmware", target: Hex): Promise<ReleaseRecord | null>;
  getRelease(id: bigint): Promise<ReleaseRecord | null>;
  /** The release this gateway last reported installed for `kind` (0n = none). */
  installedRelease?(kind: "model" | "firmware"): Promise<bigint>;
  /**
   * Seconds of the newest block this source reads from (block.timestamp): a view older than
   * `staleAfterMs` is not acted on (view-age.ts). Absent: the view's age is not checked.
   */
  chainTimeS?(): Promise<bigint>;
}

/** Sends the signed install report (chain `reportInstalled`). */
export interface InstallReporter {
  report(releaseId: bigint): Promise<void>;
}

/** The bit of the store the agent persists into (FrameStore's meta records fit). */
export interface UpdateStateStore {
  getMeta(key: string): Promise<Buffer | undefined>;
  putMeta(key: string, value: Buffer): Promise<void>;
}

/** In-memory {@link UpdateStateStore} for tests. */
export class MemoryUpdateState implements UpdateStateStore {
  readonly map = new Map<string, Buffer>();
  async getMeta(key: string): Promise<Buffer | undefined> {
    return this.map.get(key);
  }
  async putMeta(key: string, value: Buffer): Promise<void> {
    this.map.set(key, Buffer.from(value));
  }
}

export interface ModelAgentOptions {
  loop: InferenceLoop;
  releases: ReleaseSource;
  state: UpdateStateStore;
  reporter?: InstallReporter | undefined;
  /** Folder for downloads and installed releases (`<dataDir>/updates`). */
  dir: string;
  /** IPFS HTTP gateway base URL for ipfs:// URIs (updates.ipfsGateway). */
  ipfsGateway?: string | undefined;
  /** Windows the candidate runs in shadow before it may be promoted. Default 100. */
  shadowWindows?: number;
  /** Longest shadow phase, ms; at its end the candidate is judged on the windows it ran. Default 600 000. */
  shadowMaxMs?: number;
  /** Candidate cost per window may be at most this × the live model's. Default 3. */
  maxCostFactor?: number;
  /** How often the shadow is evaluated, ms. Default 1000. */
  evalMs?: number;
  /** node-cron expression of the periodic check. Default every 5 minutes. */
  schedule?: string;
  /**
   * Stale after this long without a successful check, ms; a check whose chain view (newest block)
   * is older than this fails (view-age.ts), and a successful one counts from its view's time.
   * Default 3 600 000 (1 h).
   */
  staleAfterMs?: number;
  /** Per-URI download timeout, ms. Default 120 000. */
  fetchTimeoutMs?: number;
  /**
   * Attempts in a row whose sources all delivered wrong bytes (size, hash or CID mismatch) before
   * the release is remembered as failed. Default 8.
   */
  mismatchAttempts?: number;
  /** Wait after the first such attempt before the next, ms; doubled after each (at most 6 h). Default 60 000. */
  mismatchRetryMs?: number;
  /**
   * A release whose model file is larger than this is refused before anything is fetched
   * (`TOO_LARGE`), bytes: its bytes are read whole and hashed on the main thread, and held by the
   * inspection and shadow workers (twice onnxruntime's memory for it). Default 33 554 432 (32 MiB).
   */
  maxModelBytes?: number;
  /**
   * Shadow phases in a row in which the candidate cost more than `maxCostFactor` × the live
   * model before the release is remembered as failed (the machine's load may be why). Default 3.
   */
  costAttempts?: number;
  /** Wait after the first such phase before the next, ms; doubled after each (at most 6 h). Default 600 000. */
  costRetryMs?: number;
  clock?: Clock;
  log?: Logger;
  /** Called with every status change (publish it retained, e.g. vigil/<gw>/status/updates). */
  onStatus?: (s: UpdateStatus) => void;
  /** Raised (true) / cleared (false) when checks have been failing for longer than `staleAfterMs`. */
  onStale?: (stale: boolean, sinceMs: number) => void;
  /** Called after a swap, with the new and the old model. */
  onInstalled?: (model: LoadedModel, old: LoadedModel, releaseId: bigint) => void;
}

export interface UpdateStatus {
  state: "idle" | "checking" | "fetching" | "shadowing" | "stale";
  stale: boolean;
  lastCheckMs: number | undefined;
  lastCheckError: string | undefined;
  /** The candidate in shadow. */
  candidate: { releaseId: string; version: string; sha256: string } | undefined;
  /**
   * The last install, with the shadow's agreement with the live model; after a restart, the
   * newest one recorded in the store (`atMs` and `shadow` null for an install recorded by a
   * version that did not keep them).
   */
  lastInstall:
    | {
        releaseId: string;
        version: string;
        sha256: string;
        atMs: number | null;
        shadow: { windows: number; meanAbsDiff: number; maxAbsDiff: number; costRatio: number } | null;
        reported: boolean;
      }
    | undefined;
  /** The last refused release and why (kept in the store: shown again after a restart). */
  lastFailure: { releaseId: string; code: UpdateErrorCode; reason: string; atMs: number } | undefined;
}

export interface ModelAgentCounters {
  checks: number;
  checkErrors: number;
  installs: number;
  reports: number;
  reportErrors: number;
  /** Refused releases by reason code. */
  rejected: Partial<Record<UpdateErrorCode, number>>;
}

interface Installed {
  version: string;
  releaseId: string;
  sha256: string;
  /**
   * sha256 of the release's manifest file (its pinned `metrics.manifest.sha256`). Absent in
   * records written before a release could change only the manifest: those releases always
   * changed the model file, so their model's sha256 alone names them.
   */
  manifestSha256?: string;
  reported: boolean;
  /** When it was installed, ms (absent in records written before it was kept). */
  atMs?: number;
  /** The shadow phase's figures (absent in records written before they were kept). */
  shadow?: { windows: number; meanAbsDiff: number; maxAbsDiff: number; costRatio: number };
}

/** The store's record of the last refused release, shown again after a restart. */
const LAST_FAILURE_KEY = "updates/last-failure";

/** sha256 of the manifest files loaded models were read from (see {@link manifestSha256}). */
const manifestShas = new WeakMap<LoadedModel, string>();

/**
 * sha256 of the manifest file `m` was loaded from (read once per model; a release's is seeded
 * from its pinned hash): with the model's own sha256 it tells which release a live model is,
 * also when two releases carry the same ONNX file. Throws a FileAccessError when it cannot be read.
 */
function manifestSha256(m: LoadedModel): string {
  let s = manifestShas.get(m);
  if (s === undefined) {
    try {
      s = sha256File(readFileSync(m.manifestPath));
    } catch (e) {
      throw fileError(e, "read the model manifest") ?? e;
    }
    manifestShas.set(m, s);
  }
  return s;
}

/** Whether `live` is the model of install record `inst` (old records: by the model file alone). */
function isInstalled(inst: Installed, live: LoadedModel): boolean {
  return (
    inst.sha256 === live.sha256 &&
    (inst.manifestSha256 === undefined || inst.manifestSha256 === manifestSha256(live))
  );
}

const MAX_MANIFEST_BYTES = 1n << 20n;
const CONTENT_CODES: ReadonlySet<UpdateErrorCode> = new Set([
  "SIZE_MISMATCH",
  "HASH_MISMATCH",
  "CID_MISMATCH",
]);

/**
 * Refusals caused by wrong bytes from a release's sources (fetchArtifact's content errors, as such
 * or as the pinned manifest's MANIFEST_INVALID): a fault of the sources until it lasts.
 */
const sourceFaults = new WeakSet<UpdateError>();

/**
 * Cost refusals (SHADOW_FAILED for cost alone): a machine busy with something else makes a
 * candidate look slow, so the release is tried again after a backoff before it is remembered.
 */
const costFaults = new WeakSet<UpdateError>();

/** Default of {@link ModelAgentOptions.maxModelBytes}: 32 MiB, 70× the largest model shipped (0.45 MB). */
export const DEFAULT_MAX_MODEL_BYTES = 32 * 1024 * 1024;

/**
 * A candidate whose median cost after this many shadow windows is more than
 * {@link EARLY_COST_MARGIN} × `maxCostFactor` × the live model's is judged at once: each of its
 * windows holds the inference tick (the live model's next windows wait) and a core, so a 1000×
 * slower model is not run for `shadowWindows` windows first.
 */
const EARLY_COST_WINDOWS = 5;
const EARLY_COST_MARGIN = 2;
/** How often the release's status is read again during a shadow phase, ms (and at its end). */
const STATUS_READ_MS = 30_000;

/** `e` marked as a source's wrong bytes when it is a content error of a fetch. */
function fromSource(e: unknown, as: UpdateError = e as UpdateError): unknown {
  if (e instanceof UpdateError && CONTENT_CODES.has(e.code)) sourceFaults.add(as);
  return as;
}

/**
 * The store's record of a release tried again after a backoff: its sources delivered wrong bytes
 * (`updates/mismatch/<id>`), or it cost too much in shadow (`updates/slow/<id>`).
 */
interface Mismatch {
  /** Attempts in a row that failed so. */
  attempts: number;
  /** Not tried again before this time (ms). */
  nextMs: number;
}

export class ModelUpdateAgent {
  readonly counters: ModelAgentCounters = {
    checks: 0,
    checkErrors: 0,
    installs: 0,
    reports: 0,
    reportErrors: 0,
    rejected: {},
  };
  readonly #o: ModelAgentOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  #status: UpdateStatus = {
    state: "idle",
    stale: false,
    lastCheckMs: undefined,
    lastCheckError: undefined,
    candidate: undefined,
    lastInstall: undefined,
    lastFailure: undefined,
  };
  #lastOkMs: number;
  /** Installs of this run whose report failed: retried at each check while their model is live. */
  readonly #unreported = new Map<bigint, { profiles: readonly string[]; model: LoadedModel }>();
  /** Releases reported in this run (their record may say otherwise if it could not be updated). */
  readonly #sent = new Set<bigint>();
  #running: Promise<void> | undefined;
  #task: { stop(): unknown } | undefined;
  #staleTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Aborted by stop(): ends a download under way at once (fetch.ts `signal`). */
  #abort = new AbortController();
  #judgeNow = false;

  constructor(o: ModelAgentOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#log = o.log ?? silentLogger;
    this.#lastOkMs = this.#clock.nowMs();
  }

  status(): UpdateStatus {
    return structuredClone(this.#status);
  }

  #set(p: Partial<UpdateStatus>): void {
    this.#status = { ...this.#status, ...p };
    this.#o.onStatus?.(this.status());
  }

  /** Starts the cron schedule and the stale watch, and runs a first check. */
  start(): void {
    this.#stopped = false;
    if (this.#abort.signal.aborted) this.#abort = new AbortController();
    // Partial downloads a crash or a power cut left (fetch.ts removes its own on every failure).
    const parts = removeStaleParts(join(this.#o.dir, "staging"));
    if (parts.length > 0) this.#log.info({ files: parts }, `${parts.length} partial downloads removed`);
    this.#task = cron.schedule(this.#o.schedule ?? "*/5 * * * *", () => void this.check());
    const every = Math.min(60_000, Math.max(1000, (this.#o.staleAfterMs ?? 3_600_000) / 10));
    this.#staleTimer = setInterval(() => this.checkStale(), every);
    this.#staleTimer.unref();
    const first = this.restoreInstalled()
      .catch((e: unknown) => this.#log.error({ err: (e as Error).message }, "installed models not restored"))
      .then(() => this.#checkOnce());
    this.#running = first;
  }

  /**
   * After a restart the loop runs the models of the package (or models.dir); a model a release
   * installed before is put back live here, from `<dir>/models/<release>-<sha>/` (hash checked again
   * by loadModel), without a new shadow phase: it passed one when it was installed. Needs no chain
   * (a gateway that starts offline keeps its updates). Returns the number restored; a missing or
   * damaged folder is logged, and the next check reinstalls that release from its URIs.
   */
  async restoreInstalled(): Promise<number> {
    let n = 0;
    let newest: Installed | undefined;
    const note = (inst: Installed): void => {
      if (!newest || (inst.atMs ?? -1) > (newest.atMs ?? -1)) newest = inst;
    };
    for (const live of [...this.#o.loop.models]) {
      const profile = live.manifest.devices.profiles[0];
      const inst = profile === undefined ? undefined : await this.#installed(profile);
      if (!inst) continue;
      // Already live: the package ships the installed release (model file and manifest). A
      // release that changed only the manifest is restored over the package's older manifest.
      if (isInstalled(inst, live)) {
        note(inst);
        continue;
      }
      const dir = join(this.#o.dir, "models", `${inst.releaseId}-${inst.sha256.slice(0, 12)}`);
      let m: LoadedModel;
      try {
        const manifest = readdirSync(dir).find((f) => f.endsWith(".manifest.json"));
        if (!manifest) throw new Error(`${dir} holds no manifest`);
        const path = join(dir, manifest);
        m = await loadModel(path, releaseFileOnly(readManifest(path), live.tuning));
        if (m.sha256 !== inst.sha256) {
          await releaseModel(m);
          throw new Error(`${dir} holds model ${m.sha256}, not the installed ${inst.sha256}`);
        }
        // The manifest is checked too: it may be all that the release changed.
        if (inst.manifestSha256 !== undefined && manifestSha256(m) !== inst.manifestSha256) {
          await releaseModel(m);
          throw new Error(
            `${path} has sha256 ${manifestSha256(m)}, not the installed ${inst.manifestSha256}`,
          );
        }
      } catch (e) {
        this.#log.warn(
          { releaseId: inst.releaseId, err: (e as Error).message.split("\n")[0] },
          "installed model not restored; it is fetched again",
        );
        for (const p of live.manifest.devices.profiles)
          await this.#o.state.putMeta(`updates/model/${p}`, Buffer.alloc(0));
        continue;
      }
      await this.#o.loop.addShadow(m, live);
      const old = await this.#o.loop.promote(m);
      await this.#o.loop.unload(old);
      this.#log.info(
        { releaseId: inst.releaseId, sha256: m.sha256 },
        `installed model release ${inst.releaseId} restored`,
      );
      this.#o.onInstalled?.(m, old, BigInt(inst.releaseId));
      note(inst);
      n++;
    }
    await this.#restoreStatus(newest);
    return n;
  }

  /**
   * Stops the schedule and the stale watch, and aborts a download under way (its partial file
   * removed; not a refusal: the next start fetches the release again); a shadow phase ends as
   * `INTERRUPTED`. Resolves when the running check has ended.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    this.#task?.stop();
    if (this.#staleTimer) clearInterval(this.#staleTimer);
    await this.#running?.catch(() => undefined);
  }

  /** Marks the agent stale when no check succeeded for `staleAfterMs` (called by a timer; tests call it). */
  checkStale(): void {
    const limit = this.#o.staleAfterMs ?? 3_600_000;
    const stale = this.#clock.nowMs() - this.#lastOkMs > limit;
    if (stale === this.#status.stale) return;
    this.#set({ stale, state: stale ? "stale" : "idle" });
    if (stale)
      this.#log.warn(
        { sinceMs: this.#lastOkMs, staleAfterMs: limit },
        "no update check succeeded for longer than updates.staleAfterMs: this gateway may be kept from updates (freeze)",
      );
    this.#o.onStale?.(stale, this.#lastOkMs);
  }

  /**
   * One check of every served profile (serialised: a check asked for while one runs waits for it,
   * then runs). Never throws: a failing chain read counts in `checkErrors` and the status.
   */
  check(): Promise<void> {
    const run = async (): Promise<void> => {
      await this.#running?.catch(() => undefined);
      await this.#checkOnce();
    };
    const p = run();
    this.#running = p;
    return p;
  }

  async #checkOnce(): Promise<void> {
    if (this.#stopped) return;
    this.counters.checks++;
    this.#set({ state: "checking" });
    try {
      const viewMs = await viewTimeMs(
        this.#o.releases,
        this.#clock.nowMs(),
        this.#o.staleAfterMs ?? 3_600_000,
      );
      await this.#retryReports();
      for (const live of [...this.#o.loop.models]) {
        for (const profile of live.manifest.devices.profiles) {
          // stop() waits for this check: no further chain reads, and not counted as a check done.
          if (this.#stopped) return this.#set({ state: "idle" });
          const rel = await this.#o.releases.activeRelease("model", targetId("model", profile));
          if (!rel) continue;
          if (await this.#skip(rel, live, profile)) continue;
          await this.#tryInstall(rel, live, profile);
          break; // the live model changed or the release failed: next model
        }
      }
      // Fresh as of its view: a lagging endpoint's answers count from its newest block.
      this.#lastOkMs = Math.max(this.#lastOkMs, viewMs);
      this.#set({ state: "idle", lastCheckMs: this.#clock.nowMs(), lastCheckError: undefined });
      this.checkStale();
    } catch (e) {
      this.counters.checkErrors++;
      const msg = e instanceof Error ? e.message.split("\n")[0]! : String(e);
      this.#log.warn({ err: msg }, "update check failed");
      this.#set({ state: "idle", lastCheckError: msg });
      this.checkStale();
    }
  }

  /**
   * Installs release `id` now if it passes every check (operator request); returns the outcome.
   * The release that is live already resolves `{ ok: true }` without fetching anything.
   */
  async installRelease(
    id: bigint,
  ): Promise<{ ok: true } | { ok: false; code: UpdateErrorCode; reason: string }> {
    await this.#running?.catch(() => undefined);
    const rel = await this.#o.releases.getRelease(id);
    if (!rel) return this.#refused(id, new UpdateError("NOT_ACTIVE", `release ${id} does not exist`));
    const live = this.#o.loop.models.find((m) =>
      m.manifest.devices.profiles.some((p) => targetId("model", p) === rel.target),
    );
    if (!live)
      return this.#refused(
        id,
        new UpdateError("WRONG_TARGET", `release ${id} is for a target no live model serves`),
      );
    const profile = live.manifest.devices.profiles.find((p) => targetId("model", p) === rel.target)!;
    // Installing it again would first clear the live model's own folder (#prepare): a live
    // release is installed already, so there is nothing to do.
    if (this.#isLive(rel, live)) {
      this.#log.info({ releaseId: id.toString() }, `model release ${id} is live already: nothing to install`);
      return { ok: true };
    }
    const p = this.#tryInstall(rel, live, profile);
    this.#running = p.then(() => undefined);
    return p;
  }

  /** Ends the current shadow phase now: the candidate is judged on the windows it ran (operator request). */
  judgeShadowNow(): void {
    this.#judgeNow = true;
  }

  /**
   * Forgets that release `id` failed, so the next check tries it again (operator request).
   * Resolves true when it had failed.
   */
  async retry(id: bigint): Promise<boolean> {
    let had = false;
    // Remembered as failed, or waiting out the backoff after wrong bytes from its sources or a
    // shadow phase that cost too much.
    for (const key of [`updates/failed/${id}`, `updates/mismatch/${id}`, `updates/slow/${id}`]) {
      const b = await this.#o.state.getMeta(key);
      if (b !== undefined && b.length > 0) {
        had = true;
        await this.#o.state.putMeta(key, Buffer.alloc(0));
      }
    }
    return had;
  }

  /**
   * Whether release `rel` is the live model: its model file is live and its pinned manifest is
   * the live model's file (the package's, or the one an install laid down).
   */
  #isLive(rel: ReleaseRecord, live: LoadedModel): boolean {
    if (live.sha256 !== rel.contentHash.slice(2)) return false;
    try {
      return parseModelMeta(rel.metrics).manifest.sha256 === manifestSha256(live);
    } catch {
      return false; // no manifest pinned: not the live one; #prepare refuses it (MANIFEST_INVALID)
    }
  }

  async #skip(rel: ReleaseRecord, live: LoadedModel, profile: string): Promise<boolean> {
    if (live.sha256 === rel.contentHash.slice(2)) {
      // The release's model file is live; its manifest may be new (thresholds, data-quality
      // rules, alert settings): then it installs like any release. Skipped in silence:
      // - the release that is live, so it is neither installed again nor refused;
      if (this.#isLive(rel, live)) return true;
      // - a release of the live version not installed here: the package's own release (its
      //   manifest file may differ in bytes; the chain takes one release per version and target,
      //   VigilReleases). Not a rollback: refusing it (NOT_NEWER) would count a failure at start.
      // One recorded as installed whose files were lost is fetched again; an older one is refused.
      const { floor, installedIds } = await this.#floor(live, profile);
      if (rel.version === floor && !installedIds.has(rel.id.toString())) return true;
    }
    const failed = await this.#o.state.getMeta(`updates/failed/${rel.id}`);
    if (failed !== undefined && failed.length > 0) return true;
    for (const key of [`updates/mismatch/${rel.id}`, `updates/slow/${rel.id}`]) {
      const m = await this.#backoff(key);
      if (m !== undefined && this.#clock.nowMs() < m.nextMs) return true;
    }
    return false;
  }

  async #backoff(key: string): Promise<Mismatch | undefined> {
    const b = await this.#o.state.getMeta(key);
    if (!b || b.length === 0) return undefined;
    try {
      return JSON.parse(b.toString("utf8")) as Mismatch;
    } catch {
      return undefined; // unreadable record: as if none (the release is tried now)
    }
  }

  /**
   * The status after a restart: the newest install the store records for a live model, and the
   * last refusal, unless this run has its own already. `vigil update status` and `vigil update
   * retry` (without an id) read them.
   */
  async #restoreStatus(newest: Installed | undefined): Promise<void> {
    const p: Partial<UpdateStatus> = {};
    if (newest && !this.#status.lastInstall)
      p.lastInstall = {
        releaseId: newest.releaseId,
        version: newest.version,
        sha256: newest.sha256,
        atMs: newest.atMs ?? null,
        shadow: newest.shadow ?? null,
        reported: newest.reported,
      };
    const f = await this.#o.state.getMeta(LAST_FAILURE_KEY);
    if (f && f.length > 0 && !this.#status.lastFailure) {
      try {
        p.lastFailure = JSON.parse(f.toString("utf8")) as UpdateStatus["lastFailure"];
      } catch (e) {
        this.#log.warn({ err: (e as Error).message }, "the last refusal's record is unreadable; not shown");
      }
    }
    if (Object.keys(p).length > 0) this.#set(p);
  }

  async #installed(profile: string): Promise<Installed | undefined> {
    const b = await this.#o.state.getMeta(`updates/model/${profile}`);
    return b && b.length > 0 ? (JSON.parse(b.toString("utf8")) as Installed) : undefined;
  }

  /**
   * The installed version (the highest of the live manifest's, the persisted one and the one last
   * reported on chain) and the release ids recorded as installed (a release recorded as installed
   * may be fetched again when its files were lost: same version, same hash).
   */
  async #floor(live: LoadedModel, profile: string): Promise<{ floor: bigint; installedIds: Set<string> }> {
    let floor = 0n;
    const installedIds = new Set<string>();
    try {
      floor = semverToVersion(live.manifest.version);
    } catch {
      /* a local manifest without semver: no floor from it */
    }
    const inst = await this.#installed(profile);
    if (inst) {
      installedIds.add(inst.releaseId);
      if (BigInt(inst.version) > floor) floor = BigInt(inst.version);
    }
    const onChain = await this.#o.releases.installedRelease?.("model");
    if (onChain && onChain > 0n) {
      const r = await this.#o.releases.getRelease(onChain);
      if (r && r.kind === "model" && r.target === targetId("model", profile)) {
        installedIds.add(r.id.toString());
        if (r.version > floor) floor = r.version;
      }
    }
    return { floor, installedIds };
  }

  async #refused(id: bigint, e: UpdateError): Promise<{ ok: false; code: UpdateErrorCode; reason: string }> {
    const c = this.counters.rejected;
    c[e.code] = (c[e.code] ?? 0) + 1;
    const now = this.#clock.nowMs();
    let remember = !isTransient(e.code);
    let reason = e.shortMessage;
    const extra: Record<string, unknown> = {};
    // One source's wrong answer (a truncated body, a misbehaving IPFS gateway) says nothing
    // about the release, nor does one slow shadow phase on a busy machine; the same outcome
    // attempt after attempt, hours apart, does.
    const soft = sourceFaults.has(e)
      ? {
          key: `updates/mismatch/${id}`,
          what: "wrong bytes from its sources",
          max: this.#o.mismatchAttempts ?? 8,
          firstMs: this.#o.mismatchRetryMs ?? 60_000,
        }
      : costFaults.has(e)
        ? {
            key: `updates/slow/${id}`,
            what: "too slow in shadow",
            max: this.#o.costAttempts ?? 3,
            firstMs: this.#o.costRetryMs ?? 600_000,
          }
        : undefined;
    if (soft) {
      const { key, what, max } = soft;
      const attempts = ((await this.#backoff(key))?.attempts ?? 0) + 1;
      remember = attempts >= max;
      if (remember) {
        await this.#o.state.putMeta(key, Buffer.alloc(0));
        reason += ` (${what}, attempt ${attempts} of ${max}: remembered as failed)`;
      } else {
        const m: Mismatch = { attempts, nextMs: now + retryBackoffMs(soft.firstMs, attempts) };
        await this.#o.state.putMeta(key, Buffer.from(JSON.stringify(m)));
        reason += ` (${what}, attempt ${attempts} of ${max}; tried again from ${new Date(m.nextMs).toISOString()} on)`;
      }
      Object.assign(extra, { attempt: attempts, of: max });
    }
    this.#log.warn(
      { releaseId: id.toString(), code: e.code, details: e.details, ...extra },
      `model release ${id} refused: ${reason}`,
    );
    const lastFailure = { releaseId: id.toString(), code: e.code, reason, atMs: now };
    this.#set({ state: "idle", candidate: undefined, lastFailure });
    // For the status after a restart only: a store that cannot take it costs that, not the check.
    await this.#o.state
      .putMeta(LAST_FAILURE_KEY, Buffer.from(JSON.stringify(lastFailure)))
      .catch((err: unknown) =>
        this.#log.warn({ err: (err as Error).message }, "the refusal is not kept for after a restart"),
      );
    if (remember) await this.#o.state.putMeta(`updates/failed/${id}`, Buffer.from(`${e.code}: ${reason}`));
    return { ok: false, code: e.code, reason };
  }

  async #tryInstall(
    rel: ReleaseRecord,
    live: LoadedModel,
    profile: string,
  ): Promise<{ ok: true } | { ok: false; code: UpdateErrorCode; reason: string }> {
    const dir = join(this.#o.dir, "models", `${rel.id}-${rel.contentHash.slice(2, 14)}`);
    let candidate: LoadedModel | undefined;
    try {
      candidate = await this.#prepare(rel, live, profile, dir);
      await this.#shadowAndSwap(rel, live, profile, candidate);
      return { ok: true };
    } catch (e) {
      if (candidate) {
        await this.#o.loop.unload(candidate).catch(() => undefined);
        await releaseModel(candidate);
      }
      // Cleaned up without hiding why the install failed: a clean-up that fails too is logged.
      for (const p of [dir, join(this.#o.dir, "staging", rel.contentHash.slice(2))])
        try {
          rmSync(p, { recursive: true, force: true });
        } catch (c) {
          this.#log.warn({ err: (c as Error).message }, "a failed install's files could not be removed");
        }
      // The chain, the store, this machine's files or the loop failed (an RPC outage, a full
      // disk, the live model changed meanwhile), not the release: the check fails (counted, and
      // stale when it lasts) and nothing is remembered about the release. A system call's error
      // (ENOSPC, EACCES, EIO: it has a `syscall`) is the machine's, whatever its code.
      if (
        e instanceof Error &&
        !(e instanceof UpdateError) &&
        typeof (e as NodeJS.ErrnoException).syscall === "string"
      )
        throw fileError(e) ?? e;
      if (!(e instanceof UpdateError) && e instanceof VigilError) throw e;
      // A stop before the shadow phase (an aborted download): nothing is judged, nothing recorded.
      if (e instanceof UpdateError && e.code === "INTERRUPTED" && !candidate) {
        this.#log.info(
          { releaseId: rel.id.toString() },
          `model release ${rel.id}: download stopped (the gateway is stopping); the next start fetches it again`,
        );
        this.#set({ state: "idle", candidate: undefined });
        return { ok: false, code: e.code, reason: e.shortMessage };
      }
      const err =
        e instanceof UpdateError
          ? e
          : new UpdateError("MODEL_INVALID", e instanceof Error ? e.message.split("\n")[0]! : String(e), {
              cause: e,
            });
      return this.#refused(rel.id, err);
    }
  }

  async #prepare(rel: ReleaseRecord, live: LoadedModel, profile: string, dir: string): Promise<LoadedModel> {
    if (rel.status === "revoked") throw new UpdateError("REVOKED", `release ${rel.id} is revoked`);
    if (rel.status !== "active")
      throw new UpdateError("NOT_ACTIVE", `release ${rel.id} is ${rel.status}, not approved (Active)`);
    if (rel.kind !== "model" || rel.target !== targetId("model", profile))
      throw new UpdateError("WRONG_TARGET", `release ${rel.id} is a ${rel.kind} release for another target`);
    const { floor, installedIds } = await this.#floor(live, profile);
    const reinstall = rel.version === floor && installedIds.has(rel.id.toString());
    if (rel.version <= floor && !reinstall)
      throw new UpdateError(
        "NOT_NEWER",
        `release ${rel.id} has version ${rel.version}, not above the installed ${floor} (rollback refused)`,
      );
    const meta = parseModelMeta(rel.metrics);
    // Its bytes are read whole and held by two onnxruntime sessions (model-check.ts, the shadow
    // worker): a release this box should not hold is refused before a byte is fetched.
    const maxBytes = this.#o.maxModelBytes ?? DEFAULT_MAX_MODEL_BYTES;
    if (rel.size > BigInt(maxBytes))
      throw new UpdateError(
        "TOO_LARGE",
        `release ${rel.id}'s model is ${rel.size} bytes, above updates.maxModelBytes (${maxBytes}); raise it if this gateway can hold the model, then run vigil update retry ${rel.id}`,
      );
    this.#set({
      state: "fetching",
      candidate: {
        releaseId: rel.id.toString(),
        version: rel.version.toString(),
        sha256: rel.contentHash.slice(2),
      },
    });
    const staging = join(this.#o.dir, "staging");
    const fo = {
      stagingDir: staging,
      ipfsGateway: this.#o.ipfsGateway,
      timeoutMs: this.#o.fetchTimeoutMs ?? 120_000,
      signal: this.#abort.signal,
    };
    const model = await fetchArtifact({ uris: rel.uris, size: rel.size, sha256: rel.contentHash }, fo).catch(
      (e: unknown) => {
        throw fromSource(e);
      },
    );
    const manifestUris = rel.uris.map((u) =>
      u.startsWith("ipfs://") ? `ipfs://${meta.manifest.cid}` : new URL(meta.manifest.file, u).href,
    );
    let manifest;
    try {
      manifest = await fetchArtifact(
        {
          uris: [...new Set(manifestUris)],
          size: MAX_MANIFEST_BYTES,
          exact: false,
          sha256: meta.manifest.sha256,
        },
        fo,
      );
    } catch (e) {
      rmSync(model.path, { force: true });
      const u = e as UpdateError;
      if (u.code === "INTERRUPTED") throw u; // stopped: no judgment of the manifest
      // Unreachable stays FETCH_FAILED (tried again at the next check); wrong bytes are the
      // sources' (tried again after a backoff), anything else is refused.
      throw fromSource(
        e,
        new UpdateError(
          u.code === "FETCH_FAILED" ? "FETCH_FAILED" : "MANIFEST_INVALID",
          `the manifest pinned by release ${rel.id} could not be fetched: ${u.shortMessage}`,
          {
            ...(u.details ? { details: u.details } : {}),
            cause: e,
          },
        ),
      );
    }
    // Both files are the release's (verified): earlier wrong bytes from its sources are forgotten.
    if (await this.#backoff(`updates/mismatch/${rel.id}`))
      await this.#o.state.putMeta(`updates/mismatch/${rel.id}`, Buffer.alloc(0));
    try {
      // Stopped during the downloads: loading a model (seconds for a large one) would delay the stop.
      if (this.#stopped)
        throw new UpdateError("INTERRUPTED", "the update agent stopped before the release was loaded");
      // Revoked (or otherwise no longer Active) while it was fetched: its bytes are not run.
      await this.#stillActive(rel, "while it was fetched; not loaded");
    } catch (e) {
      rmSync(model.path, { force: true });
      rmSync(manifest.path, { force: true });
      throw e;
    }
    rmSync(dir, { recursive: true, force: true });
    makeDirSync(dir, 0o700);
    const manifestPath = join(dir, meta.manifest.file);
    renameSync(manifest.path, manifestPath);
    const bytes = readFileSync(model.path);
    // Also refuses a model.file or variant file name that is not a plain name beside the manifest.
    const m = await checkModelAgainstManifest(manifestPath, bytes, this.#abort.signal);
    renameSync(model.path, join(dir, m.model.file));
    // The version the chain approved is the one the model says it is: a manifest claiming a
    // higher one would raise this gateway's rollback floor above every later release.
    if (semverToVersion(m.version) !== rel.version)
      throw new UpdateError(
        "MANIFEST_MISMATCH",
        `the manifest says version ${m.version}, release ${rel.id} is version ${rel.version} on chain`,
      );
    const want = [...live.manifest.devices.profiles].sort().join(",");
    const got = [...m.devices.profiles].sort().join(",");
    if (want !== got)
      throw new UpdateError(
        "WRONG_TARGET",
        `the release's manifest serves profiles [${got}], the live model serves [${want}]`,
      );
    let candidate: LoadedModel;
    try {
      // No session on this thread: the shadow lane creates it in a worker (#shadowAndSwap).
      candidate = await loadModel(manifestPath, { ...releaseFileOnly(m, live.tuning), deferSession: true });
    } catch (e) {
      throw new UpdateError("MODEL_INVALID", (e as Error).message.split("\n")[0]!, { cause: e });
    }
    if (candidate.sha256 !== rel.contentHash.slice(2)) {
      await releaseModel(candidate);
      throw new UpdateError(
        "MANIFEST_MISMATCH",
        `the file loaded has sha256 ${candidate.sha256}, not release ${rel.id}'s ${rel.contentHash.slice(2)}`,
      );
    }
    return candidate;
  }

  async #shadowAndSwap(
    rel: ReleaseRecord,
    live: LoadedModel,
    profile: string,
    candidate: LoadedModel,
  ): Promise<void> {
    const loop = this.#o.loop;
    // In a worker, whatever models.runner says: creating its session (graph optimisation), its
    // first run and every shadow run are off the thread that reads, stores and acknowledges
    // frames; an approved model may be slow in any of them (updates audit: 7 s each, 262 ms a
    // window). Promoted, it keeps that worker until the next start.
    try {
      await loop.addShadow(candidate, live, "worker", this.#abort.signal);
    } catch (e) {
      if (this.#abort.signal.aborted)
        throw new UpdateError("INTERRUPTED", "the gateway stopped while the candidate was loaded", {
          cause: e,
        });
      if (e instanceof InferError && e.code === "MODEL_WORKER")
        throw new UpdateError("MODEL_INVALID", e.shortMessage, { cause: e });
      throw e;
    }
    this.#set({ state: "shadowing" });
    this.#log.info(
      { releaseId: rel.id.toString(), sha256: candidate.sha256 },
      `model release ${rel.id} in shadow`,
    );
    const need = this.#o.shadowWindows ?? 100;
    const maxMs = this.#o.shadowMaxMs ?? 600_000;
    const factor = this.#o.maxCostFactor ?? 3;
    const liveRun = (): number => loop.lanes().find((l) => l.model === live)?.windowsRun ?? 0;
    const live0 = liveRun();
    const t0 = this.#clock.nowMs();
    let statusReadMs = t0;
    this.#judgeNow = false;
    const tooCostly = (s: ShadowStats, ratio: number, early: string): UpdateError => {
      const e = new UpdateError(
        "SHADOW_FAILED",
        `in shadow the candidate's median cost was ${s.medianUsPerWindow.toFixed(0)} µs per window, ${ratio.toFixed(2)}× the live model's (limit ${factor}×${early})`,
      );
      costFaults.add(e);
      return e;
    };
    for (;;) {
      if (this.#stopped)
        throw new UpdateError(
          "INTERRUPTED",
          "the gateway stopped during the shadow phase; the next start tries again",
        );
      const s = loop.lanes().find((l) => l.model === candidate)?.shadow;
      if (!s)
        throw new UpdateError("SHADOW_FAILED", "the shadow lane disappeared (its live model was unloaded)");
      if (s.nonFinite > 0 || s.outOfRange > 0)
        throw new UpdateError(
          "SHADOW_FAILED",
          `in shadow, ${s.nonFinite} output values were not finite and ${s.outOfRange} outside the manifest's range`,
        );
      if (s.failedWindows > 0)
        throw new UpdateError("SHADOW_FAILED", `in shadow, ${s.failedWindows} windows failed to run`);
      // Medians (lane.ts): one slow run among a short shadow phase's windows is not the model.
      const ratio = s.liveMedianUsPerWindow > 0 ? s.medianUsPerWindow / s.liveMedianUsPerWindow : 1;
      if (s.windows >= EARLY_COST_WINDOWS && ratio > EARLY_COST_MARGIN * factor) {
        await this.#stillActive(rel, "during the shadow phase; not promoted"); // a recall says more
        throw tooCostly(s, ratio, `; judged after ${s.windows} windows`);
      }
      // A recall reaches a long shadow phase before its end (a failed read waits for the next).
      if (this.#clock.nowMs() - statusReadMs >= STATUS_READ_MS) {
        statusReadMs = this.#clock.nowMs();
        try {
          await this.#stillActive(rel, "during the shadow phase; not promoted");
        } catch (e) {
          if (e instanceof UpdateError) throw e;
          this.#log.warn(
            { releaseId: rel.id.toString(), err: (e as Error).message.split("\n")[0] },
            "the release's status could not be read during its shadow phase; read again at the next",
          );
        }
      }
      const timeUp = this.#judgeNow || this.#clock.nowMs() - t0 >= maxMs;
      if (s.windows >= need || timeUp) {
        // The live model ran windows and the candidate none (its data-quality rules withheld
        // every one, say): the candidate's doing.
        const ran = liveRun() - live0;
        if (s.windows === 0 && ran > 0)
          throw new UpdateError(
            "SHADOW_FAILED",
            `in shadow the candidate ran no window while the live model ran ${ran}`,
          );
        // Nothing to judge it on (no frames came: a stopped line); says nothing about the release.
        if (s.windows === 0)
          throw new UpdateError(
            "NO_WINDOWS",
            "no window ran in shadow within updates.shadowMaxMs (no frames of its profiles came); the next check tries again",
          );
        // Revoked (or otherwise no longer Active) while in shadow: not promoted, whatever it cost.
        await this.#stillActive(rel, "during the shadow phase; not promoted");
        if (ratio > factor) throw tooCostly(s, ratio, "");
        // The manifest's hash as the release pins it (the fetched file was checked against it).
        const manifestSha = parseModelMeta(rel.metrics).manifest.sha256;
        manifestShas.set(candidate, manifestSha);
        const old = await loop.promote(candidate);
        // From here the candidate is live: nothing below may throw into #tryInstall's catch, which
        // would unload it and leave the profile with no live model. A failed step is a warning.
        const atMs = this.#clock.nowMs();
        const shadow = {
          windows: s.windows,
          meanAbsDiff: s.meanAbsDiff,
          maxAbsDiff: s.maxAbsDiff,
          costRatio: ratio,
        };
        const installed: Installed = {
          version: rel.version.toString(),
          releaseId: rel.id.toString(),
          sha256: candidate.sha256,
          manifestSha256: manifestSha,
          reported: false,
          atMs,
          shadow,
        };
        const afterPromote = async (what: string, step: () => Promise<void> | void): Promise<void> => {
          try {
            await step();
          } catch (e) {
            this.#log.warn(
              {
                releaseId: rel.id.toString(),
                err: e instanceof Error ? e.message.split("\n")[0] : String(e),
              },
              `model release ${rel.id} is live, but ${what} failed`,
            );
          }
        };
        await afterPromote(
          "recording the install (a restart runs the previous model until the next check)",
          async () => {
            for (const p of candidate.manifest.devices.profiles)
              await this.#o.state.putMeta(`updates/model/${p}`, Buffer.from(JSON.stringify(installed)));
          },
        );
        await afterPromote("forgetting an earlier phase that cost too much", async () => {
          if (await this.#backoff(`updates/slow/${rel.id}`))
            await this.#o.state.putMeta(`updates/slow/${rel.id}`, Buffer.alloc(0));
        });
        await afterPromote("unloading the replaced model", () => loop.unload(old));
        // The replaced model's files go if an earlier update installed them (never the package's models/).
        await afterPromote("removing the replaced model's files", () => {
          if (dirname(dirname(old.manifestPath)) === join(this.#o.dir, "models"))
            rmSync(dirname(old.manifestPath), { recursive: true, force: true });
        });
        this.counters.installs++;
        const manifestOnly = old.sha256 === candidate.sha256;
        this.#log.info(
          { releaseId: rel.id.toString(), profile, old: old.sha256, new: candidate.sha256, shadow },
          `model release ${rel.id} installed: ${candidate.manifest.name} ${candidate.manifest.version} is live${manifestOnly ? " (same model file, new manifest)" : ""}`,
        );
        this.#set({
          state: "idle",
          candidate: undefined,
          lastInstall: {
            releaseId: installed.releaseId,
            version: installed.version,
            sha256: installed.sha256,
            atMs,
            shadow,
            reported: false,
          },
        });
        this.#o.onInstalled?.(candidate, old, rel.id);
        await this.#report(rel.id, candidate.manifest.devices.profiles, candidate);
        return;
      }
      await new Promise((r) => setTimeout(r, this.#o.evalMs ?? 1000));
    }
  }

  /** Throws REVOKED / NOT_ACTIVE when release `rel` is no longer Active on chain (`when`: the sentence's end). */
  async #stillActive(rel: ReleaseRecord, when: string): Promise<void> {
    const now = await this.#o.releases.getRelease(rel.id);
    if (now?.status !== "active")
      throw new UpdateError(
        now?.status === "revoked" ? "REVOKED" : "NOT_ACTIVE",
        `release ${rel.id} was ${now?.status ?? "removed"} ${when}`,
      );
  }

  /** Reports release `id` installed (live as `model` for `profiles`); a failure is retried at the next check. */
  async #report(id: bigint, profiles: readonly string[], model: LoadedModel): Promise<void> {
    if (!this.#o.reporter) return;
    try {
      await this.#o.reporter.report(id);
    } catch (e) {
      this.counters.reportErrors++;
      // Kept here too: the store's record may be what could not be written (a full disk).
      this.#unreported.set(id, { profiles, model });
      this.#log.warn(
        { releaseId: id.toString(), err: (e as Error).message },
        "install report failed; retried at the next check",
      );
      return;
    }
    this.counters.reports++;
    this.#unreported.delete(id);
    this.#sent.add(id);
    if (this.#status.lastInstall?.releaseId === id.toString())
      this.#set({ lastInstall: { ...this.#status.lastInstall, reported: true } });
    try {
      for (const p of profiles) {
        const inst = await this.#installed(p);
        if (inst && inst.releaseId === id.toString())
          await this.#o.state.putMeta(
            `updates/model/${p}`,
            Buffer.from(JSON.stringify({ ...inst, reported: true })),
          );
      }
    } catch (e) {
      // Sent: not a report error. After a restart the record still says unreported, and the
      // report is sent once more (the contract takes it again).
      this.#log.warn(
        { releaseId: id.toString(), err: (e as Error).message },
        "install reported on chain, but the install record could not be updated",
      );
    }
  }

  async #retryReports(): Promise<void> {
    // Installs of this run whose report failed, whether or not their record could be written.
    for (const [id, u] of [...this.#unreported])
      if (this.#o.loop.models.includes(u.model)) await this.#report(id, u.profiles, u.model);
      else this.#unreported.delete(id); // replaced since: the newer install reports itself
    for (const live of this.#o.loop.models)
      for (const p of live.manifest.devices.profiles) {
        const inst = await this.#installed(p);
        if (inst && !inst.reported && isInstalled(inst, live)) {
          // Not one tried just above, nor one sent in this run whose record could not be updated.
          const id = BigInt(inst.releaseId);
          if (!this.#unreported.has(id) && !this.#sent.has(id))
            await this.#report(id, live.manifest.devices.profiles, live);
          break;
        }
      }
  }
}

/**
 * The chain client's install report: EIP-712 digest signed by the gateway key, sent with the next
 * nonce. The sending account may be shared with the anchor service (chain.senderKeyFile), so a
 * transaction-nonce clash is possible: the report is tried up to `attempts` times, 500 ms apart
 * (each attempt re-reads the report nonce); a report still failing is retried at the next check.
 */
export function chainInstallReporter(
  client: {
    installNonce(gatewayId: Hex): Promise<bigint>;
    installReportDigest(gatewayId: Hex, releaseId: bigint, nonce: bigint): Promise<Hex>;
    reportInstalled(gatewayId: Hex, releaseId: bigint, nonce: bigint, signature: Hex): Promise<unknown>;
  },
  gatewayId: Hex,
  sign: (digest: Hex) => Hex,
  attempts = 3,
): InstallReporter {
  return {
    async report(releaseId: bigint): Promise<void> {
      for (let i = 1; ; i++) {
        try {
          const nonce = (await client.installNonce(gatewayId)) + 1n;
          const digest = await client.installReportDigest(gatewayId, releaseId, nonce);
          await client.reportInstalled(gatewayId, releaseId, nonce, sign(digest));
          return;
        } catch (e) {
          if (i >= attempts) throw e;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    },
  };
}

/**
 * {@link ReleaseSource} read straight from the registry client (until the registry watch feeds it).
 * @param o.checkViewAge Give the source its chain clock (`chainTimeS`), so a stale view is not
 *   acted on. Default false; start.ts sets it except on a local development chain, which mines
 *   only on demand (an idle anvil's newest block is as old as its last transaction).
 */
export function chainReleaseSource(
  client: {
    activeRelease(kind: "model" | "firmware", target: Hex): Promise<ReleaseRecord | null>;
    getRelease(id: bigint): Promise<ReleaseRecord | null>;
    installedRelease(gatewayId: Hex, kind: "model" | "firmware"): Promise<bigint>;
    now(): Promise<bigint>;
  },
  gatewayId: Hex,
  o: { checkViewAge?: boolean } = {},
): ReleaseSource {
  return {
    activeRelease: (kind, target) => client.activeRelease(kind, target),
    getRelease: (id) => client.getRelease(id),
    installedRelease: (kind) => client.installedRelease(gatewayId, kind),
    ...(o.checkViewAge ? { chainTimeS: () => client.now() } : {}),
  };
}
