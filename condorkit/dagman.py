"""Driving and reading DAGMan: condor_submit_dag, waiting, the node status file, the node log.

Owns submitting a DAG with ``condor_submit_dag`` (on the submit machine; ``CONDORKIT_SUBMIT_DAG``
may name another command line, e.g. the test pool's ``scripts/condor-pool exec
condor_submit_dag``), waiting for DAGMan to exit (its ``EXITING WITH STATUS`` line in
``DAG.dagman.out``, which DAGMan appends to, read from the offset before the submission) and its
metrics file, and parsing DAGMan's own files as text into frozen dataclasses: the node status file
(``NODE_STATUS_FILE``, new ClassAd syntax) and the node log (``DAG.nodes.log``, HTCondor's user
log). No htcondor2: these are plain files next to the DAG. Library code only: prints nothing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .errors import CondorError

NODE_STATUS = {0: "not_ready", 1: "ready", 2: "prerun", 3: "submitted", 4: "postrun",
               5: "done", 6: "error", 7: "futile"}
SUBMIT_ENV = "CONDORKIT_SUBMIT_DAG"


_ATTR = re.compile(r"^([A-Za-z_]\w*)\s*=\s*(.*?)\s*;\s*(?:/\*\s*(.*?)\s*\*/)?$")


def _scalar(text: str) -> object:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    try:
        return int(text)
    except ValueError:
        return text


def parse_classads(text: str) -> list[dict[str, object]]:
    """The ads of a DAGMan node status file (new ClassAd syntax, one attribute per line).

    An attribute's trailing ``/* "comment" */`` is kept as ``NAME_text``.
    """
    ads: list[dict[str, object]] = []
    cur: dict[str, object] | None = None
    in_list: tuple[str, list[object]] | None = None
    for raw in text.splitlines():
        s = raw.strip()
        if cur is None:
            if s == "[":
                cur = {}
            continue
        if in_list is not None:
            if s.startswith("}"):
                cur[in_list[0]] = in_list[1]
                in_list = None
            elif s:
                in_list[1].append(_scalar(s.rstrip(",").strip()))
            continue
        if s == "]":
            ads.append(cur)
            cur = None
            continue
        m = re.match(r"^([A-Za-z_]\w*)\s*=\s*\{\s*$", s)
        if m:
            in_list = (m.group(1), [])
            continue
        m = _ATTR.match(s)
        if m:
            cur[m.group(1)] = _scalar(m.group(2))
            if m.group(3):
                cur[m.group(1) + "_text"] = m.group(3).strip('"')
    return ads


@dataclass(frozen=True)
class NodeState:
    name: str
    status: str  # one of NODE_STATUS's values
    details: str
    retries: int


@dataclass(frozen=True)
class DagStatus:
    """A node status file: the DAG's state and every node's."""

    path: Path
    dag_status: str  # "done", "error" or the text DAGMan wrote
    done: bool  # the DAG finished (success or not); the file will not change
    nodes: tuple[NodeState, ...]
    counts: dict[str, int]

    def node(self, name: str) -> NodeState:
        return next(n for n in self.nodes if n.name == name)


def read_node_status(path: Path) -> DagStatus:
    """Read DAGMan's node status file (``NODE_STATUS_FILE``). Raises CondorError if absent."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError as exc:
        raise CondorError(f"no node status file {path} yet",
                          "submit the DAG (condor_submit_dag), then wait a few seconds") from exc
    ads = parse_classads(text)
    dag = next((a for a in ads if a.get("Type") == "DagStatus"), None)
    end = next((a for a in ads if a.get("Type") == "StatusEnd"), None)
    if dag is None or end is None:
        raise CondorError(f"{path} is incomplete (DAGMan may be writing it)", "read it again")
    nodes = tuple(NodeState(str(a.get("Node")), NODE_STATUS.get(int(str(a.get("NodeStatus"))),
                                                                 "unknown"),
                            str(a.get("StatusDetails", "")), int(str(a.get("RetryCount", 0))))
                  for a in ads if a.get("Type") == "NodeStatus")
    code = int(str(dag.get("DagStatus", -1)))
    label = {5: "done", 6: "error"}.get(code, str(dag.get("DagStatus_text", code)))
    counts = {k[5:].lower(): int(str(v)) for k, v in dag.items()
              if k.startswith("Nodes") and not k.endswith("_text") and str(v).isdigit()}
    return DagStatus(Path(path), label, end.get("NextUpdate") == 0, nodes, counts)


@dataclass(frozen=True)
class NodeEvents:
    """What the DAG's node log says about a node's latest job."""

    node: str
    cluster: int
    submits: int
    slot: str = ""
    host: str = ""
    exit_code: int | None = None
    ended: float | None = None


_EVENT = re.compile(r"^(\d{3}) \((\d+)\.\d+\.\d+\) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (.*)$")


