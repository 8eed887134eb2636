"""Structured JSON logging (one object per line) on top of stdlib logging.

Records are queued on the calling thread (cheap) and formatted and written by a listener
thread, so a slow or blocked stderr never stalls the event loop.
"""

from __future__ import annotations

import atexit
import contextvars
import datetime as dt
import json
import logging
import logging.handlers
import os
import queue
import sys
import time
from typing import Any, cast

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# Attributes every LogRecord has; anything else came from `extra=` and is logged as a field.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.service:
            out["service"] = self.service
        # Queued records carry the id captured on the caller's thread (see _ContextQueueHandler).
        rid = getattr(record, "request_id", None) or request_id_var.get()
        if rid:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted before the record was queued
            out["exc"] = record.exc_text
        return json.dumps(out, default=str)


class _ContextQueueHandler(logging.handlers.QueueHandler):
    """Enqueues the record as is, plus what only the calling thread knows (the request id).

    The stdlib QueueHandler formats on the caller's thread; the point here is not to.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if "request_id" not in record.__dict__:
            rid = request_id_var.get()
            if rid:
                record.request_id = rid
        if record.args:  # freeze the message before its arguments can change
            record.msg = record.getMessage()
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # the text is kept; the traceback's frames are released
        return record


# The writer thread wakes at most this often under load. Waking per record would make it
# contend with the event loop for the GIL thousands of times a second.
BATCH_SECONDS = 0.02


class _BatchingStreamHandler(logging.StreamHandler[Any]):
    """Formats each record into a batch; flush() writes the batch with one write."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)

    def flush(self) -> None:
        lock = self.lock
        assert lock is not None  # Handler.__init__ made it
        with lock:
            if self._pending:
                text = "\n".join(self._pending) + "\n"
                self._pending.clear()
                self.stream.write(text)
            self.stream.flush()


class _BatchingListener(logging.handlers.QueueListener):
    """Drains the queue in batches: when it runs dry, write out, then pause briefly."""

    @property
    def _queue(self) -> queue.Queue[logging.LogRecord]:
        # The stubs allow any queue-like object; the one given here is a queue.Queue.
        return cast("queue.Queue[logging.LogRecord]", self.queue)

    def dequeue(self, block: bool) -> logging.LogRecord:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            pass
        for handler in self.handlers:
            handler.flush()
        time.sleep(BATCH_SECONDS)
        return self._queue.get(block)

    def stop(self) -> None:
        super().stop()  # handles everything queued, then the thread ends
        for handler in self.handlers:
            handler.flush()


class _Output:
    """The queue and the thread draining it; restarted in forked workers."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self.stream_handler: logging.Handler | None = None
        self.listener: _BatchingListener | None = None
        self._resume = False

    def start(self, handler: logging.Handler) -> None:
        self.stop()
        self.stream_handler = handler
        self.listener = _BatchingListener(self.queue, handler)
        self.listener.start()

    def stop(self) -> None:
        """Write out everything queued so far and stop the thread."""
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.stop()  # drains the queue before returning

    def before_fork(self) -> None:
        # Fork with no listener thread alive: a thread caught holding a lock (the queue's,
        # stderr's) would leave that lock held forever in the child.
        self._resume = self.listener is not None
        self.stop()

    def after_fork(self) -> None:
        """In the parent and in the child: a new queue and thread."""
        if not self._resume or self.stream_handler is None:
            return
        self.queue = queue.SimpleQueue()
        for handler in logging.getLogger().handlers:
            if isinstance(handler, _ContextQueueHandler):
                handler.queue = self.queue
        self.start(self.stream_handler)


_output = _Output()
atexit.register(_output.stop)
os.register_at_fork(
    before=_output.before_fork,
    after_in_parent=_output.after_fork,
    after_in_child=_output.after_fork,
)


def flush_logging() -> None:
    """Write out queued records now; for processes that leave through os._exit."""
    _output.stop()


def setup_logging(level: str = "INFO", service: str | None = None, stream: Any = None) -> None:
    """JSON lines to `stream` (default: stderr) from a writer thread, at `level` and above."""
    writer = _BatchingStreamHandler(stream if stream is not None else sys.stderr)
    writer.setFormatter(JsonFormatter(service))
    _output.start(writer)
    root = logging.getLogger()
    root.handlers[:] = [_ContextQueueHandler(_output.queue)]
    root.setLevel(level.upper())
    # Per-record work nothing here reads (the JSON has no file, line, thread or task
    # fields): the logging HOWTO's "Optimization" section lists these switches.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # 3.12+, not in the stubs
