"""The built wheel carries templates, wrappers, html and examples, and works outside the tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True)
    return next(out.glob("condorkit-*.whl"))


def test_wheel_contains_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("condorkit/templates/submit.sub.j2", "condorkit/wrappers/wrapper.sh",
                     "condorkit/wrappers/ckjob.py", "condorkit/examples/photodemo/luminance.py",
                     "condorkit/examples/photodemo/condorkit.toml"):
        assert required in names
    assert any(n.startswith("condorkit/report/html/") and n.endswith(".html") for n in names)


def test_mksubmit_from_a_fresh_venv_outside_the_tree(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # mksubmit needs jinja2 only: htcondor is imported lazily, so it is left out here on purpose
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-deps", str(wheel), "jinja2", "markupsafe"], check=True,
                   capture_output=True)
    job = tmp_path / "job"
    job.mkdir()
    (job / "luminance.py").write_text("# program\n")
    (job / "manifest.txt").write_text("".join(f"/img/{i}.jpg {1900 + i}\n" for i in range(5)))
    proc = subprocess.run([str(venv / "bin" / "mksubmit"), "2"], cwd=job, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# condorkit") and "queue start,count from (" in proc.stdout
    assert (job / ".condorkit" / "wrapper.sh").read_bytes() == \
        (REPO / "wrappers" / "wrapper.sh").read_bytes()
    where = subprocess.run([str(py), "-c", "import importlib.resources as r;"
                            "print(r.files('condorkit.templates').joinpath('submit.sub.j2'))"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv)) and str(REPO) not in where
