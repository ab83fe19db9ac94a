"""condorkit.model.bundle: content-derived names, reuse, atomic builds, what the tarball holds,
and a real bundle running a chunk through the wrapper with Pillow taken from the bundle. One real
bundle is built per session (the ``env_bundle`` fixture in tests/conftest.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from condorkit.wrappers import ckjob

from condorkit.errors import BundleError
from condorkit.model.bundle import (
    BUILD_PREFIX,
    BUNDLE_FORMAT,
    MANIFEST_NAME,
    NAME_RE,
    PythonInfo,
    build_bundle,
    bundle_name,
    inspect_python,
    read_manifest,
)
from condorkit.model.bundlecheck import bundle_check

INFO = PythonInfo(Path("/opt/py/bin/python3.11"), "cpython", "3.11.7", Path("/opt/py"),
                  Path("/opt/py/lib/python3.11"), Path("/opt/py/lib/python3.11/lib-dynload"),
                  "Linux", "x86_64", "glibc 2.36")

PROBE = '''import json, os, sys, time
import ckjob
import PIL
from PIL import Image
header, rows = ckjob.read_rows(sys.argv[1])
records = [{"row": r["row"], "url": r["url"], "year": r["year"], "luminance": 0.5} for r in rows]
doc = ckjob.make_results(header, records, time.time(), 0.001, "probe.py",
                         {"pil": PIL.__file__, "prefix": sys.prefix, "base": sys.base_prefix,
                          "exe": sys.executable, "ld": os.environ.get("LD_LIBRARY_PATH", "")})
ckjob.write_results(sys.argv[2], doc)
'''


# ------------------------------------------------------------------------------ names


def test_name_is_stable_and_readable() -> None:
    name = bundle_name("pillow\n", INFO)
    assert name == bundle_name("pillow\n", INFO)
    assert NAME_RE.match(name), name
    assert name.startswith("ckenv-py3.11.7-linux_x86_64-")


def test_name_ignores_line_endings_and_trailing_space() -> None:
    assert bundle_name("pillow\r\nnumpy  \r\n\n", INFO) == bundle_name("pillow\nnumpy", INFO)


@pytest.mark.parametrize("change", [
    {"requirements": "pillow==10.0\n"},
    {"requirements": "pillow\nrequests\n"},
    {"version": "3.11.8"},
    {"version": "3.12.1"},
    {"machine": "aarch64"},
    {"system": "Darwin"},
    {"fmt": "condorkit-bundle/2"},
])
def test_name_changes_with_content(change: dict[str, str]) -> None:
    req = change.pop("requirements", "pillow\n")
    fmt = change.pop("fmt", BUNDLE_FORMAT)
    info = dataclasses.replace(INFO, **change)
    assert bundle_name(req, info, fmt) != bundle_name("pillow\n", INFO)


def test_inspect_python_finds_the_base_interpreter() -> None:
    info = inspect_python()
    assert info.version == ".".join(map(str, sys.version_info[:3]))
    assert info.executable.is_file() and not info.executable.is_symlink()
    assert info.base_prefix == Path(sys.base_prefix)
    assert (info.stdlib / "os.py").is_file()
    assert info.dynload.name == "lib-dynload"
    assert info.machine == platform.machine()


def test_missing_python_and_requirements_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not found"):
        inspect_python(tmp_path / "no-python")
    with pytest.raises(BundleError, match="does not exist") as exc:
        build_bundle(tmp_path / "requirements.txt", tmp_path / "out")
    assert "pass -r FILE" in exc.value.hint
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ the real bundle


def test_bundle_is_built_once_and_named_from_its_content(env_bundle: Any) -> None:
    b = env_bundle
    assert not b.reused
    assert b.path.is_file() and b.path.name == b.name and NAME_RE.match(b.name)
    assert b.size_bytes == b.path.stat().st_size > 1_000_000
    assert b.python == ".".join(map(str, sys.version_info[:3]))
    assert b.arch == platform.machine()
    assert any(p.lower().startswith("pillow==") for p in b.packages)
    assert not any(p.lower().startswith("pip==") for p in b.packages)
    assert b.name == bundle_name(b.path.parent.parent.joinpath("requirements.txt").read_text(),
                                 inspect_python())
    assert sorted(p.name for p in b.path.parent.iterdir()) == [b.name]  # no leftovers


def test_unchanged_bundle_is_reused(env_bundle: Any) -> None:
    before = env_bundle.path.stat()
    again = build_bundle(env_bundle.path.parent.parent / "requirements.txt",
                         env_bundle.path.parent)
    assert again.reused and again.path == env_bundle.path and again.key == env_bundle.key
    assert again.size_bytes == env_bundle.size_bytes and again.glibc == env_bundle.glibc
    after = env_bundle.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_manifest_records_what_a_worker_must_have(env_bundle: Any) -> None:
    m = read_manifest(env_bundle.path)
    assert m["format"] == BUNDLE_FORMAT and m["key"] == env_bundle.key
    assert m["arch"] == platform.machine() and m["os"] == "Linux"
    major, minor = (int(x) for x in m["glibc"].split(".")[:2])
    host_major, host_minor = (int(x) for x in platform.libc_ver()[1].split(".")[:2])
    assert major == 2 and 17 <= minor <= host_minor and host_major == 2
    assert m["python_exe"] == f"python/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    assert m["ld_so"].startswith("/") and "ld-linux" in m["ld_so"]
    assert int(m["files"]) == env_bundle.files


def test_tarball_holds_a_pruned_interpreter_and_the_packages(env_bundle: Any) -> None:
    short = f"{sys.version_info[0]}.{sys.version_info[1]}"
    lib = f"python/lib/python{short}"
    with tarfile.open(env_bundle.path, "r:gz") as tar:
        members = tar.getmembers()
    names = {m.name for m in members}
    assert members[0].name == MANIFEST_NAME
    assert len(members) == env_bundle.files
    for must in (f"python/bin/python{short}", f"{lib}/os.py", f"{lib}/lib-dynload",
                 f"{lib}/encodings/__init__.py", "venv/pyvenv.cfg", "venv/bin/python",
                 f"venv/lib/python{short}/site-packages/PIL/__init__.py"):
        assert must in names, must
    if sys.version_info < (3, 12) or any("libpython" in n for n in names):
        assert any(n.startswith("python/lib/libpython") for n in names)
    for banned in ("/test/", "/idlelib/", "/tkinter/", "/ensurepip/", "/site-packages/pip/",
                   "/config-"):
        assert not any(banned in n for n in names), banned
    assert not any(n.endswith((".a", ".opt-1.pyc", ".opt-2.pyc")) for n in names)
    dynload = [n for n in names if n.startswith(f"{lib}/lib-dynload/")]
    assert any("_ssl" in n for n in dynload)
    assert not any("_tkinter" in n or "_testcapi" in n for n in dynload)
    for m in members:
        assert m.uid == 0 and m.gid == 0 and not m.name.startswith("/") and ".." not in m.name
        assert m.isfile() or m.isdir() or m.issym()
        if m.issym():
            assert not m.linkname.startswith("/")


def test_failed_build_leaves_nothing_that_looks_usable(tmp_path: Path) -> None:
    # a killed build's folder from days ago is cleaned, a running one's (fresh) is kept
    out = tmp_path / "out"
    old, fresh = out / f"{BUILD_PREFIX}old", out / f"{BUILD_PREFIX}fresh"
    for d in (old, fresh):
        (d / "venv").mkdir(parents=True)
    past = time.time() - 3 * 86400
    os.utime(old, (past, past))
    req = tmp_path / "requirements.txt"
    req.write_text("./no-such-package-1.0-py3-none-any.whl\n")
    with pytest.raises(BundleError, match="pip install") as exc:
        build_bundle(req, out)
    assert "no-such-package" in str(exc.value)
    assert sorted(p.name for p in out.iterdir()) == [fresh.name]


# ------------------------------------------------------------------------------ running it


def scratch_for(tmp_path: Path, bundle: Path) -> Path:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    shutil.copy(bundle, scratch / bundle.name)
    (scratch / "wrapper.sh").write_bytes(
        resources.files("condorkit.wrappers").joinpath("wrapper.sh").read_bytes())
    (scratch / "ckjob.py").write_bytes(
        resources.files("condorkit.wrappers").joinpath("ckjob.py").read_bytes())
    (scratch / "probe.py").write_text(PROBE)
    header = {"format": ckjob.ROWS_FORMAT, "start": 1, "count": 1, "key": "k",
              "columns": ["url", "year"]}
    row = {"row": 1, "line": 1, "url": "/x.jpg", "year": 1900}
    (scratch / "rows-1.jsonl").write_text(json.dumps(header) + "\n" + json.dumps(row) + "\n")
    return scratch


def test_wrapper_runs_the_program_with_the_bundled_python_and_pillow(
        tmp_path: Path, env_bundle: Any) -> None:
    scratch = scratch_for(tmp_path, env_bundle.path)
    # a clean environment whose python3 (if any) is not the bundle's: the bundle must not care
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": "/nonexistent",
           "CONDORKIT_PYTHON": "/nonexistent/python3", "CONDORKIT_BUNDLE_CACHE": "off"}
    proc = subprocess.run(["bash", "wrapper.sh", "-b", env_bundle.name, "-k",
                           bundle_check(env_bundle.path).arg, "probe.py",
                           "rows-1.jsonl", "results-1.json"], cwd=scratch, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((scratch / "results-1.json").read_text())
    assert ckjob.check_results(doc, 1, 1, "k") == []
    env_dir = scratch / "_ckenv"
    assert doc["python"] == env_bundle.python
    assert Path(doc["pil"]).is_relative_to(env_dir / "venv")
    assert doc["prefix"] == str(env_dir / "venv") and doc["base"] == str(env_dir / "python")
    assert doc["ld"].split(":")[0] == str(env_dir / "python" / "lib")
    assert "unpacked in" in proc.stderr and f"python {env_bundle.python} started" in proc.stderr
