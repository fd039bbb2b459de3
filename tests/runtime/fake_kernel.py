"""Recording fakes of the system-call seam (hardrun.runtime.syscalls), the way youki tests its
init: the container's set-up runs against them without root, each call is recorded, nothing
reaches the kernel, and the fake execve sends the record back to the test.

`Recorder` records any call by name. `FakeKernel` also stands for the file descriptors the
mount steps open: each fd is a number of its table naming the path it was opened on (seen
from the caller's root), so a record says where a mount went: ("mount", source, target path,
fstype, flags, data), ("move_mount", the tree's source path, target path, the attributes the
detached tree was given before it was attached), ("mount_setattr", path, attributes, …).
"""
from __future__ import annotations

import json
import os
import posixpath
import stat

from hardrun.runtime import child, mounts, process, syscalls

FAKE_FD = 1000
ALL_CAPS = (1 << 41) - 1


class Recorder:
    """Any call made through it is appended to `calls` as [name, *args]; upper-case names
    (constants) and MountError come from the real module; `results` answers some calls."""

    def __init__(self, calls: list, real, prefix: str = "", **results):
        self._calls, self._real, self._prefix, self._results = calls, real, prefix, results

    def __getattr__(self, name):
        if name.isupper() or name == "MountError":
            return getattr(self._real, name)

        def call(*args, **_):
            self._calls.append([self._prefix + name, *[_plain(a) for a in args if _plain(a) != ...]])
            answer = self._results.get(name)
            return answer(*args) if callable(answer) else answer
        return call


def _plain(value):
    """An argument as the record keeps it (JSON), or ... for an object left out."""
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, (int, str)) or value is None else ...


class FakeKernel(Recorder):
    """The seam with a table of fds: opening a path gives a new number standing for it.
    `directories`: the paths lstat calls directories (the rest are files); `missing`: the
    paths that do not exist (FileNotFoundError), for the steps that create mount points."""

    def __init__(self, calls: list, report_fd: int, directories=(), missing=(), **results):
        super().__init__(calls, syscalls, **results)
        self.paths: dict[int, str] = {}
        self.trees: dict[int, int] = {}      # a detached tree's fd -> the attributes set on it
        self.cwd, self.next_fd = "/", FAKE_FD
        self.directories, self.missing = set(directories), set(missing)
        self._releases = iter([b"1", b"2"])  # the parent's two releases, then nothing yet
        self._report_fd = report_fd
        self._held: tuple = (ALL_CAPS, ALL_CAPS, 0)    # effective, permitted, inheritable

    def _record(self, *call):
        self._calls.append(list(call))

    def _new(self, path: str) -> int:
        self.next_fd += 1
        self.paths[self.next_fd] = posixpath.normpath(path)
        return self.next_fd

    def path_of(self, value) -> str:
        """A path, or /proc/self/fd/N, as the path it stands for."""
        if isinstance(value, str) and value.startswith("/proc/self/fd/"):
            return self.paths[int(value.rsplit("/", 1)[1])]
        if isinstance(value, str) and not value.startswith("/"):
            return posixpath.normpath(posixpath.join(self.cwd, value))
        return value

    def _open(self, base: str, path: str) -> int:
        where = posixpath.normpath(posixpath.join(base, path.lstrip("/")) if base else self.path_of(path))
        if where in self.missing:
            raise FileNotFoundError(2, "No such file or directory", where)
        return self._new(where)

    # -- files
    def open_fd(self, path, flags, mode=0o777, *, dir_fd=None):
        base = self.paths[dir_fd] if dir_fd is not None else ""
        if flags & os.O_CREAT:
            self._record("create", posixpath.join(base, path))
            self.missing.discard(posixpath.join(base, path))
        fd = self._open(base, path)
        self._record("open", self.paths[fd])
        return fd

    def openat2(self, dirfd, path, flags, resolve, mode=0):
        fd = self._open(self.paths[dirfd], path)
        self._record("open", self.paths[fd])
        return fd

    def dup(self, fd):
        return self._new(self.paths[fd])

    def close(self, fd):
        self.paths.pop(fd, None)

    def mkdir(self, path, mode=0o777, *, dir_fd=None):
        where = posixpath.join(self.paths[dir_fd], path) if dir_fd is not None else self.path_of(path)
        self.missing.discard(where)
        self._record("mkdir", where, mode)

    def symlink(self, target, path, *, dir_fd=None):
        self._record("symlink", posixpath.join(self.paths[dir_fd], path), target)

    def readlink(self, path):
        return self.path_of(path)

    def lstat(self, path):
        where = self.path_of(path)
        if where in self.missing:
            raise FileNotFoundError(2, "No such file or directory", where)
        kind = stat.S_IFDIR if where in self.directories else stat.S_IFREG
        return os.stat_result((kind | 0o755,) + (0,) * 9)

    def exists(self, path):
        return self.path_of(path) not in self.missing

    def realpath(self, path):
        return self.path_of(path)

    def listdir(self, path):
        return []

    # -- mounts
    def mount(self, source, target, fstype=None, flags=0, data=None):
        self._record("mount", self.path_of(source) if fstype is None else source, self.path_of(target),
                     fstype, flags, data)

    def open_tree(self, fd, recursive=True):
        tree = self._new(self.paths[fd])
        self.trees[tree] = 0
        self._record("open_tree", self.paths[fd], recursive)
        return tree

    def mount_setattr(self, fd, attr_set, attr_clr=0, recursive=True, path="", userns_fd=0):
        if fd in self.trees:
            self.trees[fd] |= attr_set
        self._record("mount_setattr", self.paths[fd], attr_set, recursive, userns_fd)

    def move_mount(self, tree, target):
        self._record("move_mount", self.paths[tree], self.paths[target], self.trees.pop(tree, 0))

    def umount2(self, target, flags=0):
        self._record("umount2", self.path_of(target), flags)

    def pivot_root(self, new_root, put_old):
        """From here on the fds' paths are the container's (the new root is /)."""
        root = self.path_of(new_root)
        self._record("pivot_root", root)
        for fd, path in self.paths.items():
            if path == root or path.startswith(root + "/"):
                self.paths[fd] = "/" + path[len(root):].lstrip("/")
        self.cwd = "/"

    def fchdir(self, fd):
        self.cwd = self.paths[fd]
        self._record("fchdir", self.cwd)

    def chdir(self, path):
        self.cwd = self.path_of(path)
        self._record("chdir", self.cwd)

    def getcwd(self):
        return "/"

    # -- the parent's releases, capabilities, execve
    def read(self, fd, size):
        self._record("read", fd)
        try:
            return next(self._releases)
        except StopIteration:
            raise BlockingIOError from None

    def capset(self, *sets):
        self._held = sets
        self._record("capset", *sets)

    def capget(self, pid=0):
        return self._held

    def setns(self, fd, nstype=0):
        self._record("setns", self.paths[fd], nstype)

    def execve(self, path, *_):
        self._record("execve", os.fsdecode(path))
        os.write(self._report_fd, json.dumps(self._calls, default=repr).encode())
        os._exit(0)


