"""Images described in YAML (the image rules' examples, tests' fixtures), built with
tarfile as OCI layouts:

    config: {User: app, Env: [...]}          # the container config
    history: [{created_by: "...", empty_layer: false}, ...]   # or plain strings
    layers:                                  # each a list of entries, in archive order
      - - {path: etc/shadow, content: "...", mode: 0o640}
        - {path: tmp, type: dir, mode: 0o1777}
        - {path: usr/bin/.wh.sudo}           # a whiteout is an entry like any other

A history without layers gets one empty layer per step, so each step has its layer.
"""
from __future__ import annotations

import tarfile
from pathlib import Path

import yaml

from tests.imagebuild import Image, entry, tar_layer, write_layout

TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}


def _mode(value, default: int) -> int:
    if value is None:
        return default
    return int(value, 0) if isinstance(value, str) else int(value)


def layer_of(entries) -> bytes:
    members = []
    for item in entries:
        kind = TYPES[item.get("type", "file")]
        content = item.get("content")
        members.append(entry(item["path"], kind, content.encode() if isinstance(content, str) else None,
                             linkname=item.get("target", ""),
                             mode=_mode(item.get("mode"), 0o755 if kind == tarfile.DIRTYPE else 0o644)))
    return tar_layer(members)


def image_of(text: str) -> Image:
    document = yaml.safe_load(text) or {}
    history = [{"created_by": step} if isinstance(step, str) else dict(step)
               for step in document.get("history") or []]
    layers = document.get("layers")
    if layers is None:
        layers = [[] for step in history if not step.get("empty_layer")]
    image = Image([layer_of(entries) for entries in layers], document.get("config") or {})
    if history:
        image.config["history"] = history
    return image


def build_example(text: str, directory: Path) -> str:
    """The image `text` describes, written as an OCI layout; returns its `oci:` name."""
    write_layout(directory, {None: image_of(text)})
    return f"oci:{directory}"
