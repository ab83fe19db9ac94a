"""Job folders and CLI helpers for the tests that run condorkit on the real HTCondor test pool.

The job program is standard-library Python (workers have Python 3.13 and no Pillow): it maps
each row (manifest ``photo-NNN.jpg YEAR``) to a deterministic ``luminance`` with
``ckjob.map_rows``. Fault switches are files in the job's ``control/`` folder, which the workers
see because the job folder lives in the pool's shared directory:

- ``fail-START`` (content: exit code, default 3): the chunk exits with that code, every attempt;
- ``nowrite-START``: the chunk exits 0 without writing results (the wrapper's error 96);
- ``hang-START`` (content: seconds, default 300): the chunk's FIRST attempt sleeps that long.

Every attempt leaves ``control/attempt-START-N``. The pool user (uid 2000) is not the host user
(root) that runs condorkit here, so the folders the jobs write (results/, logs/, control/) are made
world-writable; on a real pool the submitting user owns the job and its folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PROGRAM = r'''
import os, sys, time
import ckjob

CONTROL = {control!r}
rows_path, out = sys.argv[1], sys.argv[2]
header, _ = ckjob.read_rows(rows_path)
start = header["start"]

def control(name):
    path = os.path.join(CONTROL, "%s-%d" % (name, start))
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return fh.read().strip()

attempt = 1
if os.path.isdir(CONTROL):
    while True:
        try:
            os.close(os.open(os.path.join(CONTROL, "attempt-%d-%d" % (start, attempt)),
                             os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            attempt += 1
code = control("fail")
if code is not None:
    print("failing on purpose (attempt %d)" % attempt, file=sys.stderr)
    sys.exit(int(code or 3))
if control("nowrite") is not None:
    sys.exit(0)
hang = control("hang")
if hang is not None and attempt == 1:
    time.sleep(float(hang or 300))

def luminance(row):
    return {{"luminance": round(((row["year"] * 7919 + row["row"] * 104729) % 1000) / 1000.0, 6)}}

ckjob.map_rows(rows_path, out, luminance, program="faultprog.py")
'''


def write_job(folder: Path, rows: int = 10, chunk: int = 3, max_retries: int = 1,
              extra_toml: str = "") -> Path:
    """A job folder with the fault-switch program, ``rows`` manifest rows and short timeouts."""
    folder.mkdir(parents=True, exist_ok=True)
    control = folder / "control"
    for d in (folder / "results", folder / "logs", control):
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o1777)  # written by the pool user (uid 2000)
    (folder / "faultprog.py").write_text(PROGRAM.format(control=str(control)))
    lines = "".join(f"photo-{i:03d}.jpg {1900 + i}\n" for i in range(1, rows + 1))
    (folder / "manifest.txt").write_text("# test manifest\n" + lines)
    (folder / "condorkit.toml").write_text(
        'program = "faultprog.py"\n'
        'columns = ["url:url", "year:int"]\n'
        f"chunk = {chunk}\n"
        'request_memory = "64MB"\n'
        'request_disk = "20MB"\n'
        f"max_retries = {max_retries}\n"
        "job_lease_duration = 20\n" + extra_toml)
    return folder


def switch(folder: Path, name: str, start: int, value: str = "") -> Path:
    """Turn a fault switch on for the chunk at ``start``."""
    path = folder / "control" / f"{name}-{start}"
    path.write_text(value)
    os.chmod(path, 0o666)
    return path


def attempts(folder: Path, start: int) -> int:
    """How many times the chunk at ``start`` has started its program."""
    return len(list((folder / "control").glob(f"attempt-{start}-*")))


def ck(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real ``condorkit`` CLI (this interpreter) in ``cwd``; CONDOR_CONFIG is inherited."""
    return subprocess.run([sys.executable, "-m", "condorkit", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def ck_json(*args: str, cwd: Path, ok: bool = True, timeout: float = 300) -> Any:
    proc = ck(*args, "--json", cwd=cwd, timeout=timeout)
    if ok:
        assert proc.returncode == 0, f"condorkit {' '.join(args)}: {proc.stderr}"
    return json.loads(proc.stdout)


def current_run(folder: Path) -> dict[str, Any]:
    return json.loads((folder / ".condorkit" / "current-run.json").read_text())


def remove_leftovers(folder: Path, schedd: Any) -> None:
    """Remove every job of every run of ``folder`` still in the queue (the pool is shared)."""
    import htcondor2

    runs = folder / ".condorkit" / "runs"
    for record in runs.glob("*.json") if runs.is_dir() else ():
        cluster = json.loads(record.read_text())["cluster"]
        if schedd.query(f"ClusterId == {cluster}", projection=["ProcId"]):
            schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}",
                       reason=("test cleanup", 0))


def write_photodemo(folder: Path, images: list[Any], base_url: str, rows: int, chunk: int,
                    bundle: Path) -> Path:
    """The packaged photodemo job (luminance.py + condorkit.toml) over ``rows`` manifest rows that
    cycle through ``images`` (CorpusFiles) served at ``base_url``, with its bundle copied in."""
    import itertools
    import shutil
    from importlib import resources

    from condorkit.demo import write_manifest

    folder.mkdir(parents=True, exist_ok=True)
    for d in (folder / "results", folder / "logs"):
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o1777)  # written by the pool user (uid 2000)
    example = resources.files("condorkit.examples.photodemo")
    (folder / "luminance.py").write_bytes(example.joinpath("luminance.py").read_bytes())
    toml = [line for line in example.joinpath("condorkit.toml").read_text().splitlines()
            if not line.startswith(("chunk =", "request_memory =", "request_disk ="))]
    toml += [f"chunk = {chunk}", 'request_memory = "256MB"', 'request_disk = "300MB"',
             "job_lease_duration = 20", f'bundle = "{bundle.name}"']
    (folder / "condorkit.toml").write_text("\n".join(toml) + "\n")
    shutil.copyfile(bundle, folder / bundle.name)
    write_manifest(folder / "manifest.txt", itertools.islice(itertools.cycle(images), rows),
                   url_base=base_url)
    return folder
