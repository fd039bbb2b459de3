"""Checks over the build model (hardrun.spec.build.Dockerfile)."""
from __future__ import annotations
