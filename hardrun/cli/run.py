"""`hardrun run`: parsed without click (start-up time is measured against crun).

Flags are Docker's (the shared table in hardrun/frontends/docker_flags.py, in
hardrun mode) plus hardrun's own; hardrun's own errors exit 125, as Docker's do.
A container the policy refuses exits 3 (hardrun.policy.GATE_REFUSED_EXIT) before
anything is created.
"""
from __future__ import annotations

import gc
import sys

EXIT_USAGE = 125


def main(argv: list[str]) -> int:
    from ..errors import HardrunError
    # Start-up makes thousands of objects that live as long as the process (modules, the
    # flag table, the config) and no garbage cycles: the collections they would trigger
    # (about a millisecond, freeing nothing) are skipped until the runtime takes over.
    gc.disable()
    try:
        return _main(argv)
    except HardrunError as error:
        print(f"hardrun: {error}", file=sys.stderr, flush=True)
        return getattr(error, "run_exit_code", EXIT_USAGE)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `hardrun run --dry-run … | head`
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        gc.enable()


def _main(argv: list[str]) -> int:
    cached = _plan_from_cache(argv)
    if cached.entry is not None:   # the parser and the resolver are not even imported
        entry = cached.entry
        return _resolve_and_run(entry.spec, _StoredOptions(entry.options), None, cached)
    from ..frontends import docker_argv, docker_runspec
    parsed = docker_argv.parse_run_args(argv, hardrun_mode=True)
    options = docker_argv.hardrun_options(parsed)
    if options.help:
        from ..frontends.docker_flags import run_help
        sys.stdout.write(run_help())
        return 0
    spec = docker_runspec.runspec_from_args(parsed, kind="hardrun", hardrun_mode=True)
    if options.config:
        from ..frontends.hardrun_config import merge_flags, read_run_config
        spec = merge_flags(read_run_config(options.config), spec)
    image = None
    if spec.image and not spec.rootfs:
        # the image's config (its user, command…) is part of what the policy judges
        from ..runtime import image_root
        spec, image = image_root.prepare(spec, options.pull, options.platform)
    spec = _policy(spec, options)
    try:
        return _resolve_and_run(spec, options, image, cached)
    finally:
        if image is not None:
            image_root.release(image)


class _Cached:
    """The plan cache's part in one start: where an entry is (or would be) and the entry."""
    __slots__ = ("directory", "key", "entry")

    def __init__(self, directory=None, key=None, entry=None):
        self.directory, self.key, self.entry = directory, key, entry


def _plan_from_cache(argv) -> _Cached:
    """The stored plan of this command line (runtime/plan_cache.py), when there is one and
    no policy file applies here (a policy is judged on every start, never cached)."""
    from ..runtime import plan_cache
    directory = plan_cache.cache_dir()
    key = plan_cache.key_of(argv) if directory else None
    if directory is None or key is None:
        return _Cached()
    from ..policy.discover import DEFAULT, find_policy
    if find_policy(".") != DEFAULT:
        return _Cached()
    return _Cached(directory, key, plan_cache.lookup(directory, key))


class _StoredOptions:
    """hardrun run's own options as a stored plan keeps them (plan_cache.OPTION_NAMES)."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


def _resolve_and_run(spec, options, image, cached) -> int:
    from ..runtime import config
    id_lease = config.lease_id_range(spec, image.highest_ids if image is not None else (0, 0))
    try:
        return _run_in_range(spec, options, image, id_lease, cached)
    finally:   # the range is free again once the container is gone (a killed hardrun: gc)
        if id_lease is not None:
            id_lease.release()


def _run_in_range(spec, options, image, id_lease, cached) -> int:
    from ..runtime import config
    if image is not None:
        from ..runtime import image_root
        from ..spec.record import replace
        root = image_root.mount(image, spec, config.planned_id_maps(spec, id_lease),
                                read_write=spec.read_only_root is False)
        spec = replace(spec, rootfs=root)
    elif spec.rootfs and id_lease is not None and not options.dry_run:
        from ..runtime.userns import prepared_range_owner
        maps = config.planned_id_maps(spec, id_lease)
        owner = prepared_range_owner(spec.rootfs, maps)
        if owner is not None:     # a root prepared for another range of the pool: idmapped onto this one
            from ..runtime import image_root
            image_root.adopt_shifted_rootfs(spec.rootfs, maps, owner)
    if cached.entry is not None:
        fixed = cached.entry.fixed
    else:
        fixed = config.resolve_fixed(spec, tty=options.tty, interactive=options.interactive)
        _store_plan(cached, spec, options, fixed)
    cfg = config.complete(spec, fixed, tty=options.tty, interactive=options.interactive, id_lease=id_lease)
    if options.dry_run:
        import json
        document = config.to_oci(cfg)
        if image is not None:
            document["annotations"].update(image.annotations())
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    watch = _seccomp_watch(cfg, options)
    from ..runtime import parent
    from ..runtime.hooks import Hooks
    gc.freeze()   # what start-up made stays; only later objects are ever scanned
    gc.enable()
    return parent.run(cfg, Hooks(cfg, limits_mode=options.limits, image=image), watch)


def _store_plan(cached, spec, options, fixed) -> None:
    """Keep the resolved plan for the next start of the same command line, when nothing
    but what the entry records decided it (plan_cache.storable)."""
    if cached.key is None:
        return
    from ..runtime import plan_cache
    if plan_cache.storable(spec, options, fixed):
        plan_cache.store(cached.directory, cached.key, spec, options, fixed)


def _seccomp_watch(cfg, options):
    """--seccomp-learn, else --explain (auto: when stderr is a terminal), else None; the
    modules are imported only when one is asked for."""
    if options.seccomp_learn:
        if options.explain_json or options.explain not in (None, "auto", "never"):
            from ..errors import UsageError
            raise UsageError("--seccomp-learn refuses nothing, so there is nothing to --explain")
        from ..runtime.seccomp_learn import Learn
        return Learn(options.seccomp_learn)
    if options.explain in (None, "auto") and not options.explain_json and not sys.stderr.isatty():
        return None
    from ..runtime.seccomp_explain import Explain, explain_mode
    from ..runtime.seccomp_notify import user_notif_available
    explicit = bool(options.explain_json) or options.explain not in (None, "auto")
    wanted = bool(options.explain_json) or explain_mode(options.explain, sys.stderr.isatty())
    if not explicit and not user_notif_available():
        return None   # auto: only where the kernel can
    if not wanted or cfg.seccomp is None:
        if wanted and explicit:
            from ..errors import UsageError
            raise UsageError("--explain: seccomp is unconfined, so it refuses nothing",
                             hint="drop --security-opt seccomp=unconfined or --explain")
        return None
    return Explain(options.explain_json)


def _policy(spec, options):
    """The policy gate (--policy, else the repository's .hardrun.yaml) before anything is
    created; it lives in modules imported only when asked for."""
    policy = _named_or_repository_policy(options)
    if policy is None:
        return spec
    from ..policy.evaluate import enforce_at_run
    return enforce_at_run(spec, policy, sys.stderr)


def _named_or_repository_policy(options):
    """--policy, else the repository's .hardrun.yaml (found from --config's directory, else
    the current one; it may only tighten), else None: without a policy file `hardrun run`
    gates nothing, as before."""
    if options.policy:
        from ..policy import load_policy
        return load_policy(options.policy)
    from ..policy.discover import DEFAULT, find_policy
    found = find_policy(options.config or ".")
    if found == DEFAULT:
        return None
    from ..policy.load import load_found_policy
    return load_found_policy(found)
