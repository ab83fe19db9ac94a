"""One result-validity rule (``ckjob.check_results``), and every consumer agrees with it: local
resume and the pool side (``model.results.read_valid``/``valid_result``), and aggregate
(``model.results.load_results``). A float row number ``1.0`` is not a row number anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from condorkit.wrappers import ckjob

from condorkit.model.results import load_results, read_valid, valid_result


def doc(start: int = 1, rows: list[Any] | None = None, **over: Any) -> dict[str, Any]:
    rows = [start, start + 1] if rows is None else rows
    d: dict[str, Any] = {"format": ckjob.RESULTS_FORMAT, "start": start, "count": 2, "key": "k",
                         "records": [{"row": r, "v": 1} for r in rows]}
    d.update(over)
    d["digest"] = ckjob.results_digest(d)
    return d


CASES = [
    ("valid", doc(), True),
    ("float row number", doc(rows=[1.0, 2]), False),
    ("bool row number", doc(rows=[True, 2]), False),
    ("row missing", doc(rows=[1, 1]), False),
    ("row outside the chunk", doc(rows=[1, 3]), False),
    ("start 0", doc(start=0, rows=[0, 1]), False),
    ("float start", doc(start=1.0), False),  # type: ignore[arg-type]
    ("other key", doc(key="other"), False),
    ("edited after the digest", {**doc(), "count": 3}, False),
    ("not condorkit results", {"format": "x"}, False),
]


@pytest.mark.parametrize("name, document, valid", CASES, ids=[c[0] for c in CASES])
def test_every_consumer_agrees_with_the_rule(tmp_path: Path, name: str,
                                             document: dict[str, Any], valid: bool) -> None:
    path = tmp_path / "results-1.json"
    path.write_text(json.dumps(document))
    assert (ckjob.check_results(document, 1, 2, "k") == []) is valid
    assert (read_valid(path, 1, 2, "k")[0] is not None) is valid
    assert (valid_result(path, 1, 2, "k") is None) is valid
    assert load_results(path, expect_start=1, expect_count=2, expect_key="k").valid is valid
