"""Job environment bundles: one tarball that carries a Python and the job's packages to a worker.

Owns ``condorkit bundle``: it builds a virtualenv (the ``virtualenv`` package) from a base
CPython, installs the job's requirements into it with that venv's pip, and packs ONE gzip tarball
holding the base interpreter (its pruned prefix: no tests, idlelib, tkinter, ensurepip, static
library, optimized .pyc), the non-glibc shared libraries it and the packages need, and the venv's
site-packages. The wrapper (``wrappers/wrapper.sh``) unpacks it in the scratch folder, points the
venv at the unpacked interpreter and runs the program there, so the worker's own Python (any
version, or none) does not matter; only the CPU architecture and a new enough glibc do, and both
are recorded in a small manifest (:data:`MANIFEST_NAME`) inside the tarball.

The tarball's name is derived from its content (requirements text, Python version, OS and
architecture, :data:`BUNDLE_FORMAT`): an unchanged bundle is reused, a changed one gets a new name.
A build happens in a hidden temporary folder next to the output and appears by one rename, so a
failed or killed build leaves nothing that looks usable. Layout inside the tarball::

    condorkit-bundle.txt          key=value manifest (format, python, arch, glibc, ...)
    python/bin/pythonX.Y          the base interpreter (+ python3, python symlinks)
    python/lib/*.so*              libpython and other non-glibc shared libraries
    python/lib/pythonX.Y/         the pruned standard library, lib-dynload included
    venv/pyvenv.cfg               rewritten by the wrapper (``home`` = unpacked python/bin)
    venv/bin/python*              relative symlinks to ../../python/bin/pythonX.Y
    venv/lib/pythonX.Y/site-packages/

Library code only: returns frozen dataclasses, prints nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from condorkit.errors import BundleError
from condorkit.version import __version__

BUNDLE_FORMAT = "condorkit-bundle/1"
MANIFEST_NAME = "condorkit-bundle.txt"
PREFIX = "python"
VENV = "venv"
BUILD_PREFIX = ".ckenv-build-"
NAME_RE = re.compile(r"^ckenv-py[0-9.]+-[a-z0-9_]+-[0-9a-f]{16}\.tar\.gz$")
COMPRESSLEVEL = 6

# Shared libraries that belong to the C library itself: never shipped (they must match the
# worker's kernel interface and ld.so), so the bundle needs a worker glibc at least as new as the
# newest GLIBC_x.y symbol version any shipped file references.
_GLIBC_SONAMES = re.compile(
    r"^(ld-linux.*|ld64\.so.*|libc\.so\..*|libm\.so\..*|libmvec\.so\..*|libpthread\.so\..*"
    r"|libdl\.so\..*|librt\.so\..*|libutil\.so\..*|libresolv\.so\..*|libanl\.so\..*"
    r"|libBrokenLocale\.so\..*|libnss_.*|libthread_db\.so\..*|linux-vdso.*|linux-gate.*)$")
_GLIBC_VERSION = re.compile(rb"GLIBC_([0-9]+)\.([0-9]+)(?:\.([0-9]+))?\x00")

# Pruned from the standard library: tests, GUI and IDE, pip bootstrap, build-only files.
_PRUNE_STDLIB_TOP = ("site-packages", "dist-packages", "idlelib", "tkinter", "turtledemo",
                     "ensurepip", "turtle.py", "__phello__")
_PRUNE_ANY_DIR = ("test", "tests", "idle_test")
_PRUNE_DYNLOAD = re.compile(r"^(_test.*|_ctypes_test.*|_xxtestfuzz.*|xxlimited.*|_tkinter.*"
                            r"|xxsubtype.*)$")
# Not packed from the venv's site-packages: the build tool (the job does not install on the
# worker) unless the requirements ask for it.
_BUILD_TOOLS = ("pip",)

_INTROSPECT = r"""
import json, os, platform, sys, sysconfig
base = getattr(sys, "_base_executable", None) or sys.executable
if sys.prefix != sys.base_prefix and not os.path.isfile(base):
    base = sys.executable
