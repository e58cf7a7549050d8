"""One training step: the optimiser, a batch, the losses and the update. The trainer's loop and
the GPU training check (``benchmarks/gpu/gpu_train_check.py``) both run these."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

from ..method.criteria import SOURCE, TARGET
from ..method import stem_cache
from ..method.model import build_model, check_grid
from ..run.load import moving_grid
from ..run.vocabulary import Loss, OnNonfinite
from . import distributed
from .batches import BatchStream, crop_batch
from .plan import Batches


@dataclass
class Learner:
    """What a run trains: the model, its forward (DDP-wrapped when there are several
    processes), the optimiser with its groups' peak learning rates, and the backbone's feature
    map size."""
    model: torch.nn.Module
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    peak_lrs: List[float]
    feature_hw: Tuple[int, int]

    def set_lr(self, factor: float) -> None:
        """Every group's learning rate at ``factor`` of its peak."""
        for group, peak in zip(self.opt.param_groups, self.peak_lrs):
            group["lr"] = peak * factor


def make_learner(cfg, device, world: int = 1) -> Learner:
    """The model ``cfg`` asks for on ``device`` (its grid checked against the feature map),
    and AdamW with one learning-rate group per part: backbone (``backbone_lr_scale``),
    regressor, discriminator (``disc_lr_scale``)."""
    model = build_model(cfg).to(device)
    feature_hw = check_grid(model, cfg.image_size, moving_grid(cfg))
    model.from_stem = stem_cache.enabled(cfg)  # batches are then cached stem outputs
    opt = torch.optim.AdamW([
        {"params": [p for p in model.backbone.parameters() if p.requires_grad],
         "lr": cfg.lr * cfg.backbone_lr_scale},
        {"params": model.regressor.parameters(), "lr": cfg.lr},
        {"params": model.discriminator.parameters(), "lr": cfg.lr * cfg.disc_lr_scale}],
        weight_decay=cfg.weight_decay)
    peak_lrs = [g["lr"] for g in opt.param_groups]
    return Learner(model, distributed.wrap(model, device, world), opt, peak_lrs, feature_hw)


def next_batch(batches: Batches, streams: Dict[str, BatchStream], generator: torch.Generator,
               cfg, device, from_stem: bool = False) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """``(crops, labels, n_labelled)``: the next batch of the streams ``batches`` names,
    randomly cropped (and flipped, rotated) with ``generator``, or with ``from_stem`` one random
    view of each image's cached stem outputs. With both domains the labelled source crops come
    first and the target's labels are never read."""
    if batches is Batches.BOTH:
        images, y = next(streams["src"])
        images_t, _ = next(streams["tgt"])
        n_labelled, images = len(images), images + images_t
    else:  # supervised: source labels, or target labels for the target-oracle (the ceiling)
        images, y = next(streams["src" if batches is Batches.SOURCE_LABELS else "tgt"])
        n_labelled = len(images)
    x = stem_cache.pick_views(images, generator) if from_stem else \
        crop_batch(images, cfg.image_size, generator, cfg.hflip, cfg.rot90)
    x = x.to(device)
    return x, y.to(device), n_labelled


class Losses(NamedTuple):
    """A step's losses (tensors): the ``total`` it optimises, the ``quality`` loss, and with a
    discriminator its BCE ``domain`` loss and accuracy ``domain_acc`` (else None)."""
    total: torch.Tensor
    quality: torch.Tensor
    domain: Optional[torch.Tensor]
    domain_acc: Optional[torch.Tensor]


def quality_loss(cfg, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, y) if cfg.loss == Loss.MSE else F.l1_loss(pred, y)


def losses(net, x: torch.Tensor, y: torch.Tensor, n_labelled: int, adversarial: bool, cfg,
           lam: float) -> Losses:
    """The forward pass and losses of a step on crops ``x`` whose first ``n_labelled`` have
    labels ``y`` (the rest are target crops); ``adversarial``: the discriminator learns to
    tell the domains apart (labels ``SOURCE`` / ``TARGET``) through a gradient reversed with
    weight ``lam``."""
    if not adversarial:  # target crops, if any, only pass (BatchNorm statistics)
        pred, _, _ = net(x, 0.0)
        quality = quality_loss(cfg, pred[:n_labelled], y)
        return Losses(quality, quality, None, None)
    pred, logit, _ = net(x, lam)
    n_target = len(x) - n_labelled
    domain = torch.cat([torch.full((n_labelled,), float(SOURCE)),
                        torch.full((n_target,), float(TARGET))]).to(x.device)
    quality = quality_loss(cfg, pred[:n_labelled], y)
    dom = F.binary_cross_entropy_with_logits(logit, domain)
    acc = ((logit.detach() > 0).float() == domain).float().mean()
    return Losses(quality + cfg.domain_weight * dom, quality, dom, acc)


def nonfinite(step_losses: Losses, opt: torch.optim.Optimizer) -> str:
    """The first of a step's losses and its gradient norm that is not finite ("" if none);
    one device-to-host transfer when all are finite."""
    named = [(name, value.detach()) for name, value in (
        ("quality loss", step_losses.quality), ("domain loss", step_losses.domain),
        ("total loss", step_losses.total)) if value is not None]
    grads = [p.grad.detach() for g in opt.param_groups for p in g["params"] if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    finite = torch.isfinite(torch.stack([v.float() for _, v in named] + [norm.float()])).tolist()
    names = [name for name, _ in named] + ["gradient norm"]
    return next((name for name, ok in zip(names, finite) if not ok), "")


def update(opt: torch.optim.Optimizer, step_losses: Losses) -> str:
    """One optimiser step on ``step_losses.total``, unless a loss or the gradient norm is not
    finite in some process: then none (in every process), and ``nonfinite``'s name for it
    ("a value on another process" where all were finite); "" after a step."""
    opt.zero_grad(set_to_none=True)
    step_losses.total.backward()
    bad = nonfinite(step_losses, opt)
    if distributed.any_process(bool(bad)):
        return bad or "a value on another process"
    opt.step()
    return ""


def take_step(learner: Learner, x: torch.Tensor, y: torch.Tensor, n_labelled: int,
              adversarial: bool, cfg, lam: float) -> Tuple[Losses, str]:
    """``losses`` and ``update``: ``(losses, "")`` after a step; a step not taken for a
    non-finite value (``update``'s name for it) also leaves the model's buffers as they were
    (the BatchNorm statistics its forward pass moved) when the run goes on
    (``on_nonfinite=skip``)."""
    kept = [b.detach().clone() for b in learner.model.buffers()] \
        if cfg.on_nonfinite == OnNonfinite.SKIP else []
    step_losses = losses(learner.net, x, y, n_labelled, adversarial, cfg, lam)
    bad = update(learner.opt, step_losses)
    if bad and kept:
        with torch.no_grad():
            for buffer, value in zip(learner.model.buffers(), kept):
                buffer.copy_(value)
    return step_losses, bad


__all__ = ["Learner", "make_learner", "next_batch", "Losses", "quality_loss", "losses", "nonfinite",
           "update", "take_step"]