def read_node_log(path: Path) -> dict[str, NodeEvents]:
    """Parse ``DAG.nodes.log`` (HTCondor's user log text): per node, its latest job's events."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return {}
    by_cluster: dict[int, dict[str, object]] = {}
    submits: dict[str, int] = {}
    cur: dict[str, object] | None = None
    code = ""
    for line in lines:
        m = _EVENT.match(line)
        if m:
            code, cluster = m.group(1), int(m.group(2))
            cur = by_cluster.setdefault(cluster, {"cluster": cluster})
            when = datetime.strptime(m.group(3), "%Y-%m-%d %H:%M:%S").timestamp()
            if code == "001":
                alias = re.search(r"alias=([^&>]+)", m.group(4))
                cur["host"] = alias.group(1) if alias else ""
            elif code in ("005", "009"):
                cur["ended"] = when
            continue
        if cur is None:
            continue
        s = line.strip()
        if code == "000" and s.startswith("DAG Node:"):
            cur["node"] = s.split(":", 1)[1].strip()
            submits[str(cur["node"])] = submits.get(str(cur["node"]), 0) + 1
        elif code == "001" and s.startswith("SlotName:"):
            cur["slot"] = s.split(":", 1)[1].strip()
        elif code == "005":
            r = re.search(r"\(return value (-?\d+)\)|\(signal (\d+)\)", s)
            if r:
                cur["exit_code"] = int(r.group(1)) if r.group(1) else 128 + int(r.group(2))
    out: dict[str, NodeEvents] = {}
    for c in sorted(by_cluster):
        d = by_cluster[c]
        if "node" in d:
            name = str(d["node"])
            exit_code = d.get("exit_code")
            ended = d.get("ended")
            out[name] = NodeEvents(name, c, submits[name], str(d.get("slot", "")),
                                   str(d.get("host", "")),
                                   int(str(exit_code)) if exit_code is not None else None,
                                   float(str(ended)) if ended is not None else None)
    return out



# ----------------------------------------------------------------------------- submit and wait


@dataclass(frozen=True)
class DagSubmission:
    dag: Path
    cluster: int
    out_offset: int  # size of DAG.dagman.out before this submission (DAGMan appends to it)
    submitted: float
    rescue: bool  # condor_submit_dag said it runs a rescue DAG


@dataclass(frozen=True)
class DagRun:
    """A finished DAGMan run: its exit status and DAGMan's own metrics."""

    submission: DagSubmission
    exit_status: int
    wall_s: float  # from submission until DAGMan exited
    metrics: dict[str, object]

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def submit_command() -> list[str]:
    env = os.environ.get(SUBMIT_ENV, "").strip()
    return shlex.split(env) if env else ["condor_submit_dag"]


def submit_dag(dag: Path, command: Sequence[str] | None = None,
               append: Sequence[str] = ()) -> DagSubmission:
    """Run ``condor_submit_dag DAG`` in the DAG's folder (a rescue DAG is picked up by DAGMan).
    ``append``: submit lines for the DAGMan job itself (``-append``), e.g. a project name."""
    cmd = list(command or submit_command())
    if shutil.which(cmd[0]) is None:
        raise CondorError(f"{cmd[0]} not found on PATH",
                          "run this on the pool's submit machine, or set "
                          f"{SUBMIT_ENV} to a command line that submits a DAG")
    dag = Path(dag).resolve()
    out = dag.parent / (dag.name + ".dagman.out")
    offset = out.stat().st_size if out.is_file() else 0
    t0 = time.time()
    try:
        appends = [a for line in append for a in ("-append", line)]
        proc = subprocess.run([*cmd, *appends, dag.name], cwd=dag.parent, capture_output=True,
                              text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CondorError(f"{shlex.join(cmd)} failed: {exc}", "check the pool") from exc
    m = re.search(r"submitted to cluster (\d+)", proc.stdout)
    if proc.returncode != 0 or not m:
        raise CondorError(f"{shlex.join([*cmd, dag.name])} failed (exit {proc.returncode}): "
                          f"{(proc.stderr or proc.stdout).strip()[-800:]}",
                          "read the message above; a DAG still running must finish first")
    return DagSubmission(dag, int(m.group(1)), offset, t0, "Running rescue DAG" in proc.stdout)


def wait_dag(sub: DagSubmission, timeout: float = 1800, poll: float = 0.5) -> DagRun:
    """Wait until DAGMan exits (its ``EXITING WITH STATUS`` line); read its metrics file."""
    out = sub.dag.parent / (sub.dag.name + ".dagman.out")
    deadline = time.monotonic() + timeout
    pattern = re.compile(r"\(condor_DAGMAN\) pid \d+ EXITING WITH STATUS (-?\d+)")
    while True:
        if out.is_file():
            with open(out, "rb") as fh:
                fh.seek(sub.out_offset)
                m = pattern.search(fh.read().decode("utf-8", "replace"))
            if m:
                break
        if time.monotonic() > deadline:
            raise CondorError(f"DAG {sub.dag} (DAGMan cluster {sub.cluster}) did not finish "
                              f"within {timeout:.0f}s", f"look at {out} and condor_q -dag")
        time.sleep(poll)
    wall = time.time() - sub.submitted
    try:
        metrics = json.loads(sub.dag.with_name(sub.dag.name + ".metrics").read_text())
    except (OSError, ValueError):
        metrics = {}
    return DagRun(sub, int(m.group(1)), wall, metrics)

