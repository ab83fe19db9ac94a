"""The environment bundle on the real HTCondor test pool: workers run Python 3.13 without Pillow,
the submit side 3.11 with it. The photodemo's `import PIL` is satisfied only by the bundle, the
results record the bundle's Python, and a bundle a worker cannot run fails its chunk with the
wrapper's exit code and reason, which `condorkit status` shows."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import re
import shutil
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from condorkit.wrappers import ckjob
from support.pooljobs import ck, ck_json, remove_leftovers

from condorkit.demo import make_demo_job

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = pytest.mark.condor

REPO = Path(__file__).resolve().parents[2]
TIMING = re.compile(r"condorkit-wrapper: bundle \S+: (\d+) members \((\d+) MB\) (?:unpacked|"
                    r"unpacked into the node cache|reused from the node cache) in ([0-9.]+) s "
                    r"\(sha256 ok\); python (\S+) started in ([0-9.]+) s")


def photodemo_job(folder: Path, bundle_name: str, n_images: int, chunk: int) -> Any:
    demo = make_demo_job(folder, n_images=n_images, sizes=((320, 240), (240, 320)))
    for d in (folder / "results", folder / "logs"):
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o1777)  # written by the pool user (uid 2000)
    shutil.copy(REPO / "examples" / "photodemo" / "luminance.py", folder / "luminance.py")
    (folder / "condorkit.toml").write_text(
        'program = "luminance.py"\n'
        f"chunk = {chunk}\n"
        f'bundle = "{bundle_name}"\n'
        'request_memory = "256MB"\n'
        'request_disk = "400MB"\n'
        "max_retries = 0\n"
        "job_lease_duration = 20\n")
    return demo


@pytest.fixture
def job_dirs(pool: Pool) -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for d in made:
        remove_leftovers(d, pool.schedd())


def host_luminance(paths: list[Path]) -> list[float]:
    spec = importlib.util.spec_from_file_location(
        "photodemo_luminance", REPO / "examples" / "photodemo" / "luminance.py")
    assert spec and spec.loader
    sys.path.insert(0, str(REPO / "wrappers"))  # luminance.py imports ckjob
    try:
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(REPO / "wrappers"))
    return [mod.luminance(str(p)) for p in paths]


def test_photodemo_runs_on_foreign_workers_with_pillow_only_from_the_bundle(
        pool: Pool, env_bundle: Any, job_dirs: list[Path]) -> None:
    # the workers: another Python, and no Pillow
    worker = pool.exec(["python3", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
    assert worker.returncode == 0, worker.stderr
    worker_py = worker.stdout.strip()
    assert worker_py.split(".")[:2] != env_bundle.python.split(".")[:2]
    no_pil = pool.exec(["python3", "-c", "import PIL"])
    assert "No module named 'PIL'" in no_pil.stderr

    d = pool.job_dir("bundle")
    job_dirs.append(d)
    demo = photodemo_job(d, env_bundle.name, n_images=8, chunk=4)
    shutil.copy(env_bundle.path, d / env_bundle.name)

    sub = ck_json("submit", cwd=d)
    assert sub["record"]["chunks"] and len(sub["record"]["chunks"]) == 2
    submitted = Path(sub["record"]["submit_file"]).read_text()
    assert f"-b {env_bundle.name}" in submitted and env_bundle.name in submitted
    waited = ck("wait", "--timeout", "300", cwd=d, timeout=400)
    assert waited.returncode == 0, waited.stderr

    expected = host_luminance([f.path for f in demo.files])
    for start in (1, 5):
        doc = json.loads((d / "results" / f"results-{start}.json").read_text())
        assert ckjob.check_results(doc, start, 4) == []
        assert doc["python"] == env_bundle.python != worker_py
        got = [r["luminance"] for r in doc["records"]]
        assert got == pytest.approx(expected[start - 1:start + 3], rel=1e-12)
        log = (d / "logs" / f"chunk-{start}.err").read_text()
        m = TIMING.search(log)
        assert m, log
        assert m.group(4) == env_bundle.python
        print(f"chunk {start}: bundle {env_bundle.size_bytes / 1e6:.1f} MB, {m.group(1)} members "
              f"({m.group(2)} MB unpacked), unpack {m.group(3)} s, python start {m.group(5)} s")


def fake_arch_bundle(path: Path) -> None:
    """A bundle-shaped tarball that claims another CPU architecture."""
    manifest = ("format=condorkit-bundle/1\npython=3.11.7\npython_exe=python/bin/python3\n"
                "venv=venv\nlibdir=python/lib\nos=Linux\narch=sparc64\nglibc=2.17\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = manifest.encode()
        ti = tarfile.TarInfo("condorkit-bundle.txt")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue()))


def test_a_bundle_the_worker_cannot_run_fails_with_the_reason_in_status(
        pool: Pool, job_dirs: list[Path]) -> None:
    d = pool.job_dir("bundle-arch")
    job_dirs.append(d)
    name = "ckenv-py3.11.7-linux_sparc64-0123456789abcdef.tar.gz"
    photodemo_job(d, name, n_images=2, chunk=2)
    fake_arch_bundle(d / name)

    ck_json("submit", cwd=d)
    waited = ck("wait", "--timeout", "300", cwd=d, timeout=400)
    assert waited.returncode == 8, waited.stderr  # RunFailed: a chunk without results
    st = ck_json("status", cwd=d)
    (chunk,) = st["chunks"]
    assert chunk["state"] == "failed" and chunk["exit_code"] == 94
    assert chunk["wrapper_error"].startswith("condorkit-wrapper: error: bundle "
                                             f"'{name}' is built for sparc64")
    assert "condorkit-wrapper: error:" in chunk["reason"]
    log = (d / "logs" / "chunk-1.err").read_text().strip().splitlines()
    assert log[-1] == chunk["wrapper_error"]
