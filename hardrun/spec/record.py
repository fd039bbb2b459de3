"""Records for the models, without importing `dataclasses`.

`dataclasses` pulls in `inspect` and `re` (about 15 ms), and the models are on the
start-up paths of `hardrun run`, which is measured against crun, and of `hardrun audit`.
This module gives the subset the models use, with the same spelling and behaviour:
`@dataclass` and `@dataclass(frozen=True)` classes with defaults and
`field(default_factory=…, compare=…)`, a generated `__init__` (positional or keyword; a
record that writes its own assigns with `object.__setattr__`), `__repr__`,
`__eq__`/`__hash__` over the compared fields, immutability, and `replace()` / `fields()`;
dataclasses' own functions (`dataclasses.replace`, `fields`, `asdict`, `is_dataclass`)
work on records too, importing dataclasses only when they are called. It is hardrun's
one record type: the run models, the build model, the audit's findings and rules, the
policy model, the flag parser's records and the seccomp records.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any, dataclass_transform
else:
    def dataclass_transform(**_):   # tells a type checker what @dataclass generates
        return lambda function: function

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a frozen record."""


class Field:
    __slots__ = ("name", "default", "default_factory", "compare")

    def __init__(self, default=_MISSING, default_factory=_MISSING, compare=True):
        self.name = ""
        self.default, self.default_factory, self.compare = default, default_factory, compare

    def __repr__(self) -> str:
        return f"Field(name={self.name!r})"


# Any, as dataclasses.field is typed: `lines: dict[str, int] = field(...)` declares the field's type
def field(*, default=_MISSING, default_factory=_MISSING, compare=True) -> Any:
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, compare)


@dataclass_transform(field_specifiers=(field,))
def dataclass(cls=None, *, frozen=False):
    """`@dataclass` / `@dataclass(frozen=True)`: as dataclasses, a mutable record has no
    `__hash__` and takes assignments; a frozen one refuses them."""
    def wrap(klass):
        return _build(klass, frozen)
    return wrap if cls is None else wrap(cls)


def fields(record) -> tuple[Field, ...]:
    return record.__record_fields__


def replace(record, **changes):
    cls = type(record)
    names = cls.__record_names__
    unknown = changes.keys() - names
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    if cls.__record_own_init__:
        values = {name: getattr(record, name) for name in names}
        values.update(changes)
        return cls(**values)
    # A generic __init__ would only copy the same checked values again: fill the new
    # record's dict directly (only the fields: a cached_property's value is not copied).
    state = record.__dict__
    copy = object.__new__(cls)
    copy.__dict__.update({name: state[name] for name in names}, **changes)
    return copy


def _build(cls, frozen: bool):
    # Runs for every model when hardrun/spec/run.py is imported: one pass over the
    # annotations, and methods shared by all records instead of new functions per class.
    by_name = {item.name: item for base in reversed(cls.__mro__[1:])
               for item in getattr(base, "__record_fields__", ())}
    namespace = cls.__dict__
    for name in namespace.get("__annotations__", ()):
        value = namespace.get(name, _MISSING)
        if isinstance(value, Field):
            item = value
            if item.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, item.default)
        else:
            item = Field(value)
        if isinstance(item.default, (list, dict, set)):
            raise ValueError(f"mutable default for field {name}: use field(default_factory=...)")
        item.name = name
        by_name[name] = item
    all_fields = tuple(by_name.values())
    cls.__record_fields__ = all_fields
    cls.__record_compared__ = tuple(item.name for item in all_fields if item.compare)
    cls.__dataclass_fields__ = _DATACLASS_FIELDS
    cls.__record_names__ = {item.name: None for item in all_fields}.keys()   # ordered, a set
    cls.__record_own_init__ = "__init__" in namespace   # a record may write its own, for speed
    if not cls.__record_own_init__:
        cls.__init__ = _make_init(cls, all_fields)
    cls.__repr__ = _repr
    cls.__eq__ = _eq
    if not frozen:
        cls.__hash__ = None   # as dataclasses: equal by value and mutable, so unhashable
        return cls
    cls.__hash__ = _hash
    cls.__setattr__ = _frozen_setattr
    cls.__delattr__ = _frozen_delattr
    return cls


