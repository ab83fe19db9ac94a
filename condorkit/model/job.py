"""The job folder and the per-chunk task that every backend runs identically.

Owns turning (job folder, JobConfig) into a :class:`Job`: the validated manifest, the chunk table,
the materialized inputs (``chunks/rows-START.jsonl``, ``.condorkit/wrapper.sh``,
``.condorkit/ckjob.py``) and, per chunk, a :class:`ChunkTask` with the exact wrapper arguments and
input files. The submit template, the local backend and the dry-run all derive from the same
``Job``, which is what makes the local run and a pool worker identical.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from condorkit.errors import ConfigError, OutputError
from condorkit.model.chunking import Chunk, iter_chunks
from condorkit.model.config import JobConfig
from condorkit.model.fileio import kind
from condorkit.model.joblock import job_lock
from condorkit.model.layout import (
    CHUNK_DIR,
    CKJOB,
    STATE_DIR,
    WRAPPER,
    results_name,
    rows_name,
    rows_staging,
)
from condorkit.model.manifest import ManifestInfo, Tally
from condorkit.model.packaged import packaged
from condorkit.model.results import valid_result
from condorkit.model.rowsfile import ChunkRows, RowsStaging, iter_chunk_rows
from condorkit.wrappers import ckjob


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ChunkTask:
    """Everything one chunk needs, the same on a worker and locally."""

    chunk: Chunk
    key: str
    inputs: tuple[Path, ...]
    arguments: tuple[str, ...]
    output: str
    result_path: Path

    def valid(self) -> str | None:
        """None when the chunk's results file is valid for its rows and key, else why not."""
        return valid_result(self.result_path, self.chunk.start, self.chunk.count, self.key)


@dataclass(frozen=True)
class Job:
    """A prepared job folder: validated config and manifest, chunk table, materialized inputs."""

    dir: Path
    config: JobConfig
    manifest: ManifestInfo
    chunks: tuple[Chunk, ...]
    keys: tuple[str, ...]
    program: Path
    wrapper: Path
    ckjob: Path
    bundle: Path | None
    extra_inputs: tuple[Path, ...]

    @property
    def rows(self) -> int:
        return sum(c.count for c in self.chunks)

    @property
    def results_dir(self) -> Path:
        return self.dir / self.config.results_dir

    @property
    def log_dir(self) -> Path:
        return self.dir / self.config.log_dir

    def arguments(self, start: int | str) -> tuple[str, ...]:
        """The wrapper's argument vector for the chunk starting at ``start`` (or a macro)."""
        head: tuple[str, ...] = ()
        if self.bundle:
            from condorkit.model.bundlecheck import bundle_check
            head = ("-b", self.bundle.name, "-k", bundle_check(self.bundle).arg)
        return head + (self.program.name, rows_name(start), results_name(start))

    def outputs(self, start: int | str) -> tuple[str, ...]:
        """Extra files the program writes next to OUT (``outputs``, ``{start}`` filled in);
        they travel back with the results and land in the results folder."""
        return tuple(o.replace("{start}", str(start)) for o in self.config.outputs)

    def inputs(self, start: int | str) -> tuple[Path, ...]:
        """The files transferred into the chunk's scratch folder (flat, by base name)."""
        bundle = (self.bundle,) if self.bundle else ()
        return (self.program, self.ckjob, self.dir / CHUNK_DIR / rows_name(start)
                ) + self.extra_inputs + bundle

    def task(self, chunk: Chunk) -> ChunkTask:
        return ChunkTask(chunk, self.keys[chunk.index], self.inputs(chunk.start),
                         self.arguments(chunk.start), results_name(chunk.start),
                         self.results_dir / results_name(chunk.start))

    def tasks(self) -> Iterator[ChunkTask]:
        for c in self.chunks:
            yield self.task(c)


def _resolve(job_dir: Path, name: str, what: str, must_exist: bool = True) -> Path:
    p = Path(name)
    p = p if p.is_absolute() else job_dir / p
    if must_exist and not p.is_file():
        try:
            mode = p.stat().st_mode
        except OSError:
            raise ConfigError(f"{what} {p} does not exist",
                              f"create it, or set {what} in {job_dir / 'condorkit.toml'}"
                              ) from None
        raise ConfigError(f"{what} {p} is {kind(mode)}, not a regular file",
                          f"give the path of a file, or set {what} in "
                          f"{job_dir / 'condorkit.toml'}")
    return p.resolve() if must_exist else p


AUTO_BUNDLE = "auto"
REQUIREMENTS = "requirements.txt"


def _bundle_path(job_dir: Path, config: JobConfig, must_exist: bool) -> Path | None:
    """The job's bundle tarball: ``bundle = "NAME"``, or ``"auto"`` (the bundle that
    ``condorkit bundle`` makes from the job folder's requirements.txt), or None."""
    if not config.bundle:
        return None
    if config.bundle == AUTO_BUNDLE:
        from condorkit.model.bundle import expected_bundle
        from condorkit.model.wheelset import expected_wheels

        req = job_dir / REQUIREMENTS
        if not req.is_file():
            raise ConfigError(f'bundle = "auto" needs {req}',
                              "list the job's packages there (e.g. pillow), or set bundle to "
                              "a tarball made by `condorkit bundle -r FILE`")
        # the wheel-set bundle (`condorkit bundle`), else the one with an interpreter
        # (`condorkit bundle --ship-python`) for the current Python
        path = expected_wheels(job_dir, req)
        if not path.is_file():
            shipped = expected_bundle(job_dir, req)
            path = shipped if shipped.is_file() else path
    else:
        path = Path(config.bundle)
        path = path if path.is_absolute() else job_dir / path
    if must_exist and not path.is_file():
        what = (f"the bundle for the current {REQUIREMENTS} ({path.name})"
                if config.bundle == AUTO_BUNDLE else f"bundle {path}")
        raise ConfigError(f"{what} does not exist",
                          f"build it: cd {job_dir} && condorkit bundle"
                          + ("" if config.bundle == AUTO_BUNDLE else " (then set bundle to "
                             "the name it prints)"))
    return path.resolve() if must_exist else path


