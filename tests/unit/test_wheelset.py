"""Wheel-set bundles (condorkit.model.wheelset, what `condorkit bundle` makes): manylinux2014
wheels for several CPython versions in one deduplicated tarball that reaches the glibc 2.17
floor; the worker's own python3 picks its set; the node cache unpacks a bundle once per node.
Needs the package index on first use (pip caches the wheels)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from condorkit.demo import write_corpus
from condorkit.errors import BundleError
from condorkit.model.bundle import read_manifest
from condorkit.model.bundlecheck import bundle_check
from condorkit.model.wheelset import DEFAULT_PYTHONS, build_wheels, excludes, wheels_name

REPO = Path(__file__).resolve().parents[2]


def test_the_photodemo_bundle_is_small_portable_and_deduplicated(wheels_bundle: Any) -> None:
    m = read_manifest(wheels_bundle.path)
    assert m["format"] == "condorkit-wheels/1"
    assert m["sets"].split() == ["cp" + v.replace(".", "") for v in DEFAULT_PYTHONS]
    assert m["glibc"] == "2.17"  # manylinux2014: the floor the issue asks for
    assert wheels_bundle.size_bytes <= 30_000_000
    with tarfile.open(wheels_bundle.path) as tar:
        members = tar.getmembers()
    assert members[0].name == "condorkit-bundle.txt"
    names = {x.name for x in members}
    # what the job never imports is left out, and nothing else of PIL
    assert not [n for n in names if "_avif" in n or "libavif" in n or "_imagingft" in n]
    assert any(n.startswith("sets/cp39/PIL/_imaging.cpython-39") for n in names)
    assert any(n.startswith("sets/cp313/PIL/JpegImagePlugin.py") for n in names)
    imaging = [x for x in members if x.name.startswith("sets/cp312/PIL/_imaging.") and x.isfile()]
    if shutil.which("strip"):  # debug information stripped: 3.3 MB -> ~0.7 MB
        assert imaging and imaging[0].size < 1_500_000
    links = [x for x in members if x.islnk()]
    assert links and all(x.linkname.startswith("sets/") for x in links)
    check = bundle_check(wheels_bundle.path)
    assert check.members == len(members) and check.bytes < 40_000_000


def test_excludes_are_read_from_the_requirements() -> None:
    text = "pillow\n# condorkit-bundle: exclude A/* b.so\n#condorkit-bundle:exclude c\n# other\n"
    assert excludes(text) == ("A/*", "b.so", "c")
    assert wheels_name(text) != wheels_name("pillow\n")


def test_an_exclude_that_breaks_a_module_is_refused(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("pillow\n# condorkit-bundle: exclude pillow.libs/libjpeg-*\n")
    with pytest.raises(BundleError) as err:
        build_wheels(req, tmp_path / "out", pythons=("3.12",))
    assert "needs libjpeg" in str(err.value) and "narrow the exclude" in err.value.hint
    assert not list((tmp_path / "out").glob("*.tar.gz"))


def scratch_with(tmp_path: Path, bundle: Path, n: int = 3) -> Path:
    scratch = tmp_path / "scratch"
    scratch.mkdir(parents=True)
    shutil.copy(bundle, scratch / bundle.name)
    for name in ("wrapper.sh", "ckjob.py"):
        (scratch / name).write_bytes(
            resources.files("condorkit.wrappers").joinpath(name).read_bytes())
    shutil.copy(REPO / "examples" / "photodemo" / "luminance.py", scratch / "luminance.py")
    files = write_corpus(tmp_path / "img", n, sizes=((160, 120),))
    header = {"format": "condorkit-rows/1", "start": 1, "count": n, "key": "k",
              "columns": ["url", "year"]}
    rows = [json.dumps({"row": i + 1, "line": i + 1, "url": str(f.path), "year": f.year})
            for i, f in enumerate(files)]
    (scratch / "rows-1.jsonl").write_text("\n".join([json.dumps(header), *rows]) + "\n")
    return scratch


def run(scratch: Path, bundle: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": str(scratch), "CONDORKIT_BUNDLE_CACHE": "off",
            "PHOTODEMO_KERNEL": "pillow"}
    return subprocess.run(["bash", "wrapper.sh", "-b", bundle.name, "-k",
                           bundle_check(bundle).arg, "luminance.py", "rows-1.jsonl",
                           "results-1.json"], cwd=scratch, capture_output=True, text=True,
                          timeout=120, env={**base, **env})


def test_the_workers_python_runs_the_job_with_the_bundles_pillow(
        tmp_path: Path, wheels_bundle: Any) -> None:
    scratch = scratch_with(tmp_path, wheels_bundle.path)
    # the host's packages must not leak in: an empty user site and no PYTHONPATH of ours
    proc = run(scratch, wheels_bundle.path, CONDORKIT_PYTHON=sys.executable,
               PYTHONPATH="/nonexistent")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((scratch / "results-1.json").read_text())
    assert doc["errors"] == 0 and len(doc["records"]) == 3
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert "unpacked in" in proc.stderr and "sha256 ok" in proc.stderr
    assert (scratch / "_ckenv" / "sets" / tag / "PIL" / "Image.py").is_file()


def test_a_python_the_bundle_has_no_set_for_exits_93(tmp_path: Path,
                                                     wheels_bundle: Any) -> None:
    scratch = scratch_with(tmp_path, wheels_bundle.path, 1)
    fake = tmp_path / "python3.8"
    fake.write_text("#!/bin/sh\necho 'cpython cp38 3.8.10'\n")
    fake.chmod(0o755)
    proc = run(scratch, wheels_bundle.path, CONDORKIT_PYTHON=str(fake))
    assert proc.returncode == 93, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("condorkit-wrapper: error: ") and "is CPython 3.8" in last
    assert "has packages only for 3.9 3.10" in last
    proc = run(scratch, wheels_bundle.path, CONDORKIT_PYTHON=str(tmp_path / "none"))
    assert proc.returncode == 93 and "has no " in proc.stderr.strip().splitlines()[-1]


def test_the_node_cache_unpacks_once_and_later_jobs_reuse_it(tmp_path: Path,
                                                            wheels_bundle: Any) -> None:
    cache = tmp_path / "cache"
    outs = []
    for i in range(3):
        scratch = scratch_with(tmp_path / f"job{i}", wheels_bundle.path, 1)
        proc = run(scratch, wheels_bundle.path, CONDORKIT_PYTHON=sys.executable,
                   CONDORKIT_BUNDLE_CACHE=str(cache))
        assert proc.returncode == 0, proc.stderr
        assert not (scratch / "_ckenv").exists()
        outs.append(proc.stderr)
    assert "unpacked into the node cache" in outs[0]
    assert all("reused from the node cache" in o for o in outs[1:])
    sha = bundle_check(wheels_bundle.path).sha256
    assert sorted(p.name for p in cache.iterdir()) == [sha, f"{sha}.lock"]
    assert oct(cache.stat().st_mode & 0o777) == "0o700"


def test_concurrent_jobs_unpack_once(tmp_path: Path, wheels_bundle: Any) -> None:
    cache = tmp_path / "cache"
    scratches = [scratch_with(tmp_path / f"job{i}", wheels_bundle.path, 1) for i in range(4)]
    env = {"PATH": os.environ["PATH"], "CONDORKIT_BUNDLE_CACHE": str(cache),
           "CONDORKIT_PYTHON": sys.executable, "PHOTODEMO_KERNEL": "pillow"}
    procs = [subprocess.Popen(["bash", "wrapper.sh", "-b", wheels_bundle.name, "-k",
                               bundle_check(wheels_bundle.path).arg, "luminance.py",
                               "rows-1.jsonl", "results-1.json"], cwd=s, env=env,
                              stderr=subprocess.PIPE, text=True) for s in scratches]
    errs = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errs
    assert sum("unpacked into the node cache" in e for e in errs) == 1
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("how", ["other-owner", "symlink", "relative"])
def test_an_unsafe_cache_folder_is_not_used(tmp_path: Path, wheels_bundle: Any,
                                            how: str) -> None:
    cache = tmp_path / "cache"
    if how == "symlink":
        (tmp_path / "real").mkdir()
        cache.symlink_to(tmp_path / "real")
    elif how == "other-owner":
        if os.geteuid() != 0:
            pytest.skip("needs root to make a folder owned by someone else")
        cache.mkdir()
        os.chown(cache, 65534, 65534)
    scratch = scratch_with(tmp_path, wheels_bundle.path, 1)
    value = "cache" if how == "relative" else str(cache)
    proc = run(scratch, wheels_bundle.path, CONDORKIT_PYTHON=sys.executable,
               CONDORKIT_BUNDLE_CACHE=value)
    assert proc.returncode == 0, proc.stderr
    assert (scratch / "_ckenv").is_dir()  # unpacked per job instead
    assert " unpacked in " in proc.stderr


def test_a_stripped_library_is_kept_only_when_it_stays_loadable(tmp_path: Path) -> None:
    from condorkit.model.wheelset import _loadable

    real = Path(sys.executable).resolve()
    assert _loadable(real)
    data = bytearray(real.read_bytes())
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    for i in range(int.from_bytes(data[0x38:0x3A], "little")):
        h = phoff + i * phentsize
        if int.from_bytes(data[h:h + 4], "little") == 1:  # the first PT_LOAD: shift its offset
            off = int.from_bytes(data[h + 8:h + 16], "little") + 1
            data[h + 8:h + 16] = off.to_bytes(8, "little")
            break
    broken = tmp_path / "broken.so"
    broken.write_bytes(bytes(data))
    assert not _loadable(broken)  # what `strip` does to some patchelf'ed libraries
    (tmp_path / "text.so").write_text("not an ELF file")
    assert not _loadable(tmp_path / "text.so")


def test_the_left_out_parts_are_only_what_the_photodemo_never_opens(
        tmp_path: Path, wheels_bundle: Any) -> None:
    with tarfile.open(wheels_bundle.path) as tar:
        tar.extractall(tmp_path, filter="data")
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    probe = ("import io, PIL\nfrom PIL import Image, features\n"
             "im = Image.new('RGB', (64, 48), (10, 200, 30))\n"
             "for fmt in ['PNG', 'GIF', 'WEBP', 'TIFF', 'BMP', 'JPEG', 'JPEG2000']:\n"
             "    b = io.BytesIO(); im.save(b, fmt); b.seek(0)\n"
             "    with Image.open(b) as j: j.load(); assert j.size == (64, 48), fmt\n"
             "print(PIL.__file__, features.check('avif'), features.check('freetype2'))\n")
    proc = subprocess.run([sys.executable, "-s", "-c", probe], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"],
                               "PYTHONPATH": str(tmp_path / "sets" / tag)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    where, avif, ft = proc.stdout.split()
    assert where.startswith(str(tmp_path / "sets" / tag)) and (avif, ft) == ("False", "False")
