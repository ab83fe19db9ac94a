"""Bundle portability: a bundle built on this machine runs on an OLD worker, Debian bullseye
(glibc 2.31, Python 3.9), through the real wrapper inside a bullseye chroot (scripts/old-worker,
built once, ~35-80 s; scripts/test builds it before pytest). The default wheel-set bundle runs
and gives the host's exact values; the interpreter bundle (glibc floor = this machine's) stops
with the one-line exit-94 reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from condorkit.demo import write_corpus
from condorkit.model.bundlecheck import bundle_check

pytestmark = pytest.mark.oldworker

REPO = Path(__file__).resolve().parents[2]
OLD_WORKER = REPO / "scripts" / "old-worker"


@pytest.fixture(scope="module")
def old_root() -> Path:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the old-worker tests need root (chroot) in CI")
        pytest.skip("needs root (chroot)")
    found = subprocess.run([str(OLD_WORKER), "root"], capture_output=True, text=True)
    if found.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the bullseye root is missing: scripts/test must run "
                        "`scripts/old-worker up` before pytest")
        pytest.skip("no bullseye root: run scripts/old-worker up")
    return Path(found.stdout.strip())


def old_exec(folder: Path, *cmd: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    pre = [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run([str(OLD_WORKER), "exec", str(folder), "env", *pre, *cmd],
                          capture_output=True, text=True, timeout=300)


def job_folder(tmp_path: Path, bundle: Path) -> tuple[Path, list[Path]]:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    images = scratch / "img"
    files = write_corpus(images, 4, sizes=((320, 240), (200, 300)))
    shutil.copy(bundle, scratch / bundle.name)
    for name in ("wrapper.sh", "ckjob.py"):
        (scratch / name).write_bytes(
            resources.files("condorkit.wrappers").joinpath(name).read_bytes())
    shutil.copy(REPO / "examples" / "photodemo" / "luminance.py", scratch / "luminance.py")
    header = {"format": "condorkit-rows/1", "start": 1, "count": len(files), "key": "k",
              "columns": ["url", "year"]}
    rows = [json.dumps({"row": i + 1, "line": i + 1, "url": f"img/{f.path.name}",
                        "year": f.year}) for i, f in enumerate(files)]
    (scratch / "rows-1.jsonl").write_text("\n".join([json.dumps(header), *rows]) + "\n")
    for p in [scratch, *scratch.rglob("*")]:
        os.chmod(p, 0o777 if p.is_dir() else 0o644)
    return scratch, [f.path for f in files]


def wrapper_cmd(bundle: Path) -> list[str]:
    return ["bash", "wrapper.sh", "-b", bundle.name, "-k", bundle_check(bundle).arg,
            "luminance.py", "rows-1.jsonl", "results-1.json"]


def test_the_old_worker_is_what_the_issue_names(old_root: Path, tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o777)
    proc = old_exec(tmp_path, "sh", "-c", "getconf GNU_LIBC_VERSION; python3 -V")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["glibc 2.31", "Python 3.9.2"]


def test_the_wheel_bundle_runs_on_bullseye_with_exact_values(
        old_root: Path, tmp_path: Path, wheels_bundle: Any) -> None:
    scratch, images = job_folder(tmp_path, wheels_bundle.path)
    proc = old_exec(scratch, *wrapper_cmd(wheels_bundle.path),
                    env={"CONDORKIT_BUNDLE_CACHE": "/tmp/ckcache"})
    assert proc.returncode == 0, proc.stderr
    assert "python 3.9.2 started" in proc.stderr, proc.stderr
    doc = json.loads((scratch / "results-1.json").read_text())
    assert doc["python"] == "3.9.2" and doc["errors"] == 0
    # the tutorial's formula with the host's Pillow ImageStat: exactly the same numbers
    from PIL import Image, ImageStat

    for rec, path in zip(doc["records"], images, strict=True):
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            r, g, b = ImageStat.Stat(rgb).rms
        want = (0.241 * r * r + 0.691 * g * g + 0.068 * b * b) ** 0.5 / 256
        assert rec["luminance"] == want  # max |diff| = 0


def test_an_interpreter_bundle_from_here_stops_with_the_one_line_94(
        old_root: Path, tmp_path: Path, env_bundle: Any) -> None:
    scratch, _ = job_folder(tmp_path, env_bundle.path)
    proc = old_exec(scratch, *wrapper_cmd(env_bundle.path), env={"CONDORKIT_BUNDLE_CACHE": "off"})
    assert proc.returncode == 94, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("condorkit-wrapper: error:")]
    assert len(lines) == 1 and lines[0] == proc.stderr.strip().splitlines()[-1]
    assert f"needs glibc >= {env_bundle.glibc}, but" in lines[0] and "glibc 2.31" in lines[0]
