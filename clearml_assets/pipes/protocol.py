"""The Pipes protocol over ClearML, shared by both sides; the external side needs only ``dagster-pipes``
and ``clearml`` (this module imports neither ``dagster`` nor anything heavy at import time).

- Dagster -> task: the Pipes context and message-channel params are task hyperparameters in section
  ``DagsterPipes`` (``context`` / ``messages``, encoded as Pipes encodes its environment variables).
- Task -> Dagster: each Pipes message is one ClearML console log event
  ``__dagster_pipes__ <seq> <json>``; the orchestration side polls the task's log and hands messages to
  Dagster in ``seq`` order, once each, whatever order or overlap the log reads return.

In the external script::

    from clearml_assets.pipes import open_clearml_pipes

    with open_clearml_pipes() as pipes:   # attaches to the ClearML task the agent (or Dagster) started
        pipes.log.info("hello")
        pipes.report_asset_materialization(metadata={"rows": 3})
"""

from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from dagster_pipes import (
    DAGSTER_PIPES_CONTEXT_ENV_VAR,
    DAGSTER_PIPES_MESSAGES_ENV_VAR,
    PipesContext,
    PipesMappingParamsLoader,
    PipesMessage,
    PipesMessageWriter,
    PipesMessageWriterChannel,
    PipesParams,
    open_dagster_pipes,
)

SECTION = "DagsterPipes"
CONTEXT_PARAM = "context"
MESSAGES_PARAM = "messages"
MARKER = "__dagster_pipes__"
CHANNEL_KEY = "clearml_log"
MAX_MESSAGE_BYTES = 900_000


def format_message(seq: int, message: PipesMessage) -> str:
    """One log line carrying one message."""
    return f"{MARKER} {seq} {json.dumps(message, separators=(',', ':'))}"


def parse_messages(text: str) -> Iterator[tuple[int, dict]]:
    """``(seq, message)`` for each message line in a log event's text (other lines are ignored)."""
    for line in text.splitlines():
        start = line.find(MARKER + " ")
        if start < 0:
            continue
        seq, _, body = line[start + len(MARKER) + 1:].partition(" ")
        try:
            yield int(seq), json.loads(body)
        except ValueError:
            continue  # a line cut by the transport; the writer never emits one


class PipesClearMLMessageWriterChannel(PipesMessageWriterChannel):
    """Writes each message as one log event of the current ClearML task (not printed to the console)."""

    def __init__(self, task: Any):
        self._logger = task.get_logger()
        self._task = task
        self._seq = 0
        self._lock = threading.Lock()

    def write_message(self, message: PipesMessage) -> None:
        line = json.dumps(message, separators=(",", ":"))
        if len(line.encode()) > MAX_MESSAGE_BYTES:
            message = {"__dagster_pipes_version": message.get("__dagster_pipes_version"), "method": "log",
                       "params": {"message": f"Dropped a {message['method']} Pipes message over "
                                             f"{MAX_MESSAGE_BYTES} bytes.", "level": "ERROR"}}
        with self._lock:
            self._seq += 1
            # Under an agent the SDK leaves console lines to the agent; WARNING without console printing is the
            # SDK's one way to send a log event itself (force_send), as its own event, never split.
            self._logger.report_text(format_message(self._seq, message), level=logging.WARNING, print_console=False)
        if message.get("method") == "closed":
            self._task.flush(wait_for_uploads=True)


class PipesClearMLMessageWriter(PipesMessageWriter[PipesClearMLMessageWriterChannel]):
    """Message writer sending Pipes messages through the ClearML task's log."""

    def __init__(self, task: Any):
        self._task = task

    @contextmanager
    def open(self, params: PipesParams) -> Iterator[PipesClearMLMessageWriterChannel]:
        if not params.get(CHANNEL_KEY):
            raise ValueError(f"{type(self).__name__} needs the '{CHANNEL_KEY}' message params from Dagster.")
        channel = PipesClearMLMessageWriterChannel(self._task)
        try:
            yield channel
        finally:
            self._task.flush(wait_for_uploads=True)


class PipesClearMLParamsLoader(PipesMappingParamsLoader):
    """Reads the Pipes params from the ClearML task's ``DagsterPipes`` hyperparameters."""

    def __init__(self, task: Any):
        params = task.get_parameters() or {}
        super().__init__({
            DAGSTER_PIPES_CONTEXT_ENV_VAR: params.get(f"{SECTION}/{CONTEXT_PARAM}", ""),
            DAGSTER_PIPES_MESSAGES_ENV_VAR: params.get(f"{SECTION}/{MESSAGES_PARAM}", ""),
        })
        if not self._mapping[DAGSTER_PIPES_CONTEXT_ENV_VAR]:
            del self._mapping[DAGSTER_PIPES_CONTEXT_ENV_VAR]


def current_task() -> Any:
    """The ClearML task this process runs as (``CLEARML_TASK_ID``, set by the agent or by Dagster)."""
    from clearml import Task

    task = Task.current_task()
    if task is None:
        task = Task.init(auto_connect_frameworks=False, auto_connect_arg_parser=False,
                         auto_resource_monitoring=False)
    return task


@contextmanager
def open_clearml_pipes(task: Any = None) -> Iterator[PipesContext]:
    """Open Dagster Pipes inside a ClearML task started by :class:`PipesClearMLClient`.

    Args:
        task: The ClearML task; default: the task this process runs as (``Task.init()`` attaches to it).

    Yields:
        The ``PipesContext``: ``log``, ``report_asset_materialization``, ``report_asset_check``,
        ``extras``, ``report_custom_message``. It is closed (and the log flushed) on exit.
    """
    task = task or current_task()
    pipes = open_dagster_pipes(params_loader=PipesClearMLParamsLoader(task),
                               message_writer=PipesClearMLMessageWriter(task))
    with pipes:
        yield pipes
