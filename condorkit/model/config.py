"""Job configuration: one frozen, validated dataclass and where its values come from.

Owns the option set of a job and its precedence: command line > environment (``CONDORKIT_*``) >
project file (``condorkit.toml`` in the job folder) > defaults. Values are validated when the
dataclass is created, so a bad value fails early with the option's name and its source.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from condorkit.errors import ConfigError
from condorkit.model.layout import PROJECT_FILE
from condorkit.model.manifest import Columns
from condorkit.model.packaged import package_dir

ENV_PREFIX = "CONDORKIT_"
_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|K|M|G|T)?$", re.IGNORECASE)
#: an extra per-chunk output: a plain file name with ``{start}`` (filled with the chunk's start)
_OUTPUT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_EXPR = re.compile(r"^[^\x00-\x1f\x7f]*[A-Za-z(][^\x00-\x1f\x7f]*$")  # checked by HTCondor later
#: where pool workers fetch the bundle (HTCondor's file-transfer plugins): a folder URL
_BUNDLE_URL = re.compile(r"^(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|osdf://|pelican://[A-Za-z0-9.-]+)"
                         r"(/[A-Za-z0-9._~%+-]+)*/?$")
_RELNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")


def _cli(help: str, flag: str = "", metavar: str = "") -> Mapping[str, str]:
    """Field metadata: the option is also a command-line job option (``--NAME`` unless ``flag``;
    a tuple field's flag is repeatable). The CLI builds its job options from these."""
    return {"help": help, "flag": flag, "metavar": metavar}


@dataclass(frozen=True)
class JobConfig:
    """Everything that describes a job. Paths are relative to the job folder unless absolute."""

    manifest: str = field(default="manifest.txt", metadata=_cli("manifest file (default "
                                                                 "manifest.txt)"))
    program: str = field(default="program.py", metadata=_cli(
        "the program run on each chunk (default program.py)"))
    columns: tuple[str, ...] = ("item:str",)
    chunk: int = 200
    max_rows: int | None = None
    input_files: tuple[str, ...] = field(default=(), metadata=_cli(
        "extra input file transferred with every chunk (repeatable)", "--input", "FILE"))
    outputs: tuple[str, ...] = ()
    bundle: str = field(default="", metadata=_cli(
        "environment bundle tarball (see `condorkit bundle`)"))
    bundle_url: str = ""  # where pool workers fetch the bundle (http, https, osdf folder URL)
    python: str = field(default="", metadata=_cli(
        "local runs: the interpreter for a .py program (default: the one running condorkit; "
        "a bundle's wins; pool workers use python3)"))
    request_cpus: int = field(default=1, metadata=_cli("HTCondor request_cpus (default 1)"))
    request_memory: str = field(default="1GB", metadata=_cli(
        "HTCondor request_memory (default 1GB)"))
    request_disk: str = field(default="2GB", metadata=_cli("HTCondor request_disk (default 2GB)"))
    requirements: str = field(default="", metadata=_cli("ClassAd requirements expression"))
    max_retries: int = field(default=3, metadata=_cli("HTCondor max_retries per chunk"))
    job_lease_duration: int | None = field(default=None, metadata=_cli(
        "seconds before a lost job requeues"))
    # pool options (condor/submitcmds.py): what real pools ask of every job
    project_name: str = field(default="", metadata=_cli(
        "+ProjectName of every job (the OSPool requires one)"))
    request_gpus: int | None = field(default=None, metadata=_cli("HTCondor request_gpus"))
    batch_name: str = field(default="", metadata=_cli("batch name shown by condor_q"))
    accounting_group: str = field(default="", metadata=_cli(
        "accounting group (e.g. group_physics.alice)"))
    max_idle: int | None = field(default=None, metadata=_cli(
        "late materialization: idle jobs at most"))
    max_materialize: int | None = field(default=None, metadata=_cli(
        "late materialization: jobs in the queue at most"))
    container_image: str = field(default="", metadata=_cli(
        "run every chunk in this container image: a .sif file or sandbox folder in the job "
        "folder, an absolute path on the workers, or docker://NAME:TAG", metavar="IMAGE"))
    memory_retry: str = field(default="", metadata=_cli(
        "release a job held for exceeding its memory with twice its peak use, up to SIZE "
        "(e.g. 8GB)", metavar="SIZE"))
    submit_cmds: tuple[tuple[str, str], ...] = field(default=(), metadata=_cli(
        "any other submit command or +Attribute (repeatable; adds to the [submit] table of "
        "condorkit.toml)", "--submit-cmd", "KEY=VALUE"))
    chunk_timeout: int = field(default=86400, metadata=_cli(
        "seconds a chunk may run on the pool before it is held (allowed_job_duration; "
        "default 86400)"))
    log_dir: str = field(default="logs", metadata=_cli("folder for HTCondor logs (default logs)"))
    results_dir: str = "results"
    template: str = field(default="submit.sub.j2", metadata=_cli(
        "submit template name (default submit.sub.j2)"))
    workers: int = 0
    local_retries: int = 2
    chart_x: str = ""  # aggregate: the fields charted ("": the first two numeric fields)
    chart_y: str = ""
    chart_title: str = ""
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        def bad(name: str, why: str, hint: str) -> ConfigError:
            src = self.sources.get(name, "default")
            return ConfigError(f"option {name} ({src}): {why}", hint)

        for name in ("chunk", "request_cpus"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "must be at least 1", f"set {name} to a positive whole number")
        if self.max_rows is not None and self.max_rows < 1:
            raise bad("max_rows", "must be at least 1", "omit it to take every row")
        for name in ("max_retries", "workers", "local_retries"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative", f"set {name} to 0 or more")
        if self.job_lease_duration is not None and self.job_lease_duration < 1:
            raise bad("job_lease_duration", "must be positive seconds", "e.g. 1200")
        if int(self.chunk_timeout) < 1:
            raise bad("chunk_timeout", "must be positive seconds",
                      "e.g. 86400 (a day); a chunk running longer is held with the reason")
        if not _SIZE.match(self.request_disk):
            raise bad("request_disk", f"{self.request_disk!r} is not a size",
                      "write e.g. 512MB or 2GB")
        if not _SIZE.match(self.request_memory) and not _EXPR.match(self.request_memory):
            raise bad("request_memory", f"{self.request_memory!r} is not a size (nor a "
                      "ClassAd expression)", "write e.g. 512MB, 2GB, 2048 or an expression")
        if self.memory_retry and not _SIZE.match(self.memory_retry):
            raise bad("memory_retry", f"{self.memory_retry!r} is not a size",
                      "write the ceiling for a retried job's memory, e.g. 8GB")
        for name in ("log_dir", "results_dir"):
            if not _RELNAME.match(getattr(self, name)):
                raise bad(name, "must be a simple relative folder name",
                          "use letters, digits, - _ . and /, no spaces")
        if not _RELNAME.match(self.template) or not self.template.endswith(".j2"):
            raise bad("template", f"{self.template!r} is not a template name",
                      "name a file like submit.sub.j2 (looked up in JOB/templates/, then packaged)")
        if not self.program or not self.manifest:
            raise bad("program" if not self.program else "manifest", "must not be empty",
                      "set it in condorkit.toml")
        for name in self.outputs:
            if name.count("{start}") != 1 or not _OUTPUT.match(name.replace("{start}", "1")):
                raise bad("outputs", f"{name!r} is not a per-chunk output file name",
                          'use a plain file name holding {start} once, e.g. "smaller-{start}.tar"')
        if self.bundle_url and not _BUNDLE_URL.match(self.bundle_url):
            raise bad("bundle_url", f"{self.bundle_url!r} is not an http(s)/osdf folder URL",
                      'e.g. bundle_url = "https://files.example.org/envs/" (letters, digits, '
                      "- _ . ~ % + in the path; no spaces, commas, quotes or query)")
        Columns.parse(self.columns)  # raises ConfigError when invalid

    def column_spec(self) -> Columns:
        return Columns.parse(self.columns)

    def with_overrides(self, **values: Any) -> JobConfig:
        src = dict(self.sources)
        src.update({k: "command line" for k in values})
        return replace(self, sources=src, **values)


_FIELDS = {f.name: f for f in fields(JobConfig) if f.name != "sources"}


def _coerce(name: str, value: Any, source: str) -> Any:
    """Convert a raw value (TOML, env string, CLI) to the field's type, or fail naming it."""
    typ = str(_FIELDS[name].type)
    if name == "submit_cmds":
        return _coerce_table(value, source)
    try:
        if typ.startswith("tuple"):
            if isinstance(value, str):
                value = [v.strip() for v in re.split(r"[,\s]+", value) if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise TypeError
            return tuple(str(v) for v in value)
        if typ.startswith("int"):
            if value is None or value == "" or (typ.endswith("None") and value in (0, "0")):
                return None if typ.endswith("None") else 0
            if isinstance(value, bool):
                raise TypeError
            return int(value)
        if typ == "str":
            if not isinstance(value, (str, int, float)):
                raise TypeError
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ConfigError(f"option {name} ({source}): cannot use {value!r}",
                      f"give {name} a value of type {typ}")


def parse_pairs(items: Any, what: str = "--submit-cmd") -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` strings (the command line) as pairs; the value may contain ``=``."""
    pairs = []
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {item!r} is not KEY=VALUE",
                              'write e.g. --submit-cmd "periodic_release=HoldReasonCode == 34"')
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _coerce_table(value: Any, source: str) -> tuple[tuple[str, str], ...]:
    """The ``[submit]`` table (TOML) or KEY=VALUE pairs (command line) as (key, value) pairs."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = list(parse_pairs(value))
    elif isinstance(value, (list, tuple)) and all(
            isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
        items = [(k, v) for k, v in value]
    else:
        raise ConfigError(f"option submit_cmds ({source}): cannot use {value!r}",
                          'write a [submit] table in condorkit.toml, or --submit-cmd KEY=VALUE')
    out = []
    for key, v in items:
        if isinstance(v, bool):
            v = "true" if v else "false"
        if not isinstance(v, (str, int, float)):
            raise ConfigError(f"[submit] {key} ({source}): {v!r} is not a single value",
                              "give a string, a number or true/false")
        out.append((str(key), str(v)))
    return tuple(out)


def read_project_file(job_dir: Path) -> dict[str, Any]:
    """Read ``condorkit.toml`` (top-level keys or a ``[job]`` table). Missing file: ``{}``."""
    path = job_dir / PROJECT_FILE
    if not path.is_file():
        if path.exists() or path.is_symlink():  # never read a FIFO or a device (or ignore it)
            what = "a dangling link" if not path.exists() else "not a regular file"
            raise ConfigError(f"{path} is {what}", "make it a regular file, or remove it")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", "fix the syntax of the file") from exc
    table = data.pop("submit", None)  # the [submit] table is the option submit_cmds
    data = data.get("job", data)
    if table is not None:
        data = {**data, "submit_cmds": table}
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown option(s) {', '.join(unknown)}",
                          f"known options: {', '.join(sorted(_FIELDS))}")
    return dict(data)


# what a folder without condorkit.toml takes from the example whose program it holds
_PRESET_KEYS = ("program", "columns", "chart_x", "chart_y", "chart_title")


def example_preset(job_dir: Path, project: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(source, options) of the packaged example whose program the folder holds (e.g. the OSG
    tutorial's ``luminance.py``) when the project file names no other program: that example's
    ``program``, ``columns`` and chart settings, so such a folder works as it is. Else ("", {})."""
    examples = package_dir("condorkit.examples")
    for folder in sorted(examples.iterdir(), key=lambda f: f.name):
        toml = folder.joinpath(PROJECT_FILE)
        if not toml.is_file():
            continue
        data = tomllib.loads(toml.read_text(encoding="utf-8"))
        data = data.get("job", data)
        program = data.get("program")
        if (isinstance(program, str) and project.get("program", program) == program
                and (job_dir / program).is_file()):
            return (f"the {folder.name} example's {PROJECT_FILE}",
                    {k: data[k] for k in _PRESET_KEYS if k in data})
    return "", {}


def load_config(job_dir: Path, cli: Mapping[str, Any] | None = None,
                env: Mapping[str, str] | None = None) -> JobConfig:
    """Merge defaults < example preset < project file < environment < command line.

    The example preset applies only to a folder that holds an example's program and names no
    other program (see :func:`example_preset`)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    project = read_project_file(job_dir)
    layers: list[tuple[str, Mapping[str, Any]]] = [
        example_preset(job_dir, project),
        (str(job_dir / PROJECT_FILE), project),
        ("environment", {k[len(ENV_PREFIX):].lower(): v for k, v in env.items()
                         if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX):].lower() in _FIELDS}),
        ("command line", {k: v for k, v in (cli or {}).items() if v is not None}),
    ]
    for source, layer in layers:
        for name, raw in layer.items():
            if name not in _FIELDS:
                raise ConfigError(f"unknown option {name} ({source})",
                                  f"known options: {', '.join(sorted(_FIELDS))}")
            value = _coerce(name, raw, source)
            if name == "submit_cmds" and name in values:  # tables merge; later layers win per key
                keys = {k for k, _ in value}
                value = tuple(p for p in values[name] if p[0] not in keys) + value
            values[name] = value
            sources[name] = source
    return JobConfig(sources=sources, **values)


def command_line_options() -> tuple[Any, ...]:
    """The fields that are also command-line job options (in declaration order)."""
    return tuple(f for f in fields(JobConfig) if "help" in f.metadata)


def option_kind(name: str) -> str:
    """"int", "tuple" or "str": how the command line parses option ``name``."""
    typ = str(_FIELDS[name].type)
    return "tuple" if typ.startswith("tuple") else "int" if typ.startswith("int") else "str"
