"""The wrapper's bundle handling with crafted tarballs (no real build needed): safe unpacking
refuses absolute, `..` and escaping-link members BEFORE writing anything (exit 92); corrupt or
missing tarballs exit 91, a foreign architecture or too-old C library 94, no usable interpreter 93;
each with one `condorkit-wrapper: error:` line on stderr."""

from __future__ import annotations

import gzip
import io
import os
import platform
import subprocess
import tarfile
from importlib import resources
from pathlib import Path

import pytest

from condorkit.errors import BundleError
from condorkit.model.bundlecheck import bundle_check

WRAPPER = resources.files("condorkit.wrappers").joinpath("wrapper.sh").read_bytes()
PROGRAM = "import sys\nopen(sys.argv[2], 'w').write('{}')\n"

# (name, kind, payload): kind is file | dir | symlink | hardlink | fifo | chr
Member = tuple[str, str, str]


def make_tar(path: Path, members: list[Member], compress: bool = True,
             owner: str = "") -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            ti.mode = 0o755
            ti.uname = ti.gname = owner
            data = b""
            if kind == "file":
                data = payload.encode()
                ti.size = len(data)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, payload
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            elif kind == "chr":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            tar.addfile(ti, io.BytesIO(data) if data else None)
    raw = buf.getvalue()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def manifest(**over: str) -> str:
    fields = {"format": "condorkit-bundle/1", "python": "3.11.7",
              "python_exe": "python/bin/python3", "venv": "venv", "libdir": "python/lib",
              "os": platform.system(), "arch": platform.machine(), "glibc": "2.0",
              "ld_so": ""}
    fields.update(over)
    return "".join(f"{k}={v}\n" for k, v in fields.items())


def fake_bundle(path: Path, interpreter: str | None, **over: str) -> Path:
    """A bundle-shaped tarball whose 'python' is a shell script (or absent)."""
    members: list[Member] = [("condorkit-bundle.txt", "file", manifest(**over)),
                             ("python/lib", "dir", ""), ("venv/bin", "dir", "")]
    if interpreter is not None:
        members += [("python/bin/python3", "file", interpreter),
                    ("venv/bin/python", "symlink", "../../python/bin/python3")]
    return make_tar(path, members)


def declared(path: Path) -> str:
    """The -k argument condorkit would render for this tarball (or a dummy if it has none)."""
    try:
        return bundle_check(path).arg
    except BundleError:
        return "0" * 64 + ":0:0"


def run_wrapper(scratch: Path, bundle: str, check: str | None = None,
                cache: str = "off") -> subprocess.CompletedProcess[str]:
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "wrapper.sh").write_bytes(WRAPPER)
    (scratch / "prog.py").write_text(PROGRAM)
    (scratch / "rows.jsonl").write_text("{}\n")
    if check is None:
        check = declared(scratch / bundle)
    env = {k: v for k, v in os.environ.items() if k != "CONDORKIT_PYTHON"}
    env["CONDORKIT_BUNDLE_CACHE"] = cache
    return subprocess.run(["bash", "wrapper.sh", "-b", bundle, "-k", check, "prog.py",
                           "rows.jsonl", "out.json"],
                          cwd=scratch, capture_output=True, text=True, timeout=60, env=env)


def reason(proc: subprocess.CompletedProcess[str]) -> str:
    """The wrapper's one error line (and check it is the last stderr line)."""
    lines = proc.stderr.strip().splitlines()
    assert lines, "no stderr"
    assert lines[-1].startswith("condorkit-wrapper: error: "), proc.stderr
    assert sum(1 for ln in lines if ln.startswith("condorkit-wrapper: error:")) == 1
    return lines[-1]


# ------------------------------------------------------------------------------ unsafe members


def test_dotdot_member_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    scratch = tmp_path / "a" / "b" / "scratch"
    scratch.mkdir(parents=True)
    make_tar(scratch / "bad.tar.gz", [("ok.txt", "file", "fine"),
                                      ("../../escaped.txt", "file", "gotcha"),
                                      ("x/../../../escaped2.txt", "file", "gotcha")])
    proc = run_wrapper(scratch, "bad.tar.gz")
    assert proc.returncode == 92, proc.stderr
    assert "../../escaped.txt contains .." in reason(proc)
    assert not list(tmp_path.rglob("escaped*.txt"))
    assert not (scratch / "_ckenv").exists()  # nothing extracted at all
    assert not (scratch / "ok.txt").exists()
    assert sorted(p.name for p in scratch.iterdir()) == [
        "bad.tar.gz", "out.json", "prog.py", "rows.jsonl", "wrapper.sh"]


