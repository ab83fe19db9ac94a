"""container_image end to end on the real test pool: scripts/condor-containers gives the pool's
startd a docker daemon and a local image (made from a debootstrap root, no registry); a condorkit
job whose chunks run inside that image through the wrapper returns every manifest row once.

Why docker and not apptainer: see docs/test-pool.md "Containers"."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.pooljobs import ck_json, remove_leftovers

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = pytest.mark.condor

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "condor-containers"
IMAGE = "ckdemo:1"
UP_TIMEOUT_S = 1200  # first run: docker.io on the host, debootstrap of the image root

PROGRAM = '''import os, platform, sys
import ckjob

def where(row):
    marker = "/etc/condorkit-image"
    return {"image": open(marker).read().strip() if os.path.exists(marker) else "",
            "dockerenv": os.path.exists("/.dockerenv"), "python": platform.python_version(),
            "uid": os.getuid()}

ckjob.map_rows(sys.argv[1], sys.argv[2], where)
'''


@pytest.fixture(scope="module")
def containers(pool: Pool) -> Pool:
    try:
        up = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True,
                            timeout=UP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{SCRIPT} up did not finish in {UP_TIMEOUT_S}s: {exc.stderr!r}",
                    pytrace=False)
    if up.returncode != 0:
        pytest.fail(f"{SCRIPT} up failed (exit {up.returncode}):\n{up.stderr}{up.stdout}",
                    pytrace=False)
    return pool


def test_every_row_runs_once_inside_the_image(containers: Pool) -> None:
    d = containers.job_dir("container")
    for sub in ("results", "logs"):
        (d / sub).mkdir()
        os.chmod(d / sub, 0o1777)  # written by the pool user (uid 2000)
    (d / "where.py").write_text(PROGRAM)
    (d / "manifest.txt").write_text("".join(f"item-{i}\n" for i in range(1, 11)))
    (d / "condorkit.toml").write_text(
        f'program = "where.py"\nchunk = 4\nrequest_memory = "64MB"\nrequest_disk = "20MB"\n'
        f'max_retries = 1\ncontainer_image = "docker://{IMAGE}"\n')
    try:
        rec = ck_json("submit", cwd=d)["record"]
        done = ck_json("wait", "--timeout", "300", cwd=d)
        assert done["ok"] and done["counts"]["done"] == 3 and done["rows_done"] == 10
        rows = []
        for f in sorted((d / "results").glob("results-*.json")):
            for r in json.loads(f.read_text())["records"]:
                rows.append(r["row"])
                # inside the image: its marker, docker's marker, as the pool user
                assert r["image"] == IMAGE and r["dockerenv"] is True and r["uid"] == 2000, r
        assert sorted(rows) == list(range(1, 11))  # every row once, none lost, none twice
        ads = containers.schedd().history(f"ClusterId == {rec['cluster']}",
                                          projection=["ContainerImage", "WantContainer"])
        assert len(ads) == 3
        assert {(a["ContainerImage"], a["WantContainer"]) for a in ads} == {
            (f"docker://{IMAGE}", True)}
    finally:
        remove_leftovers(d, containers.schedd())
