"""Processes of a bench run: start, find the port, pin to cores, read /proc, kill.

Every process is started in its own session so that `stop` can end it and
any children it made, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path
    port: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 2000) -> str:
        text = ""
        for p in (self.out, self.err):
            if p.exists():
                text += p.read_text(errors="replace")[-n:]
        return text


def start(name: str, argv: list[str], *, workdir: Path, env: dict[str, str] | None = None) -> Proc:
    out, err = workdir / f"{name}.out", workdir / f"{name}.err"
    popen = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=out.open("wb"),
        stderr=err.open("wb"),
        env=env,
        start_new_session=True,
        cwd=workdir,
    )
    return Proc(name, popen, out, err)


def wait_port_line(proc: Proc, timeout: float) -> int:
    """Wait for `PORT <n>` on the process's stdout (bench helpers print it)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.out.exists():
            for line in proc.out.read_text(errors="replace").splitlines():
                if line.startswith("PORT "):
                    proc.port = int(line.split()[1])
                    return proc.port
        if not proc.alive():
            break
        time.sleep(0.02)
    raise RuntimeError(f"{proc.name} gave no port in {timeout}s:\n{proc.tail()}")


def wait_log_listen(proc: Proc, timeout: float) -> int | None:
    """The port from coderouterd's `server.started` JSON line, if it logs one."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.err.exists():
            for line in proc.err.read_text(errors="replace").splitlines():
                if '"server.started"' in line:
                    listen = json.loads(line)["listen"]
                    proc.port = int(listen.rsplit(":", 1)[1])
                    return proc.port
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        time.sleep(0.02)
    return None


def wait_http(url: str, timeout: float, proc: Proc | None = None) -> None:
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
                if r.status < 500:
                    return
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {timeout}s ({last})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: Proc, grace: float = 3.0) -> None:
    if proc.alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # children left behind, if any
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.popen.wait(2)


def descendants(pid: int) -> list[int]:
    """pid and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of pid and of its descendants."""
    for p in descendants(pid):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cpus)


def pin_self(cpus: set[int]) -> None:
    pin(os.getpid(), cpus)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def group_rss_kb(pid: int) -> int:
    total = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            total += rss_kb(p)
    return total


@dataclass(frozen=True)
class CpuSample:
    cpu_s: float  # user + system time
    minflt: int
    majflt: int


def cpu_sample(pid: int) -> CpuSample:
    """Summed over pid and its descendants."""
    cpu, minflt, majflt = 0.0, 0, 0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is state (field 3 of stat); minflt is field 10, utime 14, stime 15.
        minflt += int(fields[7])
        majflt += int(fields[9])
        cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return CpuSample(cpu, minflt, majflt)


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of pid, by thread id (the main thread's is pid)."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def thread_switches(pid: int) -> dict[int, tuple[int, int]]:
    """(voluntary, involuntary) context switches of each thread of pid, by thread id."""
    out: dict[int, tuple[int, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            lines = (task / "status").read_text().splitlines()
        except OSError:
            continue
        counts = dict(line.split(":\t", 1) for line in lines if "ctxt_switches" in line)
        out[int(task.name)] = (
            int(counts.get("voluntary_ctxt_switches", 0)),
            int(counts.get("nonvoluntary_ctxt_switches", 0)),
        )
    return out


def export_source(repo: Path, rev: str, dest: Path) -> str:
    """Copy the `coderouterd` package as of `rev` into dest (read-only on the repo).

    Returns the commit id. A daemon started with PYTHONPATH=dest imports this
    copy instead of the editable install, so a run measures one fixed commit
    even while the working tree changes. A symlink in the package to a path
    elsewhere in the repository (`coderouterd/migrations -> ../migrations`)
    gets that path exported too, as of the same commit.
    """
    sha = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dest.mkdir(parents=True, exist_ok=True)
    todo, done = ["coderouterd"], set()
    while todo:
        top = todo.pop()
        done.add(top)
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", sha, top],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        for link in (dest / top).rglob("*"):
            if not link.is_symlink() or link.exists():
                continue
            target = os.path.normpath(link.parent / os.readlink(link))
            rel = os.path.relpath(target, dest)
            if rel.startswith("..") or rel in done:
                raise RuntimeError(f"{rev}: cannot export {link.relative_to(dest)} -> {rel}")
            todo.append(rel)
    return sha


def cpu_times() -> dict[str, tuple[float, float]]:
    """Per cpu line of /proc/stat ("cpu", "cpu0", ...): (busy seconds, stolen seconds)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu"):
            break
        name, *vals = line.split()
        v = [int(x) for x in vals]
        # user nice system idle iowait irq softirq steal guest guest_nice
        busy = v[0] + v[1] + v[2] + v[5] + v[6]
        out[name] = (busy / CLK_TCK, v[7] / CLK_TCK)
    return out


def idlest_cores(cores: list[int], sample_s: float = 0.3) -> list[int]:
    """`cores` ordered from the least to the most busy over a short sample."""
    a = cpu_times()
    time.sleep(sample_s)
    b = cpu_times()
    busy = {c: b[f"cpu{c}"][0] - a[f"cpu{c}"][0] for c in cores if f"cpu{c}" in a}
    return sorted(cores, key=lambda c: busy.get(c, 0.0))


def busy_threads(pids: list[int]) -> int:
    """Threads of these processes that are running or waiting for a CPU (state R)."""
    n = 0
    for p in pids:
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{p}/task/{tid}/stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] == "R":
                    n += 1
    return n


def wait_quiet(
    pids: list[int], *, polls: int = 3, interval: float = 0.001, cap: float = 0.2
) -> float:
    """Wait until no thread of `pids` has been runnable for `polls` polls in a row.

    On a shared core a runnable thread of another process means it still has
    work to do (a gateway logging after it answered); measuring the next
    system meanwhile would charge that work to it. Returns the seconds waited.
    """
    t0 = time.monotonic()
    quiet = 0
    while quiet < polls and time.monotonic() - t0 < cap:
        quiet = quiet + 1 if busy_threads(pids) == 0 else 0
        time.sleep(interval)
    return time.monotonic() - t0
