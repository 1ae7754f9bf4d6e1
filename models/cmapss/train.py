#!/usr/bin/env python3
"""Train the Vigil C-MAPSS remaining-useful-life models (FD001-FD004) and export ONNX + manifest.

Reproduce everything (fixed seeds, 1 CPU thread per process; subsets are independent, so
`--subset FD00x` runs in parallel give the same files):

    python3 -m venv tmp/venv && tmp/venv/bin/pip install -r models/requirements.txt
    tmp/venv/bin/python models/cmapss/train.py --all

Reads only models/data/cmapss/*.gz (train files for fitting; test + RUL files only for the final
metrics written to the manifest, never for model selection). Writes models/cmapss/fd00X.onnx, its int8
variant fd00X.int8.onnx and models/cmapss/fd00X.manifest.json, then runs models/eval/evaluate.ts --write,
which measures the plant conditions (mid-life start, missing + stuck values, int8) with onnxruntime-node
through the gateway's own windows and records them in the manifest.

Recipe (see models/README.md):
  * target: piecewise-linear RUL, min(max_cycle - t, 125)
  * features: the 14 informative sensors (s2 s3 s4 s7 s8 s9 s11 s12 s13 s14 s15 s17 s20 s21) and the
    engine's cycle counter / 100 (the file's time column; `--set cycle_input=0` drops it, for the ablation),
    then the 14 sensors again as deviations from the unit's baseline, the mean of its first 10 observed
    normalised rows (`--set baseline_rows=0` drops them), then the baseline's origin: the cycle counter / 100
    of the first observed row (`--set origin_input=0` drops it)
  * observation-start augmentation: besides each training unit observed from its first cycle, 4 copies
    observed from seeded random mid-life cycles (`--set mid_starts=N`), so one model serves engines the
    gateway meets new and engines it meets in mid-life
  * normalisation: operating regime = nearest centroid of (setting1, setting2, setting3)
    (1 regime for FD001/FD003, 6 k-means regimes for FD002/FD004), then z-score per regime
    with that regime's mean/std fitted on the train file
  * windows of W cycles, stride 1; a window that starts before the first cycle is padded by
    repeating the unit's first row (raw values, so also after normalisation)
  * model: strided Conv1d + GRU (ConvGRU); K members trained on K folds split by unit (each member
    picks its best epoch on its own held-out units), averaged inside one ONNX graph; output clipped
    to [0, 125]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(MODELS_DIR)
DATA_DIR = os.path.join(MODELS_DIR, "data", "cmapss")

# A device frame carries the 3 settings and 21 sensors in file order, then the engine's own cycle counter
# (the file's second column: cycles since the engine entered service, which the engine reports).
CHANNELS = ["setting1", "setting2", "setting3"] + [f"s{i}" for i in range(1, 22)] + ["cycle"]
SETTINGS = ["setting1", "setting2", "setting3"]
SENSORS_14 = ["s2", "s3", "s4", "s7", "s8", "s9", "s11", "s12", "s13", "s14", "s15", "s17", "s20", "s21"]
LIT_CAP = 125.0  # the cap of the "capped truth" convention used in the literature
SEED = 20261124
# The cycle counter enters the model as cycle / CYCLE_SCALE in every regime (mean 0, std CYCLE_SCALE in the
# manifest), so the gateway's regime-zscore normalisation needs no special case.
CYCLE_SCALE = 100.0


@dataclass
class Config:
    subset: str
    regimes: int
    window: int = 60
    members: int = 5  # number of unit folds (the ensemble has members x seeds networks)
    seeds: int = 1  # networks per fold, differing only in their seed (their mean is validated on the fold)
    epochs: int = 12
    train_stride: int = 1  # stride between training windows (2 halves the epoch cost on FD002/FD004)
    batch: int = 512
    lr: float = 5e-3  # OneCycle peak
    weight_decay: float = 0.0
    cap: float = 125.0  # piecewise-linear target cap R_early (the output is clipped to [0, cap])
    arch: str = "cgru"
    channels: int = 48
    hidden: int = 32
    kernel: int = 4
    conv_stride: int = 2  # the conv's stride divides the GRU's steps (and most of the cost)
    dropout: float = 0.1
    noise: float = 0.0  # std of Gaussian noise added to normalised inputs during training
    min_prefix: int = 10  # training windows end at cycle >= this (shorter prefixes are padded)
    cycle_input: int = 1  # 1: the cycle counter is a model input (scaled by CYCLE_SCALE); 0: sensors only
    # K > 0: each of the 14 sensors also enters as its deviation from the unit's own baseline, the mean of
    # its first K normalised rows (of the rows so far while fewer): removes engine-to-engine initial wear
    baseline_rows: int = 10
    # 1: after the baseline deviations, every row also carries the baseline's origin: the normalised cycle
    # counter of the device's first observed row (cycle / 100), so deviations from a baseline taken in
    # mid-life mean something different from those from a new engine (commissioning anywhere in a life)
    origin_input: int = 1
    # observation-start augmentation: per training unit, this many extra copies observed from a seeded random
    # cycle in [1, n - min_prefix - 1] (the baseline, origin and padding restart there), windows every
    # mid_stride rows; 0 trains on first-cycle observation only
    mid_starts: int = 4
    mid_stride: int = 2
    # N > 0: a network keeps the mean of its weights after each of the last N epochs (SWA-style; the model has no
    # batch norm, so nothing to recompute) instead of its best epoch of the second half; 0 keeps the best epoch
    average_last: int = 0
    features: list[str] = field(default_factory=lambda: list(SENSORS_14))
    version: str = ""  # manifest version; "" = 3.0.0 with the baseline's origin, else 2.0.0

    def __post_init__(self) -> None:
        self.sync_features()

    def sync_features(self) -> None:
        """The model inputs: the 14 sensors, plus the cycle counter when cycle_input."""
        base = [f for f in self.features if f != "cycle"]
        self.features = base + (["cycle"] if self.cycle_input else [])

    @property
    def baseline(self) -> list[str]:
        """Features that also enter as deviations from the unit's baseline (after `features`)."""
        return list(SENSORS_14) if self.baseline_rows > 0 else []

    @property
    def origin(self) -> bool:
        """True when every row ends with the baseline's origin (normalised cycle counter of the first row)."""
        return bool(self.origin_input) and self.baseline_rows > 0 and "cycle" in self.features

    @property
    def width(self) -> int:
        """Values per window row in the input tensor: features, baseline deviations, then the origin."""
        return len(self.features) + len(self.baseline) + (1 if self.origin else 0)


