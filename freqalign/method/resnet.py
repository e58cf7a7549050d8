"""``resnet50``: the paper's backbone, torchvision ResNet-50 with ImageNet weights from a local
file (nothing downloads)."""
from __future__ import annotations

import os

import torch
from torch import nn

from .. import storage
from ..errors import CheckpointError, MissingFileError
from .weights import load_checked


def resnet50_weights(path: str) -> dict:
    """The ResNet-50 weights in file ``path``, loaded without running code
    (``freqalign.storage.load``): a torchvision ``resnet50`` state_dict, or a checkpoint holding
    one under ``state_dict`` or ``model``; ``module.`` prefixes (DDP) are dropped, and so is the
    ImageNet classifier ``fc``, which the features do not use. Anything else is a
    ``CheckpointError`` saying what was expected and what was found."""
    state = storage.load(path)
    if isinstance(state, dict):
        state = next((state[k] for k in ("state_dict", "model") if isinstance(state.get(k), dict)),
                     state)
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(
            f"backbone_weights {path!r}: expected a torchvision resnet50 state_dict (a dict of "
            f"tensors), or a checkpoint holding one under 'state_dict' or 'model'; found "
            f"{_describe(state)}")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def _describe(obj) -> str:
    if isinstance(obj, dict):
        return f"a dict with keys {sorted(map(str, obj))[:5]}"
    return f"a {type(obj).__name__}"


class ResNet50Features(nn.Module):
    """torchvision ResNet-50 up to layer4 (C = 2048), ImageNet-normalising its [0, 1] input.

    Weights come from a local file (``resnet50_weights``); nothing downloads.
    """

    def __init__(self, weights: str = ""):
        super().__init__()
        import torchvision

        if weights and not os.path.isfile(weights):
            raise MissingFileError(
                f"backbone_weights: no such file {weights!r}. Nothing is downloaded: on a machine "
                f"with internet access run `python -c \"import torchvision; torchvision.models."
                f"resnet50(weights='IMAGENET1K_V2')\"`, which saves torchvision's ImageNet weights "
                f"as ~/.cache/torch/hub/checkpoints/resnet50-11ad3fa6.pth, copy that file to "
                f"{weights!r} (or pass --backbone-weights PATH)")
        net = torchvision.models.resnet50(weights=None)
        if weights:
            _load_features(net, resnet50_weights(weights), weights)
        self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                                  net.layer1, net.layer2, net.layer3, net.layer4)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), False)
        self.out_channels = 2048

    def forward(self, x):
        return self.body((x - self.mean) / self.std)


def _load_features(net: nn.Module, state: dict, path: str) -> None:
    """Load ``state`` into torchvision ResNet-50 ``net`` (all but ``fc``), or raise
    CheckpointError."""
    load_checked(net, state, f"backbone_weights {path!r}", "a torchvision resnet50",
                 skip=lambda k: k.startswith("fc."))
