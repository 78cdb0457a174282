"""deploy/ checked statically (there is no Docker engine and no cloud here): the
Terraform parses and has the properties the rolling update relies on, checkov finds
nothing unexplained, the Dockerfile runs synmon the way SIGTERM and health need, and
the release script takes its steps in the seed's order."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from dockerfile_parse import DockerfileParser

from app.pipeline.queues import queue_name, visibility_timeout
from config.settings import load_settings
from tests.support.processes import ROOT

TERRAFORM = ROOT / "deploy" / "terraform"
REGION, CENTRAL = TERRAFORM / "modules" / "region", TERRAFORM / "modules" / "central"
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"


def unquote(text: str) -> str:
    """python-hcl2 8 keeps the quotes of string literals and labels; expressions are ${...}."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


def clean(value: Any) -> Any:
    """Labels and strings unquoted, python-hcl2's own keys (__is_block__, __comments__)
    dropped, and a block that appears once (lifecycle, metadata_options) unwrapped."""
    if isinstance(value, dict):
        return {unquote(k): clean(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], dict) and value[0].get("__is_block__"):
            return clean(value[0])
        return [clean(v) for v in value]
    if isinstance(value, str):
        return unquote(value)
    return value


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@cache
def module(path: Path) -> dict[str, Any]:
    """Every block of every .tf file of a folder, merged: {"resource": {type: {name: body}}, ...}."""
    merged: dict[str, Any] = {}
    for file in sorted(path.glob("*.tf")):
        with file.open() as handle:
            document = {
                block: as_list(clean(items))
                for block, items in hcl2.load(handle).items()
                if not block.startswith("__")
            }
        for block, items in document.items():
            for item in items:
                if block in ("resource", "data"):
                    for kind, named in item.items():
                        merged.setdefault(block, {}).setdefault(kind, {}).update(named)
                elif block in ("variable", "output", "module", "locals"):
                    merged.setdefault(block, {}).update(item)
                else:
                    merged.setdefault(block, []).append(item)
    return merged


def resources(path: Path, kind: str) -> dict[str, Any]:
    return dict(module(path).get("resource", {}).get(kind, {}))


def default(path: Path, variable: str) -> Any:
    return module(path)["variable"][variable]["default"]


def test_every_terraform_file_parses() -> None:
    files = sorted(TERRAFORM.rglob("*.tf"))
    assert len(files) >= 20
    for file in files:
        with file.open() as handle:
            assert hcl2.load(handle), file


def test_every_queue_has_a_dlq_and_outlives_its_longest_check() -> None:
    settings = load_settings(
        {
            "SYNMON_ENV": "prod",
            "SYNMON_DATABASE_URL": "postgresql://h/d",
            "SYNMON_LOCATIONS": "eu-west-1",
        }
    )
    timeouts = default(REGION, "check_timeout_seconds")
    margin = default(REGION, "visibility_margin_seconds")
    assert timeouts == {"http": settings.http_max_timeout, "browser": settings.browser_max_timeout}
    assert margin == settings.sqs_visibility_margin
    locals_ = module(REGION)["locals"]
    assert "timeout + var.visibility_margin_seconds" in locals_["visibility_timeout_seconds"]
    for kind, timeout in timeouts.items():
        # The Terraform and synmon agree on the visibility timeout, and it is longer
        # than the longest check the queue serves.
        assert timeout + margin == visibility_timeout(settings, "run", kind) > timeout
    run = resources(REGION, "aws_sqs_queue")["run"]
    assert run["visibility_timeout_seconds"] == "${local.visibility_timeout_seconds[each.key]}"
    assert "aws_sqs_queue.dead_letter[each.key].arn" in run["redrive_policy"]
    assert run["sqs_managed_sse_enabled"] is True and run["receive_wait_time_seconds"] >= 1
    central = resources(CENTRAL, "aws_sqs_queue")
    assert "aws_sqs_queue.dead_letter[each.key].arn" in central["central"]["redrive_policy"]
    assert module(CENTRAL)["locals"]["queue_visibility"] == "${var.visibility_margin_seconds * 2}"
    assert default(CENTRAL, "visibility_margin_seconds") * 2 == visibility_timeout(
        settings, "results"
    )
    for path in (REGION, CENTRAL):
        for name, queue in resources(path, "aws_sqs_queue").items():
            assert queue.get("sqs_managed_sse_enabled") is True, name


