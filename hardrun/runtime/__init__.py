"""The hardened runtime behind `hardrun run` (imported only by the runtime path)."""
