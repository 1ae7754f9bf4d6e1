/**
 * `/readyz`: is the gateway ready to accept frames? Ready means: it finished starting (every
 * source started) and is not stopping, the store accepts writes (state `ok`: not low on disk,
 * not unavailable, not corrupt), and at least one ingest source is configured. Anything else
 * is degraded, not unready (frames are still stored and acknowledged): a failing anchor, an
 * anchor transaction that is not being mined, no models, publish errors, a clock not known good (frames stored marked clock-unverified), a source not connected (the external broker, a serial port); those
 * are listed as `warnings`.
 */
import type { MetricsSource } from "./source.ts";

export interface Check {
  check: "phase" | "store" | "sources";
  /** A stable reason, e.g. `starting`, `low-space`, `corrupt`, `none-configured`. */
  reason: string;
  detail: string;
}

export interface Readiness {
  ready: boolean;
  phase: ReturnType<MetricsSource["phase"]>;
  /** Why the gateway is not ready (empty when ready). */
  failing: Check[];
  /** Degraded but still accepting frames. */
  warnings: Array<{
    check: "anchor" | "models" | "alerts" | "clock" | "sources";
    reason: string;
    detail: string;
  }>;
  store: { state: string; lastError: string | null };
  sources: Array<{ name: string; stats: Record<string, number> }>;
}

const STORE_DETAIL: Record<string, string> = {
  "low-space": "free disk space is below store.minFreeBytes; frames are refused until space is freed",
  unavailable: "the store had an I/O error and is retrying; frames are refused meanwhile",
  corrupt: "the store lost or damaged acknowledged data and refuses frames for good",
  closed: "the store is closed",
};

export function readiness(s: MetricsSource): Readiness {
  const failing: Check[] = [];
  const phase = s.phase();
  if (phase !== "running")
    failing.push({
      check: "phase",
      reason: phase,
      detail:
        phase === "starting" || phase === "created" ? "the gateway is starting" : "the gateway is stopping",
    });
  const st = s.store.stats();
  if (st.state !== "ok")
    failing.push({
      check: "store",
      reason: st.state,
      detail: st.lastError ?? STORE_DETAIL[st.state] ?? st.state,
    });
  if (s.sources.length === 0)
    failing.push({
      check: "sources",
      reason: "none-configured",
      detail: "no serial port, embedded broker or external broker is configured",
    });

  const warnings: Readiness["warnings"] = [];
  // Degraded, not unready: the other sources still take frames, and this one comes back by itself.
  for (const x of s.sources)
    if (x.connected?.() === false)
      warnings.push({
        check: "sources",
        reason: "disconnected",
        detail: `${x.name} is not connected; retrying (frames from it wait at the device or broker)`,
      });
  const a = s.anchor?.status();
  if (a?.lastError && a.failures > 0)
    warnings.push({ check: "anchor", reason: a.lastError.code, detail: a.lastError.message });
  if (a?.stalled)
    warnings.push({ check: "anchor", reason: `stalled-${a.stalled.reason}`, detail: a.stalled.message });
  // A pause is no failure (failures stays 0): without this, /readyz would not show it at all.
  if (a?.paused)
    warnings.push({ check: "anchor", reason: `paused-${a.paused.reason}`, detail: a.paused.message });
  if (!s.loop || s.loop.lanes().every((l) => l.role !== "live"))
    warnings.push({
      check: "models",
      reason: "none-loaded",
      detail: "no model is live; frames are stored, not run",
    });
  const pubErr = s.alerts.counters.publishErrors;
  if (pubErr > 0)
    warnings.push({
      check: "alerts",
      reason: "publish-errors",
      detail: `${pubErr} events failed to publish`,
    });

  const clock = s.clockTrust?.untrustedReason();
  if (clock !== undefined)
    warnings.push({
      check: "clock",
      reason: "unverified",
      detail: `${clock}; frames are stored marked clock-unverified and timestamps are not judged`,
    });

  return {
    ready: failing.length === 0,
    phase,
    failing,
    warnings,
    store: { state: st.state, lastError: st.lastError },
    sources: s.sources.map((x) => ({ name: x.name, stats: x.stats() })),
  };
}
