"""Held polls across real gateway processes: `python -m gateway serve` started by the test.

Each test gets a scratch database (a clone of the migrated template) with one workspace, and
starts gateways on free ports against it. A poll is known to be parked once that process's
`/metrics` counts it. Every process (and any worker it spawned) is killed at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

import storage
from gateway.core.poll import SHUTDOWN_POLL_S
from storage import WorkspaceCredentials
from tests.helpers import Api, Reply, wait_until

ROOT = Path(__file__).resolve().parents[2]
SHUTDOWN_TIMEOUT_S = 3.0
# A process must be up within this, and exit within shutdown_timeout_s plus this.
STARTUP_S = 30.0
EXIT_GRACE_S = 5.0
LONG_WAIT = 20
ANSWER_TIMEOUT = 10


@dataclass
class Gateway:
    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


StartGateway = Callable[..., Awaitable[Gateway]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """Every live descendant of `pid` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; the fields after the last ")" do not.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def connections_by_process(pids: list[int], port: int) -> dict[int, int]:
    """How many established TCP connections each process holds on its side of 127.0.0.1:`port`."""
    established: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
            established.add(fields[9])  # the socket's inode
    counts: dict[int, int] = {}
    for pid in pids:
        count = 0
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in established:
                        count += 1
        counts[pid] = count
    return counts


@pytest.fixture
async def credentials(pool: asyncpg.Pool) -> WorkspaceCredentials:
    """Workspace `acme` in this test's scratch database."""
    return await storage.create_workspace(pool, "acme", identity_mode="off")


@pytest.fixture
async def start_gateway(database_url: str, tmp_path: Path) -> AsyncIterator[StartGateway]:
    """Start `python -m gateway serve` and wait until it is ready; all are killed at teardown."""
    started: list[Gateway] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILSLOT_", "PROMETHEUS_"))}
    env["PYTHONUNBUFFERED"] = "1"

    async def start(*, workers: int = 1, port: int | None = None) -> Gateway:
        port = port or free_port()
        name = f"gateway-{len(started)}"
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", "serve",
                "--port", str(port), "--workers", str(workers), "--database-url", database_url,
                "--demo-workspace", "false", "--data-dir", str(tmp_path / name),
                "--shutdown-timeout-s", str(SHUTDOWN_TIMEOUT_S),
                cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        gateway = Gateway(process, port, log)
        started.append(gateway)
        await ready(gateway)
        return gateway

    yield start

    for gateway in started:
        if gateway.process.returncode is None:
            pids = [*children_of(gateway.process.pid), gateway.process.pid]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.wait_for(gateway.process.wait(), 10)


async def ready(gateway: Gateway) -> None:
    async with aiohttp.ClientSession(base_url=gateway.url) as session:

        async def answers() -> bool:
            assert gateway.process.returncode is None, f"exited {gateway.process.returncode}:\n{gateway.output()}"
            try:
                async with session.get("/readyz") as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        try:
            await wait_until(answers, within=STARTUP_S, what=f"{gateway.url}/readyz answers 200")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{gateway.output()}") from None


@pytest.fixture
async def connect(credentials: WorkspaceCredentials) -> AsyncIterator[Callable[[Gateway], Api]]:
    """An Api client for a gateway process, over its own aiohttp.ClientSession."""
    sessions: list[aiohttp.ClientSession] = []

    def connect(gateway: Gateway) -> Api:
        session = aiohttp.ClientSession(base_url=gateway.url)
        sessions.append(session)
        return Api(session, credentials)  # type: ignore[arg-type]  # the same request() as a TestClient

    yield connect
    for session in sessions:
        await session.close()


async def parked_polls(api: Api) -> float:
    return await api.metric("mailslot_parked_polls")


async def until_parked(api: Api, count: int) -> None:
    await wait_until(lambda: _equals(parked_polls(api), count), what=f"{count} parked polls")


async def _equals(value: Awaitable[float], expected: float) -> bool:
    return await value == expected


async def sent_id(api: Api, to: str) -> str:
    sent = await api.send(to)
    assert sent.status == 201, sent
    return str(sent.body["id"])


async def answer(task: asyncio.Task[Reply]) -> Reply:
    reply = await asyncio.wait_for(task, ANSWER_TIMEOUT)
    assert reply.status == 200, reply
    return reply


def assert_told_to_come_back_soon(reply: Reply) -> None:
    assert reply.status == 200, reply
    assert reply.body["messages"] == []
    low, high = SHUTDOWN_POLL_S
    assert low <= reply.body["next_poll_s"] <= high, reply
    assert reply.headers["X-Mailslot-Next-Poll"] == str(reply.body["next_poll_s"])