def test_absolute_member_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "planted.txt"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    make_tar(scratch / "bad.tar.gz", [(str(target), "file", "gotcha")])
    proc = run_wrapper(scratch, "bad.tar.gz")
    assert proc.returncode == 92, proc.stderr
    assert "is an absolute path" in reason(proc)
    assert not target.exists()
    assert not (scratch / "_ckenv").exists()


@pytest.mark.parametrize(("members", "why"), [
    ([("lnk", "symlink", "/etc")], "points to /etc"),
    ([("lnk", "symlink", "../outside")], "points outside the bundle"),
    ([("d/lnk", "symlink", "../../outside")], "points outside the bundle"),
    ([("d/lnk", "symlink", "e/../../../outside")], "uses .. after a name"),
    ([("dot", "symlink", "."), ("dot/lnk", "symlink", "../outside")], "lies below the symlink"),
    ([("lnk", "symlink", "sub"), ("lnk/x.txt", "file", "through a link")],
     "lies below the symlink"),
    ([("lnk", "symlink", "")], "points to"),
    ([("hl", "hardlink", "../outside/x.txt")], "contains .."),
    ([("hl", "hardlink", "/etc/passwd")], "is an absolute path"),
    ([("lnk", "symlink", "sub"), ("hl", "hardlink", "lnk/x")], "does not lead to an earlier file"),
    ([("lnk", "symlink", "sub"), ("hl", "hardlink", "lnk/x.txt")], "does not lead to an earlier"),
    ([("a -> b", "symlink", "/etc")], "points to /etc"),
    ([('a" -> "b', "symlink", "/etc")], "points to /etc"),
    # issue 15.6: chains of links, links to links, dangling links, duplicates, links to folders
    # reached through links; each one resolves inside the bundle only by luck, or not at all
    ([("d/a", "symlink", ".."), ("d/b", "symlink", "a/..")], "uses .. after a name"),
    ([("a", "symlink", "b"), ("b", "symlink", "sub")], "leads to another link"),
    ([("d/up", "symlink", ".."), ("d/x", "symlink", "up/up")], "leads to nothing"),
    ([("d/e/up", "symlink", "../.."), ("d/e/x", "symlink", "up")], "leads to another link"),
    ([("d/e/up", "symlink", "../.."), ("d/e/x", "symlink", "up/sub")], "leads to nothing"),
    ([("gone", "symlink", "nothing/here")], "leads to nothing"),
    ([("hf", "hardlink", "sub/x.txt")], "does not lead to an earlier file"),
    ([("sub/x.txt", "file", "first"), ("sub/x.txt", "symlink", "/etc/passwd")], "appears twice"),
    ([("sub/x.txt", "file", "first"), ("sub/x.txt", "file", "again")], "appears twice"),
    ([("sub", "symlink", "sub2"), ("sub2", "dir", "")], "lies below the symlink"),
    ([("f", "file", "x"), ("f/g", "file", "y")], "lies below the file f"),
    ([("ok", "file", "x"), ("hl", "hardlink", "lnk"), ("lnk", "symlink", "ok")],
     "does not lead to an earlier file"),
    ([("fifo", "fifo", "")], "is not a file, folder or link"),
    ([("null", "chr", "")], "is not a file, folder or link"),
    ([("./", "dir", ""), ("./.", "symlink", "sub")], "names the bundle folder itself"),
])
def test_escaping_links_and_special_members_are_refused(tmp_path: Path, members: list[Member],
                                                        why: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    make_tar(scratch / "bad.tar.gz", members + [("sub/x.txt", "file", "in")])
    proc = run_wrapper(scratch, "bad.tar.gz")
    assert proc.returncode == 92, proc.stderr
    assert why in reason(proc)
    assert list(outside.iterdir()) == []
    assert not (scratch / "_ckenv").exists()


def test_links_inside_the_bundle_pass_the_check(tmp_path: Path) -> None:
    # the positive control: the same shapes pointing inside are unpacked (then 91: no manifest)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    make_tar(scratch / "ok.tar.gz", [
        ("python/bin/python3.11", "file", "x"), ("python/bin/python", "symlink", "python3.11"),
        ("venv/bin/python", "symlink", "../../python/bin/python3.11"),
        ("venv/lib64", "symlink", "lib"), ("./venv/lib/x", "file", "y"),
        ("hard", "hardlink", "venv/lib/x"), ("name with spaces.txt", "file", "z"),
        ("a -> b", "symlink", "name with spaces.txt"), ('q"uote\\ \n', "file", "w"),
        ("./", "dir", "")])
    proc = run_wrapper(scratch, "ok.tar.gz")
    assert proc.returncode == 91, proc.stderr
    assert "not a condorkit bundle" in reason(proc)
    assert os.readlink(scratch / "_ckenv" / "venv" / "bin" / "python") == \
        "../../python/bin/python3.11"
    assert (scratch / "_ckenv" / "name with spaces.txt").read_text() == "z"


