"""The hardened runtime behind `hardrun run`."""
