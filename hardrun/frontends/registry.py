"""The front-end registry: the one list of the kinds of file hardrun reads.

Each entry names a kind, the model its parser returns (BUILD: one Dockerfile; RUN: a
list of RunSpecs), how a file is recognised and how it is parsed. Functions are named
as "module:function" and imported on first use, so that loading this list costs no
parser: `hardrun run` start-up and `hardrun audit` cold start are benchmarked.

Detection: every detector of every front end is asked in `step` order (names first,
which are cheap and sure, then contents, the most specific first); the first that
says yes decides the kind. A detector is `(name, peek) -> truthy` (detect.Peek). A
front end's `claims(text, path) -> bool` is asked of a file found by walking a tree
once it is read (scripts and READMEs count only when they hold a docker run line);
without one, every detected file counts. `sniff(text) -> bool` is asked last, and only
of a file named on the command line that no detector recognised.

To add a front end: write its module, add one FrontEnd here. Rules say
`applies_to: run` for every RUN kind, `{run-except: [kinds]}` for every one but those,
or name the kinds they judge.
"""
from __future__ import annotations

BUILD = "build"
RUN = "run"
IMAGE = "image"       # a container image, named (not a file): hardrun/frontends/image.py
# The transports that name a local image as a positional audit argument (`oci:DIR`):
# hardrun/images/reference.py's TRANSPORTS but `docker`, written here so that telling
# them from file names imports nothing.
IMAGE_TRANSPORTS = ("oci", "oci-archive", "docker-archive")


class FrontEnd:
    """One kind of file. A plain class: it is built at every start-up of `hardrun audit`,
    and a dataclass or NamedTuple costs several times as much to define."""
    __slots__ = ("kind", "model", "parse", "detect", "claims", "sniff")

    def __init__(self, kind: str, model: str, parse: str, detect: tuple[tuple[int, str], ...],
                 claims: str | None = None, sniff: str | None = None):
        self.kind = kind
        self.model = model            # BUILD, RUN or IMAGE
        self.parse = parse            # "module:function"(text, path) -> model(s)
        self.detect = detect          # (step, "module:function"(name, peek)) pairs
        self.claims = claims          # "module:function"(text, path) -> bool
        self.sniff = sniff            # "module:function"(text) -> bool


_DETECT = "hardrun.frontends.detect:"

# In the order users see them (`hardrun audit --kind`, the JSON contract).
FRONT_ENDS = (
    FrontEnd("dockerfile", BUILD, "hardrun.frontends.dockerfile:parse_dockerfile",
             detect=((0, _DETECT + "detect_dockerfile_name"),),
             sniff=_DETECT + "sniff_dockerfile"),
    FrontEnd("compose", RUN, "hardrun.frontends.compose:parse_compose",
             detect=((1, _DETECT + "detect_compose_name"), (4, _DETECT + "detect_compose_content"))),
    # A hardrun run config says apiVersion and kind too: it is recognised before Kubernetes.
    FrontEnd("kubernetes", RUN, "hardrun.frontends.kubernetes:parse_kubernetes",
             detect=((3, _DETECT + "detect_kubernetes"),)),
    # Scripts, Makefiles, CI YAML and Markdown: asked last, and claimed only when a
    # docker run line is really there.
    FrontEnd("docker-run", RUN, "hardrun.frontends.docker_run:parse",
             detect=((6, _DETECT + "detect_docker_run"),),
             claims="hardrun.frontends.docker_run:claims"),
    FrontEnd("oci", RUN, "hardrun.frontends.oci:parse_oci",
             detect=((5, _DETECT + "detect_oci"),)),
    FrontEnd("hardrun", RUN, "hardrun.frontends.hardrun_config:parse_run_config",
             detect=((2, _DETECT + "detect_hardrun"),)),
    # Images are named (`--image REF`, `oci:DIR`…), never found by walking a tree: no detector.
    FrontEnd("image", IMAGE, "hardrun.frontends.image:parse_image", detect=()),
)

KINDS = tuple(front_end.kind for front_end in FRONT_ENDS)
# the kinds a file can be (`--kind`): every one but images, which are named, not read
FILE_KINDS = tuple(front_end.kind for front_end in FRONT_ENDS if front_end.model != IMAGE)
RUN_KINDS = tuple(front_end.kind for front_end in FRONT_ENDS if front_end.model == RUN)
_BY_KIND = {front_end.kind: front_end for front_end in FRONT_ENDS}


def front_end(kind: str) -> FrontEnd:
    """The front end of `kind`; UsageError for a kind no front end reads."""
    found = _BY_KIND.get(kind)
    if found is None:
        from ..errors import UsageError
        raise UsageError(f"no front end for kind {kind!r}")
    return found


_resolved: dict = {}


def resolve(reference: str):
    """The function a "module:function" reference names (its module imported on first use)."""
    function = _resolved.get(reference)
    if function is None:
        module_name, _, name = reference.partition(":")
        # __import__, not importlib.import_module: the import then shows in -X importtime
        module = __import__(module_name, fromlist=[name])
        function = _resolved[reference] = getattr(module, name)
    return function


_detectors: list | None = None     # (kind, function) in step order, resolved on first use


def detectors() -> list:
    global _detectors
    if _detectors is None:
        steps = sorted((step, front_end.kind, reference) for front_end in FRONT_ENDS
                       for step, reference in front_end.detect)
        _detectors = [(kind, resolve(reference)) for _, kind, reference in steps]
    return _detectors
