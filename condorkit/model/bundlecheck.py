"""What the submit side tells the wrapper about a bundle: ``-k SHA256:BYTES:MEMBERS``.

Owns measuring a bundle tarball for its declaration: the sha256 of the file, and the bytes of
regular files and the number of members it unpacks to, read from the tarball itself (never from
the bundle's own manifest). The wrapper refuses a transferred bundle whose sha256 differs (exit
91) and stops unpacking past the declared size or member count (exit 92); see docs/bundle.md.
Counted like the wrapper counts: every member except the bundle root (``./``).
"""

from __future__ import annotations

import functools
import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path

from condorkit.errors import BundleError


@dataclass(frozen=True)
class BundleCheck:
    """What the submit side tells the wrapper about a bundle (``-k SHA256:BYTES:MEMBERS``):
    the tarball's sha256, and the bytes of regular files and the members it unpacks to, measured
    here from the tarball itself (not from its own manifest)."""

    sha256: str
    bytes: int
    members: int

    @property
    def arg(self) -> str:
        return f"{self.sha256}:{self.bytes}:{self.members}"


def _member_name(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


@functools.lru_cache(maxsize=8)
def _check_cached(path: str, size: int, mtime_ns: int) -> BundleCheck:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    total = members = 0
    with tarfile.open(path, "r:gz") as tar:
        for m in tar:
            if _member_name(m.name) == "":
                continue
            members += 1
            if m.isreg():
                total += m.size
    return BundleCheck(h.hexdigest(), total, members)


def bundle_check(tarball: Path) -> BundleCheck:
    """The sha256 and declared size of ``tarball`` (cached per path, size and mtime)."""
    try:
        st = tarball.stat()
        return _check_cached(str(tarball), st.st_size, st.st_mtime_ns)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BundleError(f"cannot read bundle {tarball}: {exc}",
                          "build it again with `condorkit bundle`") from exc
