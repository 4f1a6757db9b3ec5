"""The peer of scenario 5: nginx with the nchan module as a long-poll pub/sub server on loopback.

Nothing is installed at run time: `find_nginx()` says whether Debian's `nginx` (or the
transitional `nginx-light`) and `libnginx-mod-nchan` are present, and the scenario is reported
as skipped when they are not. nginx runs in the foreground (`daemon off`) under `timeout`, with
its own configuration, logs and temp folders in the run's work folder, listening on 127.0.0.1
only; every worker shares the port through `reuseport`, like the gateway's workers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .fetch import fetch_text
from .harness import Service

__all__ = ["INSTALL_HINT", "Nchan", "find_nginx", "nginx_version"]

INSTALL_HINT = "install nginx-light libnginx-mod-nchan"
_MODULE_DIRS = ("/usr/lib/nginx/modules", "/usr/share/nginx/modules", "/etc/nginx/modules")

_CONFIG = """\
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
load_module {module};
events {{ worker_connections {connections}; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/client_body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    nchan_shared_memory_size {shm};
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location = /nchan_status {{ nchan_stub_status; }}
        location ~ ^/sub/([A-Za-z0-9_-]+)$ {{
            nchan_subscriber longpoll;
            nchan_channel_id $1;
            nchan_subscriber_timeout {wait_s}s;
        }}
        location ~ ^/pub/([A-Za-z0-9_-]+)$ {{
            nchan_publisher;
            nchan_channel_id $1;
            nchan_message_timeout 10m;
        }}
    }}
}}
"""


def find_nginx() -> tuple[str, str] | None:
    """(nginx binary, nchan module path), or None when either is missing."""
    binary = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if binary is None:
        return None
    for folder in _MODULE_DIRS:
        module = Path(folder) / "ngx_nchan_module.so"
        if module.exists():
            return binary, str(module)
    return None


def nginx_version() -> str | None:
    """`nginx/1.22.1` and the nchan package version, or None when nginx is missing."""
    found = find_nginx()
    if found is None:
        return None
    output = subprocess.run([found[0], "-v"], capture_output=True, text=True, timeout=10).stderr
    match = re.search(r"nginx/\S+", output)
    version = match.group(0) if match else output.strip()
    nchan = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan"],
                           capture_output=True, text=True, timeout=10)
    return f"{version} + nchan {nchan.stdout.strip()}" if nchan.returncode == 0 else version


class Nchan(Service):
    """nginx + nchan with `workers` worker processes; `/sub/<id>` long-polls, `/pub/<id>` publishes."""

    name = "nchan"

    def __init__(self, work_dir: Path, *, workers: int, wait_s: int, nofile: int, max_seconds: int) -> None:
        super().__init__(work_dir, workers=workers, max_seconds=max_seconds)
        found = find_nginx()
        if found is None:
            raise RuntimeError(f"nginx with nchan is not installed: {INSTALL_HINT}")
        self._binary, module = found
        self._dir = work_dir / f"nchan-{self.port}"
        (self._dir / "tmp").mkdir(parents=True, exist_ok=True)
        (self._dir / "tmp").chmod(0o777)  # workers run as nobody when the master is root
        self._config = self._dir / "nginx.conf"
        self._config.write_text(_CONFIG.format(
            workers=workers, nofile=nofile, connections=nofile - 100, dir=self._dir, module=module,
            port=self.port, wait_s=wait_s, shm="512M",
        ))

    def command(self) -> list[str]:
        return [self._binary, "-p", str(self._dir), "-e", str(self._dir / "error.log"), "-c", str(self._config)]

    def listening(self) -> int:
        # The master opens the reuseport sockets and every worker inherits them: leave the master out.
        return max(0, super().listening() - 1)

    def subscribers(self) -> int:
        """Held subscribers, from `nchan_stub_status`."""
        text = fetch_text(self.base_url + "/nchan_status")
        match = re.search(r"^subscribers: (\d+)$", text, re.MULTILINE)
        return int(match.group(1)) if match else 0
