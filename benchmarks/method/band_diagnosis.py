"""Why an adversarial run leaves its band separable (gate.md): two checks on finished runs.

1. The reversed gradient's sign: one signed-gradient step of the trainable trunk along the
   gradient that reaches it through the gradient reversal must raise the discriminator's loss
   (a mixed batch of 64 + 64 training images, eval mode, window ``--window`` or GAP).
2. Where the domain difference sits in the band: the group-fold domain accuracy of the signed
   band and of its magnitudes, the mean standardised per-dimension domain gap, and the share of
   band dimensions whose domain means have opposite signs (held-out images).

    python -m benchmarks.method.band_diagnosis --window 10 RUN_DIR [RUN_DIR ...]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from freqalign.data.domains import load_data
from freqalign.method import stem_cache
from freqalign.method.alignment import domain_accuracy
from freqalign.method.search import window_features
from freqalign.scoring import load_model
from freqalign.train.evaluate import predict


def reversed_step(model, data, window: int, size: int) -> tuple:
    """Discriminator loss before and after one trunk step along the reversed gradient."""
    x = torch.cat([torch.stack([data[k][i][0][0] for i in range(64)])
                   for k in ("src_train", "tgt_train")])
    y = torch.cat([torch.ones(64), torch.zeros(64)])
    model.set_window(window, size)
    model.eval()

    def loss():
        with torch.no_grad():
            return F.binary_cross_entropy_with_logits(model(x, 0.0)[1], y).item()

    before = loss()
    model.zero_grad()
    F.binary_cross_entropy_with_logits(model(x, 1.0)[1], y).backward()
    with torch.no_grad():
        for p in model.backbone.parameters():
            if p.requires_grad:
                p -= 1e-3 * p.grad.sign()
    return before, loss()


def band_statistics(model, cfg, data, window: int) -> dict:
    def held(k):
        return {**predict(model, data[k], list(range(len(data[k]))), cfg, "cpu", coeffs=True),
                "groups": np.asarray(data[k].groups)}

    s, tv, tt = held("src_val"), held("tgt_val"), held("tgt_test")
    t = {k: np.concatenate([tv[k], tt[k]]) for k in ("coeffs", "groups")}
    bs, bt = (window_features(d["coeffs"], window, cfg.window_size) for d in (s, t))
    groups = (s["groups"], t["groups"])
    gap = np.abs(bs.mean(0) - bt.mean(0)) / np.sqrt(0.5 * (bs.var(0) + bt.var(0)) + 1e-12)
    return {"signed": domain_accuracy(bs, bt, *groups),
            "magnitude": domain_accuracy(np.abs(bs), np.abs(bt), *groups),
            "mean_standardised_gap": float(gap.mean()),
            "opposite_sign_share": float(np.mean(np.sign(bs.mean(0)) != np.sign(bt.mean(0))))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, required=True)
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    for run in args.runs:
        model, cfg, _, _ = load_model(f"{run}/checkpoints/last.pt", "cpu")
        data, _ = load_data(cfg, stem_cache.wrapper(cfg, "cpu", progress=False))
        model.from_stem = True
        stats = band_statistics(model, cfg, data, args.window)
        before, after = reversed_step(model, data, args.window, cfg.window_size)
        print(f"{run}: window {args.window}: discriminator loss {before:.4f} -> {after:.4f} after "
              f"a reversed trunk step; band accuracy signed {stats['signed']:.3f}, magnitude "
              f"{stats['magnitude']:.3f}; mean standardised gap "
              f"{stats['mean_standardised_gap']:.3f}; opposite-sign share "
              f"{stats['opposite_sign_share']:.2f}")


if __name__ == "__main__":
    main()
