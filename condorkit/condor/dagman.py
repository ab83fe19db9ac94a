"""Driving and reading DAGMan: condor_submit_dag, waiting, the node status file, the node log.

Owns submitting a DAG with ``condor_submit_dag`` (on the submit machine; ``CONDORKIT_SUBMIT_DAG``
may name another command line, e.g. the test pool's ``scripts/condor-pool exec
condor_submit_dag``) and reading DAGMan's state through the bindings, never its text output: the
DAGMan job's own event log (``DAG.dagman.log``, through ``htcondor2.JobEventLog``) gives its
cluster and exit code, the node log (``DAG.nodes.log``, also through ``JobEventLog``) each node's
jobs, and the node status file (``NODE_STATUS_FILE``) is parsed by ``classad2.parseAds``. Also the
DAGMan metrics file (JSON). Results are frozen dataclasses; library code only: prints nothing.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condorkit.errors import CondorError

NODE_STATUS = {0: "not_ready", 1: "ready", 2: "prerun", 3: "submitted", 4: "postrun",
               5: "done", 6: "error", 7: "futile"}
SUBMIT_ENV = "CONDORKIT_SUBMIT_DAG"


def _parse_ads(text: str) -> list[dict[str, object]]:
    """The ads of a node status file (new ClassAd syntax) as plain dicts, via ``classad2``."""
    import classad2

    ads = []
    for ad in classad2.parseAds(text):
        ads.append({k: ad.eval(k) if isinstance(ad.get(k), classad2.ExprTree) else ad.get(k)
                    for k in ad.keys()})
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
    try:
        ads = _parse_ads(text)
    except Exception:  # a partly written file (DAGMan rewrites it in place)
        ads = []
    dag = next((a for a in ads if a.get("Type") == "DagStatus"), None)
    end = next((a for a in ads if a.get("Type") == "StatusEnd"), None)
    if dag is None or end is None:
        raise CondorError(f"{path} is incomplete (DAGMan may be writing it)", "read it again")
    nodes = tuple(NodeState(str(a.get("Node")), NODE_STATUS.get(int(str(a.get("NodeStatus"))),
                                                                 "unknown"),
                            str(a.get("StatusDetails", "")), int(str(a.get("RetryCount", 0))))
                  for a in ads if a.get("Type") == "NodeStatus")
    code = int(str(dag.get("DagStatus", -1)))
    label = NODE_STATUS.get(code, str(code))
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


def _host(sinful: object) -> str:
    """``<...alias=vm&...>`` (an ExecuteHost) -> ``vm``."""
    text = str(sinful or "")
    return text.split("alias=", 1)[1].split("&", 1)[0].rstrip(">") if "alias=" in text else ""


def _events(path: Path) -> list[Any]:
    """Every complete event of an event log, through ``htcondor2.JobEventLog`` (a log being
    written may end in a partial event: the events before it are returned)."""
    import htcondor2

    events: list[Any] = []
    try:
        for ev in htcondor2.JobEventLog(str(path)).events(stop_after=0):
            events.append(ev)
    except Exception:  # noqa: S110 - a partial last event: what was read stands
        pass
    return events


def read_node_log(path: Path) -> dict[str, NodeEvents]:
    """Read ``DAG.nodes.log`` (the DAG's event log): per node, its latest job's events."""
    import htcondor2

    if not Path(path).is_file():
        return {}
    by_cluster: dict[int, dict[str, object]] = {}
    submits: dict[str, int] = {}
    types = htcondor2.JobEventType
    for ev in _events(path):
        e = ev
        cur = by_cluster.setdefault(int(e.cluster), {"cluster": int(e.cluster)})
        if e.type == types.SUBMIT:
            notes = str(e.get("LogNotes", ""))
            if notes.startswith("DAG Node:"):
                node = notes.split(":", 1)[1].strip()
                cur["node"] = node
                submits[node] = submits.get(node, 0) + 1
        elif e.type == types.EXECUTE:
            cur["slot"] = str(e.get("SlotName", ""))
            cur["host"] = _host(e.get("ExecuteHost"))
        elif e.type == types.JOB_TERMINATED:
            cur["ended"] = float(e.timestamp)
            sig = e.get("TerminatedBySignal")
            cur["exit_code"] = (int(e.get("ReturnValue", 0)) if e.get("TerminatedNormally")
                                else 128 + int(sig or 0))
        elif e.type == types.JOB_ABORTED:
            cur["ended"] = float(e.timestamp)
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
    cluster: int  # the DAGMan job's cluster (from its event log)
    submitted: float
    rescue: bool  # a rescue DAG existed, so DAGMan runs only what did not finish


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


def dagman_log(dag: Path) -> Path:
    """The DAGMan job's own event log, as condor_submit_dag names it."""
    return dag.parent / (dag.name + ".dagman.log")


def _dagman_clusters(dag: Path) -> set[int]:
    import htcondor2

    return {int(e.cluster) for e in _events(dagman_log(dag))
            if e.type == htcondor2.JobEventType.SUBMIT}


def submit_dag(dag: Path, command: Sequence[str] | None = None,
               append: Sequence[str] = ()) -> DagSubmission:
    """Run ``condor_submit_dag DAG`` in the DAG's folder (a rescue DAG is picked up by DAGMan).
    ``append``: submit lines for the DAGMan job itself (``-append``), e.g. a project name.

    The new DAGMan job's cluster is the one its event log gained by this submission."""
    cmd = list(command or submit_command())
    if shutil.which(cmd[0]) is None:
        raise CondorError(f"{cmd[0]} not found on PATH",
                          "run this on the pool's submit machine, or set "
                          f"{SUBMIT_ENV} to a command line that submits a DAG")
    dag = Path(dag).resolve()
    before = _dagman_clusters(dag)
    rescue = any(dag.parent.glob(dag.name + ".rescue[0-9][0-9][0-9]"))
    t0 = time.time()
    try:
        appends = [a for line in append for a in ("-append", line)]
        proc = subprocess.run([*cmd, *appends, dag.name], cwd=dag.parent, capture_output=True,
                              text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CondorError(f"{shlex.join(cmd)} failed: {exc}", "check the pool") from exc
    new = sorted(_dagman_clusters(dag) - before)
    if proc.returncode != 0 or not new:
        raise CondorError(f"{shlex.join([*cmd, dag.name])} failed (exit {proc.returncode}): "
                          f"{(proc.stderr or proc.stdout).strip()[-800:]}",
                          "read the message above; a DAG still running must finish first")
    return DagSubmission(dag, new[-1], t0, rescue)


def wait_dag(sub: DagSubmission, timeout: float = 1800, poll: float = 0.5) -> DagRun:
    """Wait until the DAGMan job terminates (its event log says so, with DAGMan's exit code);
    then read DAGMan's metrics file."""
    import htcondor2

    log = dagman_log(sub.dag)
    deadline = time.monotonic() + timeout
    code: int | None = None
    while code is None:
        for ev in _events(log):
            e = ev
            if int(e.cluster) != sub.cluster:
                continue
            if e.type == htcondor2.JobEventType.JOB_TERMINATED:
                code = (int(e.get("ReturnValue", 0)) if e.get("TerminatedNormally")
                        else 128 + int(e.get("TerminatedBySignal") or 0))
            elif e.type == htcondor2.JobEventType.JOB_ABORTED:
                code = -1
        if code is not None:
            break
        if time.monotonic() > deadline:
            raise CondorError(f"DAG {sub.dag} (DAGMan cluster {sub.cluster}) did not finish "
                              f"within {timeout:.0f}s", f"look at {log} and condor_q -dag")
        time.sleep(poll)
    wall = time.time() - sub.submitted
    try:
        metrics = json.loads(sub.dag.with_name(sub.dag.name + ".metrics").read_text())
    except (OSError, ValueError):
        metrics = {}
    return DagRun(sub, code, wall, metrics)
