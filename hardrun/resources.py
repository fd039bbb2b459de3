"""Where the bundled data lives: inside the installed package, or beside it in a checkout."""
from __future__ import annotations

import os

TYPE_CHECKING = False  # pathlib costs start-up time (with urllib.parse and ipaddress, ~3 ms)
if TYPE_CHECKING:
    from pathlib import Path

_PACKAGE = os.path.dirname(os.path.realpath(__file__))


def data_path(name: str) -> str:
    """The directory of bundled data `name` (`rules`, `policies`, `data`), as a string:
    the audit's start-up path reads it without importing pathlib."""
    installed = os.path.join(_PACKAGE, name)
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(_PACKAGE), name)


def data_dir(name: str) -> Path:
    """The directory of bundled data `name` (`rules`, `policies`, `data`)."""
    from pathlib import Path
    return Path(data_path(name))
