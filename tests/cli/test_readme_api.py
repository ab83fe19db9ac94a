"""The public Python API as the README shows it: load a job folder, run it locally, aggregate it,
render its submit file; each step returns the frozen dataclass the CLI renders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from support.readme import python_block

from condorkit.cli import main
from condorkit.demo import setup_photodemo


def test_readme_local_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    setup_photodemo(tmp_path / "demo-job", n_images=12, seed=3, chunk=4)
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(python_block("condorkit API: local"), "README.md", "exec"), scope)
    job, report, chart = scope["job"], scope["report"], scope["chart"]
    assert "12 values, 0 errors, missing: none" in capsys.readouterr().out
    for obj in (job, report, chart):
        params = getattr(type(obj), "__dataclass_params__", None)
        assert dataclasses.is_dataclass(obj) and params is not None and params.frozen
    assert str(scope["text"]).startswith("# condorkit")
    assert (tmp_path / "demo-job" / "scatter.html").is_file()
    # the CLI's --json is the same report
    assert main(["aggregate", "-C", str(tmp_path / "demo-job"), "-o",
                 str(tmp_path / "cli.html"), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    api = chart.to_dict()  # type: ignore[attr-defined]
    for key in ("expected", "found", "errors", "missing", "complete"):
        assert cli[key] == api[key]