CONFIGS = {
    "FD001": Config("FD001", regimes=1, epochs=14, batch=256),
    # 24 channels, 3 seeds per fold: 12 narrower networks at about the MACs of 3.1.0's 8 of 32 channels (2.21 M vs
    # 2.32 M), chosen on validation (models/README.md, selection table)
    "FD002": Config("FD002", regimes=6, members=4, seeds=3, channels=24, train_stride=2, epochs=10, version="3.2.0"),
    "FD003": Config("FD003", regimes=1, members=4, epochs=10),
    "FD004": Config("FD004", regimes=6, members=4, train_stride=2, epochs=10),
}


# ---------------------------------------------------------------------------- data


def read_gz_text(name: str) -> bytes:
    with gzip.open(os.path.join(DATA_DIR, name + ".gz"), "rb") as f:
        return f.read()


def parse_rows(raw: bytes) -> np.ndarray:
    rows = [line.split() for line in raw.decode("ascii").splitlines() if line.strip()]
    arr = np.array(rows, dtype=np.float64)
    assert arr.shape[1] == 26, arr.shape
    return arr


def split_units(arr: np.ndarray) -> list[np.ndarray]:
    """List of per-unit arrays (cycles x 24 channels), in unit order."""
    units = []
    ids = arr[:, 0].astype(int)
    for u in np.unique(ids):
        rows = arr[ids == u]
        assert np.all(np.diff(rows[:, 1]) == 1), f"unit {u} has gaps"
        units.append(np.concatenate([rows[:, 2:], rows[:, 1:2]], axis=1))  # settings, sensors, cycle
    return units


def kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Plain k-means (k-means++ init), deterministic for a seed. Returns centroids sorted lexicographically."""
    if k == 1:
        return x.mean(axis=0, keepdims=True)
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
    c = km.cluster_centers_
    order = np.lexsort(tuple(c[:, j] for j in reversed(range(c.shape[1]))))
    return c[order]


def assign_regime(settings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d = ((settings[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return d.argmin(axis=1)


@dataclass
class Norm:
    centroids: np.ndarray  # regimes x 3
    mean: np.ndarray  # regimes x F
    std: np.ndarray  # regimes x F
    feat_idx: list[int]
    base_idx: list[int]  # positions within the features of those with a baseline deviation
    base_rows: int
    origin_idx: int = -1  # position within the features of the origin feature (cycle), -1 without origin

    def apply(self, unit: np.ndarray) -> np.ndarray:
        r = assign_regime(unit[:, 0:3], self.centroids)
        x = unit[:, self.feat_idx]
        # float64 arithmetic then float32, exactly like models/eval/cmapss.ts
        z = ((x - self.mean[r]) / self.std[r]).astype(np.float32)
        if not self.base_idx:
            return z
        # baseline: mean (float64) of the first base_rows float32 rows, causal (rows so far while fewer);
        # deviation = row - baseline in float64, stored as float32 (models/eval/cmapss.ts applyBaseline)
        zb = z[:, self.base_idx].astype(np.float64)
        k = min(self.base_rows, len(z))
        n = np.minimum(np.arange(1, len(z) + 1), k)[:, None]
        cs = np.cumsum(zb, axis=0)
        base = cs[n[:, 0] - 1] / n
        parts = [z, (zb - base).astype(np.float32)]
        if self.origin_idx >= 0:  # the first observed row's normalised cycle counter, on every row
            parts.append(np.full((len(z), 1), z[0, self.origin_idx], dtype=np.float32))
        return np.concatenate(parts, axis=1)


def fit_norm(train_units: list[np.ndarray], cfg: Config) -> Norm:
    allrows = np.concatenate(train_units)
    centroids = kmeans(allrows[:, 0:3], cfg.regimes, SEED)
    r = assign_regime(allrows[:, 0:3], centroids)
    feat_idx = [CHANNELS.index(f) for f in cfg.features]
    x = allrows[:, feat_idx]
    mean = np.zeros((cfg.regimes, len(feat_idx)))
    std = np.ones((cfg.regimes, len(feat_idx)))
    for k in range(cfg.regimes):
        xs = x[r == k]
        assert len(xs) > 100, f"regime {k} has only {len(xs)} rows"
        mean[k] = xs.mean(axis=0)
        s = xs.std(axis=0)
        std[k] = np.where(s < 1e-6, 1.0, s)  # a constant-in-regime channel becomes 0, never NaN
    if "cycle" in cfg.features:
        c = cfg.features.index("cycle")
        mean[:, c], std[:, c] = 0.0, CYCLE_SCALE
    base_idx = [cfg.features.index(f) for f in cfg.baseline]
    origin_idx = cfg.features.index("cycle") if cfg.origin else -1
    return Norm(centroids, mean, std, feat_idx, base_idx, cfg.baseline_rows, origin_idx)


def windows_for_unit(z: np.ndarray, window: int, ends: np.ndarray) -> np.ndarray:
    """Windows ending at the given 0-based row indices; rows before 0 repeat row 0."""
    idx = ends[:, None] - np.arange(window - 1, -1, -1)[None, :]
    idx = np.maximum(idx, 0)
    return z[idx]


def train_windows(units_z: list[np.ndarray], cfg: Config, stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Windows ending at every stride-th row from row min_prefix - 1 on (always the last), target
    min(rows after the window's end, cap): the unit runs to failure at its last row."""
    xs, ys = [], []
    step = stride or cfg.train_stride
    for z in units_z:
        n = len(z)
        ends = np.arange(n - 1, min(cfg.min_prefix, n) - 2, -step)[::-1]  # always keeps the last
        xs.append(windows_for_unit(z, cfg.window, ends))
        ys.append(np.minimum(n - 1 - ends, cfg.cap).astype(np.float32))
    return np.concatenate(xs), np.concatenate(ys)


