"""A real Redis server (Debian's ``redis-server``) for the Celery broker: a password, no persistence, a free port.

Readiness is polled (an authenticated PING), bounded; the process is stopped with its folder.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def redis_binary() -> str:
    """``redis-server``'s path; RuntimeError naming the package when it is not installed."""
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if not found:
        raise RuntimeError("Redis is not installed: `apt-get install -y redis-server` (.ci/run does it)")
    return found


@dataclass
class RedisServer:
    """A running ``redis-server`` and how to reach it."""

    host: str
    port: int
    password: str
    folder: Path
    proc: subprocess.Popen

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/{db}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_redis(host: str = "127.0.0.1", timeout: float = 60.0) -> RedisServer:
    """Start ``redis-server`` on ``host`` (a free port) and wait until it answers an authenticated PING."""
    import redis

    binary = redis_binary()
    folder = Path(tempfile.mkdtemp(prefix="clearml-assets-redis-"))
    with socket.socket() as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    password = secrets.token_hex(16)
    config = folder / "redis.conf"  # the password in a file, not on a command line
    config.write_text(f"bind {host}\nport {port}\nrequirepass {password}\nsave \"\"\nappendonly no\n"
                      f"dir {folder}\nprotected-mode yes\ndaemonize no\nlogfile {folder / 'redis.log'}\n")
    config.chmod(0o600)
    proc = subprocess.Popen([binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    server = RedisServer(host, port, password, folder, proc)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            log = (folder / "redis.log").read_text(errors="replace")[-2000:] if (folder / "redis.log").exists() else ""
            raise RuntimeError(f"redis-server exited with {proc.returncode}: {log}")
        try:
            if redis.Redis(host=host, port=port, password=password, socket_timeout=2).ping():
                return server
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"redis-server on {host}:{port} did not answer within {timeout:.0f}s")
        time.sleep(0.05)
