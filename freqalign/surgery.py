"""Put freqalign's layers into torchvision models: ``replace_gap`` and ``add_attention``.

``replace_gap`` swaps a classification network's global average pooling for frequency pooling;
``add_attention`` turns a torchvision ResNet into FcaNet-ResNet. Both change the model in place
and return it. torchvision is imported on first use only.
"""
from typing import Optional, Sequence, Union

import torch
from torch import nn

from .attention import MultiSpectralAttention, resolve_frequencies
from .basis import Freq
from .errors import UnsupportedModelError
from .pooling import AdaptiveFreqPool2d



# -- replace_gap ----------------------------------------------------------------------------------

def _is_global(output_size) -> bool:
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    return all(s == 1 for s in sizes)


def _in_squeeze_excitation(name: str, model: nn.Module) -> bool:
    """Whether module ``name`` sits inside a squeeze-excitation block (EfficientNet, MobileNetV3
    and RegNetY have their own global pooling there; it is not the head's)."""
    parts = name.split(".")
    for depth in range(len(parts)):
        owner = model.get_submodule(".".join(parts[:depth]))
        kind = type(owner).__name__
        if "SqueezeExcitation" in kind or isinstance(owner, MultiSpectralAttention):
            return True
    return False


def _head_pool(model: nn.Module) -> Optional[str]:
    """The name of the model's head pooling: the last global average pooling module
    (``nn.AdaptiveAvgPool2d(1)``, or an ``AdaptiveFreqPool2d`` put there before) in registration
    order, outside squeeze-excitation blocks. torchvision registers the head after the body."""
    found = [name for name, module in model.named_modules()
             if (isinstance(module, AdaptiveFreqPool2d) or
                 (isinstance(module, nn.AdaptiveAvgPool2d) and _is_global(module.output_size)))
             and not _in_squeeze_excitation(name, model)]
    return found[-1] if found else None


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def replace_gap(model: nn.Module, freqs: Union[str, Sequence[Freq]] = ((0, 0),), grid: int = 7, *,
                norm: str = "mean", where: Optional[str] = None) -> nn.Module:
    """Swap the global average pooling of a classification network for frequency pooling.

    The head's ``nn.AdaptiveAvgPool2d(1)`` becomes an :class:`~freqalign.nn.AdaptiveFreqPool2d`
    (``FreqPool`` with a (B, C, 1, 1) output), so whatever follows it (``torch.flatten`` in the
    forward, ConvNeXt's LayerNorm2d + Flatten) keeps working. Found automatically in
    torchvision's ResNet, ResNeXt, Wide-ResNet, RegNet, MobileNetV3, EfficientNet, ConvNeXt,
    Inception, SqueezeNet and Swin: the last such module in registration order, skipping the
    pooling inside squeeze-excitation blocks. MobileNetV2 pools functionally in its forward; the
    new pooling is appended to ``model.features`` there (its own pooling of a 1 x 1 map is then
    exact). ``where="name.of.module"`` names the pooling module to replace in other models.

    ``freqs``: grid (u, v) pairs or a FcaNet name such as ``"top16"``; with K frequencies the
    channels are split into K groups (K must divide C). The default ``((0, 0),)`` with
    ``norm="mean"`` is global average pooling, so the logits stay unchanged up to rounding.
    Calling it again on a swapped model re-sets the frequencies. Returns ``model`` (changed in
    place). Raises :class:`UnsupportedModelError` where it finds no global pooling to replace.
    """
    pool = AdaptiveFreqPool2d(resolve_frequencies(freqs, grid), grid=grid, norm=norm)
    if where is not None:
        try:
            target = model.get_submodule(where)
        except AttributeError:
            raise UnsupportedModelError(f"replace_gap: {type(model).__name__} has no submodule "
                                        f"{where!r}") from None
        if not (isinstance(target, AdaptiveFreqPool2d) or
                (isinstance(target, nn.AdaptiveAvgPool2d) and _is_global(target.output_size))):
            raise UnsupportedModelError(f"replace_gap: {where!r} is {target!r}, not a global average "
                                        f"pooling (nn.AdaptiveAvgPool2d(1))")
        _set_submodule(model, where, pool)
        return model
    name = _head_pool(model)
    if name is not None:
        _set_submodule(model, name, pool)
        return model
    from torchvision.models import MobileNetV2

    if isinstance(model, MobileNetV2):
        model.features.append(pool)
        return model
    pools = [f"{n or '<model>'}: {m}" for n, m in model.named_modules()
             if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d))]
    seen = "; pooling modules found: " + ", ".join(pools) if pools else "; it has no pooling modules"
    raise UnsupportedModelError(
        f"replace_gap found no global average pooling module (nn.AdaptiveAvgPool2d(1), outside "
        f"squeeze-excitation blocks) in {type(model).__name__}{seen}. If the model pools "
        f"functionally in its forward (x.mean, F.adaptive_avg_pool2d), put "
        f"freqalign.nn.AdaptiveFreqPool2d there yourself; if it pools with a module, name it with "
        f"where='...'")