def mid_starts(units: list[np.ndarray], cfg: Config, seed: int) -> list[list[int]]:
    """Per unit, cfg.mid_starts seeded observation starts in [1, n - min_prefix - 1] (0-based rows)."""
    rng = np.random.default_rng(seed)
    out = []
    for u in units:
        hi = len(u) - cfg.min_prefix - 1
        out.append([int(v) for v in rng.integers(1, hi + 1, cfg.mid_starts)] if hi >= 1 else [])
    return out


def augmented_windows(units: list[np.ndarray], starts: list[list[int]], norm: "Norm",
                      cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """First-cycle windows of every unit (train_stride), plus windows of the same units observed from each
    of their mid-life starts (mid_stride): baseline, origin and padding restart at the start."""
    x0, y0 = train_windows([norm.apply(u) for u in units], cfg)
    if cfg.mid_starts <= 0:
        return x0, y0
    zs = [norm.apply(u[s:]) for u, ss in zip(units, starts) for s in ss]
    x1, y1 = train_windows(zs, cfg, stride=cfg.mid_stride)
    return np.concatenate([x0, x1]), np.concatenate([y0, y1])


def last_windows(units_z: list[np.ndarray], window: int) -> np.ndarray:
    return np.stack([windows_for_unit(z, window, np.array([len(z) - 1]))[0] for z in units_z])


def rmse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred.astype(np.float64) - y) ** 2)))


def phm08(pred: np.ndarray, y: np.ndarray) -> float:
    d = pred.astype(np.float64) - y
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


# ---------------------------------------------------------------------------- model


class GRU(nn.Module):
    """Input [N, W, F]; GRU over time, last hidden state -> MLP -> [N] scaled RUL."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.gru = nn.GRU(cfg.width, cfg.channels, num_layers=1, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.channels, cfg.hidden), nn.ReLU(),
                                  nn.Linear(cfg.hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1, :]).squeeze(1)


class ConvGRU(nn.Module):
    """Input [N, W, F]; Conv1d(F->c, k, stride s) ReLU shortens the sequence s-fold, GRU(c->c) over it, last
    hidden state -> Dropout -> Linear(c, hidden) ReLU -> Linear(1). The strided conv divides the recurrent work."""

    def __init__(self, cfg: Config):
        super().__init__()
        c = cfg.channels
        self.k = cfg.kernel
        self.conv = nn.Conv1d(cfg.width, c, cfg.kernel, stride=cfg.conv_stride)
        self.act = nn.ReLU()
        self.gru = nn.GRU(c, c, num_layers=1, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(c, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv(x.transpose(1, 2))).transpose(1, 2)
        out, _ = self.gru(h)
        return self.head(out[:, -1, :]).squeeze(1)


def make_model(cfg: Config) -> nn.Module:
    return {"gru": GRU, "cgru": ConvGRU}[cfg.arch](cfg)


class Ensemble(nn.Module):
    """Mean of the members, in cycles, clipped to [0, cap]. Output name 'rul', shape [N]."""

    def __init__(self, members: list[nn.Module], cap: float):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.cap = cap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.members[0](x)
        for m in self.members[1:]:
            s = s + m(x)
        return torch.clamp(s * (self.cap / len(self.members)), 0.0, self.cap)


def count_macs(model: nn.Module, window: int, features: int) -> int:
    """Multiply-accumulates for one window: Conv1d, Linear and GRU matmuls (activations, adds ignored)."""
    total = [0]

    def hook(m: nn.Module, inp, out) -> None:
        if isinstance(m, nn.Conv1d):
            total[0] += out.shape[1] * out.shape[2] * (m.in_channels // m.groups) * m.kernel_size[0]
        elif isinstance(m, nn.Linear):
            total[0] += m.in_features * m.out_features
        elif isinstance(m, nn.GRU):
            total[0] += inp[0].shape[1] * 3 * (m.input_size + m.hidden_size) * m.hidden_size

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear, nn.GRU))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, window, features))
    for h in hooks:
        h.remove()
    return total[0]


def predict(model: nn.Module, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(x[i : i + batch])).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def train_member(cfg: Config, seed: int, xtr, ytr, xva, yva, log) -> tuple[nn.Module, float, int]:
    """One ensemble member: Adam + OneCycle LR for cfg.epochs; from the second half on, keeps the state
    with the best RMSE on the held-out units' windows (all windows, capped target), or with cfg.average_last
    = N the mean of the states after the last N epochs (the training itself is the same either way)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = make_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(xtr) + cfg.batch - 1) // cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr / cfg.cap)
    best, best_state, best_epoch = math.inf, None, 0
    avg_state, n_avg = None, 0
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(xt)))
        for i in range(0, len(perm), cfg.batch):
            b = perm[i : i + cfg.batch]
            xb = xt[b]
            if cfg.noise > 0:
                xb = xb + cfg.noise * torch.randn_like(xb)
            opt.zero_grad()
            loss = torch.mean((model(xb) - yt[b]) ** 2)
            loss.backward()
            opt.step()
            sched.step()
        if cfg.average_last > 0:
            if epoch >= cfg.epochs - cfg.average_last:  # running mean of the last N epochs' weights, float64
                cur = {k: t.detach().to(torch.float64) for k, t in model.state_dict().items()}
                avg_state = cur if avg_state is None else {k: avg_state[k] + cur[k] for k in cur}
                n_avg += 1
            continue
        if epoch + 1 < cfg.epochs // 2:
            continue
        v = rmse(np.clip(predict(model, xva) * cfg.cap, 0, cfg.cap), yva)
        if v < best:
            best, best_epoch = v, epoch
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
    if cfg.average_last > 0:
        assert avg_state is not None
        ref = model.state_dict()
        model.load_state_dict({k: (v / n_avg).to(ref[k].dtype) for k, v in avg_state.items()})
        best, best_epoch = rmse(np.clip(predict(model, xva) * cfg.cap, 0, cfg.cap), yva), cfg.epochs - 1
        log(f"    member seed={seed} weights averaged over the last {n_avg} epochs")
    else:
        assert best_state is not None
        model.load_state_dict(best_state)
    model.eval()
    log(f"    member seed={seed} train windows {len(xtr)} best val RMSE {best:.3f} at epoch {best_epoch + 1}")
    return model, best, best_epoch + 1


