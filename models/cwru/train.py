#!/usr/bin/env python3
"""Train the Vigil bearing-fault model on real CWRU data (profile cwru-bearing-v1) and export ONNX + manifest.

Reproduce (fixed seed, 1 CPU thread; the venv of models/README.md "Reproduce"):

    tmp/venv/bin/python models/cwru/train.py

Reads models/data/cwru/feature_time_48k_2048_load_1.csv.gz: the CWRU Bearing Data Center's drive-end
accelerometer at 48 kHz, 1 HP load, summarised per 2,048-sample window into 9 time-domain statistics
(max, min, mean, sd, rms, skewness, kurtosis, crest, form), 10 classes x 230 windows, one recording per
class (models/data/cwru/README.md). A device sends one frame per window; the model reads the last W = 8
frames (0.34 s of vibration) and outputs the probability of each class and p_fault = 1 - P(Normal).

Split (the same in gateway/src/infer/features/cwru.ts CWRU_SPLIT): each class's rows in file order, rows
0-128 train, 129-160 validation (early stopping, the only model selection), 161-229 test (never read for
any choice). No window crosses a boundary. Writes models/cwru/cwru-bearing-v1.onnx and its manifest, then
runs `npx tsx models/eval/evaluate-cwru.ts --write`, which recomputes the held-out metrics with
onnxruntime-node through the gateway's own windows and records them in the manifest.
Options: --out DIR (write elsewhere, e.g. to check reproducibility; skips the evaluation), --no-eval.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(REPO, "models", "data", "cwru", "feature_time_48k_2048_load_1.csv.gz")
SEED = 20261124
CHANNELS = ["max", "min", "mean", "sd", "rms", "skewness", "kurtosis", "crest", "form"]
CLASSES = ["Normal_1", "Ball_007_1", "Ball_014_1", "Ball_021_1", "IR_007_1", "IR_014_1", "IR_021_1",
           "OR_007_6_1", "OR_014_6_1", "OR_021_6_1"]
VAL_FROM, TEST_FROM, ROWS = 129, 161, 230
W = 8
HIDDEN = 32
EPOCHS = 300
LR = 3e-3
WEIGHT_DECAY = 1e-4
MEMBERS = 3  # ensemble members (seeds SEED + k), averaged inside the graph


def load() -> tuple[dict[str, np.ndarray], bytes]:
    with gzip.open(DATA, "rb") as f:
        raw = f.read()
    lines = raw.decode("utf-8").lstrip("\ufeff").splitlines()
    assert lines[0].split(",") == CHANNELS + ["fault"], lines[0]
    by = {c: [] for c in CLASSES}
    for line in lines[1:]:
        if line.strip():
            f = line.split(",")
            by[f[-1]].append([float(v) for v in f[:-1]])
    out = {c: np.array(v, dtype=np.float64) for c, v in by.items()}
    assert all(len(v) == ROWS for v in out.values())
    return out, raw


def windows(x: np.ndarray) -> np.ndarray:
    """All windows of W consecutive rows of a block: [n - W + 1, W, C]."""
    return np.stack([x[i : i + W] for i in range(len(x) - W + 1)])


def split(data: dict[str, np.ndarray], lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for k, c in enumerate(CLASSES):
        w = windows(data[c][lo:hi])
        xs.append(w)
        ys.append(np.full(len(w), k))
    return np.concatenate(xs), np.concatenate(ys)


class Net(nn.Module):
    """Per-frame MLP (1x1 convolutions 9 -> 32 -> 32, ReLU), mean over the window's frames, Linear(32 -> 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.frame = nn.Sequential(nn.Conv1d(len(CHANNELS), HIDDEN, 1), nn.ReLU(), nn.Conv1d(HIDDEN, HIDDEN, 1), nn.ReLU())
        self.out = nn.Linear(HIDDEN, len(CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # logits
        return self.out(self.frame(x.transpose(1, 2)).mean(dim=2))


class Ensemble(nn.Module):
    """Mean of the members' class probabilities; outputs p_fault [N] and class_probs [N, 10]."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.softmax(self.members[0](x), dim=1)
        for m in self.members[1:]:
            p = p + torch.softmax(m(x), dim=1)
        p = p / len(self.members)
        return 1.0 - p[:, 0], p


def train_member(seed: int, xtr, ytr, xva, yva, log) -> tuple[nn.Module, float, int]:
    torch.manual_seed(seed)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    xv, yv = torch.from_numpy(xva), torch.from_numpy(yva)
    rng = np.random.default_rng(seed)
    best, best_state, best_epoch = math.inf, None, 0
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(xt)))
        for i in range(0, len(perm), 128):
            b = perm[i : i + 128]
            opt.zero_grad()
            loss = loss_fn(model(xt[b]), yt[b])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            v = float(loss_fn(model(xv), yv))
        if v < best:
            best, best_epoch = v, epoch
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    log(f"  member seed={seed}: best validation log loss {best:.4f} at epoch {best_epoch + 1}")
    return model, best, best_epoch + 1


def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def max_run(x: np.ndarray) -> int:
    change = np.flatnonzero(np.diff(x) != 0)
    return int(np.diff(np.concatenate([[-1], change, [len(x) - 1]])).max())


def quality_block(data: dict[str, np.ndarray], mean: np.ndarray, std: np.ndarray) -> dict:
    """Data-quality rules from the training rows only (like models/cmapss/train.py quality_block)."""
    rows = np.concatenate([data[c][:VAL_FROM] for c in CLASSES])
    z = (rows - mean) / std
    channels = {}
    for j, name in enumerate(CHANNELS):
        lo, hi = float(rows[:, j].min()), float(rows[:, j].max())
        half = (hi - lo) / 2
        run = max(max_run(data[c][:VAL_FROM, j]) for c in CLASSES)
        channels[name] = {"min": round(lo - half, 6), "max": round(hi + half, 6), "stuckFrames": 2 * run + 2,
                          "impute": "regress"}
    F = len(CHANNELS)
    weights, intercept = np.zeros((F, F)), np.zeros(F)
    for j in range(F):
        others = [k for k in range(F) if k != j]
        x = np.concatenate([z[:, others], np.ones((len(z), 1))], axis=1)
        w, *_ = np.linalg.lstsq(x, z[:, j], rcond=None)
        weights[j, others], intercept[j] = w[:-1], w[-1]
    return {
        "description": "From the training rows only (models/cwru/train.py quality_block): valid range = the training "
        "range widened by half its width on each side; stuck after 2 x the longest run of identical values + 2 "
        "frames; no spike rule (a bearing changing condition moves these statistics in one frame). A flagged value "
        "is estimated from the frame's other normalised statistics (regression). No clean frame of the file is "
        "flagged (test/models/cwru.test.ts).",
        "channels": channels,
        "maxImputeFrames": 30,
        "faultFrames": 3,
        "clearFrames": 10,
        "window": {"maxImputedFraction": 0.25, "maxImputedFractionRow": 0.5, "maxLostFeatures": 1},
        "regression": {
            "description": "least squares on the training rows' normalised statistics: each from the other eight",
            "features": CHANNELS,
            "weights": [[float(round(v, 8)) for v in r] for r in weights],
            "intercept": [float(round(v, 8)) for v in intercept],
        },
    }


def format_json(path: str) -> None:
    prettier = os.path.join(REPO, "node_modules", ".bin", "prettier")
    if os.path.exists(prettier):
        subprocess.run([prettier, "--log-level", "warn", "--write", path], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--no-eval", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()

    def log(msg: str) -> None:
        print(msg, flush=True)

    data, raw = load()
    train_rows = np.concatenate([data[c][:VAL_FROM] for c in CLASSES])
    mean, std = train_rows.mean(axis=0), train_rows.std(axis=0)
    norm = {c: ((v - mean) / std).astype(np.float32) for c, v in data.items()}
    xtr, ytr = split(norm, 0, VAL_FROM)
    xva, yva = split(norm, VAL_FROM, TEST_FROM)
    log(f"train windows {len(xtr)}, validation windows {len(xva)} (W = {W})")
    members, val_losses, epochs = [], [], []
    for k in range(MEMBERS):
        m, v, e = train_member(SEED + k, xtr, ytr, xva, yva, log)
        members.append(m)
        val_losses.append(v)
        epochs.append(e)
    ens = Ensemble(members).eval()
    with torch.no_grad():
        pf, pc = ens(torch.from_numpy(xva))
    val_acc = float((pc.argmax(1).numpy() == yva).mean())
    log(f"validation accuracy (ensemble) {val_acc:.4f}")

    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "cwru-bearing-v1.onnx")
    torch.onnx.export(ens, torch.zeros(2, W, len(CHANNELS)), onnx_path, input_names=["window"],
                      output_names=["p_fault", "class_probs"],
                      dynamic_axes={"window": {0: "batch"}, "p_fault": {0: "batch"}, "class_probs": {0: "batch"}},
                      opset_version=13, do_constant_folding=True, dynamo=False)
    params = sum(p.numel() for p in ens.parameters())
    macs = MEMBERS * (W * (len(CHANNELS) * HIDDEN + HIDDEN * HIDDEN) + HIDDEN * len(CLASSES))
    manifest = {
        "$schema": "../manifest.schema.json",
        "schemaVersion": 1,
        "name": "cwru-bearing-v1",
        "version": "1.0.0",
        "task": "fault-diagnosis",
        "description": "Bearing fault diagnosis from real vibration data (CWRU Bearing Data Center, drive end, 48 kHz, "
        "1 HP): from the last 8 frames of 9 time-domain statistics of 2,048-sample accelerometer windows, the "
        "probability of each of 10 bearing conditions and of any fault.",
        "devices": {"profiles": ["cwru-bearing-v1"]},
        "model": {
            "file": "cwru-bearing-v1.onnx",
            "sha256": sha256_file(onnx_path),
            "bytes": os.path.getsize(onnx_path),
            "format": "onnx",
            "opset": 13,
            "params": int(params),
            "macsPerWindow": int(macs),
            "architecture": f"mean of {MEMBERS} x softmax[per-frame Conv1d(9->{HIDDEN}, k=1) ReLU, Conv1d({HIDDEN}->"
            f"{HIDDEN}, k=1) ReLU, mean over the {W} frames, Linear({HIDDEN}->10)]; p_fault = 1 - P(Normal_1)",
        },
        "inputs": {
            "tensor": "window",
            "dtype": "float32",
            "shape": ["batch", W, len(CHANNELS)],
            "channels": CHANNELS,
            "features": CHANNELS,
            "window": W,
            "stride": 1,
            "padding": {"policy": "none", "description": "No output before a device's 8th frame."},
            "quality": quality_block(data, mean, std),
        },
        "normalization": {
            "method": "regime-zscore",
            "description": "One regime (the load is fixed in this data; `rms` is the regime channel only to satisfy "
            "the schema): each statistic z-scored with the mean and standard deviation of the training rows.",
            "regime": {"channels": ["rms"], "centroids": [[float(mean[CHANNELS.index("rms")])]]},
            "mean": [[float(v) for v in mean]],
            "std": [[float(v) for v in std]],
        },
        "outputs": [
            {"name": "p_fault", "shape": ["batch"], "unit": "probability",
             "meaning": "Probability that the bearing has any fault (1 - P(Normal_1)).", "min": 0, "max": 1},
            {"name": "class_probs", "shape": ["batch", len(CLASSES)], "unit": "probability",
             "meaning": "Probability of each condition, in the order " + ", ".join(CLASSES) +
             " (<type>_<fault diameter in mils>_<load>; IR inner race, OR outer race at 6 o'clock).",
             "min": 0, "max": 1},
        ],
        "alerts": [
            {"id": "bearing-fault-warning", "output": "p_fault", "severity": "warning", "op": ">=", "threshold": 0.5,
             "clear": 0.3, "description": "A bearing fault is more likely than not; clears below 0.3."},
            {"id": "bearing-fault-critical", "output": "p_fault", "severity": "critical", "op": ">=",
             "threshold": 0.9, "clear": 0.7, "description": "A bearing fault is very likely; clears below 0.7."},
        ],
        "training": {
            "command": "tmp/venv/bin/python models/cwru/train.py",
            "script": "models/cwru/train.py",
            "seed": SEED,
            "framework": f"pytorch {torch.__version__.split('+')[0]}",
            "threads": torch.get_num_threads(),
            "seconds": round(time.time() - t0, 1),
            "data": [{"file": "models/data/cwru/feature_time_48k_2048_load_1.csv.gz",
                      "sha256": hashlib.sha256(raw).hexdigest(), "hashOf": "unpacked text"}],
            "split": f"per class, rows in file order: [0, {VAL_FROM}) train, [{VAL_FROM}, {TEST_FROM}) validation, "
            f"[{TEST_FROM}, {ROWS}) test; windows never cross a boundary",
            "validation": {"method": f"{MEMBERS} members (seeds {SEED}..{SEED + MEMBERS - 1}), each keeps its epoch "
                           f"of least validation log loss over {EPOCHS} epochs (Adam, lr {LR}, weight decay "
                           f"{WEIGHT_DECAY}, batch 128)",
                           "logLoss": [round(v, 5) for v in val_losses], "epochs": epochs,
                           "accuracy": round(val_acc, 5)},
        },
        "metrics": {
            "testFile": "models/data/cwru/feature_time_48k_2048_load_1.csv.gz",
            "protocol": "written by models/eval/evaluate-cwru.ts --write",
            "units": 1,
            "rmse": 1,
            "score": 1e9,
        },
        "references": {
            "dataset": "Case Western Reserve University Bearing Data Center, https://engineering.case.edu/bearingdatacenter "
            "(feature table: Kaggle brjapon/cwru-bearing-datasets, via GitHub whalscjf123/Bearing)",
        },
    }
    path = os.path.join(args.out, "cwru-bearing-v1.manifest.json")
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    format_json(path)
    log(f"wrote {onnx_path} ({params} params) and {path} in {time.time() - t0:.0f}s")
    if not args.no_eval and os.path.abspath(args.out) == HERE:
        subprocess.run(["npx", "tsx", "models/eval/evaluate-cwru.ts", "--write"], cwd=REPO, check=True)


if __name__ == "__main__":
    sys.exit(main())