def _install_resource(name: str, dest: Path) -> Path:
    data = packaged("condorkit.wrappers", name).read_bytes()
    if not dest.is_file() or dest.read_bytes() != data:
        ckjob.atomic_write_bytes(str(dest), data)
    os.chmod(dest, 0o755)
    return dest


def _options_hash(config: JobConfig, program: Path, extra: tuple[Path, ...],
                  bundle: Path | None) -> str:
    """Hash of everything besides the rows that changes a chunk's results."""
    h = hashlib.sha256()
    h.update(json.dumps({"columns": list(config.columns), "program": program.name}).encode())
    for p in (program, *extra):
        h.update(p.name.encode() + b"\0" + file_sha256(p).encode())
    if bundle is not None:
        h.update(b"bundle\0" + bundle.name.encode())
    if config.container_image:  # another image may compute other results (only when set)
        h.update(b"container\0" + config.container_image.encode())
    return h.hexdigest()


def prepare(job_dir: Path, config: JobConfig, write: bool = True) -> Job:
    """Validate the job and materialize its inputs (unless ``write`` is False).

    One pass over the manifest validates it and computes the chunk keys; with ``write`` the
    same pass stages the rows files, which replace ``chunks/``'s only once every line was valid
    (a bad line changes nothing). ``aggregate`` and ``status`` only need the keys
    (``write=False``). Memory does not grow with the manifest either way (one chunk at a time).
    """
    job_dir = job_dir.resolve()
    manifest_path = _resolve(job_dir, config.manifest, "manifest")
    program = _resolve(job_dir, config.program, "program")
    if program.name.startswith("-"):
        raise ConfigError(f"program name {program.name!r} starts with '-', which the wrapper "
                          "would read as an option", "rename the program")
    extra = tuple(_resolve(job_dir, f, "input file") for f in config.input_files)
    bundle = _bundle_path(job_dir, config, must_exist=write)
    names = [program.name, CKJOB, *(p.name for p in extra)] + ([bundle.name] if bundle else [])
    if len(set(names)) != len(names):
        raise ConfigError(f"two transferred files share a base name: {names}",
                          "rename one; a worker's scratch folder is flat")
    opts = _options_hash(config, program, extra, bundle)
    state = job_dir / STATE_DIR
    wrapper = state / WRAPPER
    ck = state / CKJOB
    tally = Tally(manifest_path)
    if not write:
        keys = [c.key for c in _chunk_rows(manifest_path, config, opts, tally, False)]
        info = tally.info(config.column_spec())
    else:
        with job_lock(job_dir, "condorkit (writing rows files)"):
            info, keys = _materialize(job_dir, config, manifest_path, opts, tally, (wrapper, ck))
    chunks = tuple(iter_chunks(info.rows, config.chunk, config.max_rows))
    if len(chunks) != len(keys):  # cannot happen: both cut the same rows
        raise AssertionError(f"{len(chunks)} chunks but {len(keys)} keys")
    return Job(job_dir, config, info, chunks, tuple(keys), program, wrapper, ck, bundle, extra)


def _chunk_rows(manifest_path: Path, config: JobConfig, opts: str, tally: Tally,
                with_lines: bool) -> Iterator[ChunkRows]:
    return iter_chunk_rows(manifest_path, config.column_spec(), config.chunk, config.max_rows,
                           opts, tally, with_lines)


def _materialize(job_dir: Path, config: JobConfig, manifest_path: Path, opts: str,
                 tally: Tally, installed: tuple[Path, Path]) -> tuple[ManifestInfo, list[str]]:
    """Stream the manifest into staged rows files; once all of it is valid, move them into
    ``chunks/`` and install the wrapper and ckjob.py (under the job lock). Returns what the
    pass learned and the chunk keys."""
    wrapper, ck = installed
    staging = RowsStaging(rows_staging(job_dir), job_dir / CHUNK_DIR, opts, config.column_spec())
    with staging:
        for c in _chunk_rows(manifest_path, config, opts, tally, True):
            staging.add(c)
        info = tally.info(config.column_spec())
        where = job_dir
        try:
            for d in (job_dir / config.results_dir, job_dir / config.log_dir):
                where = d
                d.mkdir(parents=True, exist_ok=True)
            staging.commit()
            where = wrapper
            _install_resource(WRAPPER, wrapper)
            where = ck
            _install_resource(CKJOB, ck)
        except OSError as exc:
            raise OutputError(f"cannot write {where}: {exc.strerror or exc}",
                              "free some space on that disk (or make the job folder writable), "
                              "then run the same command again") from None
    return info, staging.keys