async def test_a_device_parked_on_one_process_gets_a_message_sent_through_another(
    start_gateway: StartGateway, connect: Callable[[Gateway], Api]
) -> None:
    a, b = await asyncio.gather(start_gateway(), start_gateway())
    on_a, on_b = connect(a), connect(b)
    held = on_a.hold("user-1", "phone", wait=LONG_WAIT)
    await until_parked(on_a, 1)

    message_id = await sent_id(on_b, "user-1")

    reply = await answer(held)
    assert reply.message_ids == [message_id]
    # Process A was woken by B's notification; it did not find the message on its own.
    assert await on_a.metric("mailslot_wakeups_total", reason="message") == 1
    assert await on_a.metric("mailslot_notification_lag_seconds_count") == 1
    assert await parked_polls(on_a) == 0


async def test_two_devices_of_one_person_on_two_processes_exactly_one_gets_the_message(
    start_gateway: StartGateway, connect: Callable[[Gateway], Api]
) -> None:
    a, b = await asyncio.gather(start_gateway(), start_gateway())
    on_a, on_b = connect(a), connect(b)
    phone = on_a.hold("user-1", "phone", wait=3)
    laptop = on_b.hold("user-1", "laptop", wait=3)
    await until_parked(on_a, 1)
    await until_parked(on_b, 1)

    message_id = await sent_id(on_a, "user-1")

    replies = {"phone": await answer(phone), "laptop": await answer(laptop)}
    got = {device: reply.message_ids for device, reply in replies.items()}
    assert sorted(got.values()) == [[], [message_id]], got
    [winner] = [device for device, ids in got.items() if ids]
    # Both were woken; the loser claimed nothing and its wait ran out.
    assert await on_a.metric("mailslot_wakeups_total", reason="message") == 1
    assert await on_b.metric("mailslot_wakeups_total", reason="message") == 1
    read = await on_a.message(message_id)
    assert read.body["device_id"] == winner
    assert [e["type"] for e in read.body["events"]] == ["queued", "offered"]


async def test_sigterm_answers_every_parked_poll_and_exits_0(
    start_gateway: StartGateway, connect: Callable[[Gateway], Api]
) -> None:
    gateway = await start_gateway()
    api = connect(gateway)
    held = [api.hold(f"user-{i}", "phone", wait=LONG_WAIT) for i in range(20)]
    await until_parked(api, 20)

    gateway.process.send_signal(signal.SIGTERM)

    replies = await asyncio.gather(*(answer(task) for task in held))
    for reply in replies:
        assert_told_to_come_back_soon(reply)
    code = await asyncio.wait_for(gateway.process.wait(), SHUTDOWN_TIMEOUT_S + EXIT_GRACE_S)
    assert code == 0, gateway.output()


async def test_sigterm_to_the_supervisor_answers_parked_polls_on_every_worker_and_exits_0(
    start_gateway: StartGateway, connect: Callable[[Gateway], Api], pool: asyncpg.Pool
) -> None:
    gateway = await start_gateway(workers=2)
    # Both workers are up once both LISTEN connections are.
    await wait_until(
        lambda: _equals(pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mailslot-listener'"
            " AND datname = current_database()"), 2),
        within=STARTUP_S, what="two workers listening",
    )
    workers = [pid for pid in children_of(gateway.process.pid) if b"spawn_main" in command_line(pid)]
    assert len(workers) == 2, [command_line(pid) for pid in children_of(gateway.process.pid)]
    scraper = connect(gateway)
    # One connection per poll: the kernel spreads connections over the workers sharing the port.
    polls = Api(aiohttp.ClientSession(base_url=gateway.url), scraper.credentials)  # type: ignore[arg-type]
    try:
        # The workers accept from one shared listening socket, and the kernel does not promise
        # to spread connections evenly: hold polls in batches until both workers hold some.
        held: list[asyncio.Task[Reply]] = []
        spread: dict[int, int] = {}
        while len(held) < 200:
            held += [polls.hold(f"user-{i}", "phone", wait=LONG_WAIT) for i in range(len(held), len(held) + 20)]
            await until_parked(scraper, len(held))  # summed over the workers
            spread = connections_by_process(workers, gateway.port)
            # Two connections each: whichever worker also holds the scraper's has a poll too.
            if min(spread.get(pid, 0) for pid in workers) >= 2:
                break
        await scraper.client.close()  # type: ignore[attr-defined]
        total = len(held)
        await wait_until(lambda: sum(connections_by_process(workers, gateway.port).values()) == total,
                         what=f"only the {total} held polls are connected")
        spread = connections_by_process(workers, gateway.port)
        assert all(spread.get(pid, 0) > 0 for pid in workers), spread

        gateway.process.send_signal(signal.SIGTERM)

        replies = await asyncio.gather(*(answer(task) for task in held))
        for reply in replies:
            assert_told_to_come_back_soon(reply)
        code = await asyncio.wait_for(gateway.process.wait(), SHUTDOWN_TIMEOUT_S + EXIT_GRACE_S)
        assert code == 0, gateway.output()
        assert not [pid for pid in workers if command_line(pid)], "workers outlived the supervisor"
    finally:
        await polls.client.close()  # type: ignore[attr-defined]
