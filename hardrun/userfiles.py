"""Reading and writing the files a user names: the one place that opens them.

Reads are bounded and regular-file only: an audited tree (or a file named on the
command line) may hold a FIFO that would block for ever, or a link to `/dev/zero` that
never ends, and `st_size` says nothing about either. The file is first opened with
O_PATH, which neither blocks nor acts on a device, checked with fstat, and only then
opened for reading, through that same descriptor.

Writes (`-o FILE`) go to a fresh temporary file beside the target that is then renamed
over it: a symlink, FIFO or device already under the target's name is refused, and a
hard link (or a symlink swapped in after that check) loses the name instead of being
written through. The directories of an output path below the current directory (relative,
or absolute) are walked without following symlinks.
"""
from __future__ import annotations

import errno
import os
import stat

from .errors import HardrunError, ParseError, UsageError

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from contextvars import ContextVar, Token

MAX_FILE_BYTES = 8 * 1024 * 1024   # no Dockerfile, manifest, policy or profile comes near this
_MiB = 1024 * 1024
_O_PATH = getattr(os, "O_PATH", 0)
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# The real path of the tree being audited, while its file is parsed: a file that one
# names (compose `extends.file`) is read only from inside it.
# "var": the audit's ContextVar of its root, made on the first `audited_root` (importing
# contextvars costs `hardrun-oci create`, which never enters one, about 0.3 ms)
_AUDITED_ROOT: dict = {}
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def read_bytes(path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The content of the regular file at `path`, at most `limit` bytes; a one-line
    HardrunError (without the path: callers name the file) for anything else or larger."""
    try:
        with os.fdopen(_open_regular(path), "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > limit:
                raise HardrunError(_too_large(size, limit))
            data = stream.read(limit + 1)     # the file may have grown since the fstat
    except OSError as error:
        raise HardrunError(f"cannot read: {error.strerror or error}") from None
    if len(data) > limit:
        raise HardrunError(_too_large(len(data), limit))
    return data


def read_head(path: str, size: int) -> bytes:
    """The first `size` bytes of the regular file at `path`; b"" for anything else."""
    try:
        with os.fdopen(_open_regular(path), "rb") as stream:
            return stream.read(size)
    except (OSError, HardrunError):
        return b""


def read_text(path: str, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file at `path` (see read_bytes and decode)."""
    return decode(read_bytes(path, limit))


def read_stream(stream, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a binary stream (standard input), at most `limit` bytes."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise HardrunError(_too_large(len(data), limit))
    return decode(data)


def decode(data: bytes) -> str:
    """UTF-8 text of `data` (a BOM is dropped); binary or invalid input is a ParseError."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise ParseError("binary file (NUL byte), not a text file",
                         line=data.count(b"\n", 0, nul) + 1)
    try:
        text = data.decode("utf-8")    # not "utf-8-sig": its codec is one more import
        return text[1:] if text.startswith("\ufeff") else text
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ParseError(f"invalid UTF-8 (byte 0x{data[error.start]:02x})", line=line) from None


def read_json_object(path: str, label: str | None = None, expected: str = "a JSON object",
                     error: type[HardrunError] = ParseError, limit: int = MAX_FILE_BYTES) -> dict:
    """The JSON object in the file at `path` (`-`: standard input). Anything else is one
    line naming `label` (default: the path) and, for bad JSON, the line and column."""
    return read_json_document(path, label, expected, error, limit)[0]


def read_json_document(path: str, label: str | None = None, expected: str = "a JSON object",
                       error: type[HardrunError] = ParseError, limit: int = MAX_FILE_BYTES) -> tuple[dict, str]:
    """(the JSON object, the text it was decoded from): `read_json_object` for a reader
    that finds the line of a field it refuses (hardrun.spec.json_lines)."""
    import sys
    where = label or path
    try:
        text = read_stream(sys.stdin.buffer, limit) if path == "-" else read_text(path, limit)
    except HardrunError as problem:
        raise type(problem)(problem.message, path=where, line=problem.line) from None
    return json_object(text, where, expected, error), text


def json_object(text: str, where: str, expected: str = "a JSON object",
                error: type[HardrunError] = ParseError) -> dict:
    """`text` decoded as JSON, which must be an object: else `error` naming `where`."""
    from .jsonlite import loads     # json's own decoder without importing json (hardrun-oci's start)
    try:
        value = loads(text)
    except ValueError as problem:    # json.JSONDecodeError
        raise error(f"not JSON: {getattr(problem, 'msg', problem)}", path=where,
                    line=getattr(problem, "lineno", None), column=getattr(problem, "colno", None)) from None
    except RecursionError:
        raise error("not JSON: nested too deeply", path=where) from None
    if not isinstance(value, dict):
        raise error(f"expected {expected}", path=where)
    return value


def within(path: str, real_root: str) -> bool:
    """True when `path`, symlinks resolved, is `real_root` (a real path) or below it."""
    return os.path.commonpath((real_root, os.path.realpath(path))) == real_root


class audited_root:
    """While active (`with audited_root(...)`), `outside_audited_root` judges paths against
    `real_root`. A class, not contextlib's decorator: its import costs `hardrun-oci create`
    (which reads config.json through this module) about 4 ms."""

    var: ContextVar[str | None]
    token: Token[str | None]    # set on entering

    def __init__(self, real_root: str | None):
        self.real_root = real_root

    def __enter__(self) -> None:
        from contextvars import ContextVar
        # setdefault is atomic: threads entering at once share one variable
        self.var = _AUDITED_ROOT.setdefault("var", ContextVar("audited_root", default=None))
        self.token = self.var.set(self.real_root)

    def __exit__(self, *exc_info) -> None:
        self.var.reset(self.token)


def outside_audited_root(path: str) -> bool:
    """True when an audit is confined to a root and `path` leads out of it."""
    var = _AUDITED_ROOT.get("var")
    root = None if var is None else var.get()
    return root is not None and not within(path, root)


def write_text(path: str, text: str, keep_mode: bool = False) -> None:
    """Write `text` to `path` as a new file renamed over the old name (UsageError if not);
    `keep_mode`: with the permission bits of the file it replaces."""
    directory, base = os.path.split(path)
    try:
        where = _open_directory(directory)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {_why(error, directory)}") from None
    try:
        _write_in(where, base, path, text, keep_mode)
    finally:
        os.close(where)


def _write_in(where: int, base: str, path: str, text: str, keep_mode: bool = False) -> None:
    existing = _lstat(base, where)
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(existing.st_mode) else _kind(existing.st_mode)
        raise UsageError(f"{path} is {kind}: refusing to write through it (remove it, or "
                         f"name another file)")
    temporary = f".{base}.{os.urandom(6).hex()}.tmp"
    try:
        # O_EXCL|O_NOFOLLOW: a name planted meanwhile is an error, never followed.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o666, dir_fd=where)
        if keep_mode and existing is not None:
            os.fchmod(fd, stat.S_IMODE(existing.st_mode))
        # newline="": the text's own line endings are written as they are
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        # rename replaces whatever the name is now (a symlink swapped in after the
        # lstat included) instead of writing through it
        os.replace(temporary, base, src_dir_fd=where, dst_dir_fd=where)
    except OSError as error:
        _remove(temporary, where)
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from None


def write_private(directory: str, name: str, content: bytes) -> bool:
    """Write `content` to `directory`/`name` atomically: a new 0600 temporary file (never
    through a link) renamed over the name, so readers see a whole file or none. The one
    writer of hardrun's own caches and plans; False (nothing left behind) when it cannot."""
    try:
        replace_private(directory, name, content)
        return True
    except OSError:
        return False


def replace_private(directory: str, name: str, content: bytes) -> None:
    """write_private for a record that must be written (a lease's holders): its OSError is
    raised, after the temporary file is removed."""
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with open(fd, "wb", closefd=True) as handle:
            handle.write(content)
        os.replace(temporary, os.path.join(directory, name))
    except OSError:
        _remove(temporary)
        raise


def _open_directory(directory: str) -> int:
    """A descriptor of the directory an output file goes to. A path below the current
    directory, relative or absolute (CI passes `$PWD/reports/x`), is walked one component
    at a time without following symlinks: it lies in the tree being audited, where a
    planted `reports -> /etc` must not redirect `-o reports/x`. An absolute path elsewhere
    is the caller's own choice and is opened as given."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    below = _below_current_directory(directory)
    if below is None:
        return os.open(directory, flags)
    where = os.open(".", flags)
    for part in (part for part in below.split("/") if part and part != "."):
        try:
            inner = os.open(part, flags | os.O_NOFOLLOW, dir_fd=where)
        finally:
            os.close(where)
        where = inner
    return where


def _below_current_directory(directory: str) -> str | None:
    """`directory` relative to the current directory when it lies below it, compared as
    written (normalised, symlinks not resolved); None for an absolute path elsewhere."""
    if not os.path.isabs(directory):
        return directory
    for current in _current_directory_names():
        relative = os.path.relpath(os.path.normpath(directory), current)
        if relative != os.pardir and not relative.startswith(os.pardir + os.sep):
            return relative
    return None


def _current_directory_names() -> list[str]:
    """The current directory resolved, and as the shell names it ($PWD) if that differs."""
    names = [os.getcwd()]
    shell_name = os.environ.get("PWD")
    if shell_name and os.path.isabs(shell_name) and shell_name != names[0]:
        try:
            if os.path.samefile(shell_name, os.curdir):
                names.append(os.path.normpath(shell_name))
        except OSError:
            pass
    return names


def _why(error: OSError, directory: str) -> str:
    if error.errno == errno.ELOOP or (error.errno == errno.ENOTDIR and _is_link_on_the_way(directory)):
        return f"{directory} leads through a symbolic link (name the real directory)"
    return error.strerror or str(error)


def _is_link_on_the_way(directory: str) -> bool:
    parts = [part for part in directory.split("/") if part and part != "."]
    start = os.sep if os.path.isabs(directory) else ""
    return any(os.path.islink(os.path.join(start, *parts[:end])) for end in range(1, len(parts) + 1))


def _open_regular(path: str) -> int:
    """A read-only descriptor of the regular file at `path` (symlinks followed)."""
    if _O_PATH:
        where = os.open(path, _O_PATH | os.O_CLOEXEC)
        try:
            _check_regular(os.fstat(where).st_mode)
            try:
                # through the O_PATH descriptor: the inode just checked, whatever the name is now
                return os.open(f"/proc/self/fd/{where}", _READ_FLAGS)
            except FileNotFoundError:
                pass   # no /proc: open by name, which O_NONBLOCK keeps from blocking
        finally:
            os.close(where)
    fd = os.open(path, _READ_FLAGS)
    try:
        _check_regular(os.fstat(fd).st_mode)
    except HardrunError:
        os.close(fd)
        raise
    return fd


def _check_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise HardrunError(f"not a regular file ({_kind(mode)})")


def _kind(mode: int) -> str:
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _too_large(size: int, limit: int) -> str:
    shown = f"{size // _MiB} MiB" if size >= _MiB else f"{size} bytes"
    limit_shown = f"{limit // _MiB} MiB" if limit >= _MiB else f"{limit} bytes"
    return f"file too large ({shown}; the limit is {limit_shown})"


def _lstat(name: str, where: int):
    try:
        return os.lstat(name, dir_fd=where)
    except OSError:
        return None


def _remove(name: str, where: int | None = None) -> None:
    try:
        os.remove(name, dir_fd=where)
    except OSError:
        pass

