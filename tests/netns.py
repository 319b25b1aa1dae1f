"""Simulated hosts for the distributed tests: each its own network, mount and UTS namespace, made by the test.

A :class:`NetnsLab` claims one /28 slice of the documentation range 198.51.100.0/24 (a lock file per slice, so
two labs on one machine never share addresses), puts a bridge holding the slice's first address in the root
namespace (the shared services listen there), and adds :class:`Host` s: a network namespace (``ip netns add``)
with its own loopback and one veth pair to the bridge, nothing else routed. Every process of a host starts
through ``ip netns exec`` + ``unshare --mount --uts``: its own hostname, its own ``/home`` (HOME) and ``/tmp``
(bind mounts of the host's folders), so nothing one host writes there is seen by another and another host's
127.0.0.1 is not reachable. A host's processes live in a cgroup of their own (cgroup v2), so the test can freeze
them all at once (:meth:`Host.freeze`) and kill the whole process tree (:meth:`Host.kill`), as a host that
loses power.

Needs root, ``ip``, ``unshare`` and a cgroup v2 hierarchy; :func:`lab_unavailable` says what is missing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

PREFIX = "198.51.100."
SLICES = 16  # /28 slices of 198.51.100.0/24
_CLAIMS = Path("/run/clearml_assets_netns")


def cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup`` or ``/sys/fs/cgroup/unified``), or None."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        parts = line.split()
        if len(parts) > 2 and parts[2] == "cgroup2" and os.access(parts[1], os.W_OK):
            return Path(parts[1])
    return None


def lab_unavailable() -> str | None:
    """Why simulated hosts cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (the CI runs as root)"
    for tool in ("ip", "unshare", "mount", "hostname"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install -y iproute2 util-linux)"
    if cgroup2_root() is None:
        return "no writable cgroup v2 hierarchy to freeze and kill a host's processes"
    probe = f"cabprobe{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"cannot create a network namespace here ({exc.stderr.strip()[:200]})"
    _ip("netns", "del", probe, check=False)
    return None


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=check)


