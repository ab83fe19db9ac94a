"""Bundle reuse on the real pool (issue 13.2): the bundle is given by an http URL that HTCondor's
own curl plugin fetches into each job (`bundle_url`; a real local HTTP server here), the wrapper
checks its sha256 against the submit file, and unpacks it ONCE per execute node into the node
cache; every later job on that node reuses the unpacked tree.

HTCondor 23.9.6 (the pool's trixie package) has no common input files (``MY.CommonInputFiles`` /
catalogs arrived in 24.x; its startd ad has no ``HasCommonFilesTransfer``), so the transfer is per
job (a ~10 MB wheel-set bundle) and the unpack is per node. On a multi-node pool the test asserts
one unpack per execute host that ran a job (hosts told apart by the wrapper's host= line, so the
assertion holds for any number of nodes); the ``http_server`` fixture's address must then be one
the nodes reach (it is 127.0.0.1 on the single-node pool)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from condorkit.wrappers import ckjob
from support.pooljobs import ck, ck_json, remove_leftovers, write_photodemo

from condorkit.model.bundlecheck import bundle_check

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = pytest.mark.condor

CHUNKS = 6
LINE = re.compile(r"condorkit-wrapper: bundle (\S+): (\d+) members \((\d+) MB\) "
                  r"(unpacked into the node cache|reused from the node cache|unpacked) in "
                  r"([0-9.]+) s \(sha256 ok\); python (\S+) started in ([0-9.]+) s")
HOST = re.compile(r"condorkit-wrapper: host=(\S+) ")


def test_a_url_bundle_is_fetched_by_htcondor_and_unpacked_once_per_node(
        pool: Pool, wheels_bundle: Any, photo_corpus: Any, tmp_path: Path,
        http_server: Callable[..., Any]) -> None:
    images = http_server(photo_corpus[0].path.parent)
    published = tmp_path / "published"
    published.mkdir()
    shutil.copy(wheels_bundle.path, published / wheels_bundle.name)
    envs = http_server(published)
    base = envs.base_url
    d = write_photodemo(pool.job_dir("bundle-reuse"), list(photo_corpus), images.base_url,
                        rows=CHUNKS * 3, chunk=3, bundle=wheels_bundle.path)
    with open(d / "condorkit.toml", "a") as fh:
        fh.write(f'bundle_url = "{base}"\n')
    # start from a cold node cache for this bundle (the pool user's default cache folder)
    sha = bundle_check(wheels_bundle.path).sha256
    pool.exec(["rm", "-rf", f"/var/tmp/condorkit-bundles-2000/{sha}"])
    try:
        sub = ck_json("submit", cwd=d)
        text = Path(sub["record"]["submit_file"]).read_text()
        assert f"{base}{wheels_bundle.name}" in text
        assert f"-k {sha}:" in text
        waited = ck("wait", "--timeout", "300", cwd=d, timeout=400)
        assert waited.returncode == 0, waited.stderr

        # HTCondor itself fetched the bundle from the URL, once per job
        assert envs.count(f"/{wheels_bundle.name}") == CHUNKS
        hows, hosts = [], set()
        for start in range(1, CHUNKS * 3, 3):
            doc = json.loads((d / "results" / f"results-{start}.json").read_text())
            assert ckjob.check_results(doc, start, 3) == [] and doc["errors"] == 0
            err = (d / "logs" / f"chunk-{start}.err").read_text()
            m, h = LINE.search(err), HOST.search(err)
            assert m and h, err
            hows.append(m.group(4))
            hosts.add(h.group(1))
        unpacked = hows.count("unpacked into the node cache")
        assert "unpacked" not in hows  # every job used the node cache
        assert 1 <= unpacked <= len(hosts), hows
        assert hows.count("reused from the node cache") == CHUNKS - unpacked
        print(f"\n{CHUNKS} jobs on {len(hosts)} host(s): {unpacked} unpack(s), "
              f"{CHUNKS - unpacked} reuse(s)")
    finally:
        remove_leftovers(d, pool.schedd())


def test_a_bundle_changed_after_submit_fails_with_91(
        pool: Pool, wheels_bundle: Any, photo_corpus: Any, http_server: Callable[..., Any],
        tmp_path: Path) -> None:
    images = http_server(photo_corpus[0].path.parent)
    d = write_photodemo(pool.job_dir("bundle-changed"), list(photo_corpus), images.base_url,
                        rows=2, chunk=2, bundle=wheels_bundle.path)
    toml = d / "condorkit.toml"
    toml.write_text(re.sub(r"(?m)^max_retries = .*$", "max_retries = 0", toml.read_text()))
    try:
        mk = ck("mksubmit", cwd=d)
        assert mk.returncode == 0, mk.stderr
        (d / "submit.sub").write_text(mk.stdout)
        with open(d / wheels_bundle.name, "ab") as fh:  # damaged after the submit file was made
            fh.write(b"\0" * 512)
        sub = pool.exec(["condor_submit", "submit.sub"], cwd=d)
        assert sub.returncode == 0, sub.stderr + sub.stdout
        cluster = re.search(r"submitted to cluster (\d+)\.", sub.stdout)
        assert cluster
        waited = ck("wait", "--cluster", cluster.group(1), "--timeout", "300", cwd=d,
                    timeout=400)
        assert waited.returncode == 8, waited.stderr  # a chunk without results
        (chunk,) = ck_json("status", cwd=d)["chunks"]
        assert chunk["state"] == "failed" and chunk["exit_code"] == 91, chunk
        last = (d / "logs" / "chunk-1.err").read_text().strip().splitlines()[-1]
        assert "is not the one the submit file names" in last
    finally:
        remove_leftovers(d, pool.schedd())


def test_each_execute_node_unpacks_the_bundle_once_on_the_multi_node_pool(
        multipool: Any, wheels_bundle: Any) -> None:
    """On three execute nodes with their own /var/tmp and no shared filesystem: the bundle goes
    by HTCondor's file transfer, and each node that runs jobs unpacks it once into its own
    cache; every other job there reuses it."""
    from conftest import MULTI_BASE, PROJECT
    from support.pooljobs import write_job

    sha = bundle_check(wheels_bundle.path).sha256
    for node in multipool.nodes:  # cold caches on every node
        shutil.rmtree(MULTI_BASE / "nodes" / node / "vartmp" / "condorkit-bundles-2000" / sha,
                      ignore_errors=True)
    d = write_job(multipool.job_dir("bundle-nodes"), rows=CHUNKS * 3, chunk=3,
                  extra_toml=f'project_name = "{PROJECT}"\nbundle = "{wheels_bundle.name}"\n')
    shutil.copy(wheels_bundle.path, d / wheels_bundle.name)
    try:
        ck_json("submit", cwd=d)
        waited = ck("wait", "--timeout", "300", cwd=d, timeout=400)
        assert waited.returncode == 0, waited.stderr
        per_host: dict[str, list[str]] = {}
        for start in range(1, CHUNKS * 3, 3):
            err = (d / "logs" / f"chunk-{start}.err").read_text()
            m, h = LINE.search(err), HOST.search(err)
            assert m and h, err
            per_host.setdefault(h.group(1), []).append(m.group(4))
        print(f"\n{CHUNKS} jobs: {per_host}")
        assert len(per_host) >= 2, per_host  # spread over the nodes
        for host, hows in per_host.items():
            assert hows.count("unpacked into the node cache") == 1, (host, hows)
            assert hows.count("reused from the node cache") == len(hows) - 1, (host, hows)
    finally:
        remove_leftovers(d, multipool.schedd())
