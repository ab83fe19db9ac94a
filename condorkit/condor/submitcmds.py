"""Extra submit commands: condorkit's pool options and the user's ``[submit]`` table.

Owns turning the options real pools need (``project_name``, ``request_gpus``, ``batch_name``,
``accounting_group``, ``max_idle``, ``max_materialize``, ``memory_retry``, ``container_image``)
and any other submit command or custom attribute (the ``[submit]`` table of ``condorkit.toml``,
``--submit-cmd KEY=VALUE``, parsed by :func:`condorkit.model.config.parse_pairs`) into
submit-file lines.
Every key is checked and every value goes through :mod:`condorkit.condor.quoting`; then
HTCondor's own parsers check them before anything is submitted (``htcondor2.Submit`` reads each
line back unchanged; ``classad2`` parses every ClassAd expression), so a bad entry is a clear
error naming its key and where it came from. Commands condorkit itself writes (executable,
transfer lists, logs, queue...) cannot be overridden here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condorkit.condor.quoting import submit_expr, submit_value
from condorkit.errors import ConfigError, QuotingError, RenderError

#: written by condorkit's templates: a change would break the chunk/result contract
OWNED = frozenset({
    "universe", "executable", "arguments", "initialdir", "input", "output", "error", "log",
    "should_transfer_files", "when_to_transfer_output", "transfer_input_files",
    "transfer_output_files", "transfer_output_remaps", "transfer_executable", "queue",
    "my.condorkitstart", "my.condorkitcount", "my.condorkitjob",
})
#: submit commands that have a condorkit option: set the option instead
OPTIONS = {
    "request_cpus": "request_cpus", "request_memory": "request_memory",
    "request_disk": "request_disk", "requirements": "requirements",
    "max_retries": "max_retries", "job_lease_duration": "job_lease_duration",
    "request_gpus": "request_gpus", "batch_name": "batch_name",
    "accounting_group": "accounting_group", "max_idle": "max_idle",
    "max_materialize": "max_materialize", "my.projectname": "project_name",
    "container_image": "container_image", "allowed_job_duration": "chunk_timeout",
}
#: submit commands whose value is a ClassAd expression (custom attributes are, too)
EXPRESSIONS = frozenset({
    "rank", "periodic_hold", "periodic_release", "periodic_remove", "periodic_vacate",
    "on_exit_hold", "on_exit_remove", "on_exit_hold_reason", "on_exit_hold_subcode",
    "periodic_hold_reason", "periodic_hold_subcode", "success_exit_code", "retry_until",
    "request_memory", "requirements",
})
_COMMAND = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
_ATTRIBUTE = re.compile(r"^(?:\+|[Mm][Yy]\.)([A-Za-z_][A-Za-z0-9_]{0,99})$")
_GROUP = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
#: a container image: a file or folder name/path, or a URL (docker://, oras://, osdf://...)
_IMAGE = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_.:/@+-]{0,999}$")
#: an image that names a file or folder on the submit side, transferred by HTCondor
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|K|M|G|T)?$", re.IGNORECASE)
_MB = {"": 1.0, "B": 1 / 2**20, "K": 1 / 1024, "KB": 1 / 1024, "M": 1.0, "MB": 1.0,
       "G": 1024.0, "GB": 1024.0, "T": 2.0**20, "TB": 2.0**20}


@dataclass(frozen=True)
class SubmitCommand:
    """One extra submit-file line: ``key = value`` (value already quoted), and its origin."""

    key: str
    value: str
    origin: str  # e.g. "option project_name (condorkit.toml)" or "[submit] periodic_release"
    expression: bool = False

    @property
    def line(self) -> str:
        return f"{self.key:<23} = {self.value}"


def memory_mb(size: str) -> int | None:
    """A size (``2GB``, ``512``, ``1.5 G``) in MB, or None when it is not a plain size."""
    m = _SIZE.match(str(size).strip())
    if not m:
        return None
    return max(1, int(float(m.group(0)[: m.start(2)] if m.group(2) else m.group(0))
                      * _MB[(m.group(2) or "").upper()] + 0.5))


def memory_value(value: str) -> str:
    """``request_memory``: a size as is (``2GB``), else a ClassAd expression (checked later)."""
    value = str(value).strip()
    if _SIZE.match(value):
        return submit_value(value.replace(" ", ""), "request_memory")
    return submit_expr(value, "request_memory")


def _key(raw: str, origin: str) -> tuple[str, bool]:
    """The submit-file spelling of a table key, and whether it is a custom attribute."""
    m = _ATTRIBUTE.match(raw)
    if m:
        key, attribute = f"My.{m.group(1)}", True
    elif _COMMAND.match(raw):
        key, attribute = raw, False
    else:
        raise ConfigError(f"{origin}: {raw!r} is not a submit command or a custom attribute",
                          "use a command name (letters, digits, _) or +Name / My.Name")
    low = key.lower()
    if low in OWNED:
        raise ConfigError(f"{origin}: condorkit writes {key} itself",
                          "remove it; condorkit's chunks depend on its own value")
    if low in OPTIONS:
        raise ConfigError(f"{origin}: {key} has its own condorkit option",
                          f"set {OPTIONS[low]} in condorkit.toml (or its command-line flag)")
    return key, attribute


def _int_option(name: str, value: int | None, cfg: Any) -> SubmitCommand | None:
    if value is None:
        return None
    if int(value) < 0:
        raise ConfigError(f"option {name} ({_src(cfg, name)}): must not be negative",
                          f"set {name} to 0 or more")
    return SubmitCommand(name, str(int(value)), f"option {name} ({_src(cfg, name)})")


def _src(cfg: Any, name: str) -> str:
    return str(getattr(cfg, "sources", {}).get(name, "default"))


def _classad_string(value: str, origin: str) -> str:
    """A ClassAd string literal (``"..."``) holding ``value`` verbatim, safe for a submit file."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"{origin}: {value!r} contains a control character",
                          "use printable characters only")
    inner = value.replace("\\", "\\\\").replace('"', '\\"')
    return submit_value(f'"{inner}"', origin)


