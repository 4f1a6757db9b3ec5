"""A real `mailslot serve` never writes a secret a client sent into its output.

aiohttp's parser refuses a header line over 8190 bytes and its server logs the error at ERROR
with the line's first 100 bytes (docs/decisions/0017): an over-long `Authorization` header used
to print the API key. The server here runs against a scratch database, as a superuser (the
tests' URL), so it also shows the warning `serve` logs for such a connection.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.serve import SUPERUSER_WARNING
from tests.acceptance.test_cli import cli_env, run_cli
from tests.acceptance.test_supervisor import Server

PADDING = 10 * 1024


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    server = Server(tmp_path, database_url, "--workers", "1")
    try:
        server.ready()
        yield server
    finally:
        server.kill()


def raw_request(port: int, request: bytes) -> bytes:
    """Send `request` as is on a new connection; what the server answered before closing it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and len(answer) > 12:
                break
    return answer


def test_an_over_long_header_never_puts_a_secret_in_the_log(
    server: Server, tmp_path: Path, database_url: str
) -> None:
    created = run_cli("workspace", "create", "acme", "--json", cwd=tmp_path,
                      env=cli_env(MAILSLOT_DATABASE_URL=database_url))
    assert created.returncode == 0, created.stderr
    credentials = json.loads(created.stdout)
    key, secret = credentials["api_key"], credentials["identity_secret"]

    padding = "x" * PADDING
    requests = {
        "bearer": f"Authorization: Bearer {key},{padding}",
        "bare key": f"Authorization: {key} {padding}",
        "other header": f"X-Mailslot-Secret: {secret}{padding}",
        "request line": None,
    }
    for name, header in requests.items():
        if header is None:
            head = f"GET /v1/workspace?api_key={key}&{padding} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        else:
            head = f"GET /v1/workspace HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}\r\n"
        answer = raw_request(server.port, (head + "Connection: close\r\n\r\n").encode())
        status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.") else b""
        assert status.startswith(b"4"), (name, answer[:200])

    # Each refusal is logged (so the test sees the path that leaked), and none with a secret.
    server.until(lambda: server.output().count("Error handling request") >= len(requests), "every refusal logged")
    output = server.output()
    assert key not in output and key[4:20] not in output
    assert secret not in output and secret[:16] not in output
    assert "[redacted]" in output, output

    # The same key in a well-formed header still works: only the log is redacted.
    answer = raw_request(
        server.port,
        f"GET /v1/workspace HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
        .encode(),
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]

    # The tests' database URL is a superuser's: serve says so, and how to fix it.
    assert SUPERUSER_WARNING in output
