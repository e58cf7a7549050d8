"""``Name``: the base of the package's enums of names (methods, search modes, criteria): a
member equals, hashes, prints and serialises (JSON) as its value, so ``Method.DANN == "dann"``
and ``f"{Method.DANN}"`` is ``dann``."""
from __future__ import annotations

from enum import Enum


class Name(str, Enum):
    __hash__ = str.__hash__
    __format__ = str.__format__

    def __str__(self) -> str:
        return self.value


__all__ = ["Name"]