def memory_retry_commands(cfg: Any) -> list[SubmitCommand]:
    """``memory_retry = "4GB"``: a job held for using more memory than it requested is released
    with twice its measured peak (``MemoryUsage``) as its new request, capped at that ceiling,
    at most 3 times. HTCondor 23 has no ``retry_request_memory`` (newer versions do), so this
    is the classic ``periodic_release`` + ``request_memory`` expression. It releases holds with
    code 34 (the starter's out-of-memory hold, with cgroups) and code 21 subcode 102 (HTCondor's
    ``use POLICY : HOLD_IF_MEMORY_EXCEEDED`` on a startd without cgroups)."""
    ceiling = memory_mb(cfg.memory_retry)
    origin = f"option memory_retry ({_src(cfg, 'memory_retry')})"
    base = memory_mb(cfg.request_memory)
    if ceiling is None or base is None:
        raise ConfigError(f"{origin}: needs request_memory and memory_retry as sizes "
                          f"(have {cfg.request_memory!r} and {cfg.memory_retry!r})",
                          'e.g. request_memory = "1GB" and memory_retry = "8GB"')
    if ceiling <= base:
        raise ConfigError(f"{origin}: the ceiling {ceiling} MB is not above request_memory "
                          f"({base} MB)", "raise memory_retry or lower request_memory")
    # MemoryUsage (MB) is the job's measured peak; it is 0 before the first run
    grow = (f"ifThenElse(MemoryUsage isnt undefined, "
            f"min({{{ceiling}, max({{{base}, 2 * MemoryUsage}})}}), {base})")
    held_for_memory = ("(HoldReasonCode == 34 || "
                       "(HoldReasonCode == 21 && HoldReasonSubCode == 102))")
    return [
        SubmitCommand("request_memory", submit_expr(grow, "request_memory"), origin, True),
        SubmitCommand("periodic_release", submit_expr(
            f"{held_for_memory} && NumHolds <= 3 && RequestMemory < {ceiling}",
            "periodic_release"), origin, True),
    ]


def container_command(cfg: Any) -> SubmitCommand:
    """``container_image = IMAGE``: HTCondor runs the job (the wrapper, then the program) inside
    the image: a ``.sif`` file or a sandbox folder (apptainer; a relative path is transferred
    from the job folder), or ``docker://NAME:TAG`` (docker, or apptainer pulling it). With the
    template's ``universe = vanilla`` condor_submit makes it a container-universe job."""
    image = str(cfg.container_image)
    origin = f"option container_image ({_src(cfg, 'container_image')})"
    if not _IMAGE.match(image) or "//" in _SCHEME.sub("", image):
        raise ConfigError(f"{origin}: {image!r} is not a container image name",
                          "give a file like image.sif, a folder, an absolute path on the "
                          "workers, or docker://NAME:TAG (letters, digits, _ . : / @ + -)")
    return SubmitCommand("container_image", _q(submit_value, image, origin), origin)


def local_image(cfg: Any, job_dir: Path) -> Path | None:
    """The submit-side file or folder a relative ``container_image`` names (HTCondor transfers
    it with every job), else None (a URL, or an absolute path that lives on the workers)."""
    image = str(getattr(cfg, "container_image", ""))
    if not image or _SCHEME.match(image) or image.startswith("/"):
        return None
    return job_dir / image


