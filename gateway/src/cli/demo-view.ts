/**
 * What `vigil demo` prints: on a terminal a live block (progress bar toward --duration, gateway
 * and simulator counters) redrawn in place, with alert lines scrolling above it; otherwise
 * plain lines every few seconds (logs, CI). Also the counters' legend, the reconciliation that
 * explains how generated frames split, and what to try next. Pure text functions plus one
 * small writer, so the layout is testable without a gateway.
 */
import type { SimSnapshot } from "../../../device-sim/src/simulator.ts";

/** Where the view writes: process.stdout, or a test's collector. */
export interface Out {
  write(s: string): unknown;
}

/** The gateway side of one refresh (Runtime.statsFields() and friends). */
export interface GatewayFigures {
  devices: number;
  accepted: number;
  duplicates: number;
  outOfOrder: number;
  gaps: number;
  rejected: Record<string, number>;
  /** Log entries stored: frames plus model (inference and alert) leaves. */
  stored: number;
  batchesSealed: number;
  batchesAnchored: number;
  anchorError: string | null;
  windowsRun: number;
  windowsSkipped: number;
  alertsRaised: number;
  alertsCleared: number;
}

/** An alert as published on `vigil/v1/{site}/{gateway}/{device}/alert` (the fields shown). */
export interface AlertMessage {
  state: string;
  severity: string;
  device: string;
  value: number;
  rule: { id: string; output: string; op: string; threshold: number; clear: number };
}

const nf = new Intl.NumberFormat("en");
const int = (n: number) => nf.format(n);
const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
const fmt = (v: number) =>
  Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3);

/** `[██████░░░░░░]  50 %  15.0 / 30 s`, or without the bar for plain output. */
export function progress(elapsedS: number, durationS: number, o: { bar: boolean; width?: number }): string {
  const f = Math.max(0, Math.min(1, elapsedS / durationS));
  const text = `${String(Math.floor(f * 100)).padStart(3)} %  ${Math.min(elapsedS, durationS).toFixed(1)} / ${durationS} s`;
  if (!o.bar) return text;
  const w = o.width ?? 30;
  const full = Math.round(f * w);
  return `[${"█".repeat(full)}${"░".repeat(w - full)}] ${text}`;
}

/** One alert, its value beside its threshold: `ALERT raised critical device 00000003: p_fail 0.934 (threshold >= 0.9, clears below 0.8) rule p-fail-critical`. */
export function alertLine(a: AlertMessage): string {
  const r = a.rule;
  const clears = r.op === ">=" ? `clears below ${r.clear}` : `clears above ${r.clear}`;
  return (
    `  ALERT ${a.state} ${a.severity} device ${a.device}: ${r.output} ${fmt(a.value)} ` +
    `(threshold ${r.op} ${r.threshold}, ${clears}) rule ${r.id}`
  );
}

/** The live block: progress, gateway counters, one line per simulator. */
export function liveLines(
  elapsedS: number,
  durationS: number,
  g: GatewayFigures,
  sims: Array<{ label: string; s: SimSnapshot }>,
  bar: boolean,
): string[] {
  const generated = sims.reduce((a, x) => a + x.s.generated, 0);
  const rej = Object.entries(g.rejected)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  const lines = [
    `  devices generating ${progress(elapsedS, durationS, { bar })}`,
    `  gateway   ${g.devices} devices · accepted ${int(g.accepted)} of ${int(generated)} generated · duplicates ${int(g.duplicates)} · ` +
      `gaps ${int(g.gaps)} · rejected ${int(sum(g.rejected))}${rej ? ` (${rej})` : ""}`,
    `  models    windows inferred ${int(g.windowsRun)}, skipped ${int(g.windowsSkipped)} · alerts raised ${g.alertsRaised}, cleared ${g.alertsCleared}`,
    `  chain     log entries stored ${int(g.stored)} · batches sealed ${g.batchesSealed}, anchored ${g.batchesAnchored}` +
      (g.anchorError ? ` (retrying: ${g.anchorError})` : ""),
  ];
  for (const { label, s } of sims)
    lines.push(
      `  ${label.padEnd(9)} generated ${int(s.generated)} · acknowledged ${int(s.acked)} · waiting for ACK ${int(s.pending)} · ` +
        `resent ${int(s.resent)} · abandoned ${int(s.abandoned)}`,
    );
  return lines;
}

/** What each counter means, printed once before the live block. */
export const LEGEND = [
  "what the counters mean:",
  "  accepted   DATA frames newly stored durably, then acknowledged (each frame once)",
  "  duplicates resent frames already stored: acknowledged again, not stored again",
  "  gaps       sequence numbers a device skipped and has not (yet) filled",
  "  rejected   frames refused, by reason (the demo injects corrupt, truncated and garbage frames;",
  "             frames with NaN values are stored and their channels imputed, not refused)",
  "  stored     log entries: accepted frames plus the models' inference and alert leaves",
  "  skipped    ready windows not inferred: more than models.windowBacklog of the device were waiting",
  "  abandoned  frames a device dropped because the gateway refused them for good (e.g. ABSURD_TIMESTAMP)",
];

