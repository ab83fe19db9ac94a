"""Fixtures for tests against the real HTCondor test pool (scripts/condor-pool).

Owns the session-scoped ``pool`` fixture: it brings the pool up (idempotent), points the host
bindings at it through ``CONDOR_CONFIG`` and yields a :class:`Pool`. The pool is shared by every
engineer and test run on this machine, so the fixture never stops it; ``scripts/test`` runs
``scripts/condor-pool down`` at the end. Tests here that use ``pool`` are marked ``condor``
automatically (so ``-m "not condor"`` always leaves them out); mark them explicitly anyway.

Job folders made with :meth:`Pool.job_dir` are removed at the end of the session unless
``CONDORKIT_KEEP_JOB_DIRS=1`` is set (handy when debugging a failure).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "condor-pool"
POOL_BASE = Path(os.environ.get("CONDORKIT_POOL_DIR", "/var/lib/condorkit-pool"))
UP_TIMEOUT_S = 1200  # first build: debootstrap + apt inside the root (~1 min measured)
JOB_DIRS = "pytest"  # folder under the shared dir that holds the tests' job folders


@dataclass(frozen=True)
class Pool:
    """The running test pool as the tests see it."""

    root: Path  # the chroot the daemons run in
    shared: Path  # bind-mounted at the same path inside the root (1777)
    client_config: Path  # CONDOR_CONFIG for the host bindings

    def job_dir(self, name: str) -> Path:
        """A fresh, unique, world-writable folder under the shared dir (visible to the jobs)."""
        parent = self.shared / JOB_DIRS
        parent.mkdir(mode=0o1777, exist_ok=True)
        os.chmod(parent, 0o1777)
        path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{name}-", dir=parent))
        os.chmod(path, 0o1777)  # the pool user (uid 2000) writes logs and outputs here
        return path

    def exec(
        self, args: Sequence[str], cwd: Path | str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` in the root as the pool user; ``cwd`` is kept if under the shared dir."""
        return subprocess.run(
            [str(SCRIPT), "exec", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def schedd(self) -> Any:
        """The pool's schedd via the host bindings (``Schedd()`` alone would mean a local one)."""
        import htcondor2

        ads = htcondor2.Collector().query(htcondor2.AdTypes.Schedd)
        if not ads:
            raise RuntimeError(f"the collector lists no schedd; try: {SCRIPT} status")
        return htcondor2.Schedd(ads[0])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if "pool" in getattr(item, "fixturenames", ()) and here in Path(item.path).parents:
            if item.get_closest_marker("condor") is None:
                item.add_marker(pytest.mark.condor)


@pytest.fixture(scope="session")
def pool() -> Iterator[Pool]:
    if os.geteuid() != 0:
        pytest.skip("the HTCondor test pool needs root (debootstrap, chroot, mount)")
    try:
        up = subprocess.run(
            [str(SCRIPT), "up"], capture_output=True, text=True, timeout=UP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{SCRIPT} up did not finish in {UP_TIMEOUT_S}s: {exc.stderr!r}", pytrace=False)
    if up.returncode != 0:
        pytest.fail(
            f"{SCRIPT} up failed (exit {up.returncode}):\n{up.stderr}{up.stdout}", pytrace=False
        )
    client_config = POOL_BASE / "client" / "condor_config"
    os.environ["CONDOR_CONFIG"] = str(client_config)
    if "htcondor2" in sys.modules:  # imported earlier with another config: re-read it
        sys.modules["htcondor2"].reload_config()
    p = Pool(root=POOL_BASE / "root", shared=POOL_BASE / "shared", client_config=client_config)
    yield p
    if not os.environ.get("CONDORKIT_KEEP_JOB_DIRS"):
        for d in (p.shared / JOB_DIRS).glob(f"{os.getpid()}-*"):
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def job(pool: Pool) -> Iterator[Any]:
    """Factory for fault-switch job folders in the shared dir (support.pooljobs.write_job);
    jobs left in the queue by a test are removed afterwards."""
    from support.pooljobs import remove_leftovers, write_job

    made: list[Path] = []

    def make(name: str, folder: Path | None = None, **kw: Any) -> Path:
        d = write_job(folder or pool.job_dir(name), **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        remove_leftovers(d, pool.schedd())
