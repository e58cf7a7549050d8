"""The learning ablation harness behind ``benchmarks/results/method/learning.md``.

A stripped-down supervised trainer (no domain adaptation, no criteria) on the embedded data,
so one recipe change at a time can be measured in about a minute: it trains a quality CNN on
the source training split (or, with ``--domain target``, on the target training split: the
oracle) and prints held-out SRCC every ``--eval-every`` steps, then per distortion kind and
per content group. The same splits as ``freqalign train`` (``data_seed`` 0).

    python -m benchmarks.method.ablation --stem patch --crop 64 --steps 3000
    python -m benchmarks.method.ablation --stem conv --crop 64 --steps 3000 --loss mse
"""
import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from freqalign.data.embedded import load_embedded
from freqalign.data.splits import IQASubset, split_by_group


def block(cin, cout, k, stride, pad):
    return [nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


def backbone(stem: str, width: int) -> nn.Sequential:
    """``patch``: the v4 SmallCNN (4x4 stride-4 stem); ``conv``: full-resolution 3x3 stem;
    ``conv_s2``: 3x3 stride-2 stem (the shape of the current SmallCNN). All end at 8x8."""
    w = width
    if stem == "patch":
        layers = block(3, 16, 4, 4, 0) + block(16, 32, 3, 2, 1) + block(32, w, 3, 1, 1)
    elif stem == "conv":
        layers = (block(3, 16, 3, 1, 1) + block(16, 32, 3, 2, 1) + block(32, 32, 3, 1, 1) +
                  block(32, w, 3, 2, 1) + block(w, w, 3, 1, 1) + block(w, w, 3, 2, 1))
    else:
        layers = (block(3, 24, 3, 2, 1) + block(24, 32, 3, 1, 1) + block(32, w, 3, 2, 1) +
                  block(w, w, 3, 1, 1) + block(w, w, 3, 2, 1))
    return nn.Sequential(*layers)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--domain", choices=("source", "target"), default="source")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--schedule", choices=("onecycle", "constant"), default="onecycle")
    p.add_argument("--stem", choices=("patch", "conv", "conv_s2"), default="conv_s2")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--crop", type=int, default=64, help="random training crop side (64: none)")
    p.add_argument("--loss", choices=("l1", "mse"), default="l1")
    p.add_argument("--rot90", action="store_true", help="random 90-degree rotations")
    p.add_argument("--drop-kind", default="", help="leave a source distortion kind out")
    p.add_argument("--photos-only", action="store_true",
                   help="leave the source's dead-leaves charts out (the ablation's 'v6 photos')")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)

    src, tgt = load_embedded("source", progress=False), load_embedded("target", progress=False)
    t = split_by_group(tgt, {"train": .5, "val": .2, "test": .3}, 0)
    if a.domain == "source":
        rows = np.flatnonzero(~np.asarray(src.meta["chart"])) if a.photos_only else None
        part = src if rows is None else IQASubset(src, rows.tolist())
        s = split_by_group(part, {"train": .8, "val": .2}, 0)
        train_idx, val_idx = ([part.indices[i] for i in s[k].indices] if rows is not None
                              else s[k].indices for k in ("train", "val"))
        data = src
    else:
        data, train_idx, val_idx = tgt, t["train"].indices, t["test"].indices
    if a.drop_kind:
        kinds, names = np.asarray(data.meta["kind"]), list(data.meta["kind_names"])
        train_idx = [i for i in train_idx if names[kinds[i]] != a.drop_kind]
        val_idx = [i for i in val_idx if names[kinds[i]] != a.drop_kind]
    x_train = data.images[train_idx].float() / 255
    y_train = torch.tensor(data.scores[train_idx], dtype=torch.float32)
    x_val, y_val = data.images[val_idx].float() / 255, data.scores[val_idx]
    x_tgt, y_tgt = tgt.images[t["test"].indices].float() / 255, tgt.scores[t["test"].indices]

    body = backbone(a.stem, a.width)
    head = nn.Sequential(nn.Linear(a.width, 128), nn.ReLU(), nn.Linear(128, 1))
    model = nn.ModuleDict({"body": body, "head": head})

    def forward(x):
        return torch.sigmoid(head(body(x).mean((2, 3)))).squeeze(1)

    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=a.steps, pct_start=0.15)
             if a.schedule == "onecycle" else torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0))
    g = torch.Generator().manual_seed(a.seed)

    @torch.no_grad()
    def srcc(x, y):
        model.eval()
        pred = torch.cat([forward(x[i:i + 256]) for i in range(0, len(x), 256)]).numpy()
        model.train()
        return float(stats.spearmanr(pred, y)[0]), pred

    t0, curve = time.time(), []
    for step in range(1, a.steps + 1):
        idx = torch.randint(0, len(x_train), (a.batch_size,), generator=g)
        x = x_train[idx]
        if a.crop < x.shape[-1]:
            top, left = (int(torch.randint(0, x.shape[-1] - a.crop + 1, (), generator=g))
                         for _ in range(2))
            x = x[..., top:top + a.crop, left:left + a.crop]
        if torch.rand((), generator=g) < 0.5:
            x = x.flip(-1)
        if a.rot90:
            x = torch.rot90(x, int(torch.randint(0, 4, (), generator=g)), (2, 3))
        pred, y = forward(x), y_train[idx]
        loss = F.l1_loss(pred, y) if a.loss == "l1" else F.mse_loss(pred, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % a.eval_every == 0 or step == a.steps:
            train_srcc, _ = srcc(x_train[:600], y_train[:600].numpy())
            val_srcc, _ = srcc(x_val, y_val)
            tgt_srcc, _ = srcc(x_tgt, y_tgt)
            curve.append({"step": step, "train": train_srcc, "val": val_srcc, "target": tgt_srcc})
            print(f"step {step} train {train_srcc:.3f} held-out {val_srcc:.3f} "
                  f"target-test {tgt_srcc:.3f} {time.time() - t0:.0f}s", file=sys.stderr)
    _, pred = srcc(x_val, y_val)
    per = {}
    if a.domain == "source":
        kinds, names = np.asarray(data.meta["kind"])[val_idx], list(data.meta["kind_names"])
        per = {names[k]: float(stats.spearmanr(pred[kinds == k], y_val[kinds == k])[0])
               for k in np.unique(kinds)}
    print(json.dumps({"args": vars(a), "curve": curve, "per_kind": per,
                      "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