class _DataclassFields:
    """A record's `__dataclass_fields__`, made when first asked for (dataclasses' functions
    read it): what `@dataclasses.dataclass` would have made for the same fields."""

    def __get__(self, instance, owner):
        made = owner.__dict__.get("__record_dataclass_fields__")
        if made is None:
            made = _as_dataclass_fields(owner)
            owner.__record_dataclass_fields__ = made
        return made


_DATACLASS_FIELDS = _DataclassFields()   # one for all records: it keeps its result on the class


def _as_dataclass_fields(cls) -> dict:
    import dataclasses
    annotations: dict = {}
    for klass in reversed(cls.__mro__):
        annotations.update(klass.__dict__.get("__annotations__", {}))
    made = {}
    for item in cls.__record_fields__:
        made_field: Any = dataclasses.field(
            default=dataclasses.MISSING if item.default is _MISSING else item.default,
            default_factory=dataclasses.MISSING if item.default_factory is _MISSING else item.default_factory,
            compare=item.compare)
        made_field.name, made_field.type = item.name, annotations.get(item.name)
        made_field._field_type = dataclasses._FIELD   # type: ignore[attr-defined]  # a plain field
        made[item.name] = made_field
    return made


def _repr(self) -> str:
    return f"{type(self).__qualname__}(" + ", ".join(
        f"{item.name}={getattr(self, item.name)!r}" for item in self.__record_fields__) + ")"


def _eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    return all(getattr(self, name) == getattr(other, name) for name in self.__record_compared__)


def _hash(self) -> int:
    return hash(tuple(getattr(self, name) for name in self.__record_compared__))


def _make_init(cls, all_fields):
    """One generic `__init__` (positional or keyword, defaults, factories): generating
    and compiling one per class cost about a millisecond at import, on the start-up
    path of `hardrun run`. It works on whole dicts (C loops, not one Python statement per
    field): the audit creates a record per instruction, command and finding."""
    names: list[str] = []
    defaults, factories = {}, {}
    seen_default = False
    for item in all_fields:
        names.append(item.name)
        if item.default is not _MISSING:
            defaults[item.name] = item.default
        elif item.default_factory is not _MISSING:
            factories[item.name] = item.default_factory
        elif seen_default:
            raise TypeError(f"non-default field {item.name} follows a field with a default")
        if item.default is not _MISSING or item.default_factory is not _MISSING:
            seen_default = True
    count, known = len(names), frozenset(names)
    qualname = f"{cls.__qualname__}.__init__"
    factory_items = tuple(factories.items())

    def __init__(self, *args, **kwargs):
        if len(args) > count:
            raise TypeError(f"{qualname}() takes {count + 1} positional arguments "
                            f"but {len(args) + 1} were given")
        # a keyword must be a field not given positionally (the slice only when both are given)
        if kwargs and not (kwargs.keys() <= known and (not args or kwargs.keys().isdisjoint(names[:len(args)]))):
            _bad_keywords(qualname, names[:len(args)], known, kwargs)
        values = dict(defaults)
        values.update(zip(names, args))
        values.update(kwargs)
        if len(values) < count:
            for name, factory in factory_items:
                if name not in values:
                    values[name] = factory()
            if len(values) < count:
                missing = next(name for name in names if name not in values)
                raise TypeError(f"{qualname}() missing required argument: {missing!r}")
        # the instance's own dict, filled at once: the frozen __setattr__ is not involved
        self.__dict__.update(values)

    __init__.__qualname__ = qualname
    return __init__


def _bad_keywords(qualname: str, positional: list[str], known: frozenset, kwargs: dict):
    for name in kwargs:
        if name not in known:
            raise TypeError(f"{qualname}() got an unexpected keyword argument {name!r}")
        if name in positional:
            raise TypeError(f"{qualname}() got multiple values for argument {name!r}")


def _frozen_setattr(self, name, value):
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name):
    raise FrozenInstanceError(f"cannot delete field {name!r}")