dyn = [p for p in sys.path if p.rstrip("/").endswith("lib-dynload")]
print(json.dumps({
    "implementation": sys.implementation.name,
    "version": "%d.%d.%d" % sys.version_info[:3],
    "executable": os.path.realpath(base),
    "base_prefix": sys.base_prefix,
    "stdlib": sysconfig.get_paths(vars={"base": sys.base_prefix,
                                        "installed_base": sys.base_prefix})["stdlib"],
    "dynload": dyn[0] if dyn else "",
    "system": platform.system(),
    "machine": platform.machine(),
    "libc": list(platform.libc_ver()),
}))
"""


@dataclass(frozen=True)
class PythonInfo:
    """The base interpreter a bundle ships (found by running it)."""

    executable: Path  # the real binary of the base (not venv) interpreter
    implementation: str
    version: str  # "3.11.7"
    base_prefix: Path
    stdlib: Path
    dynload: Path
    system: str  # "Linux"
    machine: str  # "x86_64"
    libc: str  # "glibc 2.36"

    @property
    def short(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class BundleResult:
    """What ``condorkit bundle`` made (or found already made)."""

    path: Path
    name: str
    key: str
    reused: bool
    size_bytes: int
    build_s: float
    python: str
    arch: str
    glibc: str
    files: int
    packages: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def inspect_python(python: str | Path | None = None) -> PythonInfo:
    """Run ``python`` (default: the interpreter running condorkit) and describe its base."""
    exe = str(python) if python else sys.executable
    found = shutil.which(exe) if os.sep not in exe else exe
    if not found or not os.path.isfile(found):
        raise BundleError(f"Python interpreter {exe!r} not found",
                          "pass --python with the path of a CPython 3 interpreter")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
    try:
        proc = subprocess.run([found, "-I", "-c", _INTROSPECT], capture_output=True, text=True,
                              timeout=60, env=env, check=False)
    except OSError as exc:
        raise BundleError(f"cannot run {found}: {exc}",
                          "pass --python with a working CPython 3") from exc
    if proc.returncode != 0:
        raise BundleError(f"{found} failed to describe itself: {proc.stderr.strip()[-400:]}",
                          "pass --python with a working CPython 3")
    d = json.loads(proc.stdout)
    if d["implementation"] != "cpython":
        raise BundleError(f"{found} is {d['implementation']}, not CPython",
                          "bundles ship CPython; pass --python with a CPython 3 interpreter")
    libc = " ".join(x for x in d["libc"] if x)
    if d["system"] != "Linux" or not libc.startswith("glibc"):
        raise BundleError(f"bundles can be built only on Linux with glibc (this is "
                          f"{d['system']}, C library {libc or 'unknown'!r})",
                          "build the bundle on a Linux machine like the workers")
    if not d["dynload"]:
        raise BundleError(f"{found} has no lib-dynload folder on sys.path",
                          "use a standard CPython installation (pyenv, python.org, distro)")
    return PythonInfo(Path(d["executable"]), d["implementation"], d["version"],
                      Path(d["base_prefix"]), Path(d["stdlib"]), Path(d["dynload"]),
                      d["system"], d["machine"], libc)


def normalize_requirements(text: str) -> str:
    """The requirements text as it enters the bundle's key (line endings and trailing space)."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip() + "\n" if any(lines) else ""


def bundle_key(requirements: str, info: PythonInfo, fmt: str = BUNDLE_FORMAT) -> str:
    """sha256 over everything that decides a bundle's content."""
    doc = {"format": fmt, "requirements": normalize_requirements(requirements),
           "implementation": info.implementation, "python": info.version,
           "system": info.system, "machine": info.machine}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def bundle_name(requirements: str, info: PythonInfo, fmt: str = BUNDLE_FORMAT) -> str:
    """``ckenv-py3.11.7-linux_x86_64-<16 hex>.tar.gz``: readable parts plus the content key."""
    plat = re.sub(r"[^a-z0-9]+", "_", f"{info.system}_{info.machine}".lower())
    return f"ckenv-py{info.version}-{plat}-{bundle_key(requirements, info, fmt)[:16]}.tar.gz"


