"""A throwaway Postgres cluster of the test's own, for tests that stop or restart it.

Postgres refuses to run as root, so the cluster is made and run as the ``postgres``
user in a folder that user owns (RESEARCH.md).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.processes import free_port


def _bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(f"no {name} under /usr/lib/postgresql")
    return candidates[-1]


class Cluster:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="synmon-pg-"))
        self.port = free_port()
        shutil.chown(self.folder, "postgres", "postgres")
        os.chmod(self.folder, 0o700)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> Cluster:
        self._as_postgres(
            _bin("initdb"), "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres"
        )
        return self

    def start(self) -> None:
        self._as_postgres(
            _bin("pg_ctl"),
            "-D",
            str(self.folder / "data"),
            "-l",
            str(self.folder / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(
            _bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"
        )

    def destroy(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def postgres_cluster() -> Iterator[Cluster]:
    cluster = Cluster().init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
