"""`hardrun run`: parsed without click (start-up time is measured against crun).

Flags are Docker's (the shared table in hardrun/frontends/docker_flags.py, in
hardrun mode) plus hardrun's own; hardrun's own errors exit 125, as Docker's do.
"""
from __future__ import annotations

import sys

EXIT_USAGE = 125


def main(argv: list[str]) -> int:
    from ..errors import HardrunError
    try:
        return _main(argv)
    except HardrunError as error:
        print(f"hardrun: {error}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `hardrun run --dry-run … | head`
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str]) -> int:
    from ..frontends import docker_flags
    parsed = docker_flags.parse_run_args(argv, hardrun_mode=True)
    options = docker_flags.hardrun_options(parsed)
    if options.help:
        sys.stdout.write(docker_flags.run_help())
        return 0
    spec = docker_flags.runspec_from_args(parsed, kind="hardrun", hardrun_mode=True)
    if options.config or options.policy:
        spec = _config_and_policy(spec, options)
    from ..runtime import config
    cfg = config.resolve(spec)
    if options.dry_run:
        import json
        json.dump(config.to_oci(cfg), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from ..runtime import parent
    return parent.run(cfg, parent.Hooks(cfg, limits_mode=options.limits))


def _config_and_policy(spec, options):
    """--config (a run YAML merged under the flags) and --policy (the gate before anything
    is created); both live in modules imported only when asked for."""
    from ..errors import UsageError
    if options.config:
        try:
            from ..frontends.hardrun_yaml import merge_run_config
        except ImportError:
            raise UsageError("--config is not available in this build of hardrun") from None
        spec = merge_run_config(options.config, spec)
    if options.policy:
        try:
            from ..policy import gate
        except ImportError:
            raise UsageError("--policy is not available in this build of hardrun") from None
        gate(options.policy, spec)
    return spec