class Step:
    """A launch-state object (filter, cgroup join, stdio) whose method records its name."""

    def __init__(self, calls: list, name: str):
        self._calls, self._name, self.console = calls, name, None

    def __getattr__(self, method):
        return lambda *args: self._calls.append([f"{self._name}.{method}"])


def record_setup(plan, launch, kernel=None, fs=None, cgroup_view=None, **kernel_options) -> tuple[list, int]:
    """Run child.main in a forked process against the fakes: the calls it made, in order,
    and the number of the report fd it was given. `kernel(calls, report_fd)` makes the
    system calls' fake (a FakeKernel by default); `fs(calls)` the mount steps' (the real
    hardrun.runtime.mounts, making its calls through the fake kernel, by default);
    `cgroup_view` the launch's (mount function, layout), else a step that records its name."""
    records_read, records_write = os.pipe()
    error_read, error_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(records_read)
            os.close(error_read)
            calls: list = []
            launch.cgroup_join, launch.stdio = Step(calls, "cgroup"), Step(calls, "stdio")
            launch.memfd_filter, launch.seccomp_filter = Step(calls, "memfd"), Step(calls, "seccomp")
            launch.cgroup_view = cgroup_view or (lambda *args: calls.append(["mount cgroup view"]), None)
            k = (kernel or FakeKernel)(calls, records_write, **kernel_options)
            child.main(plan, launch, process.ExecPlan(plan.args, plan.env), 99, error_write,
                       k=k, fs=fs(calls) if fs else mounts)
        finally:
            os._exit(99)
    os.close(records_write)
    os.close(error_write)
    records, error = _read_all(records_read), _read_all(error_read)
    os.waitpid(pid, 0)
    assert records, process.StepFailure.decode(error).line()
    return [tuple(call) for call in json.loads(records)], error_write


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def first(calls, name: str, *args) -> int:
    """The index of the first call `name` whose arguments begin with `args` (none: a failure)."""
    found = next((i for i, call in enumerate(calls) if call[0] == name and call[1:1 + len(args)] == args), None)
    assert found is not None, f"no call {name}{args}"
    return found


def every(calls, name: str) -> list[int]:
    return [i for i, call in enumerate(calls) if call[0].startswith(name)]