# -- add_attention ------------------------------------------------------------------------------

class _AttentionBlock(nn.Module):
    """A torchvision ResNet block's own modules (same names) plus channel attention ``att``."""

    def __init__(self, block: nn.Module, att: nn.Module):
        super().__init__()
        for name, child in block.named_children():
            self.add_module(name, child)
        if "downsample" not in self._modules:
            self.downsample = None
        self.att = att
        self.stride = getattr(block, "stride", 1)


class AttentionBasicBlock(_AttentionBlock):
    """A ``BasicBlock`` with ``att`` after ``bn2``, before the residual add: FcaNet's
    ``FcaBasicBlock``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.att(self.bn2(self.conv2(out)))
        out += identity
        return self.relu(out)


class AttentionBottleneck(_AttentionBlock):
    """A ``Bottleneck`` with ``att`` after ``bn3``, before the residual add: FcaNet's
    ``FcaBottleneck``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.att(self.bn3(self.conv3(out)))
        out += identity
        return self.relu(out)


FCANET_STAGE_SIZES = (56, 28, 14, 7)  # FcaNet's dct size per ResNet stage (its c2wh): 224 / 4, / 8, ...


def add_attention(resnet: nn.Module, freqs: Union[str, Sequence[Freq]] = "top16", reduction: int = 16,
                  grid: int = 7, *, pool_sizes: Optional[str] = None) -> nn.Module:
    """Turn a torchvision ResNet (ResNet, ResNeXt, Wide-ResNet) into FcaNet-ResNet, in place.

    Every block of ``layer1`` .. ``layer4`` becomes an :class:`AttentionBottleneck` or
    :class:`AttentionBasicBlock` holding the block's own modules (same parameter names) plus a
    new :class:`~freqalign.nn.MultiSpectralAttention` ``att`` on the block's output channels,
    after its last BatchNorm and before the residual add, as in FcaNet. The new layers are
    initialised as ``nn.Linear`` does (as FcaNet's are) and take the block's device and dtype.
    The state_dict then has FcaNet-ResNet's keys, less its fixed DCT filter buffers.

    ``pool_sizes``: ``None`` (default) pools at each block's native feature size, with grid
    frequency (u, v) at index ``(u * H // grid, v * W // grid)``. At 224 x 224 input the stages
    are 56, 28, 14 and 7 wide, FcaNet's own DCT sizes, so this is FcaNet exactly; other input
    sizes keep the same frequencies relative to the map (a top16 table needs maps of at least 7 x
    7, i.e. inputs of at least 224). ``"fcanet"`` average-pools each stage's input to FcaNet's
    56 / 28 / 14 / 7 first when its size differs, as FcaNet's layer does, which reproduces
    FcaNet at every input size (and works on small inputs).
    """
    if pool_sizes not in (None, "fcanet"):
        raise ValueError(f"pool_sizes must be None (native size) or 'fcanet', got {pool_sizes!r}")
    from torchvision.models.resnet import BasicBlock, Bottleneck

    layers = [getattr(resnet, f"layer{i}", None) for i in range(1, 5)]
    if any(not isinstance(layer, nn.Sequential) for layer in layers):
        raise UnsupportedModelError(f"add_attention expects a torchvision ResNet (layer1 .. layer4 of "
                                    f"BasicBlock / Bottleneck), got {type(resnet).__name__}")
    for stage, layer in enumerate(layers):
        for index, block in enumerate(layer):
            if isinstance(block, Bottleneck):
                kind, norm = AttentionBottleneck, block.bn3
            elif isinstance(block, BasicBlock):
                kind, norm = AttentionBasicBlock, block.bn2
            elif isinstance(block, (AttentionBottleneck, AttentionBasicBlock)):
                raise UnsupportedModelError(f"add_attention: layer{stage + 1}[{index}] already has "
                                            f"attention")
            else:
                raise UnsupportedModelError(f"add_attention: layer{stage + 1}[{index}] is a "
                                            f"{type(block).__name__}, not a torchvision BasicBlock or "
                                            f"Bottleneck")
            size = FCANET_STAGE_SIZES[stage] if pool_sizes == "fcanet" else None
            att = MultiSpectralAttention(norm.num_features, reduction, freqs, grid, pool_size=size)
            like = next(block.parameters())
            att.to(device=like.device, dtype=like.dtype)
            layer[index] = kind(block, att)
    return resnet


__all__ = ["replace_gap", "add_attention", "UnsupportedModelError", "AttentionBasicBlock",
           "AttentionBottleneck", "FCANET_STAGE_SIZES"]
