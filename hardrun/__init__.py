"""hardrun: a hardened-by-default container runtime and a container-security auditor."""

__version__ = "0.1.0"