# ------------------------------------------------------------------------------ 91: missing/corrupt


def test_missing_bundle_exits_91(tmp_path: Path) -> None:
    proc = run_wrapper(tmp_path, "ckenv-nothere.tar.gz")
    assert proc.returncode == 91
    assert "was not transferred" in reason(proc)


@pytest.mark.parametrize("kind", ["random", "empty", "truncated", "gzip-not-tar"])
def test_corrupt_bundle_exits_91(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "b.tar.gz"
    if kind == "random":
        path.write_bytes(os.urandom(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        fake_bundle(path, "#!/bin/sh\n" + "echo padding\n" * 20000)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(gzip.compress(b"this is not a tar archive\n" * 100))
    proc = run_wrapper(tmp_path, "b.tar.gz")
    assert proc.returncode == 91, proc.stderr
    assert "bundle 'b.tar.gz'" in reason(proc)
    assert not (tmp_path / "_ckenv").exists()


def test_wrong_format_in_manifest_exits_91(tmp_path: Path) -> None:
    fake_bundle(tmp_path / "b.tar.gz", "#!/bin/sh\nexit 0\n", format="condorkit-bundle/99")
    proc = run_wrapper(tmp_path, "b.tar.gz")
    assert proc.returncode == 91
    assert "condorkit-bundle/99" in reason(proc)


def test_manifest_paths_outside_the_bundle_exit_91(tmp_path: Path) -> None:
    fake_bundle(tmp_path / "b.tar.gz", "#!/bin/sh\nexit 0\n", python_exe="../../usr/bin/python3")
    proc = run_wrapper(tmp_path, "b.tar.gz")
    assert proc.returncode == 91
    assert "bad manifest" in reason(proc)


# ------------------------------------------------------------------------------ 94: arch / libc


def test_foreign_architecture_exits_94(tmp_path: Path) -> None:
    fake_bundle(tmp_path / "b.tar.gz", "#!/bin/sh\nexit 0\n", arch="sparc64")
    proc = run_wrapper(tmp_path, "b.tar.gz")
    assert proc.returncode == 94, proc.stderr
    assert "built for sparc64, but" in reason(proc)
    assert platform.machine() in reason(proc)


def test_foreign_os_exits_94(tmp_path: Path) -> None:
    fake_bundle(tmp_path / "b.tar.gz", "#!/bin/sh\nexit 0\n", os="Darwin")
    proc = run_wrapper(tmp_path, "b.tar.gz")
    assert proc.returncode == 94
    assert "built for Darwin" in reason(proc)


def test_too_old_glibc_exits_94(tmp_path: Path) -> None:
    fake_bundle(tmp_path / "b.tar.gz", "#!/bin/sh\nexit 0\n", glibc="2.999")
    proc = run_wrapper(tmp_path, "b.tar.gz")
    assert proc.returncode == 94, proc.stderr
    assert "needs glibc >= 2.999" in reason(proc)


# ------------------------------------------------------------------------------ 93: interpreter


def test_bundle_without_interpreter_exits_93(tmp_path: Path) -> None:
    fake_bundle(tmp_path / "b.tar.gz", None)
    proc = run_wrapper(tmp_path, "b.tar.gz")
    assert proc.returncode == 93, proc.stderr
    assert "holds no interpreter python/bin/python3" in reason(proc)


def test_interpreter_that_does_not_start_exits_93(tmp_path: Path) -> None:
    fake_bundle(tmp_path / "b.tar.gz",
                "#!/bin/sh\necho 'error while loading shared libraries: libpython' >&2\nexit 127\n")
    proc = run_wrapper(tmp_path, "b.tar.gz")
    assert proc.returncode == 93, proc.stderr
    assert "does not start" in reason(proc)
    assert "error while loading shared libraries" in reason(proc)


def test_fake_interpreter_gets_the_bundle_environment(tmp_path: Path) -> None:
    # a stand-in 'python' that records what the wrapper set up, then answers like python
    script = ("#!/bin/sh\n"
              'if [ "$1" = -c ]; then echo 3.11.7; exit 0; fi\n'
              'printf "%s\\n" "$LD_LIBRARY_PATH" "$VIRTUAL_ENV" "$PATH" "${PYTHONHOME-unset}" '
              '> "$3"\n')
    fake_bundle(tmp_path / "b.tar.gz", script)
    env_home = os.environ.get("PYTHONHOME")
    os.environ["PYTHONHOME"] = "/nonexistent"
    try:
        proc = run_wrapper(tmp_path, "b.tar.gz")
    finally:
        if env_home is None:
            del os.environ["PYTHONHOME"]
        else:
            os.environ["PYTHONHOME"] = env_home
    assert proc.returncode == 0, proc.stderr
    ld, venv, path, home = (tmp_path / "out.json").read_text().splitlines()
    assert ld.split(":")[0] == str(tmp_path / "_ckenv" / "python" / "lib")
    assert venv == str(tmp_path / "_ckenv" / "venv")
    assert path.split(":")[0] == venv + "/bin"
    assert home == "unset"
    cfg = (tmp_path / "_ckenv" / "venv" / "pyvenv.cfg").read_text()
    assert f"home = {tmp_path}/_ckenv/python/bin\n" in cfg
    assert "unpacked in" in proc.stderr and "started in" in proc.stderr


# ------------------------------------------------------------------------------ issue 15.6: parser


NON_GNU_TAR = """#!/bin/sh
# a tar that is not GNU tar (like busybox or bsdtar): the wrapper must fall back to python3
if [ "$1" = --version ]; then echo "bsdtar 3.7.2 - libarchive"; exit 0; fi
exec {real} "$@"
"""


@pytest.mark.parametrize("lister", ["gnu-tar", "python3"])
@pytest.mark.parametrize(("members", "why"), [
    ([("../evil", "file", "x")], "contains .."),
    ([("a", "symlink", "b"), ("b", "symlink", "sub")], "leads to another link"),
    ([("d/up", "symlink", ".."), ("d/up/x", "file", "y")], "lies below the symlink"),
    ([("c", "chr", "")], "is not a file, folder or link"),
    ([('x" -> "/etc', "symlink", "../sub/x.txt")], None),  # safe: a strange name, no more
])
def test_both_listers_give_the_same_verdict(tmp_path: Path, lister: str,
                                            members: list[Member], why: str | None) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    make_tar(scratch / "b.tar.gz", [("sub/x.txt", "file", "in")] + members, owner="evil user")
    env_path = os.environ["PATH"]
    if lister == "python3":
        fake = tmp_path / "bin"
        fake.mkdir()
        real = subprocess.run(["bash", "-c", "command -v tar"], capture_output=True,
                              text=True).stdout.strip()
        (fake / "tar").write_text(NON_GNU_TAR.format(real=real))
        (fake / "tar").chmod(0o755)
        os.environ["PATH"] = f"{fake}:{env_path}"
    try:
        proc = run_wrapper(scratch, "b.tar.gz")
    finally:
        os.environ["PATH"] = env_path
    if why is None:
        assert proc.returncode == 91, proc.stderr  # unpacked; then: no manifest
        assert "not a condorkit bundle" in reason(proc)
        assert os.readlink(scratch / "_ckenv" / 'x" -> "' / "etc") == "../sub/x.txt"
    else:
        assert proc.returncode == 92, proc.stderr
        assert why in reason(proc)
        assert not (scratch / "_ckenv").exists()


def test_owner_names_with_spaces_do_not_shift_the_listing(tmp_path: Path) -> None:
    make_tar(tmp_path / "b.tar.gz", [("ok.txt", "file", "x"), ("l", "symlink", "ok.txt")],
             owner="a b -> c d")
    proc = run_wrapper(tmp_path, "b.tar.gz")
    assert proc.returncode == 91, proc.stderr
    assert "not a condorkit bundle" in reason(proc)
    assert os.readlink(tmp_path / "_ckenv" / "l") == "ok.txt"


# ------------------------------------------------------------------------------ issue 13.4: bounds


def test_wrong_checksum_exits_91_before_anything_is_unpacked(tmp_path: Path) -> None:
    fake_bundle(tmp_path / "b.tar.gz", "#!/bin/sh\nexit 0\n")
    good = declared(tmp_path / "b.tar.gz")
    bad = ("f" * 64) + good[64:]
    proc = run_wrapper(tmp_path, "b.tar.gz", check=bad)
    assert proc.returncode == 91, proc.stderr
    assert "is not the one the submit file names" in reason(proc)
    assert not (tmp_path / "_ckenv").exists()


@pytest.mark.parametrize("check", ["", "abc", "0" * 64 + ":1", "0" * 64 + ":x:1",
                                   "0" * 64 + ":1:1;rm -rf /"])
def test_bundle_without_a_valid_declaration_is_a_usage_error(tmp_path: Path, check: str) -> None:
    fake_bundle(tmp_path / "b.tar.gz", "#!/bin/sh\nexit 0\n")
    proc = run_wrapper(tmp_path, "b.tar.gz", check=check)
    assert proc.returncode == 90, proc.stderr
    assert not (tmp_path / "_ckenv").exists()


def _declare(path: Path, nbytes: int, members: int) -> str:
    return f"{bundle_check(path).sha256}:{nbytes}:{members}"


def test_more_members_than_declared_exits_92(tmp_path: Path) -> None:
    make_tar(tmp_path / "b.tar.gz", [(f"f{i}", "file", "x") for i in range(50)])
    proc = run_wrapper(tmp_path, "b.tar.gz", check=_declare(tmp_path / "b.tar.gz", 50, 49))
    assert proc.returncode == 92, proc.stderr
    assert "more than the declared 49 members" in reason(proc)
    assert not (tmp_path / "_ckenv").exists()
    proc = run_wrapper(tmp_path, "b.tar.gz", check=_declare(tmp_path / "b.tar.gz", 50, 50))
    assert proc.returncode == 91 and "not a condorkit bundle" in reason(proc)  # exactly: fine


def test_more_bytes_than_declared_exits_92_and_the_margin_is_5_percent_plus_1_mib(
        tmp_path: Path) -> None:
    big = "0" * (4 << 20)  # 4 MiB of zeros: compresses to ~4 KB
    make_tar(tmp_path / "b.tar.gz", [("big", "file", big)])
    assert (tmp_path / "b.tar.gz").stat().st_size < 100_000
    proc = run_wrapper(tmp_path, "b.tar.gz", check=_declare(tmp_path / "b.tar.gz", 1 << 20, 1))
    assert proc.returncode == 92, proc.stderr
    assert "more than the declared" in reason(proc)
    assert not (tmp_path / "_ckenv").exists()
    assert not list(tmp_path.glob("*.tar"))  # the bounded decompression left nothing
    ok = (4 << 20) - (1 << 20) + 1  # declared + 5 % + 1 MiB covers the real size
    proc = run_wrapper(tmp_path, "b.tar.gz", check=_declare(tmp_path / "b.tar.gz", ok, 1))
    assert proc.returncode == 91 and "not a condorkit bundle" in reason(proc)


def test_a_decompression_bomb_stops_at_the_declared_size(tmp_path: Path) -> None:
    # 64 MiB of zeros in one member: the bounded gzip stops long before, nothing is listed
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        ti = tarfile.TarInfo("zeros")
        ti.size = 64 << 20
        tar.addfile(ti, io.BytesIO(bytes(ti.size)))
    (tmp_path / "b.tar.gz").write_bytes(gzip.compress(raw.getvalue(), compresslevel=9))
    proc = run_wrapper(tmp_path, "b.tar.gz", check=_declare(tmp_path / "b.tar.gz", 1000, 1))
    assert proc.returncode == 92, proc.stderr
    assert "decompresses to more than the declared size" in reason(proc)
    assert not list(tmp_path.glob("_ckenv*"))


def test_with_the_node_cache_an_unsafe_bundle_is_still_refused_once(tmp_path: Path) -> None:
    # the cache attempt fails in a subshell, the scratch unpack repeats the check and reports it
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    make_tar(scratch / "bad.tar.gz", [("ok.txt", "file", "x"), ("../up.txt", "file", "y")])
    cache = tmp_path / "cache"
    proc = run_wrapper(scratch, "bad.tar.gz", cache=str(cache))
    assert proc.returncode == 92, proc.stderr
    assert "../up.txt contains .." in reason(proc)  # exactly one error line, the last one
    assert "node cache" in proc.stderr and not (scratch / "_ckenv").exists()
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []
    assert not (tmp_path / "up.txt").exists()