/**
 * The reconciliation's explanation: how the generated frames split, in the simulators' own
 * counts (what the device knows), then the gateway's view of them.
 */
export function reconciliationLines(r: {
  generated: number;
  acked: number;
  abandoned: number;
  pending: number;
  overflowed: number;
  lostAtReboot: number;
  accepted: number;
  duplicates: number;
  framesStored: number;
  modelLeaves: number;
}): string[] {
  const lost = r.overflowed + r.lostAtReboot;
  const rest = r.generated - r.acked - r.abandoned - r.pending - lost;
  return [
    `  frames generated ${int(r.generated)} = acknowledged ${int(r.acked)} + abandoned ${int(r.abandoned)} ` +
      `(refused for good, e.g. an absurd timestamp) + still waiting for an ACK at the end ${int(r.pending)}` +
      (lost ? ` + lost on the device ${int(lost)} (window overflow or reboot)` : "") +
      (rest !== 0 ? ` + unexplained ${int(rest)}` : ""),
    `  acknowledged ${int(r.acked)} = accepted by the gateway ${int(r.accepted)} (stored once each; ` +
      `${int(r.duplicates)} resends were duplicates, acknowledged again and not stored)`,
    `  log entries ${int(r.framesStored + r.modelLeaves)} = frames ${int(r.framesStored)} + model leaves ${int(r.modelLeaves)} (inference results and alerts, sealed with the frames)`,
  ];
}

/** The closing "what to try next", with the kept data's paths when --keep was given. */
export function nextSteps(o: {
  /** With --keep: the data folder, the passphrase file and a config naming both. */
  kept: { dataDir: string; passphraseFile: string; config: string } | undefined;
  firstAlertLeaf: string | undefined;
}): string[] {
  const lines = ["", "what to try next:"];
  if (o.kept) {
    const d = o.kept.dataDir;
    lines.push(
      `  the data is kept in ${d}: store/, deployment.json, config.json, the gateway keystore gateway.key`,
      `  and its passphrase in ${o.kept.passphraseFile} (mode 0600):`,
      `    VIGIL_KEYSTORE_PASSPHRASE_FILE=${o.kept.passphraseFile} npx vigil keys show -c ${o.kept.config}`,
    );
    if (o.firstAlertLeaf)
      lines.push(
        `  export the first alert's receipt and check it offline against the demo's registry:`,
        `    npx vigil receipt --store ${d}/store --leaf ${o.firstAlertLeaf} --out alert.json && npx vigil verify alert.json --deployment ${d}/deployment.json`,
      );
  } else
    lines.push(
      "  npm run demo -- --keep        keep the store, keystore and deployment to export receipts afterwards",
    );
  lines.push(
    "  npm run demo -- --duration 120 --devices 50 --rate 5   a bigger fleet; open the live page while it runs",
    "  npx vigil start                then point devices at mqtt://127.0.0.1:1883 (or --serial /dev/ttyUSB0)",
    "  npx vigil sim --devices 4      simulated devices against that gateway",
    "  npx vigil status               one-screen summary of a running gateway; the page is http://127.0.0.1:9479/",
    "  hardware/grafana/vigil.json    a Grafana dashboard over /metrics",
  );
  return lines;
}

/**
 * Writes the live block. On a terminal the block is redrawn in place (ANSI: cursor up to the
 * block's first line, erase to the end of the screen) and lines logged meanwhile appear above
 * it; otherwise every render prints the block as plain lines and logged lines go straight out.
 */
export class LiveView {
  readonly #out: Out;
  readonly tty: boolean;
  #shown = 0;
  #last: string[] = [];

  readonly #columns: number;

  /** @param columns The terminal's width (default 120): block lines are cut to it on a terminal, since a wrapped line would break the redraw's line count. */
  constructor(out: Out, tty: boolean, columns = 120) {
    this.#out = out;
    this.tty = tty;
    // A pty without a size (script, CI) reports 0 columns: keep the default then.
    this.#columns = columns > 0 ? Math.max(20, columns) : 120;
  }

  /** Shows the block (replacing the previous one on a terminal). */
  render(lines: string[]): void {
    this.#last = lines;
    if (!this.tty) {
      this.#out.write(lines.join("\n") + "\n");
      return;
    }
    this.#last = lines.map((l) => (l.length < this.#columns ? l : `${l.slice(0, this.#columns - 2)}…`));
    this.#out.write(this.#erase() + this.#last.join("\n") + "\n");
    this.#shown = lines.length;
  }

  /** A line that stays (an alert): above the block on a terminal. */
  log(line: string): void {
    if (!this.tty || this.#shown === 0) {
      this.#out.write(line + "\n");
      return;
    }
    this.#out.write(this.#erase() + line + "\n" + this.#last.join("\n") + "\n");
  }

  /** Leaves the last block on screen; further output goes below it. */
  close(): void {
    this.#shown = 0;
  }

  #erase(): string {
    return this.#shown ? `\x1b[${this.#shown}F\x1b[J` : "";
  }
}
