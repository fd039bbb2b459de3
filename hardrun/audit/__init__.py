"""The static auditor: front ends -> models -> rules -> findings -> reports."""