def test_queue_names_match_synmon() -> None:
    settings = load_settings(
        {
            "SYNMON_ENV": "prod",
            "SYNMON_DATABASE_URL": "postgresql://h/d",
            "SYNMON_LOCATIONS": "eu-west-1",
        }
    )
    name = module(REGION)["locals"]["name"].replace("${var.queue_prefix}", "synmon")
    name = name.replace("${var.environment}", "prod").replace("${var.location}", "eu-west-1")
    for kind in ("http", "browser"):
        rendered = resources(REGION, "aws_sqs_queue")["run"]["name"].replace("${local.name}", name)
        assert rendered.replace("${each.key}", kind) == queue_name(
            settings, "run", "eu-west-1", kind
        )
    central = module(CENTRAL)["locals"]["name"].replace("${var.queue_prefix}", "synmon")
    central = central.replace("${var.environment}", "prod")
    rendered = resources(CENTRAL, "aws_sqs_queue")["central"]["name"].replace(
        "${local.name}", central
    )
    assert rendered.replace("${each.key}", "results") == queue_name(settings, "results")


def test_instances_are_replaced_create_before_destroy_after_a_readiness_check() -> None:
    for path, name in ((REGION, "worker"), (CENTRAL, "control")):
        instance = resources(path, "aws_instance")[name]
        assert instance["lifecycle"]["create_before_destroy"] is True
        (provisioner,) = as_list(instance["provisioner"])
        inline = str(provisioner["remote-exec"]["inline"])
        assert "synmon health" in inline and "timeout" in inline
        assert instance["metadata_options"]["http_tokens"] == "required"
    template = (REGION / "user_data.sh.tftpl").read_text()
    assert "--stop-timeout ${stop_timeout}" in template and "synmon.role=worker" in template
    assert module(REGION)["locals"]["stop_timeout_seconds"].startswith(
        "${max(values(var.check_timeout_seconds)"
    )
    containers = default(REGION, "containers")
    assert sum(containers.values()) == 5


def test_alarms_watch_every_queue_and_dlq() -> None:
    for path, queues in ((REGION, "run"), (CENTRAL, "central")):
        alarms = resources(path, "aws_cloudwatch_metric_alarm")
        metrics = {name: (a["for_each"], a["metric_name"]) for name, a in alarms.items()}
        assert metrics["queue_depth"] == (
            f"${{aws_sqs_queue.{queues}}}",
            "ApproximateNumberOfMessagesVisible",
        )
        assert metrics["queue_age"] == (
            f"${{aws_sqs_queue.{queues}}}",
            "ApproximateAgeOfOldestMessage",
        )
        assert metrics["dead_letters"] == (
            "${aws_sqs_queue.dead_letter}",
            "ApproximateNumberOfMessagesVisible",
        )
        assert alarms["dead_letters"]["threshold"] == 0
        for alarm in alarms.values():
            assert (
                alarm["dimensions"] == {"QueueName": "${each.value.name}"}
                and alarm["alarm_actions"]
            )


def policy_statements() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in (REGION, CENTRAL):
        for name, document in (
            module(path).get("data", {}).get("aws_iam_policy_document", {}).items()
        ):
            for statement in as_list(document.get("statement", [])):
                found.append((f"{path.name}.{name}", statement))
    return found


