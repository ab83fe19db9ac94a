"""A job configured with a bundle uses it everywhere: mksubmit transfers it and passes `-b`,
dry-run and the local run unpack it like a worker, `bundle = "auto"` follows requirements.txt,
and `condorkit bundle` reuses an unchanged bundle."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from condorkit.wrappers import ckjob

from condorkit.cli import main
from condorkit.condor.submit import expand_item, parse_items
from condorkit.demo import CorpusFile, write_manifest
from condorkit.model.bundlecheck import bundle_check
from condorkit.model.config import load_config
from condorkit.model.job import prepare

REPO = Path(__file__).resolve().parents[2]


def place(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy(src, dest)


def requirements_of(bundle: Any) -> str:
    """The requirements text the session bundle was built from (see env_bundle)."""
    return str((bundle.path.parent.parent / "requirements.txt").read_text())


def make_job(folder: Path, corpus: tuple[CorpusFile, ...], bundle: Any, toml: str) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(REPO / "examples" / "photodemo" / "luminance.py", folder / "luminance.py")
    write_manifest(folder / "manifest.txt", corpus[:6])
    (folder / "condorkit.toml").write_text('chunk = 3\nmax_retries = 0\n' + toml)
    place(bundle.path, folder / bundle.name)
    (folder / "requirements.txt").write_text(requirements_of(bundle))
    return folder


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize("how", ["toml", "auto", "option"])
def test_mksubmit_transfers_the_bundle_and_passes_it_to_the_wrapper(
        tmp_path: Path, photo_corpus: tuple[CorpusFile, ...], env_bundle: Any,
        capsys: pytest.CaptureFixture[str], how: str) -> None:
    toml = {"toml": f'bundle = "{env_bundle.name}"\n', "auto": 'bundle = "auto"\n',
            "option": ""}[how]
    job = make_job(tmp_path / "job", photo_corpus, env_bundle, toml)
    extra = ["--bundle", env_bundle.name] if how == "option" else []
    code, text, err = run_cli(capsys, "mksubmit", "-C", str(job), *extra)
    assert code == 0, err
    items = parse_items(text)
    assert len(items) == 2
    for item in items:
        ex = expand_item(text, item)
        assert ex.arguments[:4] == ("-b", env_bundle.name, "-k", bundle_check(env_bundle.path).arg)
        assert env_bundle.name in [Path(f).name for f in ex.transfer_input_files]
        assert ex.arguments[4:] == ("luminance.py", f"rows-{item['start']}.jsonl",
                                    f"results-{item['start']}.json")


def test_auto_bundle_follows_requirements_txt(tmp_path: Path,
                                              photo_corpus: tuple[CorpusFile, ...],
                                              env_bundle: Any,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", photo_corpus, env_bundle, 'bundle = "auto"\n')
    assert prepare(job, load_config(job), write=False).bundle == job / env_bundle.name
    (job / "requirements.txt").write_text(requirements_of(env_bundle) + "requests\n")
    code, out, err = run_cli(capsys, "mksubmit", "-C", str(job))
    assert code == 2 and out == ""
    assert "the bundle for the current requirements.txt" in err
    assert f"cd {job} && condorkit bundle" in err
    (job / "requirements.txt").unlink()
    code, out, err = run_cli(capsys, "mksubmit", "-C", str(job))
    assert code == 2 and 'bundle = "auto" needs' in err


def test_missing_bundle_says_how_to_build_it(tmp_path: Path,
                                             photo_corpus: tuple[CorpusFile, ...],
                                             env_bundle: Any,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", photo_corpus, env_bundle, 'bundle = "ckenv-gone.tar.gz"\n')
    code, out, err = run_cli(capsys, "mksubmit", "-C", str(job))
    assert code == 2 and out == ""
    assert "ckenv-gone.tar.gz does not exist" in err and "condorkit bundle" in err


def test_results_keys_depend_on_the_bundle(tmp_path: Path, photo_corpus: tuple[CorpusFile, ...],
                                           env_bundle: Any) -> None:
    job = make_job(tmp_path / "job", photo_corpus, env_bundle, "")
    plain = prepare(job, load_config(job), write=False)
    bundled = prepare(job, load_config(job, {"bundle": env_bundle.name}), write=False)
    assert plain.bundle is None and bundled.bundle is not None
    assert set(plain.keys).isdisjoint(bundled.keys)


def test_dry_run_unpacks_the_bundle_like_a_worker(tmp_path: Path,
                                                  photo_corpus: tuple[CorpusFile, ...],
                                                  env_bundle: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", photo_corpus, env_bundle, 'bundle = "auto"\n')
    code, out, err = run_cli(capsys, "dry-run", "-C", str(job), "1", "--json")
    assert code == 0, err
    res = json.loads(out)
    scratch = Path(res["scratch"])
    assert (scratch / env_bundle.name).is_file()
    assert (scratch / "_ckenv" / "venv" / "pyvenv.cfg").read_text().startswith(
        f"home = {scratch}/_ckenv/python/bin\n")
    doc = json.loads((scratch / "results-4.json").read_text())
    assert ckjob.check_results(doc, 4, 3) == []
    assert doc["python"] == env_bundle.python
    assert doc["errors"] == 0 and all("luminance" in r for r in doc["records"])
    stderr = (scratch / "_condor_stderr").read_text()
    assert f"condorkit-wrapper: bundle {env_bundle.name}:" in stderr and "unpacked in" in stderr


def test_local_run_uses_the_bundle(tmp_path: Path, photo_corpus: tuple[CorpusFile, ...],
                                   env_bundle: Any, capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", photo_corpus, env_bundle, f'bundle = "{env_bundle.name}"\n')
    code, out, err = run_cli(capsys, "run", "-C", str(job), "-j", "2")
    assert code == 0, err
    for start in (1, 4):
        doc = json.loads((job / "results" / f"results-{start}.json").read_text())
        assert doc["python"] == env_bundle.python
        assert all("luminance" in r for r in doc["records"])
    logs = "".join(p.read_text() for p in (job / "logs").glob("*.err"))
    assert f"condorkit-wrapper: bundle {env_bundle.name}:" in logs


def test_bundle_command_reuses_an_unchanged_bundle(tmp_path: Path,
                                                   photo_corpus: tuple[CorpusFile, ...],
                                                   env_bundle: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", photo_corpus, env_bundle, "")
    code, out, err = run_cli(capsys, "bundle", "-C", str(job), "--ship-python", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["reused"] is True and res["name"] == env_bundle.name
    assert res["size_bytes"] == env_bundle.size_bytes
    code, out, err = run_cli(capsys, "bundle", "-C", str(job), "--ship-python")
    assert code == 0 and out == ""
    assert "reused (unchanged)" in err and f'bundle = "{env_bundle.name}"' in err


def test_bundle_command_reports_a_missing_requirements_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "bundle", "-C", str(tmp_path))
    assert code == 6 and out == ""
    assert "requirements.txt does not exist" in err and "hint:" in err