MEMBER_CACHE: str | None = None  # --member-cache DIR: reuse members trained by an earlier run with the same recipe


def cached_member(cfg: Config, seed: int, xtr, ytr, xva, yva, log) -> tuple[nn.Module, float, int]:
    """train_member, or its result from --member-cache when an earlier run trained the same member (same
    Config, seed and training data: training is deterministic, so this only saves time; the cached training
    seconds are added to training.seconds)."""
    global CACHED_SECONDS
    if not MEMBER_CACHE:
        return train_member(cfg, seed, xtr, ytr, xva, yva, log)
    # the manifest version does not change the training, so a final run with a bumped version reuses the members
    h = hashlib.sha256(repr((dataclasses.replace(cfg, seeds=0, version=""), seed, xtr.shape, float(xtr[::97].sum()), float(ytr.sum()))).encode()).hexdigest()[:16]
    path = os.path.join(MEMBER_CACHE, f"{cfg.subset.lower()}-{seed}-{h}.pt")
    if os.path.exists(path):
        c = torch.load(path)
        model = make_model(cfg)
        model.load_state_dict(c["state"])
        model.eval()
        CACHED_SECONDS += c["seconds"]
        log(f"    member seed={seed} (cached) best val RMSE {c['val']:.3f} at epoch {c['epoch']}")
        return model, c["val"], c["epoch"]
    t = time.time()
    model, v, e = train_member(cfg, seed, xtr, ytr, xva, yva, log)
    os.makedirs(MEMBER_CACHE, exist_ok=True)
    torch.save({"state": model.state_dict(), "val": v, "epoch": e, "seconds": time.time() - t}, path)
    return model, v, e


CACHED_SECONDS = 0.0


def truncated_units(units: list[np.ndarray], seed: int, per_unit: int = 10) -> tuple[list[np.ndarray], np.ndarray]:
    """Test-like samples from held-out train units (raw rows): cut each at a seeded point leaving a true RUL
    uniform in [5, 145] (the test files' range), keeping at least 20 cycles."""
    rng = np.random.default_rng(seed)
    cut, cut_y = [], []
    for u in units:
        n = len(u)
        for _ in range(per_unit):
            rul = int(rng.integers(5, max(6, min(146, n - 20))))
            cut.append(u[: n - rul])
            cut_y.append(float(rul))
    return cut, np.array(cut_y)


def observed_from_mid_life(cut: list[np.ndarray], seed: int, min_obs: int = 10) -> list[np.ndarray]:
    """The same cuts observed from a seeded random row in [1, n - min_obs] (never the first cycle, at least
    min_obs observed cycles): the mid-life commissioning condition."""
    rng = np.random.default_rng(seed)
    return [u[int(rng.integers(1, max(2, len(u) - min_obs + 1))):] for u in cut]


