"""What the build checks need to know about a Dockerfile model, by topic: stages
(instructions, HEALTHCHECK, EXPOSE), users, the build context, shell commands,
downloads, TLS verification, package caches. Pure functions over hardrun.spec.build.

Every regular expression is compiled once, at import.
"""
