"""The rule registry: documentation from rules/*.yaml, checks from hardrun.audit.checks.

A rule file is the single source of a rule's id, practice, severity, title,
message, why, fix, references and bad/good examples; `hardrun explain` prints it
and the test suite turns its examples into tests. A check is a function registered
with `@check("HR1001")` that yields `Hit`s for one model (a Dockerfile or a RunSpec).
A rule file's `applies_to` names the kinds it judges; `run` stands for every run-config
kind of the front-end registry (hardrun/frontends/registry.py), `{run-except: [oci]}` for
every one but those.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache

from ..errors import RuleError
from ..spec.record import dataclass, fields  # not dataclasses: see record.py
# the directory as a string (no pathlib at start-up); tests point it at a copy of the rules
from ..resources import data_path as data_dir
from ..frontends import registry
from ..frontends.registry import BUILD, IMAGE, RUN
from .findings import SEVERITIES

_REQUIRED = ("id", "practice", "severity", "title", "message", "applies_to", "why", "fix",
             "references", "examples")


@dataclass(frozen=True)
class Example:
    kind: str
    text: str
    policy: str | None = None     # YAML of the policy the example is judged under


@dataclass(frozen=True)
class Rule:
    id: str
    practice: str
    severity: str
    title: str
    message: str
    applies_to: tuple[str, ...]     # kinds, `run` and `run-except` expanded
    why: str
    fix: str
    references: tuple[str, ...]
    bad: tuple[Example, ...]
    good: tuple[Example, ...]
    # None: on by default. Otherwise a policy-scoped rule, on only under a policy that
    # names it in `rules:` ("policy") or sets the policy key given here (e.g.
    # "allowed-capabilities"); its examples then carry the policy they are judged by.
    enabled_by: str | None = None

    def __getattr__(self, name: str) -> object:
        """A rule read from the cache's summary loads its details (why, fix, references,
        examples) when one of them is first asked for: a one-file audit never does."""
        source = self.__dict__.get("_source")
        if source is None or name not in DETAILS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self.__dict__.update(_details(source)[self.id])   # the record's own dict, as its __init__ fills it
        return self.__dict__[name]

    @property
    def model(self) -> str:
        """`build` for Dockerfile rules, `image` for image rules, `run` for rules over RunSpecs."""
        models = {registry.front_end(kind).model for kind in self.applies_to}
        return models.pop() if len(models) == 1 and models <= {BUILD, IMAGE} else RUN


CheckFn = Callable[..., "object"]


def _examples(path, data, which: str) -> tuple[Example, ...]:
    items = data["examples"].get(which) or []
    out = []
    for item in items:
        if not isinstance(item, dict) or not {"kind", "text"} <= set(item) <= {"kind", "text", "policy"} \
                or item["kind"] not in registry.KINDS:
            raise RuleError(f"{which} example must be {{kind, text[, policy]}} with a known kind",
                            path=str(path))
        out.append(Example(item["kind"], item["text"], item.get("policy")))
    return tuple(out)


def _parse_yaml(text: str):
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


def _rule(path, data) -> Rule:
    """The Rule of the parsed rule file at `path`; RuleError naming the file if invalid."""
    if not isinstance(data, dict):
        data = {}
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise RuleError(f"missing keys {', '.join(missing)}", path=str(path))
    if data["severity"] not in SEVERITIES:
        raise RuleError(f"severity must be one of {', '.join(SEVERITIES)}", path=str(path))
    if os.path.splitext(os.path.basename(path))[0] != data["id"]:
        raise RuleError(f"file name must be the rule id {data['id']}", path=str(path))
    return Rule(
        id=data["id"], practice=data["practice"], severity=data["severity"],
        title=data["title"], message=data["message"], applies_to=_applies_to(path, data["applies_to"]),
        why=data["why"].strip(), fix=data["fix"].strip(),
        references=tuple(data["references"]),
        bad=_examples(path, data, "bad"), good=_examples(path, data, "good"),
        enabled_by=data.get("enabled_by"),
    )


RUN_EXCEPT = "run-except"     # `applies_to: {run-except: [oci]}`: every run kind but those


def _applies_to(path, written) -> tuple[str, ...]:
    """The kinds a rule file's `applies_to` names: a kind or a list of kinds, where `run`
    stands for every RUN kind of the front-end registry and `{run-except: [kinds]}` for
    every RUN kind but those. RuleError for a list that spells out most run kinds by hand:
    a new run front end would silently get none of that rule."""
    names = [written] if isinstance(written, (str, dict)) else written
    if not isinstance(names, list):
        raise RuleError(f"applies_to must be a kind, a list of kinds or {{{RUN_EXCEPT}: [kinds]}}",
                        path=str(path))
    unknown = [name for name in names
               if not isinstance(name, dict) and name not in registry.KINDS + (RUN,)]
    if unknown:
        raise RuleError(f"unknown kinds in applies_to: {sorted(unknown, key=str)}", path=str(path))
    kinds: list[str] = []
    for name in names:
        for kind in _expand(path, name):
            if kind not in kinds:
                kinds.append(kind)
    by_hand = [name for name in names if name in registry.RUN_KINDS]
    if 2 * len(by_hand) > len(registry.RUN_KINDS):
        raise RuleError(f"applies_to lists {len(by_hand)} of the {len(registry.RUN_KINDS)} run kinds by "
                        f"hand: write `run`, or `{{{RUN_EXCEPT}: [kinds]}}` naming those it does not "
                        "judge", path=str(path))
    return tuple(kinds)


def _expand(path, name) -> tuple[str, ...]:
    """The kinds one entry of `applies_to` stands for."""
    if isinstance(name, dict):
        excluded = name.get(RUN_EXCEPT) or []
        excluded = [excluded] if isinstance(excluded, str) else excluded
        if set(name) != {RUN_EXCEPT} or not isinstance(excluded, list) or not excluded \
                or not all(kind in registry.RUN_KINDS for kind in excluded) \
                or not set(excluded) < set(registry.RUN_KINDS):
            raise RuleError(f"applies_to: {{{RUN_EXCEPT}: [kinds]}} must name some, not all, "
                            f"of the run kinds {', '.join(registry.RUN_KINDS)}", path=str(path))
        return tuple(kind for kind in registry.RUN_KINDS if kind not in excluded)
    return registry.RUN_KINDS if name == RUN else (name,)


# The fields only `hardrun explain`, `hardrun rules`, SARIF and the tests read
DETAILS = ("why", "fix", "references", "bad", "good")
SUMMARY = tuple(item.name for item in fields(Rule) if item.name not in DETAILS)


@lru_cache(maxsize=None)
def all_rules() -> dict[str, Rule]:
    """Every rule by id, in id order.

    Parsing the rule files with PyYAML, and checking them, costs more than the rest of a
    one-file audit: the checked rules are cached on disk (hardrun/cache.py), keyed by the
    identity of every rule file and of this module (path, inode, size, times: reading and
    hashing all of them cost about 2 ms of each audit). Two entries: the summary of each
    rule (what an audit reads) and its details (DETAILS), read only when a rule's
    details are first asked for. Only rules that passed the checks are stored; an entry
    that does not give back rows of the right shape is ignored and written anew."""
    from .. import cache
    paths = _rule_paths()
    key = _key(paths)
    _SOURCES[key] = paths
    rules = _from_summary(cache.load(SUMMARY_KIND, key), len(paths), key)
    if rules is None:
        rules = _parse_files(paths)
        cache.store(DETAILS_KIND, key, {rule.id: [_detail_value(getattr(rule, name)) for name in DETAILS]
                                        for rule in rules.values()})
        cache.store(SUMMARY_KIND, key, [[_detail_value(getattr(rule, name)) for name in SUMMARY]
                                        for rule in rules.values()])
    _KEYS[id(rules)] = key
    return rules


SUMMARY_KIND, DETAILS_KIND = "rules", "rule-details"
_KEYS: dict[int, str] = {}    # id of an all_rules() answer -> the cache key of the files it was read from
_SOURCES: dict[str, list[str]] = {}    # cache key -> the rule files it was made from
_LOADED_DETAILS: dict[str, dict] = {}  # cache key -> rule id -> its details


def rules_key() -> str:
    """The cache key of the rule files all_rules() was read from (for caches of what
    depends on the rules, such as a policy's validation)."""
    return _KEYS[id(all_rules())]


def _key(paths: list[str]) -> str:
    """The cache key of the rules read from `paths`: the files' and this module's
    identity, and what a rule's checks and its expanded `applies_to` depend on beside
    them (the front ends' kinds, the severities)."""
    from .. import cache
    judges = repr((registry.KINDS, registry.RUN_KINDS, SEVERITIES)).encode()
    return cache.fingerprint([cache.identities([__file__, *paths]), judges])


def _rule_paths() -> list[str]:
    folder = os.fspath(data_dir("rules"))
    names = sorted(name for name in os.listdir(folder) if name.startswith("HR") and name.endswith(".yaml"))
    return [os.path.join(folder, name) for name in names]


def _parse_files(paths: list[str]) -> dict[str, Rule]:
    rules = {}
    for path in paths:
        # as Path.read_text reads them: universal newlines
        data = _parse_yaml(_read_bytes(path).decode("utf-8").replace("\r\n", "\n").replace("\r", "\n"))
        rule = _rule(path, data)
        rules[rule.id] = rule
    return rules


def _detail_value(value):
    """A field as JSON stores it: tuples as lists, examples as [kind, text, policy]."""
    if isinstance(value, tuple):
        return [[item.kind, item.text, item.policy] if isinstance(item, Example) else item for item in value]
    return value


def _from_summary(rows, count: int, key: str) -> dict[str, Rule] | None:
    """The rules of a summary entry, their details left to be loaded; None unless it is
    `count` rows of the shape all_rules writes."""
    if not isinstance(rows, list) or len(rows) != count:
        return None
    rules = {}
    for row in rows:
        if not isinstance(row, list) or len(row) != len(SUMMARY):
            return None
        values = dict(zip(SUMMARY, row))
        if not all(isinstance(values[name], str) for name in ("id", "practice", "severity", "title", "message")) \
                or not isinstance(values["applies_to"], list) \
                or not all(isinstance(kind, str) for kind in values["applies_to"]) \
                or not (values["enabled_by"] is None or isinstance(values["enabled_by"], str)):
            return None
        values["applies_to"] = tuple(values["applies_to"])
        rule = object.__new__(Rule)
        # the record's own dict, as its __init__ fills it, less the details (see Rule.__getattr__)
        rule.__dict__.update(values, _source=key)
        rules[rule.id] = rule
    return rules


def _details(key: str) -> dict:
    """rule id -> its details, of the rule files cached under `key`: from the cache, else
    from the files themselves (RuleError if they changed since the summary was read)."""
    found = _LOADED_DETAILS.get(key)
    if found is None:
        from .. import cache
        found = _details_from_entry(cache.load(DETAILS_KIND, key))
        if found is None:
            paths = _SOURCES[key]
            if _key(paths) != key:
                raise RuleError("the rule files changed while hardrun was running: run it again",
                                path=os.path.dirname(paths[0]) if paths else None)
            found = {rule.id: {name: getattr(rule, name) for name in DETAILS}
                     for rule in _parse_files(paths).values()}
        _LOADED_DETAILS[key] = found
    return found


def _details_from_entry(entry) -> dict | None:
    if not isinstance(entry, dict):
        return None
    found = {}
    try:
        for rule_id, (why, fix, references, bad, good) in entry.items():
            if not (isinstance(why, str) and isinstance(fix, str) and isinstance(references, list)
                    and all(isinstance(reference, str) for reference in references)):
                return None
            found[rule_id] = {"why": why, "fix": fix, "references": tuple(references),
                              "bad": _examples_of(bad), "good": _examples_of(good)}
    except (TypeError, ValueError):       # a row of another length, an example of another shape
        return None
    return found


def _examples_of(rows) -> tuple[Example, ...]:
    examples = tuple(Example(kind, text, policy) for kind, text, policy in rows)
    if not all(isinstance(example.kind, str) and isinstance(example.text, str)
               and (example.policy is None or isinstance(example.policy, str)) for example in examples):
        raise ValueError("not an example")
    return examples


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()


def checks(model: str | None = None, kind: str | None = None) -> dict[str, CheckFn]:
    """The registered checks by rule id: every one, or at least those judging `model`
    (`build`, `run`, `image`) or `kind` (importing the check modules registers them;
    which modules a kind needs is in the index, hardrun/audit/checks/index.py)."""
    from .checks import REGISTERED, load
    load(model, kind)
    return REGISTERED


# (model, kind) -> (the rules dict, how many checks were registered, its (rule, check) pairs)
_SELECTED: dict[tuple, tuple] = {}


def rules_for(model: str, kind: str | None = None) -> tuple[tuple[Rule, CheckFn], ...]:
    """(rule, check) pairs whose rule judges `model` (`build`, `run` or `image`), only
    those judging `kind` when it is given (importing only the check modules it needs).

    Asked once per audited file: the pairs are worked out once, and again only when
    the rules were reloaded or checks registered (they never change otherwise)."""
    registered = checks(model, kind)
    rules = all_rules()
    selected = _SELECTED.get((model, kind))
    if selected is None or selected[0] is not rules or selected[1] != len(registered):
        pairs = tuple((rule, registered[rule.id]) for rule in rules.values()
                      if rule.model == model and rule.id in registered
                      and (kind is None or kind in rule.applies_to))
        selected = _SELECTED[model, kind] = (rules, len(registered), pairs)
    return selected[2]


def index_source() -> str:
    """The text of hardrun/audit/checks/index.py as the rule files and every check module
    give it (tests/audit/test_rule_index.py compares; `python -m hardrun.audit.rules`
    writes it)."""
    registered, rules = checks(), all_rules()
    lines = ['"""Which check modules and rules judge each kind: generated from the rule files and',
             'the check modules by `python -m hardrun.audit.rules` (tests/audit/test_rule_index.py',
             'fails when it is stale). `checks.load` imports a kind\'s modules from here, so that',
             'auditing a Dockerfile never imports the run or image checks."""',
             "", "# kind -> (the check modules that judge it, the ids of its rules with a check)",
             "KINDS = {"]
    for kind in registry.KINDS:
        ids = [rule.id for rule in rules.values() if kind in rule.applies_to and rule.id in registered]
        modules = sorted({registered[rule_id].__module__.rsplit(".", 1)[1] for rule_id in ids})
        lines.append(f"    {kind!r}: ({tuple(modules)!r}, (")
        lines.extend("        " + " ".join(f"{rule_id!r}," for rule_id in ids[start:start + 8])
                     for start in range(0, len(ids), 8))
        lines.append("    )),")
    lines += ["}", "", "# model -> its kinds", "MODELS = {"]
    for model in (BUILD, RUN, IMAGE):
        lines.append(f"    {model!r}: {tuple(k for k in registry.KINDS if registry.front_end(k).model == model)!r},")
    lines += ["}", ""]
    return "\n".join(lines)


def describe(rule_id: str) -> Rule:
    """The rule a finding's id names: a rule file's, or for a ShellCheck code (`SC2086`,
    reported by HR1020) HR1020's documentation under that code and its wiki page."""
    rules = all_rules()
    if rule_id in rules:
        return rules[rule_id]
    from dataclasses import replace
    from .shellcheck import GROUP_RULE, WIKI
    group = rules[GROUP_RULE]
    return replace(group, id=rule_id, title=f"ShellCheck {rule_id} in a RUN instruction",
                   references=(WIKI + rule_id,) + group.references)


def practices() -> set[str]:
    """The practice vocabulary (what a policy may name): every practice a rule file names."""
    return {rule.practice for rule in all_rules().values()}


if __name__ == "__main__":
    with open(os.path.join(os.path.dirname(__file__), "checks", "index.py"), "w", encoding="utf-8") as out:
        out.write(index_source())
