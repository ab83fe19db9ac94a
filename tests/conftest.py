"""Shared pytest fixtures. Each block below is owned by one part of the project; add new
fixtures in a block of their own rather than editing another block."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.httpserver import FaultyServer  # tests/ is on sys.path (rootdir conftest)

from condorkit.demo import CorpusFile, write_corpus

REPO = Path(__file__).resolve().parents[1]

# ============================================================================ test data (demo)
# photo_corpus: 12 small photo-like JPEGs of mixed variants (generated once per session).
# http_server: a factory for real, misbehaving HTTP servers (tests/support/httpserver.py).

PHOTO_CORPUS_VARIANTS = ("rgb", "gray", "progressive", "exif-rotated", "cmyk", "rgb")
PHOTO_CORPUS_SIZES = ((320, 240), (240, 320), (400, 300))


@pytest.fixture(scope="session")
def photo_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[CorpusFile, ...]:
    """12 small photo-like JPEGs (rgb, gray, progressive, exif-rotated, cmyk), read-only.

    All files live in one folder (``photo_corpus[0].path.parent``); years include 2001 and 2015.
    Tests must not modify them: copy a file to ``tmp_path`` first.
    """
    folder = tmp_path_factory.mktemp("photo_corpus")
    files = write_corpus(folder, 12, sizes=PHOTO_CORPUS_SIZES, seed=2024,
                         variants=PHOTO_CORPUS_VARIANTS)
    return tuple(files)


@pytest.fixture
def http_server() -> Iterator[Callable[..., FaultyServer]]:
    """Factory: ``http_server(folder, latency_s=0, slow_s=1, stall_s=30, huge_bytes=...)``
    starts a FaultyServer on 127.0.0.1 serving ``folder``; all are closed after the test."""
    servers: list[FaultyServer] = []

    def start(root: str | Path, **options: Any) -> FaultyServer:
        server = FaultyServer(root, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# ======================================================================== end test data (demo)


# ============================================================================ bundle (issue 4)
# env_bundle: ONE real environment bundle (the base CPython running the tests + Pillow), built
# per session by condorkit.model.bundle.build_bundle. The first build on a machine needs the package
# index (pip caches the wheel); later sessions build from the cache in ~10 s.

BUNDLE_REQUIREMENTS = "pillow\n"


@pytest.fixture(scope="session")
def env_bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A :class:`condorkit.model.bundle.BundleResult` for ``pillow``; read-only: copy it."""
    from condorkit.model.bundle import build_bundle

    folder = tmp_path_factory.mktemp("env_bundle")
    req = folder / "requirements.txt"
    req.write_text(BUNDLE_REQUIREMENTS, encoding="utf-8")
    return build_bundle(req, folder / "out")


@pytest.fixture(scope="session")
def wheels_bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A wheel-set bundle (:mod:`condorkit.model.wheelset`) of the photodemo's requirements for
    CPython 3.9-3.14 (manylinux2014): what `condorkit bundle` makes by default."""
    from condorkit.model.wheelset import build_wheels

    folder = tmp_path_factory.mktemp("wheels_bundle")
    req = folder / "requirements.txt"
    shutil.copy(REPO / "examples" / "photodemo" / "requirements.txt", req)
    return build_wheels(req, folder / "out")


@pytest.fixture(autouse=True, scope="session")
def _no_node_cache_by_default() -> Iterator[None]:
    """Wrappers started by tests on this host do not use the per-node bundle cache
    (/var/tmp/...) unless a test asks for it; pool jobs do (their environment is the pool's)."""
    old = os.environ.get("CONDORKIT_BUNDLE_CACHE")
    os.environ["CONDORKIT_BUNDLE_CACHE"] = "off"
    yield
    if old is None:
        os.environ.pop("CONDORKIT_BUNDLE_CACHE", None)
    else:
        os.environ["CONDORKIT_BUNDLE_CACHE"] = old


# ======================================================================== end bundle (issue 4)