def format_json(path: str) -> None:
    """Lay the manifest out the way the repository's prettier check expects (same JSON either way)."""
    prettier = os.path.join(REPO, "node_modules", ".bin", "prettier")
    if os.path.exists(prettier):
        subprocess.run([prettier, "--log-level", "warn", "--write", path], check=False)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def run_subset(cfg: Config, out_dir: str, log, validate_only: bool = False) -> dict:
    t0 = time.time()
    sub = cfg.subset
    train_raw = read_gz_text(f"train_{sub}.txt")
    train_units = split_units(parse_rows(train_raw))
    norm = fit_norm(train_units, cfg)
    starts = mid_starts(train_units, cfg, SEED + 7)

    # K folds by unit (seeded); member k trains on the other folds and early-stops on fold k
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(train_units))
    folds = np.array_split(order, cfg.members)
    members, val_scores, val_epochs = [], [], []
    oof = {"first": [], "mid": [], "true": []}
    for k, fold in enumerate(folds):
        held = set(fold.tolist())
        tr_idx = [i for i in range(len(train_units)) if i not in held]
        va_units = [train_units[i] for i in fold]
        xtr, ytr = augmented_windows([train_units[i] for i in tr_idx], [starts[i] for i in tr_idx], norm, cfg)
        xva, yva = augmented_windows(va_units, [starts[i] for i in fold], norm, cfg)
        # last-window-like validation (out of fold): held-out units truncated like the test files, observed
        # from their first cycle and (the same cuts) from a random mid-life cycle
        cut, cut_y = truncated_units(va_units, SEED + 1000 + k)
        cut_x = last_windows([norm.apply(u) for u in cut], cfg.window)
        mid_x = last_windows([norm.apply(u) for u in observed_from_mid_life(cut, SEED + 2000 + k)], cfg.window)
        fold_first, fold_mid = np.zeros(len(cut_y)), np.zeros(len(cut_y))
        for s in range(cfg.seeds):  # cfg.seeds members per fold, differing only in their seed
            m, v, e = cached_member(cfg, SEED + k + 100 * s, xtr, ytr, xva, yva, log)
            members.append(m)
            val_scores.append(v)
            val_epochs.append(e)
            fold_first += np.clip(predict(m, cut_x) * cfg.cap, 0, cfg.cap) / cfg.seeds
            fold_mid += np.clip(predict(m, mid_x) * cfg.cap, 0, cfg.cap) / cfg.seeds
        oof["first"].append(fold_first)
        oof["mid"].append(fold_mid)
        oof["true"].append(cut_y)
    ens = Ensemble(members, cfg.cap).eval()
    oof_p, oof_t = np.concatenate(oof["first"]), np.concatenate(oof["true"])
    oof_mid = np.concatenate(oof["mid"])
    oof_capped = np.minimum(oof_t, LIT_CAP)
    val_summary = {
        "first": (rmse(oof_p, oof_t), rmse(oof_p, oof_capped)),
        "mid": (rmse(oof_mid, oof_t), rmse(oof_mid, oof_capped)),
    }
    if validate_only:  # model selection: validation figures only, the test file is not read
        log(f"  {sub}: VALIDATION truncated-last-window RMSE {rmse(oof_p, oof_t):.3f} (capped {val_summary['first'][1]:.3f}) "
            f"score/unit {phm08(oof_p, oof_t) / len(oof_t):.3f} | mid-life start RMSE {val_summary['mid'][0]:.3f} "
            f"(capped {val_summary['mid'][1]:.3f}) | all-windows RMSE {np.mean(val_scores):.3f} | {time.time() - t0:.0f}s")
        for lo, hi in ((0, 25), (25, 50), (50, 75), (75, 100), (100, 125), (125, 150)):
            m = (oof_t >= lo) & (oof_t < hi)
            if m.any():
                d = oof_p[m] - oof_t[m]
                log(f"    truth {lo:3d}-{hi:3d}: n {m.sum():4d} RMSE {rmse(oof_p[m], oof_t[m]):6.2f} bias {d.mean():+6.2f}")
        if os.environ.get("VIGIL_OOF_DUMP"):
            np.save(os.environ["VIGIL_OOF_DUMP"], np.stack([oof_p, oof_mid, oof_t]))
        return {}

    # final metrics on the test file (reported only; not used for any choice above)
    test_units = split_units(parse_rows(read_gz_text(f"test_{sub}.txt")))
    rul_true = np.array([float(l) for l in read_gz_text(f"RUL_{sub}.txt").decode("ascii").split()])
    assert len(rul_true) == len(test_units)
    xte = last_windows([norm.apply(u) for u in test_units], cfg.window)
    pte = predict(ens, xte)
    test_rmse, test_score = rmse(pte, rul_true), phm08(pte, rul_true)
    capped = np.minimum(rul_true, LIT_CAP)
    capped_metrics = (rmse(pte, capped), phm08(pte, capped))

    name = sub.lower()
    onnx_path = os.path.join(out_dir, f"{name}.onnx")
    export_onnx(ens, cfg, onnx_path)
    # int8 variant, calibrated on seeded training windows (first-cycle and mid-life observation alike)
    int8_path = os.path.join(out_dir, f"{name}.int8.onnx")
    xall, _ = augmented_windows(train_units, starts, norm, cfg)
    calib = xall[np.random.default_rng(SEED + 3).choice(len(xall), min(INT8_CALIBRATION_WINDOWS, len(xall)), replace=False)]
    int8 = {"precision": "int8", "file": f"{name}.int8.onnx", "quantization": export_int8(onnx_path, calib, int8_path),
            "sha256": sha256_file(int8_path), "bytes": os.path.getsize(int8_path)}
    params = sum(p.numel() for p in ens.parameters())
    macs = count_macs(ens, cfg.window, cfg.width)
    elapsed = time.time() - t0 + CACHED_SECONDS
    manifest = build_manifest(cfg, norm, onnx_path, train_raw, test_rmse, test_score, len(test_units),
                              float(np.mean(val_scores)), val_epochs, rmse(oof_p, oof_t), phm08(oof_p, oof_t) / len(oof_t) ,
                              params, macs, elapsed, capped_metrics, quality_block(cfg, train_units, norm), int8)
    manifest_path = os.path.join(out_dir, f"{name}.manifest.json")
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    format_json(manifest_path)
    # the plant conditions (mid-life start, missing + stuck values, int8, ...) are measured by the TypeScript
    # evaluation through the gateway's own windows, and recorded in metrics.conditions
    subprocess.run(["npx", "tsx", "models/eval/evaluate.ts", "--write", "--dir", out_dir, "--only", name,
                    "--latency-runs", "20"], cwd=REPO, check=True)
    log(f"  {sub}: validation (out of fold, test-like) first cycle RMSE {val_summary['first'][0]:.3f} (capped "
        f"{val_summary['first'][1]:.3f}) | mid-life start RMSE {val_summary['mid'][0]:.3f} (capped {val_summary['mid'][1]:.3f})")
    log(f"  {sub}: test RMSE {test_rmse:.3f} score {test_score:.1f} | val RMSE {np.mean(val_scores):.3f} "
        f"| params {params} MACs {macs} | {elapsed:.0f}s")
    return manifest


