"""The container_image option (condorkit.condor.submitcmds): one checked ``container_image``
line, read back unchanged by HTCondor's own parser; bad names are one clear error naming the
option; the [submit] table cannot set it behind the option's back."""

from __future__ import annotations

from pathlib import Path

import pytest

from condorkit.condor.submitcmds import check_commands, local_image, submit_commands
from condorkit.errors import ConfigError
from condorkit.model.config import JobConfig, load_config


@pytest.mark.parametrize("image", [
    "image.sif", "images/python-3.11.sif", "sandbox", "/cvmfs/singularity.opensciencegrid.org/"
    "htc/rocky:9", "docker://ckdemo:1", "docker://hub.example/org/img@sha256:0123abcd",
    "osdf:///ospool/ap40/data/alice/img.sif",
])
def test_an_image_becomes_one_line_htcondor_reads_back(image: str) -> None:
    cmds = submit_commands(JobConfig(container_image=image))
    check_commands(cmds)  # htcondor2.Submit reads the line back unchanged
    assert [(c.key, c.value, c.expression) for c in cmds] == [("container_image", image, False)]


@pytest.mark.parametrize("image", [
    "my image.sif", "img.sif\nqueue 5", 'img".sif', "$(x).sif", "a,b.sif", "-rm.sif",
    "docker://a//b", "img.sif;x", "",
])
def test_a_bad_image_name_is_an_error_naming_the_option(image: str) -> None:
    if not image:  # empty: the option is off
        assert submit_commands(JobConfig(container_image=image)) == ()
        return
    with pytest.raises(ConfigError, match=r"option container_image \(default\)") as exc:
        submit_commands(JobConfig(container_image=image))
    assert "not a container image name" in str(exc.value)


def test_the_submit_table_points_to_the_option() -> None:
    with pytest.raises(ConfigError, match="container_image has its own condorkit option"):
        submit_commands(JobConfig(submit_cmds=(("container_image", "x.sif"),)))


def test_toml_env_and_command_line_set_it(tmp_path: Path) -> None:
    (tmp_path / "condorkit.toml").write_text('container_image = "py.sif"\n')
    assert load_config(tmp_path, env={}).container_image == "py.sif"
    cfg = load_config(tmp_path, {"container_image": "docker://x:1"},
                      env={"CONDORKIT_CONTAINER_IMAGE": "env.sif"})
    assert cfg.container_image == "docker://x:1"
    assert cfg.sources["container_image"] == "command line"
    assert load_config(tmp_path, env={"CONDORKIT_CONTAINER_IMAGE": "env.sif"}
                       ).container_image == "env.sif"


def test_only_a_relative_image_is_a_submit_side_file(tmp_path: Path) -> None:
    def img(v: str) -> Path | None:
        return local_image(JobConfig(container_image=v), tmp_path)

    assert img("py.sif") == tmp_path / "py.sif" and img("box/") == tmp_path / "box"
    assert img("/cvmfs/x/img") is None and img("docker://x:1") is None and img("") is None


def test_another_image_gives_other_chunk_keys(tmp_path: Path) -> None:
    from condorkit.model.job import prepare

    (tmp_path / "program.py").write_text("print()\n")
    (tmp_path / "manifest.txt").write_text("a\nb\n")
    plain = prepare(tmp_path, load_config(tmp_path, {}, env={}), write=False).keys
    one = prepare(tmp_path, load_config(tmp_path, {"container_image": "docker://a:1"}, env={}),
                  write=False).keys
    two = prepare(tmp_path, load_config(tmp_path, {"container_image": "docker://a:2"}, env={}),
                  write=False).keys
    assert len({plain, one, two}) == 3
