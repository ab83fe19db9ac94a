"""Wheel-set bundles: the job's packages for several CPython versions, no interpreter.

Owns ``condorkit bundle`` (its default kind): for each CPython version in ``pythons`` it asks pip
for the job's requirements as binary wheels of one manylinux platform (``pip download
--only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.X``), unpacks them into
``sets/cp3X/`` and packs all sets into ONE gzip tarball with a key=value manifest first
(``format=condorkit-wheels/1``, ``sets=cp39 cp310 ...``, ``glibc=`` the newest GLIBC symbol version
any shipped library needs). Debug information is stripped from ELF files that carry it (``strip
--strip-debug``, when binutils are installed; a stripped copy whose load segments would no longer
be page-aligned is thrown away). A file that is byte-identical in several sets (pure-Python
modules, the vendored libraries of one release) is stored once; later copies are hard links.

On the worker the wrapper (``wrappers/wrapper.sh``) runs the program with the worker's own
``python3`` and ``PYTHONPATH=sets/cp3X`` for its version; a worker without python3, or with a
version the bundle has no set for, fails its chunk with exit 93 and the reason. Because only
manylinux2014 wheels are accepted, the glibc floor is 2.17 unless a package needs more (measured
from the files, recorded in the manifest, checked by the wrapper: exit 94).

Requirements may carry ``# condorkit-bundle: exclude GLOB ...`` lines: files matching a GLOB
(relative to a set's root, e.g. ``PIL/_avif.*``) are not packed. The build refuses excludes that
leave a shipped extension without a library it links to (checked with ``ldd``).

Library code only: returns frozen dataclasses, prints nothing.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

from condorkit.errors import BundleError
from condorkit.model.bundle import (
    COMPRESSLEVEL,
    MANIFEST_NAME,
    BundleResult,
    _glibc_needed,
    _is_elf,
    _read_requirements,
    make_workdir,
    normalize_requirements,
    reuse_existing,
)
from condorkit.version import __version__

WHEELS_FORMAT = "condorkit-wheels/1"
#: in the key: a change of what the builder does to the files gives a new name
BUILD_RULES = "strip-debug-if-loadable"
DEFAULT_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
DEFAULT_PLATFORM = "manylinux2014_x86_64"
WHEELS_NAME_RE = re.compile(r"^ckwheels-[a-z0-9_]+-[0-9a-f]{16}\.tar\.gz$")
_EXCLUDE = re.compile(r"(?m)^\s*#\s*condorkit-bundle:\s*exclude\s+(.+?)\s*$")
_VERSION = re.compile(r"^3\.[0-9]{1,2}$")


def excludes(requirements_text: str) -> tuple[str, ...]:
    """The ``# condorkit-bundle: exclude GLOB ...`` patterns of a requirements text."""
    return tuple(g for m in _EXCLUDE.finditer(requirements_text) for g in m.group(1).split())


def _tag(version: str) -> str:
    return "cp" + version.replace(".", "")


def wheels_key(requirements: str, pythons: tuple[str, ...], platform: str) -> str:
    doc = {"format": WHEELS_FORMAT, "requirements": normalize_requirements(requirements),
           "pythons": list(pythons), "platform": platform, "rules": BUILD_RULES}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def wheels_name(requirements: str, pythons: tuple[str, ...] = DEFAULT_PYTHONS,
                platform: str = DEFAULT_PLATFORM) -> str:
    """``ckwheels-manylinux2014_x86_64-<16 hex>.tar.gz``: readable platform plus content key."""
    plat = re.sub(r"[^a-z0-9]+", "_", platform.lower())
    return f"ckwheels-{plat}-{wheels_key(requirements, pythons, platform)[:16]}.tar.gz"


def expected_wheels(out_dir: Path, requirements: Path | None,
                    pythons: tuple[str, ...] = DEFAULT_PYTHONS,
                    platform: str = DEFAULT_PLATFORM) -> Path:
    return out_dir / wheels_name(_read_requirements(requirements), pythons, platform)


def _check_pythons(pythons: tuple[str, ...]) -> tuple[str, ...]:
    bad = [p for p in pythons if not _VERSION.match(p)]
    if bad or not pythons:
        raise BundleError(f"bad Python versions {bad or list(pythons)}",
                          "give versions like --pythons 3.9,3.10,3.11")
    return tuple(sorted(set(pythons), key=lambda v: int(v.split(".")[1])))