def _max_run(x: np.ndarray) -> int:
    """Longest run of identical consecutive values."""
    if len(x) == 0:
        return 0
    change = np.flatnonzero(np.diff(x) != 0)
    bounds = np.concatenate([[-1], change, [len(x) - 1]])
    return int(np.diff(bounds).max())


def quality_block(cfg: Config, units: list[np.ndarray], norm: Norm) -> dict:
    """The manifest's data-quality rules (gateway/src/infer/features/quality.ts), from the train file only:
    per used channel (features, and the settings of a multi-regime model) the train range widened by half its
    width on each side, stuck after 2 x (longest run of identical values in any train unit) + 2 frames, and for
    the sensors a spike limit of 2 x the largest step between consecutive normalised values (0.5 steps); the
    cycle counter is imputed as a counter and may step by at most 5 per frame."""
    used = list(cfg.features) + ([c for c in SETTINGS if c not in cfg.features] if cfg.regimes > 1 else [])
    allrows = np.concatenate(units)
    steps = {}
    for f, name in enumerate(cfg.features):
        if name == "cycle":
            continue
        m = 0.0
        for u in units:
            r = assign_regime(u[:, 0:3], norm.centroids)
            z = (u[:, CHANNELS.index(name)] - norm.mean[r, f]) / norm.std[r, f]
            if len(z) > 1:
                m = max(m, float(np.abs(np.diff(z)).max()))
        steps[name] = m
    channels = {}
    for name in used:
        c = CHANNELS.index(name)
        lo, hi = float(allrows[:, c].min()), float(allrows[:, c].max())
        half = (hi - lo) / 2 if hi > lo else max(abs(lo) * 0.01, 1e-6)
        run = max(_max_run(u[:, c]) for u in units)
        spec = {"min": round(lo - half, 6), "max": round(hi + half, 6), "stuckFrames": 2 * run + 2}
        if name == "cycle":
            spec = {"min": 1, "max": round(hi * 4), "maxStep": 5, "stuckFrames": 2 * run + 2, "impute": "counter"}
        elif name in steps:
            spec["maxStepSd"] = math.ceil(4 * steps[name]) / 2
            spec["impute"] = "regress"
        channels[name] = spec
    # regression imputation: each sensor from the row's other normalised features (least squares, train rows)
    feats = list(cfg.features)
    z = np.concatenate([((u[:, [CHANNELS.index(f) for f in feats]] - norm.mean[assign_regime(u[:, 0:3], norm.centroids)])
                         / norm.std[assign_regime(u[:, 0:3], norm.centroids)]) for u in units])
    F = len(feats)
    weights = np.zeros((F, F))
    intercept = np.zeros(F)
    for j, name in enumerate(feats):
        if name == "cycle":
            continue
        others = [k for k in range(F) if k != j]
        x = np.concatenate([z[:, others], np.ones((len(z), 1))], axis=1)
        w, *_ = np.linalg.lstsq(x, z[:, j], rcond=None)
        weights[j, others] = w[:-1]
        intercept[j] = w[-1]
    regression = {
        "description": "least squares on the train file's normalised rows: each sensor from the other features",
        "features": feats,
        "weights": [[float(round(v, 8)) for v in row] for row in weights],
        "intercept": [float(round(v, 8)) for v in intercept],
    }
    return {
        "description": "Derived from the train file only (models/cmapss/train.py quality_block): valid range = the "
        "train range widened by half its width on each side; stuck after 2 x the longest run of identical values "
        "in a train unit + 2 frames; spike = more than 2 x the largest train step between consecutive normalised "
        "values. A flagged sensor value is estimated from the row's other normalised features (regression), the cycle "
        "counter continues by its step. No clean train or test frame is flagged (test/models/cmapss.test.ts).",
        "channels": channels,
        "maxImputeFrames": 30,
        "faultFrames": 3,
        "clearFrames": 10,
        "window": {"maxImputedFraction": 0.2, "maxImputedFractionRow": 0.5, "maxLostFeatures": 1},
        "regression": regression,
    }


