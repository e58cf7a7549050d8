"""Loading a backbone's pretrained weights with errors that say what was expected
(shared by every backbone file)."""
from __future__ import annotations

from torch import nn

from ..errors import CheckpointError


def load_checked(net: nn.Module, state: dict, where: str, arch: str, skip=lambda k: False) -> None:
    """Load ``state`` into ``net`` (its keys but those ``skip`` names; BatchNorm's
    ``num_batches_tracked`` may be absent, as in older releases), or raise a CheckpointError
    saying, for the file ``where``, which keys are missing or unexpected for ``arch`` (with
    its article)."""
    wanted = {k for k in net.state_dict() if not skip(k)}
    missing = sorted(k for k in wanted - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - wanted)
    if missing or unexpected:
        raise CheckpointError(
            f"{where} is not {arch} state_dict: {len(missing)} weights missing (e.g. "
            f"{missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    try:
        net.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise CheckpointError(f"{where}: shapes do not match {arch} "
                              f"({str(err).splitlines()[-1].strip()})") from None
