#!/usr/bin/python3
"""Train the Vigil rotating-machine health model (profile rotating-v1) and export ONNX + manifest.

Reproduce (fixed seed, 2 CPU threads, Debian's PyTorch 1.13):

    npx tsx models/rotating/generate.ts && /usr/bin/python3 models/rotating/train.py

Reads models/rotating/data/train.{bin,index.txt,spec.txt} written by generate.ts (simulator seeds
101-164). Seeds 149-164 are held out of the gradient steps for early stopping and for choosing the alert
thresholds; the evaluation seeds (1-100) are never read here. Writes models/rotating/rotating-v1.onnx and
models/rotating/rotating-v1.manifest.json, then runs the TypeScript evaluation
(models/eval/evaluate-rotating.ts --write) which recomputes the held-out metrics with onnxruntime-node and
writes them into the manifest (so the claimed metrics are exactly what CI recomputes).
Options: --out DIR (write the ONNX + manifest elsewhere, e.g. to check reproducibility; skips the
evaluation), --no-eval.

Task: failure within horizon H = 100 frames. For a window whose last frame is t on a machine that fails at
frame F (F is the first frame that does not exist), the label is 1 iff F - t <= H. Healthy machines
(degrade: false) are always 0. See models/rotating/README.md for the horizon choice.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(HERE, "data")

SEED = 20261124
H = 100  # horizon, frames
W = 64  # window, frames
CHANNELS = ["vib_rms", "vib_peak", "vib_kurt", "bearing_temp", "current", "speed"]
C = len(CHANNELS)
VAL_SEEDS = set(range(149, 165))
EPOCHS = 10
PATIENCE = 3
BATCH = 256
WINDOWS_PER_EPOCH = 64_000
VAL_EVERY = 4  # per-epoch validation loss on every 4th validation window
LR = 2e-3
WIDTH = 24
THREADS = 2
# alert rule shape: clear = threshold - HYST (hysteresis in probability)
HYST = 0.2
CRITICAL = 0.9


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load():
    raw = np.fromfile(os.path.join(DATA, "train.bin"), dtype="<f4").reshape(-1, C + 2)
    machines = []
    with open(os.path.join(DATA, "train.index.txt")) as f:
        header = f.readline().split()
        for line in f:
            rec = dict(zip(header, map(int, line.split())))
            machines.append(rec)
    with open(os.path.join(DATA, "train.spec.txt")) as f:
        spec = json.load(f)
    assert spec["channels"] == CHANNELS, spec["channels"]
    return raw, machines, spec


class Net(nn.Module):
    """3 conv blocks (2x average-pool between), mean over all and over the last 8 steps, MLP head."""

    def __init__(self, width: int = WIDTH):
        super().__init__()
        self.c1 = nn.Conv1d(C, width, 5, padding=2)
        self.c2 = nn.Conv1d(width, width, 5, padding=2)
        self.c3 = nn.Conv1d(width, width, 5, padding=2)
        self.pool = nn.AvgPool1d(2)
        self.fc1 = nn.Linear(2 * width, 32)
        self.fc2 = nn.Linear(32, 1)
        self.act = nn.ReLU()

    def logits(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, W, C] time-major, oldest first
        h = x.transpose(1, 2)
        h = self.pool(self.act(self.c1(h)))  # W/2
        h = self.pool(self.act(self.c2(h)))  # W/4
        h = self.act(self.c3(h))  # W/4
        g = torch.cat([h.mean(-1), h[..., -4:].mean(-1)], 1)
        return self.fc2(self.act(self.fc1(g))).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


def count_macs(width: int = WIDTH) -> int:
    return (C * width * 5 * W) + (width * width * 5 * W // 2) + (width * width * 5 * W // 4) + 2 * width * 32 + 32


def window_ends(machines, keep):
    """(row of the window's last frame, label) for every full window of the kept machines."""
    rows, labels, mids = [], [], []
    for mi, m in enumerate(machines):
        if not keep(m):
            continue
        t = np.arange(W - 1, m["frames"])
        rows.append(m["first_row"] + t)
        if m["degrade"]:
            labels.append((m["failure_step"] - t <= H).astype(np.float32))
        else:
            labels.append(np.zeros(len(t), np.float32))
        mids.append(np.full(len(t), mi))
    return np.concatenate(rows), np.concatenate(labels), np.concatenate(mids)


def gather(z: np.ndarray, ends: np.ndarray) -> np.ndarray:
    idx = ends[:, None] + np.arange(-W + 1, 1)[None, :]
    return z[idx]  # [B, W, C]


def predict(model: Net, z: np.ndarray, ends: np.ndarray, batch: int = 4096) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(ends), batch):
            out.append(model(torch.from_numpy(gather(z, ends[i : i + batch]))).numpy())
    return np.concatenate(out)


