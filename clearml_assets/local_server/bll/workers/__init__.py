"""Worker logic (clearml-server ``bll/workers``)."""

from .workers_bll import NONRESPONSIVE_ENV, WATCH_INTERVAL_ENV, alive, live_workers, stop_non_responsive

__all__ = ["NONRESPONSIVE_ENV", "WATCH_INTERVAL_ENV", "alive", "live_workers", "stop_non_responsive"]
