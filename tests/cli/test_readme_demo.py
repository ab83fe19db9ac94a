"""The README's first command, run as a newcomer would: a clean copy of the tree, a PATH with no
virtual environment on it and a system ``python3`` without the job's packages, then
``./scripts/demo``; the page it writes must hold all 200 points (issue 11)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _clean_copy(dest: Path) -> None:
    """The tree as a fresh clone would have it: tracked and unignored files only."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for raw in names:
        if not raw:
            continue
        src = REPO / os.fsdecode(raw)
        if not src.is_file():
            continue  # deleted in the working tree
        target = dest / os.fsdecode(raw)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def _newcomer_env(home: Path) -> dict[str, str]:
    env = {"PATH": SYSTEM_PATH, "HOME": str(home), "LANG": "C.UTF-8"}
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT",
                "PIP_TRUSTED_HOST", "PIP_CONFIG_FILE", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
                "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        if var in os.environ:  # how this machine reaches the package index, nothing else
            env[var] = os.environ[var]
    # pip's own cache, so the test does not download the world again (not the venv)
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR",
                                          str(Path.home() / ".cache" / "pip"))
    return env


@pytest.mark.slow
def test_scripts_demo_on_a_clean_machine_writes_200_points(tmp_path: Path) -> None:
    tree = tmp_path / "clone"
    _clean_copy(tree)
    home = tmp_path / "home"
    home.mkdir()
    env = _newcomer_env(home)
    probe = subprocess.run(["python3", "-c", "import PIL"], env=env, capture_output=True)
    assert probe.returncode != 0, "the newcomer's python3 must not have Pillow for this test"
    assert shutil.which("python3", path=env["PATH"]), "no system python3"

    proc = subprocess.run(["./scripts/demo"], cwd=tree, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "found 200, errors 0" in proc.stderr, proc.stderr[-4000:]
    page = (tree / "demo-job" / "scatter.html").read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="ck-data">(.*?)</script>', page, re.S)
    assert block, "no data block in scatter.html"
    data = json.loads(block.group(1))
    assert len(data["points"]) == 200
    assert not data["errors"]