def alert_stats(machines, mids, ends, p, degr, threshold, clear):
    """Same protocol as models/eval/rotating.ts (stride 1, padding none, '>=' rule with hysteresis)."""
    tp = fp = healthy = 0
    leads = []
    degrading = 0
    for mi in np.unique(mids):
        m = machines[mi]
        sel = mids == mi
        pm, rows = p[sel], ends[sel]
        dm = degr[rows]
        active = False
        detected = None
        if m["degrade"]:
            degrading += 1
        for k in range(len(pm)):
            was = active
            if not active and pm[k] >= threshold:
                active = True
            elif active and pm[k] < clear:
                active = False
            if dm[k] == 0:
                healthy += 1
                if active and not was:
                    fp += 1
            elif active and detected is None:
                detected = rows[k] - m["first_row"]
        if m["degrade"] and detected is not None:
            tp += 1
            leads.append(m["failure_step"] - detected)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / degrading if degrading else 0.0
    return {
        "threshold": threshold,
        "clear": clear,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "falseAlarms": fp,
        "falseAlarmsPer1000HealthyFrames": 1000 * fp / max(healthy, 1),
        "medianLead": float(np.median(leads)) if leads else 0.0,
    }


def r6(x: float) -> float:
    return float(f"{x:.6g}")