def test_no_iam_wildcard_actions_and_least_privilege_workers() -> None:
    statements = policy_statements()
    assert statements
    for where, statement in statements:
        for action in as_list(statement.get("actions", [])):
            assert "*" not in action, f"{where}: {action}"
    worker = {s["sid"]: s for where, s in statements if where == "region.worker"}
    assert set(worker) == {"ConsumeRunRequests", "PublishResults", "StoreScreenshots"}
    assert set(as_list(worker["ConsumeRunRequests"]["actions"])) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    assert "aws_sqs_queue.run" in str(worker["ConsumeRunRequests"]["resources"])
    assert set(as_list(worker["PublishResults"]["actions"])) == {
        "sqs:SendMessage",
        "sqs:GetQueueUrl",
    }
    assert worker["PublishResults"]["resources"] == ["${var.results_queue_arn}"]
    assert worker["StoreScreenshots"]["actions"] == ["s3:PutObject"]


def test_environments_compose_the_modules() -> None:
    for name, regions in (("dev", 1), ("test", 2), ("prod", 3)):
        environment = module(TERRAFORM / "environments" / name)
        modules = environment["module"]
        assert modules["central"]["source"] == "../../modules/central"
        region_modules = {k: v for k, v in modules.items() if k.startswith("region_")}
        assert len(region_modules) == regions
        locations = environment["locals"]["locations"]
        for region in region_modules.values():
            assert region["source"] == "../../modules/region"
            assert region["location"] in locations
            assert region["results_queue_arn"] == "${module.central.results_queue_arn}"
        assert environment["locals"]["environment"] == name


def test_variables_and_outputs_are_documented() -> None:
    folders = [REGION, CENTRAL, *(TERRAFORM / "environments").iterdir()]
    for folder in folders:
        for kind in ("variable", "output"):
            for name, body in module(folder).get(kind, {}).items():
                assert body.get("description"), f"{folder.name}: {kind} {name} has no description"
    readme = (TERRAFORM / "README.md").read_text()
    for variable in module(REGION)["variable"]:
        assert variable in readme, f"README does not document region variable {variable}"


@pytest.mark.processes
def test_checkov_finds_nothing_unexplained(tmp_path: Path) -> None:
    assert CHECKOV.exists(), "checkov lives in .tools/checkov: run `make test`, which installs it"
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(ROOT / "deploy"),
            "--framework",
            "terraform",
            "dockerfile",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"terraform", "dockerfile"}
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0
        failed = [
            (c["check_id"], c["resource"], c["check_name"])
            for c in report["results"]["failed_checks"]
        ]
        assert failed == [], failed
        assert report["summary"]["passed"] > 20
        for skipped in report["results"]["skipped_checks"]:
            assert len(skipped["check_result"].get("suppress_comment") or "") > 20, skipped[
                "check_id"
            ]


def test_dockerfile() -> None:
    dockerfile = DockerfileParser(path=str(ROOT / "deploy" / "docker" / "Dockerfile"))
    instructions = [
        (i["instruction"], i["value"])
        for i in dockerfile.structure
        if i["instruction"] != "COMMENT"
    ]
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    assert "bookworm" in final[0][1]  # Debian
    installs = " ".join(v for k, v in final if k == "RUN")
    for package in ("chromium", "fonts-liberation", "tini"):
        assert package in installs
    users = [v for k, v in final if k == "USER"]
    assert users and users[-1] not in ("root", "0")
    entrypoint = json.loads(dict(final)["ENTRYPOINT"])
    assert entrypoint[:2] == ["/usr/bin/tini", "--"]  # an init reaps Chromium's children
    assert json.loads(dict(final)["CMD"])[0] == "worker"  # exec form: no shell in between
    healthcheck = dict(final)["HEALTHCHECK"]
    assert re.search(r'CMD \["synmon", "health"\]', healthcheck)
    assert dict(final)["STOPSIGNAL"] == "SIGTERM"
    entry = (ROOT / "deploy" / "docker" / "entrypoint.sh").read_text()
    assert 'exec synmon "$@"' in entry


