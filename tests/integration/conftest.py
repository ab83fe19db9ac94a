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
        names = set(getattr(item, "fixturenames", ()))
        if names & {"pool", "multipool"} and here in Path(item.path).parents:
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


# ----------------------------------------------------------------------------- multi-node pool
# `scripts/condor-pool multi up` (base /var/lib/condorkit-pool-multi): a central manager + schedd
# node and MULTI_NODES execute nodes, each in its own network namespace on the bridge ckpool0
# (10.200.0.0/24); the host has 10.200.0.1 there, so the host bindings in this process talk to
# the schedd directly. Execute nodes do not see the job folders (file transfer only), and the
# schedd rejects jobs without +ProjectName. See docs/test-pool.md.

MULTI_BASE = Path(os.environ.get("CONDORKIT_MULTIPOOL_DIR", "/var/lib/condorkit-pool-multi"))
MULTI_NODES = 3
PROJECT = "condorkit-tests"  # the project name tests put on their jobs


@dataclass(frozen=True)
class MultiPool:
    """The running multi-node test pool as the tests see it."""

    root: Path
    shared: Path  # bind-mounted into the submit node only
    client_config: Path
    nodes: tuple[str, ...]  # execute nodes: ex1, ex2, ...

    def job_dir(self, name: str) -> Path:
        """A fresh, unique, world-writable folder under the submit side's shared dir."""
        parent = self.shared / JOB_DIRS
        parent.mkdir(mode=0o1777, exist_ok=True)
        os.chmod(parent, 0o1777)
        path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{name}-", dir=parent))
        os.chmod(path, 0o1777)
        return path

    def script(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``scripts/condor-pool multi ARGS`` (e.g. ``cut ex2``, ``kill ex1``, ``up``)."""
        return subprocess.run(
            [str(SCRIPT), "multi", *args], capture_output=True, text=True, timeout=timeout,
            check=False,
        )

    def exec(
        self, args: Sequence[str], node: str = "cm", timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` as the pool user on ``node`` (its namespaces, inside the root)."""
        return self.script("exec", "--node", node, *args, timeout=timeout)

    def fault(self, what: str, node: str, *extra: str) -> None:
        """``cut``/``heal`` a node's link, ``kill`` all its processes (or one daemon:
        ``kill cm schedd``), ``start`` it again."""
        done = self.script(what, node, *extra)
        assert done.returncode == 0, f"condor-pool multi {what} {node}: {done.stderr}"

    def restore(self) -> None:
        """Heal every link and start every stopped node (``multi up`` is idempotent)."""
        up = self.script("up", "--nodes", str(len(self.nodes)), timeout=UP_TIMEOUT_S)
        if up.returncode != 0:
            pytest.fail(f"condor-pool multi up failed:\n{up.stderr}", pytrace=False)

    def schedd(self) -> Any:
        import htcondor2

        ads = htcondor2.Collector().query(htcondor2.AdTypes.Schedd)
        if not ads:
            raise RuntimeError(f"the collector lists no schedd; try: {SCRIPT} multi status")
        return htcondor2.Schedd(ads[0])


def _use_config(path: str | None) -> None:
    # no config before: /dev/null, as condorkit itself uses for parse-only work
    os.environ["CONDOR_CONFIG"] = path or "/dev/null"
    if "htcondor2" in sys.modules:
        sys.modules["htcondor2"].reload_config()


@pytest.fixture(scope="session")
def _multipool_session() -> Iterator[MultiPool]:
    if os.geteuid() != 0:
        pytest.skip("the multi-node HTCondor test pool needs root (namespaces, chroot, mount)")
    p = MultiPool(root=MULTI_BASE / "root", shared=MULTI_BASE / "shared",
                  client_config=MULTI_BASE / "client" / "condor_config",
                  nodes=tuple(f"ex{k}" for k in range(1, MULTI_NODES + 1)))
    try:
        p.restore()
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"condor-pool multi up did not finish in {UP_TIMEOUT_S}s: {exc}",
                    pytrace=False)
    yield p
    if not os.environ.get("CONDORKIT_KEEP_JOB_DIRS"):
        for d in (p.shared / JOB_DIRS).glob(f"{os.getpid()}-*"):
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def multipool(_multipool_session: MultiPool) -> Iterator[MultiPool]:
    """The multi-node pool, with CONDOR_CONFIG pointing at it for this test only (the single-node
    ``pool`` fixture's config is restored afterwards). Every node is up and linked at the start."""
    before = os.environ.get("CONDOR_CONFIG")
    _multipool_session.restore()
    _use_config(str(_multipool_session.client_config))
    try:
        yield _multipool_session
    finally:
        _use_config(before)
