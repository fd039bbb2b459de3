"""Checks over RunSpecs (hardrun.spec.run.RunSpec), shared by every run front end."""
from __future__ import annotations