@dataclass
class Host:
    """One simulated machine: a network namespace, its folders (``home`` = its ``/home``, its HOME; ``tmp`` = its
    ``/tmp``) and the cgroup holding its processes."""

    name: str
    address: str
    netns: str
    folder: Path
    cgroup: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def tmp(self) -> Path:
        return self.folder / "tmp"

    def popen(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
        """Start ``argv`` on this host (HOME=/home, its own /tmp and hostname); output to ``log``."""
        script = ('hostname "$0" && mount --bind "$1" /home && mount --bind "$2" /tmp && shift 2 && '
                  'cd "$CAB_CWD" && exec "$@"')
        cmd = ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--uts", "--propagation", "private", "--",
               "sh", "-c", script, self.name, str(self.home), str(self.tmp), *argv]
        procs_file = str(self.cgroup / "cgroup.procs")

        def enter_cgroup() -> None:  # before exec: every descendant is in the host's cgroup
            with open(procs_file, "w") as fh:
                fh.write(str(os.getpid()))

        out: IO = open(log, "ab")
        proc = subprocess.Popen(cmd, env={**env, "HOME": "/home", "CAB_CWD": str(cwd or "/")}, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=enter_cgroup)
        out.close()
        self.procs.append(proc)
        return proc

    def run(self, argv: list[str], env: dict[str, str], cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``argv`` on this host to the end (output captured)."""
        log = self.folder / f"run-{secrets.token_hex(4)}.log"
        proc = self.popen(argv, env, log, cwd)
        proc.wait(timeout)
        return subprocess.CompletedProcess(argv, proc.returncode, log.read_text(errors="replace"), "")

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def freeze(self, limit_s: float = 60) -> None:
        """Stop every process of the host at once (cgroup freezer); returns once all are frozen."""
        (self.cgroup / "cgroup.freeze").write_text("1")
        _wait(lambda: "frozen 1" in (self.cgroup / "cgroup.events").read_text(), f"{self.name} frozen", limit_s)

    def thaw(self) -> None:
        (self.cgroup / "cgroup.freeze").write_text("0")

    def kill(self, limit_s: float = 60) -> None:
        """SIGKILL the host's whole process tree at once (``cgroup.kill``); returns once none is left."""
        (self.cgroup / "cgroup.kill").write_text("1")
        _wait(lambda: not self.pids(), f"every process of {self.name} gone", limit_s)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


class NetnsLab:
    """A bridge in the root namespace on one claimed /28 of 198.51.100.0/24, and the hosts on it.

    Args:
        folder: Where the hosts' folders and logs go.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.token = secrets.token_hex(2)
        self.hosts: dict[str, Host] = {}
        self._claim: IO | None = None
        self.slice = self._claim_slice()
        self.bridge = f"cab{self.slice:x}{self.token}"
        self.cgroup = cgroup2_root() / f"clearml_assets_lab_{self.slice}_{self.token}"

    @property
    def gateway(self) -> str:
        """The bridge's address in the root namespace: where the shared services listen."""
        return f"{PREFIX}{self.slice * 16 + 1}"

    @property
    def cidr(self) -> str:
        return f"{PREFIX}{self.slice * 16}/28"

    def _claim_slice(self) -> int:
        _CLAIMS.mkdir(parents=True, exist_ok=True)
        used = _ip("-o", "-4", "addr", "show").stdout
        for index in range(1, SLICES):  # slice 0 holds the network's own .0 address; skip it
            handle = open(_CLAIMS / f"slice{index}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            if f" {PREFIX}{index * 16 + 1}/" in used:  # left over by a lab that died: not ours to remove
                handle.close()
                continue
            self._claim = handle
            return index
        raise RuntimeError("every /28 slice of 198.51.100.0/24 is taken by another lab on this machine")

    def start(self) -> "NetnsLab":
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/28", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        self.cgroup.mkdir()
        return self

    def add_host(self, name: str) -> Host:
        """A new host on the bridge, with the next free address of the slice."""
        index = len(self.hosts)
        if index > 12:
            raise RuntimeError("a /28 slice holds 13 hosts at most")
        address = f"{PREFIX}{self.slice * 16 + 2 + index}"
        netns = f"cab{self.slice:x}{self.token}-{name}"
        outer, inner = f"cab{self.slice:x}{self.token}o{index}", f"cab{self.slice:x}{self.token}i{index}"
        _ip("netns", "add", netns)
        _ip("link", "set", "lo", "up", ns=netns)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", netns)
        _ip("link", "set", outer, "master", self.bridge)
        _ip("link", "set", outer, "up")
        _ip("addr", "add", f"{address}/28", "dev", inner, ns=netns)
        _ip("link", "set", inner, "up", ns=netns)
        folder = self.folder / name
        for sub in ("home", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "tmp").chmod(0o1777)
        cgroup = self.cgroup / name
        cgroup.mkdir()
        host = Host(name, address, netns, folder, cgroup)
        self.hosts[name] = host
        return host

    def close(self) -> None:
        """Kill every host's processes, remove the namespaces, the bridge and the cgroups; free the slice."""
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                if host.pids():
                    host.thaw()
                    host.kill()
            _ip("netns", "del", host.netns, check=False)
            with contextlib.suppress(OSError):
                host.cgroup.rmdir()
        _ip("link", "del", self.bridge, check=False)
        with contextlib.suppress(OSError):
            self.cgroup.rmdir()
        if self._claim is not None:
            self._claim.close()
            self._claim = None


@contextlib.contextmanager
def netns_lab(folder: Path) -> Iterator[NetnsLab]:
    lab = NetnsLab(folder)
    try:
        yield lab.start()
    finally:
        lab.close()


def _wait(predicate, what: str, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"never happened: {what}")
        time.sleep(0.02)
