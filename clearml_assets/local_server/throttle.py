"""Rate limiting on demand: the local server answers 429 with ``Retry-After`` when told to.

app.clear.ml and self-hosted servers behind a rate-limiting proxy answer bursts with HTTP 429 and a
``Retry-After`` header; the embedded server does not limit by default. This switch makes it do so, so that a
client's retry handling is exercised against the real status and header:

* environment (read when the API app is built, so it reaches a server started as a subprocess too)::

    CLEARML_ASSETS_SERVER_429="next=3"                  # the next 3 API calls answer 429
    CLEARML_ASSETS_SERVER_429="percent=20,seed=7"       # ~20% of calls, reproducible sequence
    CLEARML_ASSETS_SERVER_429="every=4,retry_after=2"   # every 4th call; Retry-After: 2
    CLEARML_ASSETS_SERVER_429="next=2,only=tasks.get_all;events.*"   # only those endpoints

* in process: ``server.store.throttle.arm(next=3, retry_after=1)`` on a started
  :class:`~clearml_assets.local_server.LocalServer`; ``disarm()`` turns it off.

A throttled call runs nothing (no handler, no authentication) and answers the ClearML envelope with
``result_code`` 429 and the ``Retry-After`` header (seconds). ``debug.ping`` is never throttled, so readiness
checks keep working.
"""

from __future__ import annotations

import fnmatch
import os
import random
import threading
from dataclasses import dataclass, field

ENV_VAR = "CLEARML_ASSETS_SERVER_429"
EXEMPT = ("debug.ping",)


@dataclass
class Throttle:
    """Which calls answer 429 (at most one of ``next``/``every``/``percent`` is used, in that order)."""

    next: int = 0
    every: int = 0
    percent: float = 0.0
    retry_after: int = 1
    only: tuple[str, ...] = ()
    seed: int | None = None
    throttled: int = 0
    """How many calls were answered 429 so far."""
    _seen: int = field(default=0, repr=False)
    _random: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._random.seed(self.seed)

    @classmethod
    def from_spec(cls, spec: str | None) -> "Throttle":
        """Parse ``key=value`` pairs separated by commas (see the module docstring); empty: off."""
        throttle = cls()
        if spec:
            throttle.arm(**_parse(spec))
        return throttle

    @classmethod
    def from_env(cls) -> "Throttle":
        return cls.from_spec(os.environ.get(ENV_VAR))

    def arm(self, *, next: int = 0, every: int = 0, percent: float = 0.0, retry_after: int = 1,
            only: tuple[str, ...] | list[str] | str = (), seed: int | None = None) -> "Throttle":
        """Turn throttling on (replacing any earlier setting)."""
        if isinstance(only, str):
            only = tuple(p for p in only.split(";") if p)
        if min(next, every, percent, retry_after) < 0 or percent > 100:
            raise ValueError(f"{ENV_VAR}: counts must be >= 0 and percent within 0..100")
        with self._lock:
            self.next, self.every, self.percent, self.retry_after = next, every, percent, retry_after
            self.only, self._seen = tuple(only), 0
            self._random.seed(seed)
        return self

    def disarm(self) -> None:
        """Turn throttling off."""
        self.arm()

    @property
    def active(self) -> bool:
        return bool(self.next or self.every or self.percent)

    def check(self, endpoint: str) -> int | None:
        """The ``Retry-After`` seconds if this call is to answer 429, else None."""
        if not self.active or endpoint in EXEMPT:
            return None
        if self.only and not any(fnmatch.fnmatchcase(endpoint, p) for p in self.only):
            return None
        with self._lock:
            self._seen += 1
            if self.next:
                hit = True
                self.next -= 1
            elif self.every:
                hit = self._seen % self.every == 0
            else:
                hit = self._random.random() * 100 < self.percent
            if hit:
                self.throttled += 1
        return self.retry_after if hit else None


def _parse(spec: str) -> dict:
    out: dict = {}
    for item in spec.split(","):
        key, sep, value = item.strip().partition("=")
        if not item.strip():
            continue
        if not sep or key not in ("next", "every", "percent", "retry_after", "only", "seed"):
            raise ValueError(f"{ENV_VAR}: cannot read {item!r}; use next=K, every=N, percent=P, retry_after=S, "
                             f"only=svc.action;svc.*, seed=N")
        try:
            out[key] = value if key == "only" else (float(value) if key == "percent" else int(value))
        except ValueError:
            raise ValueError(f"{ENV_VAR}: {key} needs a number, not {value!r}") from None
    return out
