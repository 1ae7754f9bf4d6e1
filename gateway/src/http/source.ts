/**
 * What the HTTP endpoint reads from the running gateway: the stages' own counters and status
 * objects, read at scrape or page-refresh time, never copied on the hot path. `Runtime`
 * (runtime.ts) satisfies {@link MetricsSource} as it is; tests pass a hand-built one.
 */
import type { AlertCounters } from "../alerts/service.ts";
import type { InferenceCounters, LaneInfo } from "../infer/loop.ts";
import type { IngestCounters } from "../ingest/counters.ts";
import type { IngestSource } from "../ingest/source.ts";
import type { FrameStore } from "../store/types.ts";

/** The gateway's life cycle, as /readyz reports it. */
export type GatewayPhase = "created" | "starting" | "running" | "stopping" | "stopped";

/**
 * The anchor service's status (anchor/service.ts `AnchorStatus`). The optional fee fields are
 * read when the anchor service reports them (issue 12: gas and L1 data fee per anchor) and
 * their metrics are absent until then.
 */
export interface AnchorStatusView {
  anchoredThrough: number;
  backlog: number;
  /** Consecutive failed runs (0 after a success). */
  failures: number;
  lastError: { code: string; message: string } | null;
  /** Gas used by the gateway's anchor transactions since start. */
  gasUsed?: number | bigint | string;
  /** L2 execution fees paid for them since start, wei. */
  feeWei?: number | bigint | string;
  /** L1 data fees paid for them since start (OP-Stack GasPriceOracle), wei. */
  l1FeeWei?: number | bigint | string;
  /** Why the anchor transaction in flight is stuck (`fee-cap`, `no-blocks`); null while it is not. */
  stalled?: { reason: string; message: string } | null;
  /**
   * Why anchoring is paused (anchor/service.ts AnchorPauseReason: `fee-cap`, `spend-cap`,
   * `gateway-inactive`, `signer-mismatch`, `insufficient-funds`); null while it is not.
   */
  paused?: { reason: string; message: string } | null;
}

/**
 * The registry watch's local copy of the on-chain registry (chain/watch.ts), once it has been
 * refreshed: `vigil_registry_cache_age_seconds` and the page's registry panel show it.
 */
export interface RegistryStatusView {
  /** Seconds since the local copy of the registry was last refreshed from the chain. */
  cacheAgeSeconds: number;
  /** Block number the copy reflects. */
  block?: number;
}

/** The gateway's standing in the registry (access/gateway-standing.ts `GatewayStanding`). */
export const GATEWAY_STANDINGS = ["active", "unregistered", "suspended", "revoked", "key_mismatch"] as const;

/** The registry watch's freshness (chain/watch.ts `WatchFreshness`). */
export const REGISTRY_STATES = ["fresh", "stale", "unsynced"] as const;

/**
 * What the registry decides for the gateway itself, while the registry watch runs (runtime.ts
 * `access()`): the fields of the retained `…/access` message. `vigil_gateway_standing`,
 * `vigil_sealer_running`, `vigil_registry_state` and the summary's `access` show it.
 */
export interface AccessStatusView {
  /** The gateway's standing; null before the watch has synced (no refresh and no cache yet). */
  standing: (typeof GATEWAY_STANDINGS)[number] | null;
  /** Whether frames are sealed and anchored: false while the standing stops them, or without a sealer. */
  sealing: boolean;
  /** `fresh`; `stale`: no successful refresh for registry.maxStaleMs; `unsynced`: none ever, no cache. */
  registry: (typeof REGISTRY_STATES)[number];
}

/** What the endpoint reads of a device's live window (infer/window.ts `DeviceWindow`). */
export interface LiveWindowView {
  /** Used channels currently in sensor fault (data-quality stage, infer/features/quality.ts). */
  readonly qualityState: { readonly faults: number };
  /** Windows withheld for data quality (no prediction). */
  readonly withheld: number;
  /** How the gateway met the machine (features/commissioning.ts): first-cycle, mid-life, … */
  readonly commissioning: { readonly mode: string };
}

/**
 * What an operator may ask of the running update agents (updates/start.ts `RunningUpdates`):
 * POST /api/updates/check and /api/updates/retry, `vigil update`.
 */
/** An update agent's counters, as in the retained update status (updates/README.md). */
export interface UpdateCountersView {
  readonly checks: number;
  readonly checkErrors: number;
  readonly installs: number;
  readonly reportErrors: number;
  /** Refused releases by code (`HASH_MISMATCH`, …). */
  readonly rejected: Readonly<Partial<Record<string, number>>>;
}

/** What /metrics reads of the update status (updates/start.ts UpdatesStatusPayload). */
export interface UpdatesStatusView {
  /** The model agent, `null` when `updates.models` is off. */
  readonly model: { readonly stale: boolean; readonly counters: UpdateCountersView } | null;
  /** The firmware agent, `null` when `updates.firmware` is off. */
  readonly firmware: { readonly counters: UpdateCountersView } | null;
}

export interface UpdatesControl {
  /** The retained update status (JSON; may hold bigints). */
  status(): UpdatesStatusView;
  /** One check of both agents now (never rejects). */
  check(): Promise<void>;
  /** Forgets that release `id` failed (model; firmware on `deviceId`, or everywhere). */
  retry(id: bigint, deviceId?: number): Promise<{ model: boolean; firmwareDevices: number[] }>;
}

export interface MetricsSource {
  readonly config: {
    readonly dataDir: string;
    readonly site: string;
    readonly attest: { readonly gatewayName: string };
  };
  /** bytes32 gateway id, hex. */
  readonly gatewayId: string;
  readonly ingest: { readonly counters: IngestCounters };
  readonly store: Pick<FrameStore, "stats" | "getBatch" | "getAnchor" | "commitTiming">;
  readonly sources: readonly IngestSource[];
  /** Undefined when no models are loaded. */
  readonly loop:
    | {
        readonly counters: InferenceCounters;
        lanes(): LaneInfo[];
        /** A device's live-model window: its data-quality state (infer/window.ts DeviceWindow). */
        liveWindow?(deviceId: number): LiveWindowView | undefined;
      }
    | undefined;
  readonly alerts: { readonly counters: AlertCounters };
  /** Undefined when sealing is off (no keystore or no deployment). */
  readonly sealer: { backlog(): number } | undefined;
  /** Undefined when anchoring is off (no RPC URL). */
  readonly anchor: { status(): AnchorStatusView } | undefined;
  /** Where the gateway is in its life cycle. */
  phase(): GatewayPhase;
  /** Optional hook for the registry cache (see {@link RegistryStatusView}). */
  registry?(): RegistryStatusView | undefined;
  /** Optional hook for the gateway's standing (see {@link AccessStatusView}); undefined without the watch. */
  access?(): AccessStatusView | undefined;
  /** The update agents, while they run (config `updates.enabled`); undefined otherwise. */
  readonly updates?: UpdatesControl | undefined;
  /**
   * Whether the gateway clock is known good (ingest/clock-trust.ts `ClockTrust`): while
   * `untrustedReason()` names a reason, stored frames are marked clock-unverified and
   * /readyz lists a `clock` warning. Absent: the clock is not judged.
   */
  readonly clockTrust?: { untrustedReason(): string | undefined };
}
