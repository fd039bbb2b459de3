"""Parsing helpers shared by the front ends, the policy loader and the runtime: safe
marked YAML, shell splitting and words, Dockerfile and compose variable expansion, and
the value syntaxes of run options (sizes, ports, -v, --tmpfs, --security-opt).

Beneath the front ends: a module here imports only spec, errors and the standard library
(and PyYAML), never a front end."""