def write_quality(cfg: Config, out_dir: str, log) -> None:
    """Rewrites only inputs.quality of an existing manifest (same train file, same normalisation)."""
    path = os.path.join(out_dir, f"{cfg.subset.lower()}.manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    units = split_units(parse_rows(read_gz_text(f"train_{cfg.subset}.txt")))
    n = manifest["normalization"]
    norm = Norm(np.array(n["regime"]["centroids"]), np.array(n["mean"]), np.array(n["std"]),
                [CHANNELS.index(f) for f in manifest["inputs"]["features"]], [], 0)
    cfg.features = list(manifest["inputs"]["features"])
    manifest["inputs"]["quality"] = quality_block(cfg, units, norm)
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    format_json(path)
    log(f"  {cfg.subset}: wrote inputs.quality of {path}")


def export_onnx(model: nn.Module, cfg: Config, path: str) -> None:
    torch.onnx.export(
        model,
        torch.zeros(2, cfg.window, cfg.width),
        path,
        input_names=["window"],
        output_names=["rul"],
        dynamic_axes={"window": {0: "batch"}, "rul": {0: "batch"}},
        opset_version=13,
        do_constant_folding=True,
        dynamo=False,  # the TorchScript exporter: one GRU node per member
    )


INT8_CALIBRATION_WINDOWS = 1024
# Which file the gateway runs per CPU architecture (manifest model.prefer), from bench/infer.ts and
# models:eval measurements (models/README.md "int8"): see the README for the figures behind it.
PREFER = {"x64": "float32", "default": "float32"}


def export_int8(float_path: str, calib: np.ndarray, path: str) -> str:
    """int8 variant of an exported float model: onnxruntime static quantization (QDQ, int8 per-channel weights,
    uint8 activations, MinMax calibration on `calib` training windows) of the Conv and Gemm layers. The GRUs
    stay float32: onnxruntime has no int8 GRU kernel, and unrolling them into int8 MatMuls (tried) made the
    graph 3x larger and 1.3x slower on x64 at the same accuracy. Returns the method text for the manifest."""
    import tempfile

    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self):
            if self.i >= len(calib):
                return None
            batch = calib[self.i : self.i + 128]
            self.i += 128
            return {"window": batch}

    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(float_path, pre)
        quantize_static(pre, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "Gemm", "MatMul"])
    return (f"onnxruntime {onnxruntime.__version__} quantize_static (QDQ): Conv and Gemm layers with int8 per-channel "
            f"weights and uint8 activations, MinMax calibration on {len(calib)} seeded training windows; the GRUs stay "
            "float32 (onnxruntime has no int8 GRU kernel)")


def architecture(cfg: Config) -> str:
    f, c = cfg.width, cfg.channels
    if cfg.arch == "cgru":
        one = (f"Conv1d({f}->{c}, k={cfg.kernel}, stride {cfg.conv_stride}) ReLU, GRU({c}->{c}) last state, "
               f"Linear({c}->{cfg.hidden}) ReLU, Linear({cfg.hidden}->1)")
    else:
        one = f"GRU({f}->{c}) last state, Linear({c}->{cfg.hidden}) ReLU, Linear({cfg.hidden}->1)"
    return f"mean of {cfg.members * cfg.seeds} x [{one}] x {int(cfg.cap)}, clipped to [0, {int(cfg.cap)}]"


