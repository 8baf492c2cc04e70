"""Small from-scratch tasks that train in seconds: sklearn digits with an MLP, mnist1d with a 1-D CNN."""
from __future__ import annotations

import functools

import torch
from torch import nn

from ..engine.errors import check
from ..engine.task import Task, register_task, stratified_split, three_way_split


class MLP(nn.Module):
    """64 → hidden → hidden → classes; ``depth`` hidden layers (fc1, fc2, ...).

    ``share_layers=True``: ALBERT-style cross-layer parameter sharing (Lan et al., "ALBERT: A Lite BERT for
    Self-supervised Learning of Language Representations", 1909.11942, §3.1 "all-shared"): the hidden→hidden layer
    fc2 is applied depth−1 times, h_{l+1} = ReLU(W h_l + b) with one (W, b), so depth costs no extra parameters.
    """

    def __init__(self, d_in: int = 64, hidden: int = 128, n_classes: int = 10, depth: int = 2,
                 share_layers: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, n_classes)
        self.act = nn.ReLU()
        self.depth, self.share_layers = depth, share_layers
        for i in range(3, depth + 1) if not share_layers else ():
            setattr(self, f"fc{i}", nn.Linear(hidden, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, d_in] -> [B, C]
        h = self.act(self.fc1(x))
        for i in range(2, self.depth + 1):
            h = self.act((self.fc2 if self.share_layers else getattr(self, f"fc{i}"))(h))
        return self.head(h)


class CNN1D(nn.Module):
    """Strided Conv1d layers (conv1, then ``depth`` channels→channels convs conv2, conv3, ...) + two Linear layers,
    for length-40 mnist1d signals. ``share_layers=True``: ALBERT-style cross-layer sharing (1909.11942) — conv2 is
    applied ``depth`` times instead of ``depth`` separate convs."""

    def __init__(self, length: int = 40, channels: int = 32, hidden: int = 128, n_classes: int = 10,
                 depth: int = 2, share_layers: bool = False):
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=2)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        for i in range(3, depth + 2) if not share_layers else ():
            setattr(self, f"conv{i}", nn.Conv1d(channels, channels, 3, stride=2, padding=1))
        self.depth, self.share_layers = depth, share_layers
        out_len = length
        for _ in range(depth + 1):
            out_len = (out_len + 1) // 2
        self.fc = nn.Linear(channels * out_len, hidden)
        self.head = nn.Linear(hidden, n_classes)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, L] -> [B, C]
        h = self.act(self.conv1(x.unsqueeze(1)))  # [B, C, L/2]
        for i in range(2, self.depth + 2):
            h = self.act((self.conv2 if self.share_layers else getattr(self, f"conv{i}"))(h))
        return self.head(self.act(self.fc(h.flatten(1))))


def _seeded(build):
    def fresh(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return build()

    return fresh


@register_task("digits-mlp", "sklearn digits (1,797 8×8 images, 10 classes) with a 2-layer MLP; seconds")
def digits_mlp(hidden: int = 128, test_fraction: float = 0.2, validation_fraction: float = 0.1,
               n_train: int | None = None, depth: int = 2, share_layers: bool = False) -> Task:
    """Stratified splits with fixed seeds: test (20%) as before, validation (10% of all rows) carved from the
    rest; inputs standardised with train statistics."""
    from sklearn.datasets import load_digits

    check(isinstance(depth, int) and depth >= 2, "digits-mlp depth", depth, "an integer >= 2 (hidden layers)")

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32) / 16.0  # pixel values 0..16
    y = torch.tensor(y, dtype=torch.long)
    tr, val, te = three_way_split(y, validation_fraction, test_fraction, seed=0)
    if n_train is not None:
        tr = tr[torch.randperm(len(tr), generator=torch.Generator().manual_seed(1))[:n_train]].sort().values
    mean, std = x[tr].mean(0), x[tr].std(0) + 1e-3
    x = (x - mean) / std
    return Task(
        name="digits-mlp",
        build_model=_seeded(lambda: MLP(64, hidden, 10, depth, share_layers)),
        train={"x": x[tr], "labels": y[tr]},
        validation={"x": x[val], "labels": y[val]},
        test={"x": x[te], "labels": y[te]},
        num_classes=10,
        head=("head",),
        target_modules=("fc1", "fc2"),
        description="sklearn digits, MLP",
        meta={"model_kind": "mlp", "model_args": {"d_in": 64, "hidden": hidden, "n_classes": 10, "depth": depth,
                                                   "share_layers": share_layers},
              "input_mean": mean.tolist(), "input_std": std.tolist(), "labels": [str(i) for i in range(10)]},
    )


@functools.lru_cache(maxsize=2)
def _mnist1d(num_samples: int, seed: int):
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    return make_dataset(args)  # procedural; never get_dataset() (that downloads)


@register_task("mnist1d-cnn", "mnist1d (procedural 1-D digits, 3,601/399/1,000, 10 classes) with a 1-D CNN; seconds")
def mnist1d_cnn(num_samples: int = 5000, channels: int = 32, n_train: int | None = None, depth: int = 2,
                share_layers: bool = False, validation_fraction: float = 0.1) -> Task:
    """mnist1d's own test split (1,000 rows); validation = a stratified 10% of its train rows (fixed seed)."""
    check(isinstance(depth, int) and 1 <= depth <= 4, "mnist1d-cnn depth", depth,
          "an integer in [1, 4] (strided convs after conv1)")
    d = _mnist1d(num_samples, 42)
    x = torch.tensor(d["x"], dtype=torch.float32)
    y = torch.tensor(d["y"], dtype=torch.long)
    tr, val = stratified_split(y, validation_fraction, seed=1)  # the same validation rows whatever n_train is
    xtr, ytr, xval, yval = x[tr], y[tr], x[val], y[val]
    if n_train is not None:
        xtr, ytr = xtr[:n_train], ytr[:n_train]
    xte = torch.tensor(d["x_test"], dtype=torch.float32)
    yte = torch.tensor(d["y_test"], dtype=torch.long)
    length = xtr.shape[1]
    return Task(
        name="mnist1d-cnn",
        build_model=_seeded(lambda: CNN1D(length, channels, 128, 10, depth, share_layers)),
        train={"x": xtr, "labels": ytr},
        validation={"x": xval, "labels": yval},
        test={"x": xte, "labels": yte},
        num_classes=10,
        head=("head",),
        target_modules=("fc",),
        description="mnist1d, 1-D CNN",
        meta={"model_kind": "cnn1d", "model_args": {"length": length, "channels": channels, "hidden": 128,
                                                     "n_classes": 10, "depth": depth, "share_layers": share_layers},
              "labels": [str(i) for i in range(10)]},
    )