def submit_commands(cfg: Any) -> tuple[SubmitCommand, ...]:
    """The extra submit lines of a job configuration, in a stable order, quoted."""
    cmds: list[SubmitCommand] = []
    if cfg.project_name:
        origin = f"option project_name ({_src(cfg, 'project_name')})"
        cmds.append(SubmitCommand("My.ProjectName", _classad_string(cfg.project_name, origin),
                                  origin, True))
    if cfg.accounting_group:
        origin = f"option accounting_group ({_src(cfg, 'accounting_group')})"
        if not _GROUP.match(cfg.accounting_group):
            raise ConfigError(f"{origin}: {cfg.accounting_group!r} is not a group name",
                              "use letters, digits, _ . - (e.g. group_physics.alice)")
        cmds.append(SubmitCommand("accounting_group", cfg.accounting_group, origin))
    if cfg.batch_name:
        origin = f"option batch_name ({_src(cfg, 'batch_name')})"
        if '"' in cfg.batch_name:
            raise ConfigError(f"{origin}: {cfg.batch_name!r} contains a double quote",
                              "leave the quotes out")
        cmds.append(SubmitCommand("batch_name", _q(submit_value, cfg.batch_name, origin), origin))
    if cfg.container_image:
        cmds.append(container_command(cfg))
    for name in ("request_gpus", "max_idle", "max_materialize"):
        cmd = _int_option(name, getattr(cfg, name), cfg)
        if cmd is not None:
            cmds.append(cmd)
    if cfg.memory_retry:
        cmds.extend(memory_retry_commands(cfg))
    seen = {c.key.lower() for c in cmds}
    for raw, value in cfg.submit_cmds:
        origin = f"[submit] {raw} ({_src(cfg, 'submit_cmds')})"
        key, attribute = _key(raw, origin)
        if key.lower() in seen:
            raise ConfigError(f"{origin}: {key} is already set by another option",
                              "set it in one place only")
        seen.add(key.lower())
        expression = attribute or key.lower() in EXPRESSIONS
        quote = submit_expr if expression else submit_value
        cmds.append(SubmitCommand(key, _q(quote, value, origin), origin, expression))
    return tuple(cmds)


def _q(quote: Any, value: str, origin: str) -> str:
    try:
        return str(quote(value, origin))
    except QuotingError as exc:
        raise ConfigError(exc.message, exc.hint) from exc


def _htcondor() -> tuple[Any, Any]:
    if "CONDOR_CONFIG" not in os.environ and not os.path.exists("/etc/condor/condor_config"):
        os.environ["CONDOR_CONFIG"] = "/dev/null"  # parsing needs no pool configuration
    import classad2
    import htcondor2

    return htcondor2, classad2


def check_commands(cmds: Sequence[SubmitCommand], memory: str | None = None) -> None:
    """Check every command with HTCondor's parsers: ``htcondor2.Submit`` must read each line back
    unchanged and every expression (and an expression ``memory``) must parse as a ClassAd."""
    lines = [c.line for c in cmds]
    checks = list(cmds)
    if memory is not None and not _SIZE.match(str(memory).strip()):
        mem = SubmitCommand("request_memory", memory_value(memory), "option request_memory",
                            True)
        lines.append(mem.line)
        checks.append(mem)
    if not checks:  # nothing beyond the template's own values: no bindings needed
        return
    htcondor2, classad2 = _htcondor()
    try:
        sub = htcondor2.Submit("\n".join(lines) + "\n")
    except Exception as exc:
        raise ConfigError(f"HTCondor cannot parse the extra submit commands: {exc}",
                          "check the [submit] table and the pool options") from exc
    for c in checks:
        got = sub.get(c.key)
        if got is None and c.key.startswith("My."):
            got = sub.get("MY." + c.key[3:])
        if got is None or got.strip() != c.value.strip():
            raise ConfigError(f"{c.origin}: HTCondor reads {c.key} as {got!r}, not {c.value!r}",
                              "simplify the value")
        if c.expression:
            try:
                classad2.ExprTree(sub.expand(c.key) if "$" in c.value else c.value)
            except Exception as exc:
                raise ConfigError(f"{c.origin}: {c.value!r} is not a valid ClassAd expression "
                                  f"({exc})", 'write a string in quotes: "\\"text\\""') from exc


def check_rendered(text: str, cmds: Sequence[SubmitCommand], template: str) -> None:
    """The rendered submit file, parsed by HTCondor, must carry every extra command (a custom
    template that leaves out ``{{ submit_commands }}`` would drop them silently)."""
    if not cmds:
        return
    htcondor2, _ = _htcondor()
    try:
        sub = htcondor2.Submit(text)
    except Exception as exc:
        raise RenderError(f"HTCondor cannot parse the rendered {template}: {exc}",
                          "check the template and the options") from exc
    for c in cmds:
        got = sub.get(c.key) if c.key in sub else sub.get("MY." + c.key[3:])
        if got is None or got.strip() != c.value.strip():
            raise RenderError(f"template {template} does not set {c.key} from {c.origin}",
                              "place {{ submit_commands }} before the queue statement")


def dagman_appends(cmds: Sequence[SubmitCommand]) -> list[str]:
    """``condor_submit_dag -append`` lines for the DAGMan job itself: custom attributes (e.g.
    the project name a pool requires on every job), accounting group and batch name."""
    return [f"{c.key} = {c.value}" for c in cmds
            if c.key.startswith("My.") or c.key in ("accounting_group", "batch_name")]
