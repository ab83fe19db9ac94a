"""Rendering the HTCondor submit file from Jinja templates.

Owns the Jinja environment (StrictUndefined; templates from ``JOB/templates/`` first, then the
packaged ``condorkit.templates``) and the mapping from a prepared
:class:`~condorkit.model.job.Job` to template values. Every value is validated or quoted by
:mod:`condorkit.condor.quoting` before it reaches a template, so nothing from a path, an option or
the manifest can change the file's meaning.
Manifest values never reach the submit file at all: rows travel in per-chunk rows files.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2

from condorkit.condor.quoting import (
    submit_args,
    submit_expr,
    submit_file_list,
    submit_value,
)
from condorkit.condor.submitcmds import (
    SubmitCommand,
    check_commands,
    check_rendered,
    local_image,
    memory_value,
    submit_commands,
)
from condorkit.errors import ConfigError, RenderError
from condorkit.model.job import Job
from condorkit.model.layout import START_MACRO, results_name
from condorkit.version import __version__

KEEP = ("start",)


def environment(job_dir: Path | None = None) -> jinja2.Environment:
    """The Jinja environment: job-folder overrides first, packaged templates second."""
    loaders: list[jinja2.BaseLoader] = []
    if job_dir is not None and (job_dir / "templates").is_dir():
        loaders.append(jinja2.FileSystemLoader(str(job_dir / "templates")))
    loaders.append(jinja2.PackageLoader("condorkit.templates", "."))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def _relative(job: Job, p: Path) -> str:
    try:
        return str(p.relative_to(job.dir))
    except ValueError:
        return str(p)


def _transfer_name(job: Job, p: Path) -> str:
    """How the submit file names an input: relative to the job folder; the bundle by its URL
    when ``bundle_url`` is set (HTCondor's http(s)/osdf plugin fetches it on the worker)."""
    if job.config.bundle_url and job.bundle is not None and p == job.bundle:
        return job.config.bundle_url.rstrip("/") + "/" + p.name
    return _relative(job, p)


def extra_commands(job: Job, dag: bool = False) -> tuple[str, tuple[SubmitCommand, ...]]:
    """(request_memory, the other extra submit commands) of the job, checked by HTCondor's
    parsers. ``dag``: without max_idle/max_materialize (a DAG node is one job; DAGMan throttles)."""
    cmds = submit_commands(job.config)
    check_commands(cmds, job.config.request_memory)
    image = local_image(job.config, job.dir)
    if image is not None and not image.exists():
        src = job.config.sources.get("container_image", "default")
        raise ConfigError(f"option container_image ({src}): {image} does not exist",
                          "build the image there (e.g. `apptainer build image.sif ...`), or "
                          "give an absolute path on the workers or docker://NAME:TAG")
    memory = next((c.value for c in cmds if c.key == "request_memory"),
                  memory_value(job.config.request_memory))
    skip = {"request_memory", *(("max_idle", "max_materialize") if dag else ())}
    return memory, tuple(c for c in cmds if c.key not in skip)


def submit_values(job: Job, dag: bool = False) -> dict[str, object]:
    """The quoted values the submit template places (also useful to custom templates)."""
    cfg = job.config
    memory, extra = extra_commands(job, dag)
    out = results_name(START_MACRO)
    outs = [out, *job.outputs(START_MACRO)]
    return {
        "version": __version__,
        "rows": job.rows,
        "manifest": submit_value(Path(job.manifest.path).name, "manifest name"),
        "chunk": cfg.chunk,
        "chunks": job.chunks,
        "initialdir": submit_value(str(job.dir), "job folder"),
        "executable": submit_value(str(job.wrapper), "executable"),
        "arguments": submit_args(job.arguments(START_MACRO), keep=KEEP),
        "transfer_input_files": submit_file_list(
            [_transfer_name(job, p) for p in job.inputs(START_MACRO)], "transfer_input_files",
            KEEP),
        "transfer_output_files": submit_file_list(outs, "transfer_output_files", KEEP),
        "transfer_output_remaps": '"' + ";".join(
            submit_file_list([f"{o}={cfg.results_dir}/{o}"], "transfer_output_remaps", KEEP)
            for o in outs) + '"',
        "log_dir": submit_value(cfg.log_dir, "log_dir"),
        "request_cpus": int(cfg.request_cpus),
        "request_memory": memory,
        "request_disk": submit_value(cfg.request_disk.replace(" ", ""), "request_disk"),
        "requirements": submit_expr(cfg.requirements, "requirements") if cfg.requirements else "",
        "max_retries": int(cfg.max_retries),
        "job_lease_duration": int(cfg.job_lease_duration or 0),
        "chunk_timeout": int(cfg.chunk_timeout),
        "job_tag": json.dumps(job.manifest.sha256[:16]),
        "submit_commands": [c.line for c in extra],
        "extra_commands": extra,
    }


def render_submit(job: Job) -> str:
    """Render the job's submit file with the configured template."""
    env = environment(job.dir)
    try:
        template = env.get_template(job.config.template)
        values = submit_values(job)
        text = template.render(**values)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name!r} not found in {job.dir / 'templates'} or the "
                          "packaged templates", "fix `template` in condorkit.toml") from exc
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template {job.config.template}: {exc.message}",
                          "use only the documented template values") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"template {exc.filename}:{exc.lineno}: {exc.message}",
                          "fix the template syntax") from exc
    check_rendered(text, values["extra_commands"], job.config.template)  # type: ignore[arg-type]
    return text
