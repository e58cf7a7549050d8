"""Window-selection criteria (docs/design.md section 4.4). Every score is "higher is better".

- ``source``: SRCC of the regressor on held-out source images.
- ``confusion``: ``-|acc - 0.5|`` of a domain classifier (logistic regression on GAP
  features, fit on the training splits) measured on held-out source and target images:
  0 when the domains are indistinguishable.
- ``dev``: minus the Deep Embedded Validation risk (You et al., ICML 2019): the source
  validation loss importance-weighted by density ratios from that domain classifier, the
  weights self-normalised (bounded: the risk lies within the losses' range).
- ``oracle``: SRCC on held-out *labelled* target images. Uses target labels: analysis only.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from ..metrics import srcc
from ..names import Name


class Criterion(Name):
    """The criteria (config ``criterion``, ``best_criterion``; the keys of ``score_all``)."""
    DEV = "dev"
    SOURCE = "source"
    CONFUSION = "confusion"
    ORACLE = "oracle"  # reads target labels: analysis only


CRITERIA = tuple(Criterion)
# The criteria that read no target labels: only these may select a window or a checkpoint.
LABEL_FREE = tuple(c for c in Criterion if c is not Criterion.ORACLE)

# The domain labels of every domain classifier in the package: the trainer's discriminator
# (its logit is the log-odds of SOURCE) and the criteria's and the probe's logistic
# classifiers (they are asked for P(TARGET | x), the numerator of the density ratio).
SOURCE, TARGET = 1, 0


def domain_labels(n_source: int, n_target: int) -> np.ndarray:
    """``SOURCE`` for ``n_source`` rows, then ``TARGET`` for ``n_target`` (float64)."""
    return np.r_[np.full(n_source, float(SOURCE)), np.full(n_target, float(TARGET))]


def fit_domain_classifier(x: np.ndarray, y: np.ndarray, steps: int = 100, l2: float = 1e-2):
    """L2-regularised logistic regression fit with L-BFGS in float64; returns ``predict_proba``,
    the probability of the class that ``y`` marks true (1).

    Features are standardised on ``x``; classes are balanced by weighting, so the
    classifier's odds are the class-conditional density ratio.
    """
    x = np.asarray(x, np.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mu) / sd)
    yt = torch.from_numpy(np.asarray(y, np.float64))
    pos = float(yt.mean().clamp(1e-6, 1 - 1e-6))
    weight = torch.where(yt > 0.5, 0.5 / pos, 0.5 / (1 - pos))
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max(steps, 1), line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(
            xt @ w + b, yt, reduction="none")).mean() + l2 * (w * w).sum()
        loss.backward()
        return loss

    if steps > 0:
        opt.step(closure)
    w_, b_ = w.detach(), b.detach()

    def predict_proba(z: np.ndarray) -> np.ndarray:
        zt = torch.from_numpy((np.asarray(z, np.float64) - mu) / sd)
        return torch.sigmoid(zt @ w_ + b_).numpy()

    return predict_proba


def balanced_accuracy(p_source: np.ndarray, p_target: np.ndarray) -> float:
    """Accuracy of ``P(target | x) > 0.5``, averaged over the two domains."""
    return 0.5 * (float(np.mean(p_source <= 0.5)) + float(np.mean(p_target > 0.5)))


def confusion_score(accuracy: float) -> float:
    """``-|acc - 0.5|``: 0 when a held-out domain classifier is at chance, -0.5 when perfect."""
    return -abs(float(accuracy) - 0.5)


def density_ratio(p_target: np.ndarray) -> np.ndarray:
    """``p_t(x) / p_s(x)`` = the odds ``P(target|x) / P(source|x)`` of a class-balanced classifier."""
    p = np.clip(np.asarray(p_target, np.float64), 1e-6, 1 - 1e-6)
    return p / (1 - p)


def dev_risk(losses: np.ndarray, weights: np.ndarray) -> float:
    """Deep Embedded Validation risk (You et al., 2019, Algorithm 1), with the weights
    self-normalised to mean 1 on the validation sample.

    DEV's estimate is ``mean(w l) + eta (mean(w) - 1)`` with the control variate
    ``eta = -Cov(w l, w) / Var(w)``, which relies on E[w] = 1. Raw density ratios of a nearly
    perfect domain classifier break that (ratios up to 1e6 made risks of +32 and -63 for
    losses in [0, 1]); normalised to mean 1 the control-variate term is exactly 0 and the risk,
    a weighted mean of the losses, stays within their range."""
    losses, weights = np.asarray(losses, np.float64), np.asarray(weights, np.float64)
    weights = weights / weights.mean()
    return float((weights * losses).mean())


def score_all(ev: Dict[str, np.ndarray], fit_steps: int = 100) -> Dict[str, float]:
    """All criteria from one evaluation pass.

    ``ev`` holds arrays: ``src_train_feat``, ``tgt_train_feat`` (domain classifier fit),
    ``src_val_feat``, ``src_val_pred``, ``src_val_true``, ``tgt_val_feat``, and for the oracle
    ``tgt_val_pred``, ``tgt_val_true``. Returns ``{criterion: score}`` plus diagnostics.
    """
    x = np.concatenate([ev["src_train_feat"], ev["tgt_train_feat"]])
    domains = domain_labels(len(ev["src_train_feat"]), len(ev["tgt_train_feat"]))
    proba = fit_domain_classifier(x, domains == TARGET, fit_steps)
    p_src, p_tgt = proba(ev["src_val_feat"]), proba(ev["tgt_val_feat"])
    acc = balanced_accuracy(p_src, p_tgt)
    weights = density_ratio(p_src)
    losses = np.abs(ev["src_val_pred"] - ev["src_val_true"])
    return {  # plain-string keys: scores go into checkpoints, which hold plain data only
        Criterion.SOURCE.value: srcc(ev["src_val_pred"], ev["src_val_true"]),
        Criterion.CONFUSION.value: confusion_score(acc),
        Criterion.DEV.value: -dev_risk(losses, weights),
        Criterion.ORACLE.value: srcc(ev["tgt_val_pred"], ev["tgt_val_true"]),
        "domain_accuracy": acc,
        "source_val_l1": float(losses.mean()),
    }


__all__ = ["Criterion", "CRITERIA", "LABEL_FREE", "SOURCE", "TARGET", "domain_labels",
           "fit_domain_classifier",
           "balanced_accuracy", "confusion_score",
           "density_ratio", "dev_risk", "score_all"]
