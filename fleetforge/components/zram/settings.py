"""Host data of the zram component (``HostSettings`` inherits it)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

ZRAM_ALGORITHMS = ("lzo", "lzo-rle", "lz4", "lz4hc", "zstd", "842", "deflate")
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*", re.IGNORECASE)
_UNIT_MIB = {"": 1.0, "B": 1 / 1048576, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1048576.0}


def parse_size_mib(value: Any) -> int:
    """A size as MiB: an int (MiB) or a string like ``"512M"``, ``"2G"``, ``"1.5GiB"``.

    Raises ``ValueError`` with the expected forms for anything else (``"lots"``, ``-1``).
    """
    if isinstance(value, bool):
        raise ValueError(f'expected a size like "2G", "512M" or a number of MiB, got {value!r}')
    if isinstance(value, int):
        mib = value
    else:
        match = _SIZE_RE.fullmatch(value) if isinstance(value, str) else None
        if not match:
            raise ValueError(f'expected a size like "2G", "512M" or a number of MiB, got {value!r}')
        unit = (match.group(2) or "").upper()[:1]
        mib = int(float(match.group(1)) * _UNIT_MIB[unit])
    if mib <= 0:
        raise ValueError(f"expected a size above 0, got {value!r}")
    return mib


SizeMiB = Annotated[int, BeforeValidator(parse_size_mib)]


class ZramSettings(BaseModel):
    """``zram`` (bool), ``zram_size`` (MiB or a size with a unit), ``zram_algorithm``, ``zram_priority``."""

    zram: bool = True
    zram_size: SizeMiB | None = None
    zram_algorithm: Literal[ZRAM_ALGORITHMS] | None = None  # type: ignore[valid-type]
    zram_priority: Annotated[int, Field(ge=-1, le=32767)] | None = None
