/* Vigil live page: plain JavaScript over server-sent events (/events), uPlot for the rate chart.
 *
 * Messages (gateway/src/http/sse.ts): `init` (everything, on connect and after a resync),
 * `delta` (device health coalesced per device, alert transitions; every 250 ms when something
 * changed), `stats` (counters, rates, devices' ingest figures, batches, models; every second).
 *
 * Smooth at 1,000 devices: the device table is built once; updates only mark rows dirty, and a
 * requestAnimationFrame pass touches the DOM of dirty rows that are on screen (an
 * IntersectionObserver tracks which are), within a time budget per frame; off-screen rows catch
 * up when they scroll into view. Sparklines are drawn on one small canvas per row on screen (a uPlot
 * instance per row would cost far more at 1,000 rows). All text goes through textContent:
 * device-sent strings (profile, firmware) are never parsed as HTML.
 */
/* global uPlot, EventSource, setTimeout, IntersectionObserver, ResizeObserver, document, requestAnimationFrame, performance, devicePixelRatio, getComputedStyle */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const nf = new Intl.NumberFormat("en");
  const fmtInt = (n) => nf.format(n);
  const FRAME_BUDGET_MS = 6;
  const SEV_RANK = { info: 1, warning: 2, critical: 3 };

  /** Latest stats message, models by name, devices by id, active alerts by id. */
  let stats = null;
  let sparkPoints = 120;
  const modelsByName = new Map();
  const rows = new Map();
  const activeAlerts = new Map();
  /** Highest active severity per device (recomputed when alerts are rendered). */
  let sevByDevice = new Map();
  let alertsTimer = 0;
  let recentAlerts = [];
  let chart = null;
  let hist = { t: [], accepted: [], rejected: [], duplicates: [], windows: [] };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function td(text, cls) {
    return el("td", cls, text);
  }
  function cell(text, cls) {
    const c = el("span", cls, text);
    c.setAttribute("role", "cell");
    return c;
  }
  function shortHash(h) {
    return h && h.length > 14 ? `${h.slice(0, 10)}…${h.slice(-6)}` : h || "–";
  }
  function timeText(ms) {
    return ms ? new Date(ms).toLocaleTimeString() : "–";
  }
  function ageText(ms) {
    if (ms < 0) ms = 0;
    if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
    if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
    if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
    return `${Math.round(ms / 3_600_000)} h`;
  }
  function bytesText(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) {
      n /= 1024;
      i++;
    }
    return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
  }
  /** "p_fail 12 %" for a probability, "rul 87 cycles" otherwise. */
  function outputText(name, v, unit) {
    if (v === undefined || v === null) return "–";
    if (unit === "probability") return `${name} ${(v * 100).toFixed(0)} %`;
    return `${name} ${Math.abs(v) < 10 ? v.toFixed(2) : v.toFixed(0)}${unit ? " " + unit : ""}`;
  }
  function setText(e, text) {
    if (e.textContent !== text) e.textContent = text;
  }

  // ------------------------------------------------------------------ device rows

  const dirty = new Set();
  let rafPending = false;
  function schedule() {
    if (!rafPending) {
      rafPending = true;
      requestAnimationFrame(flush);
    }
  }
  function flush() {
    rafPending = false;
    const t0 = performance.now();
    for (const r of dirty) {
      dirty.delete(r);
      if (!r.visible) {
        r.stale = true; // rendered when it scrolls into view
        continue;
      }
      r.render();
      if (performance.now() - t0 > FRAME_BUDGET_MS) break;
    }
    if (dirty.size) schedule();
  }
  const observer = new IntersectionObserver(
    (entries) => {
      for (const e of entries) {
        e.target.__row.show(e.isIntersecting);
      }
    },
    { rootMargin: "200px 0px" },
  );

  class DeviceRow {
    constructor(id) {
      this.id = id;
      this.visible = false;
      this.stale = false;
      this.ingest = null;
      this.health = null;
      this.spark = new Float32Array(sparkPoints);
      this.n = 0;
      this.sparkDirty = false;
      // A row is a contained grid of cells (not a <tr>): a text change re-lays out its own row
      // only, and off-screen rows skip rendering (content-visibility), which table rows cannot.
      const tr = (this.tr = el("div", "dev"));
      tr.setAttribute("role", "row");
      tr.__row = this;
      this.c = {
        id: cell(id),
        profile: cell("–"),
        health: cell("–", "n"),
        trend: cell(),
        alerts: cell(""),
        rate: cell("–", "n"),
        accepted: cell("–", "n"),
        rejected: cell("–", "n"),
        gaps: cell("–", "n"),
        errors: cell("–", "n"),
        quality: cell("–"),
        last: cell("–", "n"),
      };
      // The sparkline's canvas exists only while the row is on screen (see show()).
      this.canvas = null;
      for (const k of Object.keys(this.c)) tr.appendChild(this.c[k]);
      this.rowClass = "";
    }
    /**
     * On screen or not (IntersectionObserver). Only rows on screen hold a canvas: a thousand
     * canvases, even off screen, made scrolling drop to a few frames per second (bench http).
     */
    show(visible) {
      this.visible = visible;
      if (visible && !this.canvas) {
        this.canvas = el("canvas");
        this.canvas.width = 120 * devicePixelRatio;
        this.canvas.height = 22 * devicePixelRatio;
        this.c.trend.appendChild(this.canvas);
        this.sparkDirty = true;
        this.stale = false;
        dirty.add(this);
        schedule();
      } else if (!visible && this.canvas) {
        this.canvas.remove();
        this.canvas = null;
      }
    }
    push(points) {
      for (const v of points) {
        // null (a NaN or ±Inf output) is kept as NaN: a gap in the line, not a point at 0.
        this.spark[this.n % sparkPoints] = v ?? NaN;
        this.n++;
      }
      this.sparkDirty = true;
    }
    matches(q) {
      return !q || this.id.includes(q) || (this.ingest?.profile || this.health?.profile || "").includes(q);
    }
    severity() {
      return sevByDevice.get(this.id) || "";
    }
    render() {
      const c = this.c;
      const g = this.ingest;
      const h = this.health;
      const now = stats ? stats.t : Date.now();
      setText(c.profile, (g && g.profile) || (h && h.profile) || "–");
      if (g) {
        setText(c.rate, g.rate.toFixed(1));
        setText(c.accepted, fmtInt(g.accepted));
        setText(c.rejected, fmtInt(g.rejected));
        setText(c.gaps, fmtInt(g.gaps));
        setText(c.errors, fmtInt(g.errors));
        setText(c.last, g.lastMs ? ageText(now - g.lastMs) : "–");
        const q = g.quality;
        if (q) {
          // The live model's data-quality stage: channels in sensor fault, windows withheld.
          setText(
            c.quality,
            q.faults
              ? `${q.faults} sensor fault${q.faults > 1 ? "s" : ""}`
              : q.withheld
                ? `${fmtInt(q.withheld)} withheld`
                : "ok",
          );
          c.quality.className = q.faults ? "sev-warning" : "";
          c.quality.title = `commissioning: ${q.mode}; windows withheld for data quality: ${fmtInt(q.withheld)}`;
        }
      }
      const sev = h && h.a > 0 ? this.severity() || "warning" : "";
      if (h) {
        const out = this.output();
        setText(c.health, outputText(out.name, h.o[0], out.unit));
        setText(c.alerts, h.a > 0 ? `${h.a} ${sev}` : "");
      }
      if (sev !== this.rowClass) {
        this.tr.className = sev ? `dev ${sev}` : "dev";
        this.rowClass = sev;
      }
      if (this.sparkDirty) {
        this.sparkDirty = false;
        this.draw(sev);
      }
    }
    output() {
      const m = this.health && modelsByName.get(this.health.model.split("@")[0]);
      const o = m && m.outputs[0];
      return o || { name: "", unit: "" };
    }
    draw(sev) {
      const cv = this.canvas;
      if (!cv) return;
      const ctx = cv.getContext("2d");
      const w = cv.width;
      const hgt = cv.height;
      ctx.clearRect(0, 0, w, hgt);
      const k = Math.min(this.n, sparkPoints);
      if (k < 2) return;
      const out = this.output();
      let lo = out.min;
      let hi = out.max;
      if (lo === undefined || hi === undefined) {
        lo = Infinity;
        hi = -Infinity;
        for (let i = 0; i < k; i++) {
          const v = this.spark[(this.n - k + i) % sparkPoints];
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
      const span = hi - lo || 1;
      const pad = 2 * devicePixelRatio;
      ctx.beginPath();
      let gap = true;
      for (let i = 0; i < k; i++) {
        const v = this.spark[(this.n - k + i) % sparkPoints];
        if (Number.isNaN(v)) {
          gap = true;
          continue;
        }
        const x = (i / (sparkPoints - 1)) * w;
        const y = hgt - pad - ((v - lo) / span) * (hgt - 2 * pad);
        if (gap) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
        gap = false;
      }
      ctx.lineWidth = 1.25 * devicePixelRatio;
      ctx.strokeStyle = sev === "critical" ? "#cf222e" : sev === "warning" ? "#bf8700" : "#1f6feb";
      ctx.stroke();
    }
  }

  function rowFor(id) {
    let r = rows.get(id);
    if (!r) {
      r = new DeviceRow(id);
      rows.set(id, r);
      const tbody = $("device-rows");
      // Keep the table ordered by device id.
      let before = null;
      for (const tr of tbody.children)
        if (tr.__row.id > id) {
          before = tr;
          break;
        }
      tbody.insertBefore(r.tr, before);
      r.tr.hidden = !r.matches($("filter").value.trim().toLowerCase());
      observer.observe(r.tr);
    }
    return r;
  }

  function markAll() {
    for (const r of rows.values()) dirty.add(r);
    schedule();
  }

  // ------------------------------------------------------------------ tables and tiles

  function renderAlerts() {
    const sev = new Map();
    for (const a of activeAlerts.values())
      if ((SEV_RANK[a.severity] || 0) > (SEV_RANK[sev.get(a.device)] || 0)) sev.set(a.device, a.severity);
    for (const id of new Set([...sev.keys(), ...sevByDevice.keys()]))
      if (sev.get(id) !== sevByDevice.get(id) && rows.has(id)) dirty.add(rows.get(id));
    sevByDevice = sev;
    schedule();
    const list = [...activeAlerts.values()].sort(
      (a, b) => (SEV_RANK[b.severity] || 0) - (SEV_RANK[a.severity] || 0) || a.sinceMs - b.sinceMs,
    );
    const tbody = $("alerts").tBodies[0];
    const shown = list.slice(0, 200);
    tbody.replaceChildren(
      ...shown.map((a) => {
        const tr = el("tr");
        const leaf = td(shortHash(a.leaf), "leaf");
        leaf.title = a.leaf;
        tr.append(
          td(a.device),
          td(a.severity, `sev-${a.severity}`),
          td(a.ruleId),
          td(`${a.output} ${fmtNum(a.value)}`, "n"),
          td(`${a.op} ${a.threshold}`),
          td(timeText(a.sinceMs)),
          td(a.model),
          leaf,
        );
        return tr;
      }),
    );
    setText(
      $("alert-count"),
      list.length ? `(${list.length}${list.length > shown.length ? ", first 200 shown" : ""})` : "",
    );
    $("alerts-empty").hidden = list.length > 0;
    $("alerts").hidden = list.length === 0;
    $("recent").tBodies[0].replaceChildren(
      ...recentAlerts.map((a) => {
        const tr = el("tr");
        const leaf = td(shortHash(a.leaf), "leaf");
        leaf.title = a.leaf;
        tr.append(
          td(timeText(a.atMs)),
          td(a.device),
          td(a.state),
          td(a.severity, `sev-${a.severity}`),
          td(a.ruleId),
          td(fmtNum(a.value), "n"),
          leaf,
        );
        return tr;
      }),
    );
    setText($("t-alerts"), fmtInt(list.length));
  }
  function fmtNum(v) {
    return Math.abs(v) < 10 ? v.toFixed(3) : v.toFixed(1);
  }

  function renderStats(s) {
    stats = s;
    const g = s.gateway;
    setText($("gw-name"), g.name);
    setText($("gw-meta"), `site ${g.site} · id ${shortHash(g.id)}`);
    $("gw-meta").title = g.id;
    const ready = $("ready");
    const r = s.readiness;
    setText(
      ready,
      r.ready ? "ready" : `not ready: ${r.failing.map((f) => `${f.check} ${f.reason}`).join(", ")}`,
    );
    ready.className = `badge ${r.ready ? "ok" : "bad"}`;
    ready.title = [...r.failing, ...r.warnings].map((f) => `${f.check}: ${f.detail}`).join("\n");

    const t = s.totals;
    setText($("t-devices"), fmtInt(s.devices.length));
    setText($("t-rate"), s.rates.accepted.toFixed(0));
    setText($("t-rejected"), s.rates.rejected.toFixed(1));
    setText($("t-windows"), s.rates.windows.toFixed(0));
    setText($("t-batches"), `${fmtInt(t.batchesSealed)} / ${fmtInt(t.batchesAnchored)}`);
    setText($("t-outbox"), s.anchor.enabled ? fmtInt(s.anchor.backlog) : "off");
    setText($("t-store"), `${s.store.state} · ${bytesText(s.store.liveBytes)}`);
    setText(
      $("totals-line"),
      `accepted ${fmtInt(t.accepted)} · duplicates ${fmtInt(t.duplicates)} · rejected ${fmtInt(t.rejected)} · ` +
        `device errors ${fmtInt(t.deviceErrors)} · windows ${fmtInt(t.windowsRun)} (skipped ${fmtInt(t.windowsSkipped)}) · ` +
        `alerts raised ${fmtInt(t.alertsRaised)}, cleared ${fmtInt(t.alertsCleared)}`,
    );
    $("rejections").tBodies[0].replaceChildren(
      ...s.rejections.map((x) => {
        const tr = el("tr");
        tr.append(td(x.reason), td(fmtInt(x.total), "n"), td(x.rate.toFixed(1), "n"));
        return tr;
      }),
    );

    $("batches").tBodies[0].replaceChildren(
      ...s.batches.map((b) => {
        const tr = el("tr");
        const tx = td(b.anchored ? shortHash(b.tx) : "waiting", b.anchored ? "leaf" : "muted");
        if (b.tx) tx.title = b.tx;
        tr.append(
          td(String(b.seq), "n"),
          td(fmtInt(b.leaves), "n"),
          td(timeText(b.sealedMs)),
          tx,
          td(b.block ?? "–", "n"),
        );
        return tr;
      }),
    );
    setText(
      $("anchor-status"),
      !s.sealing
        ? "Sealing is off (no chain.deployment, or attest.enabled false): frames are stored, not sealed."
        : !s.anchor.enabled
          ? "Anchoring is off (no chain.rpcUrl): sealed batches wait in the outbox."
          : s.anchor.lastError
            ? `Anchoring retries after ${s.anchor.failures} failures: ${s.anchor.lastError}`
            : `Outbox: ${s.anchor.backlog} batch(es) waiting. Sealer backlog: ${fmtInt(t.sealerBacklog)} entries.`,
    );

    modelsByName.clear();
    for (const m of s.models) if (m.role === "live" || !modelsByName.has(m.name)) modelsByName.set(m.name, m);
    $("models").tBodies[0].replaceChildren(
      ...s.models.map((m) => {
        const tr = el("tr");
        const sha = td(shortHash(m.sha256), "leaf");
        sha.title = m.sha256;
        const lane =
          m.role === "shadow" && m.shadow
            ? `shadow (Δ mean ${m.shadow.meanAbsDiff.toPrecision(3)}, ${m.shadow.compared} compared)`
            : m.role;
        tr.append(
          td(m.name),
          td(m.version),
          td(lane),
          td(m.profiles.join(", ")),
          sha,
          td(fmtInt(m.windowsRun), "n"),
          td(m.usPerWindow.toFixed(1), "n"),
        );
        return tr;
      }),
    );
    setText(
      $("inference-line"),
      s.inference
        ? `frame → result p50 ${s.inference.frameToResultP50Ms.toFixed(1)} ms, p99 ${s.inference.frameToResultP99Ms.toFixed(1)} ms; model run p99 ${s.inference.runP99Ms.toFixed(2)} ms`
        : `No models loaded: frames are stored${s.sealing ? " and sealed" : ""}, not inferred.`,
    );
    setText(
      $("registry"),
      s.registry
        ? `Registry copy ${ageText(s.registry.cacheAgeSeconds * 1000)} old${s.registry.block ? ` (block ${s.registry.block})` : ""}.`
        : "No copy of the on-chain registry yet (the registry watch is off, or has not read the chain yet).",
    );

    for (const d of s.devices) {
      const r = rowFor(d.d);
      r.ingest = d;
      dirty.add(r);
    }
    setText($("device-count"), `(${fmtInt(rows.size)})`);
    schedule();
  }

  function applyHealth(list) {
    for (const h of list) {
      const r = rowFor(h.d);
      r.health = { profile: h.pr, model: h.m, o: h.o, a: h.a, t: h.t };
      r.push(h.p);
      dirty.add(r);
    }
    schedule();
  }

  function applyAlerts(list) {
    if (!list.length) return;
    for (const a of list) {
      if (a.state === "raised") activeAlerts.set(a.alertId, a);
      else activeAlerts.delete(a.alertId);
      recentAlerts.unshift(a);
    }
    recentAlerts = recentAlerts.slice(0, 50);
    // At most twice a second: with many devices, transitions arrive in every delta.
    if (!alertsTimer)
      alertsTimer = setTimeout(() => {
        alertsTimer = 0;
        renderAlerts();
      }, 500);
  }

  // ------------------------------------------------------------------ chart

  function chartData() {
    return [hist.t, hist.accepted, hist.rejected, hist.duplicates, hist.windows];
  }
  function makeChart() {
    const box = $("rate-chart");
    const css = getComputedStyle(document.documentElement);
    const color = (v) => css.getPropertyValue(v).trim();
    chart = new uPlot(
      {
        width: Math.max(300, box.clientWidth),
        height: 220,
        series: [
          {},
          { label: "accepted", stroke: color("--accent"), width: 1.5 },
          { label: "rejected", stroke: color("--critical"), width: 1.5 },
          { label: "duplicates", stroke: color("--warning"), width: 1 },
          { label: "windows", stroke: color("--ok"), width: 1 },
        ],
        axes: [
          { stroke: color("--muted"), grid: { stroke: color("--line") } },
          { stroke: color("--muted"), grid: { stroke: color("--line") } },
        ],
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
        legend: { live: false },
      },
      chartData(),
      box,
    );
    new ResizeObserver(() => chart.setSize({ width: Math.max(300, box.clientWidth), height: 220 })).observe(
      box,
    );
  }
  function appendHistory(s) {
    const t = Math.round(s.t / 1000);
    if (hist.t.length && hist.t[hist.t.length - 1] >= t) return;
    hist.t.push(t);
    hist.accepted.push(s.rates.accepted);
    hist.rejected.push(s.rates.rejected);
    hist.duplicates.push(s.rates.duplicates);
    hist.windows.push(s.rates.windows);
    if (hist.t.length > 300) for (const k of Object.keys(hist)) hist[k].shift();
    chart.setData(chartData());
  }

  // ------------------------------------------------------------------ stream

  function onInit(init) {
    sparkPoints = init.sparkPoints;
    rows.clear();
    dirty.clear();
    observer.disconnect();
    $("device-rows").replaceChildren();
    activeAlerts.clear();
    for (const a of init.alerts.active) activeAlerts.set(a.alertId, a);
    recentAlerts = [...init.alerts.recent].reverse();
    hist = init.history;
    if (chart) chart.setData(chartData());
    else makeChart();
    // Build every row at once (one layout), then fill them.
    const ids = new Set([...init.devices.map((d) => d.d), ...init.health.map((h) => h.d)]);
    const frag = document.createDocumentFragment();
    for (const id of [...ids].sort()) {
      const r = new DeviceRow(id);
      rows.set(id, r);
      frag.appendChild(r.tr);
    }
    $("device-rows").appendChild(frag);
    for (const r of rows.values()) observer.observe(r.tr);
    for (const h of init.health) {
      const r = rows.get(h.d);
      r.health = { profile: h.profile, model: h.model, o: h.outputs.map((x) => x[1]), a: h.a, t: h.t };
      r.push(h.p);
    }
    renderStats(init);
    renderAlerts();
    applyFilter();
    markAll();
  }

  function applyFilter() {
    const q = $("filter").value.trim().toLowerCase();
    for (const r of rows.values()) r.tr.hidden = !r.matches(q);
  }
  $("filter").addEventListener("input", applyFilter);

  const conn = $("conn");
  const es = new EventSource("/events");
  es.addEventListener("open", () => setText(conn, "live"));
  es.addEventListener("error", () => {
    setText(conn, "disconnected, retrying…");
    const ready = $("ready");
    ready.className = "badge bad";
    setText(ready, "no connection");
  });
  es.addEventListener("init", (e) => onInit(JSON.parse(e.data)));
  es.addEventListener("stats", (e) => {
    const s = JSON.parse(e.data);
    renderStats(s);
    appendHistory(s);
  });
  es.addEventListener("delta", (e) => {
    const d = JSON.parse(e.data);
    applyHealth(d.health);
    applyAlerts(d.alerts);
  });
})();