def build_manifest(cfg, norm, onnx_path, train_raw, test_rmse, test_score, n_test, val_rmse, val_epochs,
                   trunc_rmse, trunc_score_mean, params, macs, elapsed, capped_metrics, quality, int8) -> dict:
    sub = cfg.subset
    name = sub.lower()
    profiles = [f"cmapss-{name}"] + (["cmapss-v2"] if sub == "FD001" else [])
    return {
        "$schema": "../manifest.schema.json",
        "schemaVersion": 1,
        "name": f"cmapss-{name}-rul",
        # 2: frames carry the cycle counter (25 channels); 3: rows end with the baseline's origin
        "version": cfg.version or ("3.0.0" if cfg.origin else "2.0.0"),
        "task": "rul",
        "description": f"Remaining useful life of a turbofan engine, NASA C-MAPSS {sub}: ensemble of "
        f"{cfg.members * cfg.seeds} small conv+GRU networks averaged in one graph"
        + (", inputs: 14 sensors and the engine's cycle counter." if cfg.cycle_input else ", inputs: 14 sensors."),
        "devices": {"profiles": profiles},
        "model": {
            "file": f"{name}.onnx",
            "sha256": sha256_file(onnx_path),
            "bytes": os.path.getsize(onnx_path),
            "format": "onnx",
            "opset": 13,
            "params": int(params),
            "macsPerWindow": int(macs),
            "architecture": architecture(cfg),
            "precision": "float32",
            "variants": [int8],
            "prefer": PREFER,
        },
        "inputs": {
            "tensor": "window",
            "dtype": "float32",
            "shape": ["batch", cfg.window, cfg.width],
            "channels": CHANNELS,
            "features": cfg.features,
            "window": cfg.window,
            "stride": 1,
            "padding": {
                "policy": "repeat-first",
                "description": "A window that would start before the device's first frame repeats the first "
                "frame's values (FD002/FD004 test units can be as short as 21/19 cycles).",
            },
            **({"baseline": {
                "rows": cfg.baseline_rows,
                "features": cfg.baseline,
                **({"origin": {
                    "feature": "cycle",
                    "firstCycleMax": 1,
                    "description": "The engine's cycle counter in the device's first frame (normalised: cycle / 100) "
                    "ends every row, so the model knows when its baseline was taken: an engine met at its first cycle "
                    "(commissioning mode first-cycle) and one met in mid-life (mode mid-life) both work. The counter "
                    "must be the engine's own (cycles since entering service), not one restarted at commissioning.",
                }} if cfg.origin else {}),
                "description": f"After the features, each of these enters again as its deviation from the device's "
                f"baseline: normalised value minus the mean of the device's first {cfg.baseline_rows} normalised rows "
                f"(of the rows so far while fewer), mean and difference in float64, stored as float32. "
                + ("The baseline is the engine's state when the gateway first met it (see origin)." if cfg.origin else
                   "The device must be observed from its first cycle (C-MAPSS units are), so the baseline is its "
                   "initial state."),
            }} if cfg.baseline_rows > 0 else {}),
            "quality": quality,
        },
        "normalization": {
            "method": "regime-zscore",
            "description": "regime = index of the nearest centroid (squared Euclidean distance on the raw "
            "regime channels); feature f of a row becomes (x_f - mean[regime][f]) / std[regime][f], "
            "computed in float64 and stored as float32."
            + (f" The cycle counter has mean 0 and std {int(CYCLE_SCALE)} in every regime (cycle / {int(CYCLE_SCALE)})."
               if "cycle" in cfg.features else ""),
            "regime": {"channels": SETTINGS, "centroids": [[float(v) for v in c] for c in norm.centroids]},
            "mean": [[float(v) for v in row] for row in norm.mean],
            "std": [[float(v) for v in row] for row in norm.std],
        },
        "outputs": [
            {
                "name": "rul",
                "shape": ["batch"],
                "unit": "cycles",
                "meaning": "Predicted remaining useful life in operating cycles after the window's last row, "
                f"piecewise-linear target capped at {int(cfg.cap)} (a healthy engine reads {int(cfg.cap)}).",
                "min": 0,
                "max": cfg.cap,
            }
        ],
        "alerts": [
            {"id": "rul-warning", "output": "rul", "severity": "warning", "op": "<=", "threshold": 50,
             "clear": 60, "description": "RUL at or below 50 cycles; clears above 60 cycles."},
            {"id": "rul-critical", "output": "rul", "severity": "critical", "op": "<=", "threshold": 20,
             "clear": 30, "description": "RUL at or below 20 cycles; clears above 30 cycles."},
        ],
        "training": {
            "command": "tmp/venv/bin/python models/cmapss/train.py --all",
            "script": "models/cmapss/train.py",
            "seed": SEED,
            "framework": f"pytorch {torch.__version__.split('+')[0]}",
            "threads": torch.get_num_threads(),
            "seconds": round(elapsed, 1),
            "target": {"kind": "piecewise-linear", "cap": cfg.cap},
            "data": [{"file": f"models/data/cmapss/train_{sub}.txt.gz", "sha256": hashlib.sha256(train_raw).hexdigest(),
                      "hashOf": "unpacked text"}],
            "validation": {
                "method": f"{cfg.members} folds split by unit; the {cfg.seeds} member(s) of fold k train on the other folds "
                + ("and keep their best epoch (second half of the OneCycle schedule) by RMSE on fold k's windows; "
                   if cfg.average_last <= 0 else
                   f"and keep the mean of their weights after each of the last {cfg.average_last} epochs; ")
                + "truncatedLastWindow* score the mean of fold k's members on fold k's units cut like the test files",
                "rmseAllWindows": round(val_rmse, 4),
                "epochs": val_epochs,
                "truncatedLastWindowRmse": round(trunc_rmse, 4),
                "truncatedLastWindowScorePerUnit": round(trunc_score_mean, 4),
            },
        },
        "metrics": {
            "testFile": f"models/data/cmapss/test_{sub}.txt.gz",
            "rulFile": f"models/data/cmapss/RUL_{sub}.txt.gz",
            "protocol": "last window of each test unit, ground truth uncapped",
            "units": n_test,
            "rmse": round(test_rmse, 4),
            "score": round(test_score, 3),
            "cappedTruth": {
                "description": f"same predictions against min(true RUL, {int(LIT_CAP)}), the convention under which "
                "FD002/FD004 results in the literature are only reachable",
                "rmse": round(capped_metrics[0], 4),
                "score": round(capped_metrics[1], 3),
            },
        },
        "references": {
            "dataset": "A. Saxena, K. Goebel, D. Simon, N. Eklund, Damage Propagation Modeling for Aircraft Engine "
            "Run-to-Failure Simulation, PHM08 (NASA Prognostics Center of Excellence)",
        },
    }


def main() -> None:
    global SEED, MEMBER_CACHE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="train FD001..FD004")
    ap.add_argument("--subset", action="append", choices=list(CONFIGS), help="train one subset (repeatable)")
    ap.add_argument("--out", default=HERE, help="output folder (default models/cmapss)")
    ap.add_argument("--members", type=int, help="override ensemble size (experiments)")
    ap.add_argument("--epochs", type=int, help="override max epochs (experiments)")
    ap.add_argument("--window", type=int, help="override window (experiments)")
    ap.add_argument("--set", action="append", default=[], help="override a Config field, e.g. --set lr=1e-3")
    ap.add_argument("--validate-only", action="store_true",
                    help="model selection: train the folds, print out-of-fold validation, export nothing, never read test")
    ap.add_argument("--write-quality", action="store_true",
                    help="only rewrite inputs.quality of the existing manifests from the train file (no training)")
    ap.add_argument("--seed", type=int, default=SEED, help=f"base seed (default {SEED}; folds, members, cuts)")
    ap.add_argument("--member-cache", help="folder where trained members are saved and reused by a later run with the "
                    "same recipe and seed (e.g. tmp/members: the final run reuses the --validate-only run's networks)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1; recorded in the manifest)")
    args = ap.parse_args()
    subsets = list(CONFIGS) if args.all else (args.subset or [])
    if not subsets:
        ap.error("give --all or --subset FD00x")
    torch.set_num_threads(args.threads)
    SEED = args.seed
    MEMBER_CACHE = args.member_cache
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, flush=True)

    t0 = time.time()
    for sub in subsets:
        cfg = CONFIGS[sub]
        if args.members:
            cfg.members = args.members
        if args.epochs:
            cfg.epochs = args.epochs
        if args.window:
            cfg.window = args.window
        for kv in args.set:
            k, v = kv.split("=", 1)
            setattr(cfg, k, type(getattr(cfg, k))(v))
        cfg.sync_features()
        if args.write_quality:
            write_quality(cfg, args.out, log)
            continue
        log(f"{sub}: {cfg}")
        run_subset(cfg, args.out, log, args.validate_only)
    log(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