def main() -> None:
    t0 = time.time()
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(SEED)

    raw, machines, spec = load()
    x = raw[:, :C].astype(np.float64)
    degr = raw[:, C]
    faulted = raw[:, C + 1] > 0
    clean = x[~faulted]
    mean = clean.mean(0)
    std = clean.std(0)
    z = ((x - mean) / std).astype(np.float32)

    tr_ends, tr_y, _ = window_ends(machines, lambda m: m["seed"] not in VAL_SEEDS)
    va_ends, va_y, va_mids = window_ends(machines, lambda m: m["seed"] in VAL_SEEDS)
    print(f"train windows {len(tr_ends)} (pos {tr_y.mean():.3f}), val windows {len(va_ends)}", flush=True)

    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    lossf = nn.BCEWithLogitsLoss()
    best, best_state, best_epoch, bad = float("inf"), None, 0, 0
    for epoch in range(EPOCHS):
        model.train()
        pick = rng.choice(len(tr_ends), size=min(WINDOWS_PER_EPOCH, len(tr_ends)), replace=False)
        tot = 0.0
        for i in range(0, len(pick), BATCH):
            b = pick[i : i + BATCH]
            xb = torch.from_numpy(gather(z, tr_ends[b]))
            yb = torch.from_numpy(tr_y[b])
            opt.zero_grad()
            loss = lossf(model.logits(xb), yb)
            loss.backward()
            opt.step()
            tot += loss.item() * len(b)
        sched.step()
        pv = predict(model, z, va_ends[::VAL_EVERY])
        yv = va_y[::VAL_EVERY]
        eps = 1e-7
        vloss = float(-np.mean(yv * np.log(pv + eps) + (1 - yv) * np.log(1 - pv + eps)))
        print(f"epoch {epoch + 1}: train {tot / len(pick):.4f} val logloss {vloss:.4f} "
              f"val brier {np.mean((pv - yv) ** 2):.4f} ({time.time() - t0:.0f}s)", flush=True)
        if vloss < best - 1e-5:
            best, best_epoch, bad = vloss, epoch + 1, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= PATIENCE:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()

    # alert threshold on the validation seeds: best F1, ties to the longer median lead
    pv = predict(model, z, va_ends)
    grid = []
    for thr in np.round(np.arange(0.30, 0.951, 0.05), 2):
        clear = round(float(thr) - HYST, 2)
        grid.append(alert_stats(machines, va_mids, va_ends, pv, degr, float(thr), clear))
    chosen = max(grid, key=lambda s: (round(s["f1"], 4), s["medianLead"]))
    crit = alert_stats(machines, va_mids, va_ends, pv, degr, CRITICAL, round(CRITICAL - HYST, 2))
    for s in grid:
        print("  thr {threshold:.2f} clear {clear:.2f}: P {precision:.3f} R {recall:.3f} F1 {f1:.3f} "
              "FA/1k {falseAlarmsPer1000HealthyFrames:.3f} lead {medianLead:.0f}".format(**s))
    print(f"chosen threshold {chosen['threshold']} clear {chosen['clear']}", flush=True)

    # export
    out_dir = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else HERE
    os.makedirs(out_dir, exist_ok=True)
    onnx_path = os.path.join(out_dir, "rotating-v1.onnx")
    torch.onnx.export(
        model,
        torch.zeros(2, W, C),
        onnx_path,
        input_names=["window"],
        output_names=["p_fail"],
        dynamic_axes={"window": {0: "batch"}, "p_fail": {0: "batch"}},
        opset_version=13,
        do_constant_folding=True,
    )
    params = sum(p.numel() for p in model.parameters())
    elapsed = time.time() - t0

    thr, clr = chosen["threshold"], chosen["clear"]
    manifest = {
        "$schema": "../manifest.schema.json",
        "schemaVersion": 1,
        "name": "rotating-v1-health",
        "version": "1.0.0",
        "task": "failure-horizon",
        "description": (
            f"Probability that a rotating machine (device-sim profile rotating-v1) fails within the next {H} "
            f"frames, from the last {W} frames of its 6 channels: small 1D-CNN trained on simulator "
            "run-to-failure trajectories with sensor faults (stuck, drift, spike)."
        ),
        "devices": {"profiles": ["rotating-v1"]},
        "model": {
            "file": "rotating-v1.onnx",
            "sha256": sha256_file(onnx_path),
            "bytes": os.path.getsize(onnx_path),
            "format": "onnx",
            "opset": 13,
            "params": int(params),
            "macsPerWindow": int(count_macs()),
            "architecture": (
                f"Conv1d(6->{WIDTH},k5) ReLU AvgPool2, Conv1d({WIDTH},k5) ReLU AvgPool2, Conv1d({WIDTH},k5) ReLU, "
                f"[mean over time, mean over last 4] -> Linear({2 * WIDTH}->32) ReLU Linear(->1) sigmoid"
            ),
        },
        "inputs": {
            "tensor": "window",
            "dtype": "float32",
            "shape": ["batch", W, C],
            "channels": CHANNELS,
            "features": CHANNELS,
            "window": W,
            "stride": 1,
            "padding": {
                "policy": "none",
                "description": f"No output until a device has sent {W} frames (a fresh machine is healthy).",
            },
        },
        "normalization": {
            "method": "regime-zscore",
            "description": (
                "One regime (the load varies continuously; no discrete operating conditions): z-score per "
                "channel with mean/std of the fault-free training frames."
            ),
            "regime": {"channels": ["speed"], "centroids": [[float(mean[5])]]},
            "mean": [[float(v) for v in mean]],
            "std": [[float(v) for v in std]],
        },
        "outputs": [
            {
                "name": "p_fail",
                "shape": ["batch"],
                "unit": "probability",
                "meaning": (
                    f"Probability that the machine fails within {H} frames after the window's last frame "
                    "(ground truth: the simulator's failureStep)."
                ),
                "min": 0,
                "max": 1,
            }
        ],
        "alerts": [
            {
                "id": "failure-warning",
                "output": "p_fail",
                "severity": "warning",
                "op": ">=",
                "threshold": thr,
                "clear": clr,
                "description": f"Failure within {H} frames likely (p >= {thr}); clears below {clr}.",
            },
            {
                "id": "failure-critical",
                "output": "p_fail",
                "severity": "critical",
                "op": ">=",
                "threshold": CRITICAL,
                "clear": round(CRITICAL - HYST, 2),
                "description": f"Failure within {H} frames very likely (p >= {CRITICAL}); clears below "
                f"{round(CRITICAL - HYST, 2)}.",
            },
        ],
        "training": {
            "command": "npx tsx models/rotating/generate.ts && /usr/bin/python3 models/rotating/train.py",
            "script": "models/rotating/train.py",
            "seed": SEED,
            "framework": f"pytorch {torch.__version__}",
            "threads": THREADS,
            "seconds": round(elapsed, 1),
            "target": {"kind": "failure-within-horizon", "horizonFrames": H, "loss": "binary cross-entropy"},
            "generator": {
                "script": "models/rotating/generate.ts",
                "seeds": [spec["seeds"][0], spec["seeds"][-1]],
                "degradingPerSeed": spec["degrading"],
                "healthyPerSeed": spec["healthy"],
                "healthyFrames": spec["healthyFrames"],
                "meanLife": spec["meanLife"],
                "faults": spec["faults"],
            },
            "data": [
                {
                    "file": "models/rotating/data/train.bin",
                    "sha256": sha256_file(os.path.join(DATA, "train.bin")),
                    "hashOf": "float32 LE rows [6 channels, degradation, faulted], regenerated by generate.ts",
                },
                {
                    "file": "models/rotating/data/train.index.txt",
                    "sha256": sha256_file(os.path.join(DATA, "train.index.txt")),
                    "hashOf": "machine index (seed, machine, degrade, failure_step, rows, polls)",
                },
            ],
            "validation": {
                "seeds": [min(VAL_SEEDS), max(VAL_SEEDS)],
                "method": "seeds 149-164 held out of the gradient steps: early stopping on log loss, threshold by F1",
                "bestEpoch": best_epoch,
                "logLoss": r6(best),
                "warning": {k: r6(v) for k, v in chosen.items()},
                "critical": {k: r6(v) for k, v in crit.items()},
            },
        },
        "metrics": {
            "testFile": "regenerated in memory: models/rotating/generate.ts SPLITS.eval (seeds 1-100)",
            "protocol": "filled in by models/eval/evaluate-rotating.ts --write",
            "units": 1,
            "rmse": 1,
            "score": 1,
        },
    }
    mpath = os.path.join(out_dir, "rotating-v1.manifest.json")
    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"wrote {onnx_path} ({params} params, {count_macs()} MACs) in {elapsed:.0f}s", flush=True)
    if "--no-eval" not in sys.argv and out_dir == HERE:
        subprocess.run(["npx", "tsx", "models/eval/evaluate-rotating.ts", "--write"], cwd=REPO, check=True)


if __name__ == "__main__":
    main()
