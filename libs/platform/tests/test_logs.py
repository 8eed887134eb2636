"""JSON logs written by the listener thread: the request id of the calling context, the
exception text, and every line written out by flush_logging (what a worker does before
os._exit)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from libs.platform.logs import flush_logging, request_id_var, setup_logging


@pytest.fixture
def json_logging() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging._srcfile)
    out = io.StringIO()
    setup_logging("INFO", service="t", stream=out)
    try:
        yield out
    finally:
        flush_logging()
        root.handlers[:], level, logging._srcfile = saved
        root.setLevel(level)


def test_queued_lines_keep_request_id_and_exception(json_logging: io.StringIO) -> None:
    log = logging.getLogger("t.logs")
    token = request_id_var.set("rid-7")
    try:
        log.info("hello %s", "world", extra={"n": 1})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        request_id_var.reset(token)  # gone before the listener formats the lines
    for i in range(500):
        log.info("rpc", extra={"i": i})
    flush_logging()
    lines = [json.loads(line) for line in json_logging.getvalue().splitlines()]
    assert lines[0].pop("ts").endswith("+00:00")
    assert lines[0] == {
        "level": "INFO",
        "logger": "t.logs",
        "msg": "hello world",
        "service": "t",
        "request_id": "rid-7",
        "n": 1,
    }
    assert lines[1]["request_id"] == "rid-7"
    assert "ValueError: boom" in lines[1]["exc"]
    assert [line["i"] for line in lines[2:]] == list(range(500))
