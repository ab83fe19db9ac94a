"""Parity of results: the same photodemo manifest, run by `condorkit run` on the local cores and by
`condorkit submit` on the real pool (the same bundle in both), gives identical luminance values
row for row."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from support.pooljobs import ck, ck_json, remove_leftovers, write_photodemo

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = [pytest.mark.condor, pytest.mark.slow]


def records(folder: Path) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for path in sorted((folder / "results").glob("results-*.json")):
        for rec in json.loads(path.read_text())["records"]:
            assert rec["row"] not in out
            out[rec["row"]] = rec
    return out


def test_local_run_and_pool_give_identical_luminance(
        pool: Pool, env_bundle: Any, photo_corpus: Any, http_server: Callable[..., Any],
        tmp_path: Path) -> None:
    server = http_server(photo_corpus[0].path.parent)
    on_pool = write_photodemo(pool.job_dir("parity-photo"), list(photo_corpus), server.base_url,
                              rows=40, chunk=15, bundle=env_bundle.path)
    local = tmp_path / "local"
    shutil.copytree(on_pool, local)
    assert (local / "manifest.txt").read_bytes() == (on_pool / "manifest.txt").read_bytes()
    try:
        ran = ck("run", cwd=local, timeout=600)
        assert ran.returncode == 0, ran.stderr
        rec = ck_json("submit", cwd=on_pool)["record"]
        assert ck_json("wait", "--timeout", "600", cwd=on_pool, timeout=700)["ok"]
    finally:
        remove_leftovers(on_pool, pool.schedd())

    here, there = records(local), records(on_pool)
    assert sorted(here) == sorted(there) == list(range(1, 41))
    for row in range(1, 41):
        a, b = here[row], there[row]
        assert "error" not in a and "error" not in b, (a, b)
        assert (a["url"], a["year"]) == (b["url"], b["year"])
        assert a["luminance"] == b["luminance"], row  # exact: same bundle, same bytes
    # the same chunk keys: a pool result would be accepted locally as-is, and vice versa
    keys = {json.loads(p.read_text())["key"] for p in (local / "results").glob("*.json")}
    assert keys == {c["key"] for c in rec["chunks"]}
    # and the pool really ran them elsewhere: as the pool user (uid 2000), with the bundle from
    # that user's node cache (or its scratch folder under the pool's execute dir)
    err = (on_pool / "logs" / "chunk-1.err").read_text()
    assert ("/var/tmp/condorkit-bundles-2000/" in err or "/condor/execute/" in err), err
    assert f"python={env_bundle.python}" in err
