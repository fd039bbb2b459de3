"""The safe YAML loader: lines of keys and items, merge keys, limits, clear errors."""
import pytest

from hardrun.errors import ParseError
from hardrun.parsing import yamlsafe
from hardrun.parsing.yamlsafe import MarkedList, MarkedMap, load, load_all


def test_lines_of_keys_and_items():
    doc = load("a: 1\nb:\n  - x\n  -   y\n  - c: 2\n    d: 3\n")
    assert doc.line_of("a") == 1 and doc.line_of("b") == 2
    items = doc["b"]
    assert isinstance(items, MarkedList) and items.item_lines == [3, 4, 5]
    assert items.line_at(2) == 5 and items.line_at(9) is None
    assert isinstance(items[2], MarkedMap) and items[2].line_of("d") == 6
    assert items[2].line == 5 and items[2].column == 5
    assert doc.line_of("missing") is None and doc.line_of("missing", 7) == 7


def test_values_are_plain_python():
    doc = load("s: text\ni: 42\nf: 1.5\nt: true\nn: null\nhex: 0x1f\nq: '42'\n")
    assert doc == {"s": "text", "i": 42, "f": 1.5, "t": True, "n": None, "hex": 31, "q": "42"}
    assert yamlsafe.to_plain(doc) == dict(doc) and type(yamlsafe.to_plain(doc)) is dict


def test_keys_stay_as_written_and_port_pairs_stay_strings():
    doc = load("on: push\n80: web\nports:\n  - 80:80\n  - 22:22\n  - 1:30:00\n")
    assert set(doc) == {"on", "80", "ports"}       # not True / 80
    assert doc["ports"] == ["80:80", "22:22", "1:30:00"]   # not sexagesimal 4880, 1342…


def test_tags_never_construct_objects():
    doc = load("a: !!python/object/apply:os.system ['echo hi']\nb: !Ref Name\n"
               "c: !!python/name:os.system ''\n")
    assert doc["a"] == ["echo hi"] and doc["b"] == "Name" and doc["c"] == ""


def test_merge_keys_single_and_list_with_lines_of_the_anchor():
    text = (
        "x-a: &a\n"            # 1
        "  image: one\n"       # 2
        "  user: '1'\n"        # 3
        "x-b: &b\n"            # 4
        "  image: two\n"       # 5
        "  read_only: true\n"  # 6
        "svc:\n"               # 7
        "  <<: [*a, *b]\n"     # 8
        "  user: '2'\n"        # 9
        "one:\n"               # 10
        "  <<: *b\n"           # 11
    )
    doc = load(text)
    assert doc["svc"] == {"image": "one", "user": "2", "read_only": True}
    assert doc["svc"].line_of("user") == 9          # written here, wins over the merge
    assert doc["svc"].line_of("image") == 2         # earlier merge source wins, its line
    assert doc["svc"].line_of("read_only") == 6
    assert doc["one"] == {"image": "two", "read_only": True}


def test_merge_of_a_scalar_is_an_error():
    with pytest.raises(ParseError, match="merge key") as caught:
        load("a: &a 1\nb:\n  <<: *a\n")
    assert caught.value.line == 3