def _download(req: Path, version: str, platform: str, dest: Path) -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
           "--quiet", "--only-binary=:all:", "--platform", platform, "--python-version", version,
           "--implementation", "cp", "-d", str(dest), "-r", str(req)]
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONHOME", "PYTHONPATH", "PIP_USER", "PIP_REQUIRE_VIRTUALENV")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=req.parent, env=env,
                              timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
    return proc.returncode == 0, tail


def _unpack_wheel(wheel: Path, dest: Path, skip: tuple[str, ...]) -> None:
    """Install a wheel's files the way pip lays them out in site-packages (purelib/platlib of
    ``.data`` merged into the root; scripts, headers and data are not needed by an import)."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            if name.endswith("/"):
                continue
            parts = name.split("/")
            if any(p in ("", ".", "..") for p in parts) or name.startswith("/"):
                raise BundleError(f"wheel {wheel.name} holds an unsafe name {name!r}",
                                  "use another version of that package")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            rel = "/".join(parts)
            if any(fnmatch.fnmatchcase(rel, g) for g in skip):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, 0o755 if mode & 0o111 else 0o644)


def _loadable(path: Path) -> bool:
    """True when every PT_LOAD segment of a 64-bit little-endian ELF file keeps its offset and
    address congruent modulo its alignment (``strip`` on a library that auditwheel's patchelf
    rewrote can break that: "ELF load command address/offset not page-aligned")."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return False
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    for i in range(phnum):
        h = data[phoff + i * phentsize: phoff + (i + 1) * phentsize]
        if len(h) < 56:
            return False
        if int.from_bytes(h[0:4], "little") != 1:  # PT_LOAD
            continue
        offset, vaddr = int.from_bytes(h[8:16], "little"), int.from_bytes(h[16:24], "little")
        align = max(int.from_bytes(h[48:56], "little"), 4096)
        if (vaddr - offset) % align:
            return False
    return True


def _strip_debug(root: Path) -> int:
    """``strip --strip-debug`` every ELF file of a set in place (wheels often ship the debug
    information: Pillow's _imaging is 3.3 MB with it, 0.7 MB without); returns bytes saved.
    Symbols stay, so tracebacks of crashes still name functions; RECORD hashes no longer match,
    which only ``pip`` would check (jobs never run pip on the bundle)."""
    strip = shutil.which("strip")
    if strip is None:
        return 0
    saved = 0
    for p in sorted(root.rglob("*")):
        if not (p.is_file() and not p.is_symlink() and _is_elf(p)
                and b".debug_info" in p.read_bytes()):
            continue
        before = p.stat().st_size
        tmp = p.with_name(p.name + ".stripped")
        proc = subprocess.run([strip, "--strip-debug", "-o", str(tmp), str(p)],
                              capture_output=True, check=False)
        if (proc.returncode == 0 and tmp.is_file() and tmp.stat().st_size < before
                and _loadable(tmp)):
            os.chmod(tmp, p.stat().st_mode & 0o777)
            os.replace(tmp, p)
            saved += before - p.stat().st_size
        else:
            tmp.unlink(missing_ok=True)
    return saved