def _read_requirements(requirements: Path | None) -> str:
    if requirements is None:
        return ""
    try:
        return requirements.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"requirements file {requirements} does not exist",
                          "create it (one package per line, e.g. pillow) or pass -r FILE") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read requirements file {requirements}: {exc}",
                          "pass -r with a readable UTF-8 requirements file") from exc


def expected_bundle(out_dir: Path, requirements: Path | None,
                    python: str | Path | None = None) -> Path:
    """Where ``build_bundle(requirements, out_dir, python)`` puts its tarball (nothing built)."""
    text = _read_requirements(requirements)
    return out_dir / bundle_name(text, inspect_python(python))


def read_manifest(tarball: Path) -> dict[str, str]:
    """The key=value manifest of a bundle (its first member)."""
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            member = tar.next()
            if member is None or member.name != MANIFEST_NAME or not member.isfile():
                raise BundleError(f"{tarball} is not a condorkit bundle (no {MANIFEST_NAME})",
                                  "build it with `condorkit bundle`")
            fh = tar.extractfile(member)
            text = fh.read().decode("utf-8") if fh else ""
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BundleError(f"cannot read bundle {tarball}: {exc}",
                          "delete it and build it again with `condorkit bundle`") from exc
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# ----------------------------------------------------------------------------- building


def _run(cmd: list[str], what: str, hint: str, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "PIP_USER")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env,
                              check=False)
    except OSError as exc:
        raise BundleError(f"{what} failed: {exc}", hint) from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
        raise BundleError(f"{what} failed (exit {proc.returncode}):\n{tail}", hint)
    return proc.stdout


def _make_venv(venv: Path, info: PythonInfo) -> None:
    """A venv for ``info``'s interpreter, made by the virtualenv package (pip seeded offline
    from its embedded wheels). Run as ``python -I -m virtualenv`` so that nothing on the
    caller's sys.path (a source checkout's folders) can shadow the standard library."""
    try:
        import virtualenv  # noqa: F401  (only to fail early with a clear message)
    except ImportError as exc:
        raise BundleError("the virtualenv package is not installed",
                          "pip install virtualenv (condorkit depends on it)") from exc
    _run([sys.executable, "-I", "-m", "virtualenv", str(venv), "--python", str(info.executable),
          "--no-setuptools", "--no-periodic-update", "--quiet"],
         f"virtualenv (creating a venv for {info.executable})",
         "check that the interpreter works; see the output above", cwd=venv.parent)


