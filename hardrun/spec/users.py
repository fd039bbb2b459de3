"""Who counts as root in a `user` value, for every front end alike."""
from __future__ import annotations


def is_root_user(user: str) -> bool:
    """`root`, `0`, `root:<group>`, `0:<group>`; on Windows, ContainerAdministrator."""
    name = user.split(":", 1)[0].strip()
    return name in ("root", "0") or name.lower() == "containeradministrator"