def run_release(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "release"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def commands(output: str) -> list[str]:
    return [line[2:] for line in output.splitlines() if line.startswith("+ ")]


@pytest.mark.processes
def test_release_dry_run_prints_the_seed_steps_in_order() -> None:
    result = run_release(
        "--dry-run", "--yes", "--registry", "registry.example.com/synmon", "--version", "1.2.3"
    )
    assert result.returncode == 0, result.stderr
    steps = commands(result.stdout)
    image = "registry.example.com/synmon"
    order = [
        f"docker build -f deploy/docker/Dockerfile -t {image}:1.2.3 .",
        f"docker tag {image}:1.2.3 {image}:test",
        f"docker push {image}:1.2.3",
        f"docker push {image}:test",
        f"docker tag {image}:1.2.3 {image}:latest",
        f"docker push {image}:latest",
    ]
    positions = [steps.index(step) for step in order]
    assert positions == sorted(positions)
    test_applies = [i for i, s in enumerate(steps) if "environments/test" in s and "-replace=" in s]
    prod_applies = [i for i, s in enumerate(steps) if "environments/prod" in s and "-replace=" in s]
    assert test_applies and prod_applies
    assert max(test_applies) < steps.index(order[4]) < min(prod_applies)
    assert "dry run" in result.stdout


@pytest.mark.processes
def test_release_replaces_one_instance_at_a_time_and_waits_for_approval(tmp_path: Path) -> None:
    """With stand-ins for docker and terraform that record what they are asked."""
    log = tmp_path / "calls.log"
    for tool, body in {
        "docker": f'echo "docker $*" >> {log}',
        "terraform": f'echo "terraform $* in $(basename $PWD)" >> {log}\n'
        'if [ "$1" = state ]; then echo "module.region_eu_west_1.aws_instance.worker[0]"; '
        'echo "module.region_eu_west_1.aws_instance.worker[1]"; '
        'echo "module.central.aws_instance.control[0]"; echo "module.central.aws_sqs_queue.x"; fi',
    }.items():
        path = tmp_path / tool
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    refused = subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy" / "release"),
            "--registry",
            "r/synmon",
            "--version",
            "2.0.0",
        ],
        cwd=ROOT,
        input="n\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1 and "not promoted" in refused.stdout
    calls = log.read_text().splitlines()
    assert not [c for c in calls if "latest" in c or c.endswith("in prod")]
    log.unlink()
    accepted = run_release("--yes", "--registry", "r/synmon", "--version", "2.0.0", env=env)
    assert accepted.returncode == 0, accepted.stderr
    calls = log.read_text().splitlines()
    replaces = [c for c in calls if "-replace=" in c]
    assert [c.split("-replace=")[1] for c in replaces] == [
        "module.region_eu_west_1.aws_instance.worker[0] in test",
        "module.region_eu_west_1.aws_instance.worker[1] in test",
        "module.central.aws_instance.control[0] in test",
        "module.region_eu_west_1.aws_instance.worker[0] in prod",
        "module.region_eu_west_1.aws_instance.worker[1] in prod",
        "module.central.aws_instance.control[0] in prod",
    ]
    assert all("-var=image_tag=test" in c for c in replaces[:3])
    assert all("-var=image_tag=latest" in c for c in replaces[3:])


@pytest.mark.parametrize("folder", [REGION, CENTRAL], ids=["region", "central"])
def test_user_data_templates_get_every_value_they_use(folder: Path) -> None:
    template = (folder / "user_data.sh.tftpl").read_text()
    loop_variables = {"kind", "count", "index"}
    used = set(re.findall(r"\$\{(\w+)\}", template)) - loop_variables
    (instance,) = resources(folder, "aws_instance").values()
    given = set(re.findall(r"[{,]\s*'?(\w+)'?\s*[:=]", str(instance["user_data"])))
    assert used and used <= given, used - given