def _walk(root: Path) -> Iterator[Path]:
    """Every file and folder below ``root`` (sorted, depth first, symlinks not followed)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + dirnames:
            yield Path(dirpath) / name


def _keep_pyc(path: Path) -> bool:
    return not (path.name.endswith(".pyc") and ".opt-" in path.name)


def _stdlib_files(info: PythonInfo) -> Iterator[tuple[Path, str]]:
    """(source, arcname) pairs of the pruned standard library."""
    arc_lib = f"{PREFIX}/lib/python{info.short}"
    dyn_inside = info.dynload.parent == info.stdlib
    for src in _walk(info.stdlib):
        rel = src.relative_to(info.stdlib)
        parts = rel.parts
        if parts[0] in _PRUNE_STDLIB_TOP or parts[0].startswith("config-"):
            continue
        if any(p in _PRUNE_ANY_DIR for p in parts[:-1]) or (
                src.is_dir() and parts[-1] in _PRUNE_ANY_DIR):
            continue
        if parts[0] == "lib-dynload" and _PRUNE_DYNLOAD.match(parts[-1]):
            continue
        if src.suffix in (".a", ".o", ".exe") or not _keep_pyc(src):
            continue
        if parts[0] == "lib-dynload" and not dyn_inside:
            continue
        yield src, f"{arc_lib}/{rel.as_posix()}"
    if not dyn_inside:
        for src in _walk(info.dynload):
            if not _PRUNE_DYNLOAD.match(src.name):
                sub = src.relative_to(info.dynload).as_posix()
                yield src, f"{arc_lib}/lib-dynload/{sub}"


def _site_files(site: Path, short: str, keep_tools: set[str]) -> Iterator[tuple[Path, str]]:
    arc = f"{VENV}/lib/python{short}/site-packages"
    drop = {t for t in _BUILD_TOOLS if t not in keep_tools}
    for src in _walk(site):
        top = src.relative_to(site).parts[0]
        name = re.split(r"[-.]", top, maxsplit=1)[0].lower()
        if name in drop and (top == name or top.endswith((".dist-info", ".virtualenv"))):
            continue
        if not _keep_pyc(src):
            continue
        yield src, f"{arc}/{src.relative_to(site).as_posix()}"


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def _shared_deps(elves: list[Path], inside: tuple[Path, ...]
                 ) -> tuple[dict[str, Path], str, list[str]]:
    """Non-glibc shared libraries the files need that are not in the bundle already.

    Returns ({soname: resolved path}, the dynamic loader path, warnings). Uses the build host's
    ``ldd``, which lists the whole dependency closure.
    """
    deps: dict[str, Path] = {}
    loader = ""
    missing: set[str] = set()
    ldd = shutil.which("ldd")
    if ldd is None:
        raise BundleError("ldd is not available to find the shared libraries to ship",
                          "install the C library tools (Debian: libc-bin)")
    for i in range(0, len(elves), 200):
        batch = [str(p) for p in elves[i:i + 200]]
        proc = subprocess.run([ldd, *batch], capture_output=True, text=True, check=False,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                   "LC_ALL": "C"})
        for line in proc.stdout.splitlines():
            if not line.startswith("\t"):
                continue
            line = line.strip()
            if "=>" in line:
                soname, _, rest = line.partition("=>")
                soname, target = soname.strip(), rest.strip().split(" (")[0].strip()
                if _GLIBC_SONAMES.match(soname):
                    continue
                if target == "not found":
                    missing.add(soname)
                    continue
                path = Path(target)
                if not target or any(path.resolve().is_relative_to(d) for d in inside):
                    continue
                deps.setdefault(soname, path.resolve())
            elif line.startswith("/") and not loader:
                loader = line.split(" (")[0].strip()
    warnings = [f"shared library {s} is needed by a bundled file but missing on this machine; "
                "the module that uses it will not import on workers" for s in sorted(missing)]
    return deps, loader, warnings


def _glibc_needed(paths: list[Path]) -> str:
    best = (0, 0, 0)
    for p in paths:
        for m in _GLIBC_VERSION.finditer(p.read_bytes()):
            best = max(best, (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)))
    if best == (0, 0, 0):
        return "0.0"
    return f"{best[0]}.{best[1]}" + (f".{best[2]}" if best[2] else "")


def _add(tar: tarfile.TarFile, arcname: str, src: Path | None = None, link: str = "",
         data: bytes | None = None) -> None:
    """Add ``src`` (dereferenced; owner root, mode 644/755), or a symlink to ``link``, or a file
    holding ``data``, or (none of these) a folder."""
    if src is not None:
        if src.is_symlink() and not src.exists():
            return  # a dangling link in the source tree carries nothing
        ti = tar.gettarinfo(str(src.resolve() if src.is_symlink() else src), arcname)
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mode = 0o755 if ti.isdir() or ti.mode & 0o111 else 0o644
        if ti.isfile():
            with open(src, "rb") as fh:
                tar.addfile(ti, fh)
        elif ti.isdir():
            tar.addfile(ti)
        return
    ti = tarfile.TarInfo(arcname)
    ti.mtime = int(time.time())
    if link:
        ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, link, 0o777
    elif data is not None:
        ti.size, ti.mode = len(data), 0o644
    else:
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(ti, io.BytesIO(data) if data is not None else None)


def _packages(site: Path, skip: set[str]) -> tuple[str, ...]:
    out = []
    for dist in metadata.distributions(path=[str(site)]):
        name = dist.metadata["Name"] or ""
        if name and name.lower() not in skip:
            out.append(f"{name}=={dist.version}")
    return tuple(sorted(set(out), key=str.lower))


def _stripped(src: Path, work: Path, strip: str | None) -> Path:
    """A copy of ELF file ``src`` without debug information (``src`` itself if not possible)."""
    if strip is None:
        return src
    work.mkdir(parents=True, exist_ok=True)
    dest = work / f"{hashlib.sha256(str(src).encode()).hexdigest()[:16]}-{src.name}"
    proc = subprocess.run([strip, "--strip-debug", "-o", str(dest), str(src)],
                          capture_output=True, check=False)
    if proc.returncode != 0 or not dest.is_file():
        return src
    shutil.copystat(src, dest)
    return dest


def _pack(tar_path: Path, info: PythonInfo, site: Path, manifest: dict[str, str],
          keep_tools: set[str]) -> tuple[int, dict[str, str], list[str]]:
    """Write the tarball; returns (member count, manifest additions, warnings)."""
    short = info.short
    exe = f"python{short}"
    stdlib = list(_stdlib_files(info))
    members = stdlib + list(_site_files(site, short, keep_tools))
    elves = [info.executable] + [s for s, _ in members if s.is_file() and not s.is_symlink()
                                 and (".so" in s.name) and _is_elf(s)]
    deps, loader, warnings = _shared_deps(elves, (info.stdlib.resolve(), site.resolve()))
    glibc = _glibc_needed(elves + list(deps.values()))
    # The base interpreter often carries debug information (a pyenv build: libpython 23 MB of
    # which 17 MB debug info); drop it from our copies. Wheels and distro libraries are left alone.
    strip = shutil.which("strip")
    scratch = tar_path.parent / "stripped"
    elf_set = set(elves)
    base_elves = {s for s, _ in stdlib if s in elf_set}
    py_libs = {so for so, p in deps.items() if so.startswith("libpython")}
    executable = _stripped(info.executable, scratch, strip)
    members = [(_stripped(s, scratch, strip) if s in base_elves else s, a) for s, a in members]
    deps = {so: (_stripped(p, scratch, strip) if so in py_libs else p) for so, p in deps.items()}
    cfg = (f"home = @UNPACKED@/{PREFIX}/bin\ninclude-system-site-packages = false\n"
           f"version = {info.version}\n")
    # (arcname, source file, symlink target, bytes); only an arcname: a folder
    entries: list[tuple[str, Path | None, str, bytes | None]] = [
        (d, None, "", None)
        for d in (PREFIX, f"{PREFIX}/bin", f"{PREFIX}/lib", VENV, f"{VENV}/bin", f"{VENV}/lib",
                  f"{VENV}/lib/python{short}", f"{VENV}/lib/python{short}/site-packages")]
    entries.append((f"{PREFIX}/bin/{exe}", executable, "", None))
    entries += [(f"{PREFIX}/bin/{a}", None, exe, None) for a in ("python3", "python")]
    entries += [(f"{PREFIX}/lib/{so}", path, "", None) for so, path in sorted(deps.items())]
    entries.append((f"{VENV}/pyvenv.cfg", None, "", cfg.encode()))
    entries += [(f"{VENV}/bin/{a}", None, f"../../{PREFIX}/bin/{exe}", None)
                for a in (exe, "python3", "python")]
    entries += [(arc, src, "", None) for src, arc in members]
    extra = {"glibc": glibc, "ld_so": loader, "libs": " ".join(sorted(deps)),
             "stripped": "yes" if strip else "no", "files": str(len(entries) + 1)}
    head = "".join(f"{k}={v}\n" for k, v in {**manifest, **extra}.items())
    with tarfile.open(tar_path, "w:gz", compresslevel=COMPRESSLEVEL,
                      format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MANIFEST_NAME, data=head.encode("utf-8"))  # first: cheap to read
        for arc, src, link, data in entries:
            _add(tar, arc, src, link, data)
    return len(entries) + 1, extra, warnings


def _clean_stale(out_dir: Path, max_age_s: float = 86400) -> None:
    """Remove build folders left by killed builds (old enough not to be running)."""
    now = time.time()
    for p in out_dir.glob(BUILD_PREFIX + "*"):
        try:
            if p.is_dir() and now - p.stat().st_mtime > max_age_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def reuse_existing(final: Path, key: str, t0: float, python_field: str,
                   force: bool) -> BundleResult | None:
    """The bundle already at ``final`` when it was built from the same inputs (``key``)."""
    if not final.is_file() or force:
        return None
    m = read_manifest(final)
    if m.get("key") != key:
        return None
    return BundleResult(final, final.name, key, True, final.stat().st_size,
                        time.perf_counter() - t0, m.get(python_field, ""), m.get("arch", ""),
                        m.get("glibc", ""), int(m.get("files", "0") or 0),
                        tuple(m.get("packages", "").split()))


def make_workdir(out_dir: Path) -> Path:
    """A fresh build folder in ``out_dir`` (stale ones of killed builds are removed)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=out_dir))
    except OSError as exc:
        raise BundleError(f"cannot write to the output folder {out_dir}: {exc}",
                          "pass -o with a writable folder") from exc
    _clean_stale(out_dir)
    return work