def _billion_laughs(levels=9, width=9):
    lines = ["a: &a [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels + 1):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * width) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(60)   # full expansion would need ~10^9 nodes: it must stop at the cap
def test_billion_laughs_fails_fast_with_a_clear_error():
    with pytest.raises(ParseError, match="billion laughs") as caught:
        load(_billion_laughs())
    assert caught.value.line is not None
    assert str(yamlsafe.MAX_ALIAS_EXPANSION) in caught.value.message


def test_billion_laughs_through_merge_keys_fails_too():
    lines = ["a: &a {k0: lol, k1: lol, k2: lol, k3: lol}"]
    for level in range(1, 12):
        name, prev = f"l{level}", "a" if level == 1 else f"l{level - 1}"
        lines.append(f"{name}: &{name} " + "{" + ", ".join(f"m{i}: *{prev}" for i in range(8)) + "}")
    with pytest.raises(ParseError, match="aliases expand"):
        load("\n".join(lines) + "\n")


def test_a_few_aliases_are_fine():
    doc = load("base: &base {a: 1}\nx: *base\ny: *base\n")
    assert doc["x"] == doc["y"] == {"a": 1}


def test_recursive_alias_is_an_error():
    with pytest.raises(ParseError, match="recursive"):
        load("a: &x [1, *x]\n")


def test_duplicate_key_names_both_lines():
    with pytest.raises(ParseError) as caught:
        load("services:\n  web:\n    image: a\n    image: b\n")
    error = caught.value
    assert error.line == 4 and "duplicate key 'image'" in error.message
    assert "first on line 3" in error.message


@pytest.mark.parametrize("text,line,column,words", [
    ("a: [1, 2\nb: 3\n", 2, 2, "invalid YAML"),
    ("a: 'open\n", 2, 1, "invalid YAML"),
    ("services:\n\tweb: {}\n", 2, 1, "tab character"),
    ("a: b: c\n", 1, 5, "mapping values are not allowed"),
    ("- a\nb: c\n", 2, 1, "invalid YAML"),
])
def test_syntax_errors_have_line_and_column(text, line, column, words):
    with pytest.raises(ParseError) as caught:
        load(text, "compose.yaml")
    error = caught.value
    assert (error.line, error.column) == (line, column)
    assert words in error.message and error.path == "compose.yaml"
    assert "\n" not in str(error)


def test_control_character_is_a_parse_error_with_line():
    with pytest.raises(ParseError, match="unacceptable character") as caught:
        load("a: 1\nb: \x07\n")
    assert caught.value.line == 2


def test_deep_nesting_is_a_parse_error():
    with pytest.raises(ParseError):
        load("[" * 5000 + "]" * 5000)


def test_complex_key_is_a_parse_error():
    with pytest.raises(ParseError, match="mapping key"):
        load("? [a, b]\n: c\n")


def test_many_documents_and_empty_ones():
    assert load_all("a: 1\n---\n---\nb: 2\n") == [{"a": 1}, None, {"b": 2}]
    assert load_all("") == [] and load("") is None
    with pytest.raises(ParseError, match="one YAML document"):
        load("a: 1\n---\nb: 2\n")


def test_from_yaml_error_works_without_the_c_loader(monkeypatch):
    monkeypatch.setattr(yamlsafe, "LOADER", yamlsafe.yaml.SafeLoader)
    assert load("a:\n  - b\n")["a"].line_at(0) == 2
    with pytest.raises(ParseError) as caught:
        load("a: [\n")
    assert caught.value.line == 2
    with pytest.raises(ParseError, match="billion laughs"):
        load(_billion_laughs())


def test_too_many_values_is_a_parse_error(monkeypatch):
    monkeypatch.setattr(yamlsafe, "MAX_NODES", 1000)
    assert len(load("[" + "1, " * 998 + "1]")) == 999
    with pytest.raises(ParseError, match="more than 1000 values") as caught:
        load("items:\n" + "  - 1\n" * 2000)
    assert caught.value.line == 999   # mapping, key, list, then 998 items


def test_undefined_alias_is_a_parse_error():
    with pytest.raises(ParseError, match=r"undefined YAML alias \*nope") as caught:
        load("a: 1\nb: *nope\n")
    assert (caught.value.line, caught.value.column) == (2, 4)


def test_aliases_share_values_and_anchored_keys_work():
    doc = load("k: &name image\nbase: &b {x: 1}\n*name : v\nc: *b\n")
    assert doc["image"] == "v" and doc["c"] is doc["base"]


# Property tests: the event-built values agree with PyYAML's own safe loader, and
# every recorded line is where the key or item really is.
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=8)
PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 12, 10 ** 12)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=15),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(PLAIN, st.booleans())
def test_values_agree_with_pyyaml(value, flow):
    text = yamlsafe.yaml.safe_dump(value, default_flow_style=flow, allow_unicode=True)
    assert yamlsafe.to_plain(load(text)) == yamlsafe.yaml.safe_load(text)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, PLAIN, min_size=1, max_size=5))
def test_recorded_lines_point_at_the_key(value):
    text = yamlsafe.yaml.safe_dump(value, default_flow_style=False, allow_unicode=True)
    lines = text.splitlines()
    document = load(text)

    def check(node, indent):
        if isinstance(node, MarkedMap):
            for key, item in node.items():
                line = lines[node.line_of(key) - 1]
                assert line.startswith(" " * indent)
                assert line[indent:].lstrip("'\"").startswith(key)   # maybe quoted
                check(item, indent + 2)   # safe_dump indents nested mappings by two
        elif isinstance(node, MarkedList):
            for index, item in enumerate(node):
                assert lines[node.line_at(index) - 1].lstrip().startswith("-")
                if isinstance(item, MarkedMap):
                    for key in item:
                        assert key in lines[item.line_of(key) - 1]

    check(document, 0)
