"""The CPU split's roles: a process counted on the wrong side would move the figures it explains."""

from typing import Any

from bench.cpu_split import _groups


def _process(ppid: int, cmd: str) -> dict[str, Any]:
    return {"ppid": ppid, "user": 0, "system": 0, "switches": 0, "cmd": cmd}


SPAWN = "/venv/bin/python -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)"


def test_every_process_of_the_run_has_its_role_and_no_other_process_counts() -> None:
    processes = {
        100: _process(1, "/venv/bin/python -m bench --scenarios 1"),
        101: _process(100, SPAWN),  # a load generator
        102: _process(100, "/venv/bin/python -m gateway serve --host 127.0.0.1 --port 4000 --workers 2"),
        103: _process(102, SPAWN),  # a gateway worker
        104: _process(100, "/venv/bin/python -m bench.ceiling_server --port 4001 --workers 2"),
        105: _process(104, SPAWN),  # a ceiling worker
        # pg_ctl daemonizes the bench's server: it is found by its data folder, not by its parent
        200: _process(1, "/pg/bin/postgres -D /tmp/mailslot-bench-x1/pg/data -c port=5999"),
        201: _process(200, "postgres: mailslot mailslot 127.0.0.1(4242) idle"),
        202: _process(200, "postgres: walwriter "),
        300: _process(1, "/pg/bin/postgres -D /work/other/.mailslot/pg"),  # someone else's server
        301: _process(300, "postgres: mailslot mailslot 127.0.0.1(4343) idle"),
        400: _process(1, "/usr/bin/python3 -m pytest"),
    }

    groups = _groups(processes, 100)

    assert groups == {
        100: "bench", 101: "load generators", 102: "gateway supervisor", 103: "gateway workers",
        104: "ceiling workers", 105: "ceiling workers", 200: "pg postmaster", 201: "pg backends",
        202: "pg walwriter",
    }