def build_bundle(requirements: Path | None, out_dir: Path, python: str | Path | None = None,
                 force: bool = False) -> BundleResult:
    """Build (or reuse) the bundle for ``requirements`` in ``out_dir``; see the module doc."""
    t0 = time.perf_counter()
    text = _read_requirements(requirements)
    info = inspect_python(python)
    key = bundle_key(text, info)
    name = bundle_name(text, info)
    out_dir = out_dir.resolve()
    final = out_dir / name
    reused = reuse_existing(final, key, t0, "python", force)
    if reused is not None:
        return reused
    work = make_workdir(out_dir)
    try:
        venv = work / "venv"
        _make_venv(venv, info)
        vpy = venv / "bin" / "python"
        site = venv / "lib" / f"python{info.short}" / "site-packages"
        if not site.is_dir():
            raise BundleError(f"virtualenv made no {site}", "report this as a condorkit bug")
        if normalize_requirements(text):
            assert requirements is not None
            _run([str(vpy), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                  "--no-warn-script-location", "-r", str(requirements.resolve())],
                 f"pip install -r {requirements}",
                 "fix the requirements (names, versions, network) and run condorkit bundle again",
                 cwd=requirements.resolve().parent)
        named = {m.group(1).lower() for m in re.finditer(r"(?m)^\s*([A-Za-z0-9][\w.-]*)", text)}
        keep = named & set(_BUILD_TOOLS)
        packages = _packages(site, {t for t in _BUILD_TOOLS if t not in keep})
        manifest = {
            "format": BUNDLE_FORMAT, "name": name, "key": key,
            "python": info.version, "python_exe": f"{PREFIX}/bin/python{info.short}",
            "venv": VENV, "libdir": f"{PREFIX}/lib", "os": info.system, "arch": info.machine,
            "built_with": f"condorkit {__version__}, {info.libc}",
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "packages": " ".join(packages),
        }
        partial = work / (name + ".partial")
        count, extra, warnings = _pack(partial, info, site, manifest, keep)
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return BundleResult(final, name, key, False, final.stat().st_size, time.perf_counter() - t0,
                        info.version, info.machine, extra["glibc"], count, packages,
                        tuple(warnings))
