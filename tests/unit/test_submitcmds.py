"""Extra submit commands (condorkit.submitcmds): pool options, the [submit] table and
--submit-cmd, quoted and checked by HTCondor's own parsers; bad entries name their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from condorkit.condor.submitcmds import (
    check_commands,
    check_rendered,
    dagman_appends,
    memory_mb,
    submit_commands,
)
from condorkit.errors import ConfigError, RenderError
from condorkit.model.config import JobConfig, load_config, parse_pairs


def lines(cfg: JobConfig) -> dict[str, str]:
    cmds = submit_commands(cfg)
    check_commands(cmds, cfg.request_memory)
    return {c.key: c.value for c in cmds}


def test_first_class_options_become_submit_lines() -> None:
    got = lines(JobConfig(project_name="Astro_Lab", request_gpus=1, batch_name="run 7",
                          accounting_group="group_physics.alice", max_idle=500,
                          max_materialize=2000))
    assert got == {"My.ProjectName": '"Astro_Lab"', "request_gpus": "1", "batch_name": "run 7",
                   "accounting_group": "group_physics.alice", "max_idle": "500",
                   "max_materialize": "2000"}


def test_a_project_name_with_quotes_and_dollars_stays_one_literal_string() -> None:
    import htcondor2

    got = lines(JobConfig(project_name='a "b" \\ $(x)'))
    sub = htcondor2.Submit(f"My.ProjectName = {got['My.ProjectName']}\n")
    assert sub.expand("My.ProjectName") == '"a \\"b\\" \\\\ $(x)"'


def test_container_image_is_one_literal_submit_value() -> None:
    import htcondor2

    got = lines(JobConfig(container_image="/images/photo-1.sif"))
    assert got == {"container_image": "/images/photo-1.sif"}
    sub = htcondor2.Submit(f"container_image = {got['container_image']}\n")
    assert sub.expand("container_image") == "/images/photo-1.sif"
    with pytest.raises(ConfigError, match="not a container image name"):  # never a macro
        submit_commands(JobConfig(container_image="/images/photo $(x).sif"))
    with pytest.raises(ConfigError, match="container_image has its own condorkit option"):
        submit_commands(JobConfig(submit_cmds=(("container_image", "x.sif"),)))


def test_the_submit_table_takes_commands_and_custom_attributes() -> None:
    cfg = JobConfig(submit_cmds=(("periodic_remove", "NumJobStarts > 5"),
                            ("+DESIRED_Sites", '"SiteA,SiteB"'), ("My.Flag", "true"),
                            ("nice_user", "true"), ("environment", '"A=$HOME"')))
    got = lines(cfg)
    assert got["periodic_remove"] == "NumJobStarts > 5"
    assert got["My.DESIRED_Sites"] == '"SiteA,SiteB"'
    assert got["My.Flag"] == "true"
    assert got["environment"] == '"A=$(DOLLAR)HOME"'  # a literal $, never a macro


@pytest.mark.parametrize(("key", "value", "message"), [
    ("executable", "/bin/sh", "condorkit writes executable itself"),
    ("queue", "100", "condorkit writes queue itself"),
    ("request_memory", "4GB", "request_memory has its own condorkit option"),
    ("+ProjectName", '"x"', "My.ProjectName has its own condorkit option"),
    ("bad key", "1", "'bad key' is not a submit command"),
    ("+Foo", "a +", "not a valid ClassAd expression"),
    ("periodic_hold", "x > 1\nqueue 5", "line break"),
    ("My.Label", '"unbalanced', "unbalanced double quote"),
])
def test_a_bad_entry_is_an_error_naming_its_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="submit") as exc:
        cfg = JobConfig(submit_cmds=((key, value),))
        check_commands(submit_commands(cfg))
    assert message in str(exc.value)
    assert key in str(exc.value)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("accounting_group", "group a", "not a group name"),
    ("batch_name", 'say "hi"', "double quote"),
    ("project_name", "line\nbreak", "control character"),
    ("max_idle", -1, "must not be negative"),
])
def test_a_bad_option_names_the_option(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"option {field}") as exc:
        submit_commands(JobConfig(**{field: value}))  # type: ignore[arg-type]
    assert message in str(exc.value)


def test_memory_is_a_size_or_a_classad_expression() -> None:
    assert memory_mb("2GB") == 2048 and memory_mb("512") == 512 and memory_mb("1.5 G") == 1536
    assert memory_mb("MemoryUsage * 2") is None
    check_commands(submit_commands(JobConfig()), "ifThenElse(MemoryUsage > 100, 400, 200)")
    with pytest.raises(ConfigError, match="request_memory"):
        check_commands((), "max({200, ")
    with pytest.raises(ConfigError, match="request_memory"):
        JobConfig(request_memory="1GB\nqueue 9")


def test_memory_retry_is_a_bounded_periodic_release_with_a_growing_request() -> None:
    got = lines(JobConfig(request_memory="1GB", memory_retry="4GB"))
    assert "HoldReasonCode == 34" in got["periodic_release"]
    assert "RequestMemory < 4096" in got["periodic_release"]
    assert got["request_memory"].startswith("ifThenElse(MemoryUsage")
    assert "min({4096" in got["request_memory"]
    with pytest.raises(ConfigError, match="memory_retry"):
        submit_commands(JobConfig(request_memory="4GB", memory_retry="2GB"))


def test_toml_table_env_and_command_line_merge_per_key(tmp_path: Path) -> None:
    (tmp_path / "condorkit.toml").write_text(
        'project_name = "Lab"\nmax_idle = 100\n\n[submit]\nnice_user = true\n'
        'periodic_remove = "NumJobStarts > 5"\n')
    cfg = load_config(tmp_path, {"submit_cmds": parse_pairs(["periodic_remove=NumJobStarts > 9",
                                                        "+Extra=1"])})
    assert cfg.project_name == "Lab" and cfg.max_idle == 100
    assert dict(cfg.submit_cmds) == {"nice_user": "true", "periodic_remove": "NumJobStarts > 9",
                                "+Extra": "1"}


def test_the_submit_table_also_works_beside_a_job_table(tmp_path: Path) -> None:
    (tmp_path / "condorkit.toml").write_text('[job]\nchunk = 7\n\n[submit]\n"+Foo" = 3\n')
    cfg = load_config(tmp_path)
    assert cfg.chunk == 7 and cfg.submit_cmds == (("+Foo", "3"),)


def test_cli_pairs_need_an_equals_sign() -> None:
    assert parse_pairs(["a=b=c", " k = v "]) == (("a", "b=c"), ("k", "v"))
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_pairs(["novalue"])


def test_a_template_that_drops_the_commands_is_an_error() -> None:
    cmds = submit_commands(JobConfig(project_name="Lab"))
    check_rendered('My.ProjectName = "Lab"\nqueue\n', cmds, "t.sub.j2")
    with pytest.raises(RenderError, match="does not set My.ProjectName"):
        check_rendered("executable = /bin/true\nqueue\n", cmds, "t.sub.j2")


def test_the_dagman_job_gets_the_project_and_attributes_but_not_throttles() -> None:
    cmds = submit_commands(JobConfig(project_name="Lab", max_idle=5, batch_name="b",
                                     submit_cmds=(("+Tag", '"t"'), ("nice_user", "true"))))
    assert dagman_appends(cmds) == ['My.ProjectName = "Lab"', "batch_name = b", 'My.Tag = "t"']
