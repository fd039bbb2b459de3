"""Check functions, one module per model. Importing this package registers them all."""
from . import build, policy, run  # noqa: F401