def _missing_libraries(root: Path) -> list[str]:
    """``ldd`` over every extension module of a set (the libraries vendored in ``*.libs/``
    folders are loaded through them): the libraries it cannot find."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    elves = [p for p in root.rglob("*.so*") if p.is_file() and _is_elf(p)
             and not any(d.endswith(".libs") for d in p.relative_to(root).parts[:-1])]
    missing: list[str] = []
    for i in range(0, len(elves), 200):
        proc = subprocess.run([ldd, *map(str, elves[i:i + 200])], capture_output=True, text=True,
                              check=False, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                "LC_ALL": "C"})
        current = ""
        for line in proc.stdout.splitlines():
            if not line.startswith("\t"):
                current = line.rstrip(":")
            elif "=> not found" in line:
                missing.append(f"{Path(current).relative_to(root)} needs "
                               f"{line.split('=>')[0].strip()}")
    return missing


def _packages(root: Path) -> list[str]:
    out = []
    for d in sorted(root.glob("*.dist-info")):
        m = re.match(r"^(.+?)-([^-]+)\.dist-info$", d.name)
        if m:
            out.append(f"{m.group(1)}=={m.group(2)}")
    return out


def _pack(tar_path: Path, sets: dict[str, Path], manifest: dict[str, str]) -> tuple[int, int]:
    """Write the tarball: manifest, then each set; identical files after the first are hard
    links. Returns (members, bytes of regular files)."""
    first: dict[str, str] = {}
    members = 1
    total = 0
    entries: list[tuple[str, Path | None, str]] = [("sets", None, "")]
    for tag, root in sets.items():
        entries.append((f"sets/{tag}", None, ""))
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(root).as_posix()
            base = f"sets/{tag}" + ("" if rel_dir == "." else f"/{rel_dir}")
            for d in dirnames:
                entries.append((f"{base}/{d}", None, ""))
            for f in sorted(filenames):
                src = Path(dirpath) / f
                digest = hashlib.sha256(src.read_bytes()).hexdigest()
                arc = f"{base}/{f}"
                if digest in first:
                    entries.append((arc, None, first[digest]))
                else:
                    first[digest] = arc
                    entries.append((arc, src, ""))
    head = "".join(f"{k}={v}\n" for k, v in manifest.items()).encode()
    mtime = int(time.time())
    with tarfile.open(tar_path, "w:gz", compresslevel=COMPRESSLEVEL,
                      format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo(MANIFEST_NAME)
        ti.size, ti.mode, ti.mtime = len(head), 0o644, mtime
        tar.addfile(ti, io.BytesIO(head))
        total += len(head)
        for arc, source, link in entries:
            ti = tarfile.TarInfo(arc)
            ti.mtime = mtime
            members += 1
            if link:
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, link, 0o644
                tar.addfile(ti)
            elif source is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(ti)
            else:
                st = source.stat()
                ti.size, ti.mode = st.st_size, (0o755 if st.st_mode & 0o111 else 0o644)
                total += st.st_size
                with open(source, "rb") as fh:
                    tar.addfile(ti, fh)
    return members, total


def build_wheels(requirements: Path | None, out_dir: Path,
                 pythons: tuple[str, ...] = DEFAULT_PYTHONS, platform: str = DEFAULT_PLATFORM,
                 force: bool = False) -> BundleResult:
    """Build (or reuse) the wheel-set bundle for ``requirements``; see the module doc."""
    t0 = time.perf_counter()
    pythons = _check_pythons(pythons)
    text = _read_requirements(requirements)
    if requirements is None or not normalize_requirements(text):
        raise BundleError("a wheel-set bundle needs a requirements file with packages",
                          "list the job's packages in requirements.txt, or use --ship-python")
    key = wheels_key(text, pythons, platform)
    name = wheels_name(text, pythons, platform)
    out_dir = out_dir.resolve()
    final = out_dir / name
    reused = reuse_existing(final, key, t0, "sets", force)
    if reused is not None:
        return reused
    work = make_workdir(out_dir)
    skip = excludes(text)
    warnings: list[str] = []
    try:
        sets: dict[str, Path] = {}
        packages: dict[str, list[str]] = {}
        for version in pythons:
            tag = _tag(version)
            wheels = work / "wheels" / tag
            ok, why = _download(requirements.resolve(), version, platform, wheels)
            if not ok:
                warnings.append(f"no {platform} wheels for CPython {version}, left out: "
                                f"{why.splitlines()[-1] if why else 'pip failed'}")
                continue
            root = work / "sets" / tag
            root.mkdir(parents=True)
            for whl in sorted(wheels.glob("*.whl")):
                _unpack_wheel(whl, root, skip)
            _strip_debug(root)
            missing = _missing_libraries(root)
            if missing:
                raise BundleError(f"CPython {version}: {'; '.join(missing[:3])}",
                                  "an exclude in the requirements removes a library that a "
                                  "shipped module links to; narrow the exclude")
            sets[tag] = root
            packages[tag] = _packages(root)
        if not sets:
            raise BundleError(f"no CPython version in {', '.join(pythons)} has {platform} wheels "
                              f"for every requirement: {'; '.join(warnings)}",
                              "check the package names and versions, or use --ship-python")
        elves = [p for r in sets.values() for p in r.rglob("*") if p.is_file() and _is_elf(p)]
        glibc = _glibc_needed(elves) if elves else "0.0"
        union = sorted({p for ps in packages.values() for p in ps}, key=str.lower)
        manifest = {
            "format": WHEELS_FORMAT, "name": name, "key": key, "sets": " ".join(sets),
            "platform": platform, "os": "Linux", "arch": platform.split("_", 1)[1],
            "glibc": glibc, "built_with": f"condorkit {__version__}",
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "packages": " ".join(union),
            **{f"packages_{t}": " ".join(ps) for t, ps in packages.items()},
            "excludes": " ".join(skip),
        }
        partial = work / (name + ".partial")
        members, _ = _pack(partial, sets, manifest)
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return BundleResult(final, name, key, False, final.stat().st_size, time.perf_counter() - t0,
                        " ".join(sets), manifest["arch"], glibc, members, tuple(union),
                        tuple(warnings))
