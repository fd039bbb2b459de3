"""The models every front end produces and every rule reads."""

# RunSpec fields that say where a spec came from, not how the container runs (`image`:
# what the run config's rootfs was made from, judged by the audit only; `env_files`: the
# files --env-file read into `env`). Here, not in spec.run: the runtime reads it at start-up.
PROVENANCE_FIELDS = frozenset({"kind", "path", "line", "subject", "lines", "image", "env_files"})
