from __future__ import annotations

from pathlib import Path

import pytest

from app.celery.config import broker_url, celery_config
from app.pipeline.queues import all_queues, queue_name, visibility_timeout
from config.settings import CURRENT_MESSAGE_VERSION, ConfigError, load_settings


def test_defaults_need_no_server() -> None:
    settings = load_settings({})
    assert settings.env == "dev"
    assert settings.database_url.startswith("sqlite:///")
    assert settings.sqs_endpoint is None
    assert settings.allow_private_targets is False
    assert settings.message_version == CURRENT_MESSAGE_VERSION
    assert settings.locations == ("local",)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SYNMON_ENV": "staging"}, "SYNMON_ENV"),
        ({"SYNMON_DATABASE_URL": "mysql://x"}, "SYNMON_DATABASE_URL"),
        ({"SYNMON_SQS_ENDPOINT": "127.0.0.1:4566"}, "SYNMON_SQS_ENDPOINT"),
        ({"SYNMON_ALLOW_PRIVATE_TARGETS": "maybe"}, "SYNMON_ALLOW_PRIVATE_TARGETS"),
        ({"SYNMON_LOCATIONS": "EU West"}, "SYNMON_LOCATIONS"),
        ({"SYNMON_LOCATIONS": " , "}, "SYNMON_LOCATIONS"),
        ({"SYNMON_MESSAGE_VERSION": "9"}, "SYNMON_MESSAGE_VERSION"),
        ({"SYNMON_HTTP_CONCURRENCY": "lots"}, "SYNMON_HTTP_CONCURRENCY"),
        ({"SYNMON_EVENTS_URL": "amqp://x"}, "SYNMON_EVENTS_URL"),
        ({"SYNMON_LOG_LEVEL": "LOUD"}, "SYNMON_LOG_LEVEL"),
        ({"SYNMON_ENV": "prod"}, "SYNMON_DATABASE_URL"),
        ({"SYNMON_FLOWER_BASIC_AUTH": "nopassword"}, "SYNMON_FLOWER_BASIC_AUTH"),
        ({"SYNMON_ARTIFACTS_URL": "ftp://x"}, "SYNMON_ARTIFACTS_URL"),
        ({"SYNMON_ALLOWED_TARGETS": "api.internal:443"}, "SYNMON_ALLOWED_TARGETS"),
        ({"SYNMON_ALLOWED_TARGETS": "10.0.0.0/8,10.0.0.0/33"}, "SYNMON_ALLOWED_TARGETS"),
        ({"SYNMON_ALLOWED_TARGETS": "127.0.0.1:0"}, "SYNMON_ALLOWED_TARGETS"),
        ({"SYNMON_ALLOWED_TARGETS": "127.0.0.1:http"}, "SYNMON_ALLOWED_TARGETS"),
        ({"SYNMON_ALLOWED_TARGETS": "[::1]9000"}, "SYNMON_ALLOWED_TARGETS"),
        ({"SYNMON_ALLOWED_TARGETS": "[::1"}, "SYNMON_ALLOWED_TARGETS"),
    ],
)
def test_a_wrong_value_is_named(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings(env)


def test_per_environment_defaults() -> None:
    assert load_settings({"SYNMON_ENV": "dev"}).log_format == "text"
    prod = load_settings({"SYNMON_ENV": "prod", "SYNMON_DATABASE_URL": "postgresql://u@h/db"})
    assert prod.log_format == "json"
    assert prod.database_url == "postgresql+psycopg2://u@h/db"


def test_variables_come_from_the_prefixed_environment_only() -> None:
    settings = load_settings({"SYNMON_VAR_API_TOKEN": "s3cret", "AWS_SECRET_ACCESS_KEY": "nope"})
    assert dict(settings.variables) == {"API_TOKEN": "s3cret"}
    assert "s3cret" not in repr(settings)


def test_queue_names_are_built_in_one_place() -> None:
    settings = load_settings({"SYNMON_ENV": "prod", "SYNMON_DATABASE_URL": "postgresql://h/d"})
    assert queue_name(settings, "run", "eu-west-1", "http") == "synmon-prod-run-eu-west-1-http"
    assert queue_name(settings, "results") == "synmon-prod-results"
    assert queue_name(settings, "results", dead_letter=True) == "synmon-prod-results-dlq"
    with pytest.raises(ValueError, match="location"):
        queue_name(settings, "run")
    with pytest.raises(ValueError, match="no location"):
        queue_name(settings, "results", "eu-west-1")


def test_every_queue_has_a_dead_letter_queue_and_outlives_its_longest_check() -> None:
    settings = load_settings({"SYNMON_LOCATIONS": "a,b"})
    specs = all_queues(settings)
    assert len(specs) == 2 * 2 + 2
    for spec in specs:
        assert spec.dead_letter == spec.name + "-dlq"
    assert visibility_timeout(settings, "run", "browser") > settings.browser_max_timeout
    assert visibility_timeout(settings, "run", "http") > settings.http_max_timeout


def test_celery_configuration_keeps_jobs_until_they_succeed() -> None:
    settings = load_settings({"SYNMON_SQS_ENDPOINT": "http://127.0.0.1:4566"})
    config = celery_config(settings, {"q": "http://127.0.0.1:4566/1/q"})
    assert config["task_serializer"] == "json" and config["accept_content"] == ["json"]
    assert config["task_acks_late"] is True
    assert config["task_acks_on_failure_or_timeout"] is False
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_prefetch_multiplier"] == 1
    assert config["worker_enable_remote_control"] is False
    assert config["worker_cancel_long_running_tasks_on_connection_loss"] is True
    options = config["broker_transport_options"]
    assert options["polling_interval"] <= 0.5 and options["wait_time_seconds"] <= 2
    assert options["predefined_queues"]["q"]["url"] == "http://127.0.0.1:4566/1/q"
    assert broker_url(settings) == "sqs://test:test@127.0.0.1:4566"
    assert broker_url(load_settings({})) == "sqs://"


def test_events_follow_the_side_channel_and_remote_control_never_uses_sqs() -> None:
    settings = load_settings({"SYNMON_EVENTS_URL": "redis://127.0.0.1:6379/3"})
    config = celery_config(settings, {})
    assert (
        config["worker_enable_remote_control"] is False
    )  # app/celery/side_channel.py answers instead
    assert config["worker_send_task_events"] is True
    assert celery_config(load_settings({}), {})["worker_send_task_events"] is False


def test_regional_queues_live_in_their_locations_region() -> None:
    from app.pipeline.sqs import QueueUrls

    settings = load_settings(
        {
            "SYNMON_ENV": "prod",
            "SYNMON_DATABASE_URL": "postgresql://h/d",
            "SYNMON_LOCATIONS": "eu-west-1,us-east-1",
            "SYNMON_SQS_REGION": "eu-west-1",
            "SYNMON_SQS_REGIONAL_QUEUES": "true",
            "SYNMON_SQS_QUEUE_URL_PREFIX": "https://sqs.{region}.amazonaws.com/123456789012",
        }
    )
    from app.pipeline.queues import queue_region

    run = queue_name(settings, "run", "us-east-1", "browser")
    assert queue_region(settings, run) == "us-east-1"
    assert queue_region(settings, run + "-dlq") == "us-east-1"
    assert queue_region(settings, queue_name(settings, "results")) == "eu-west-1"
    urls = QueueUrls(settings)  # from the prefix: no request to SQS
    assert (
        urls(run)
        == "https://sqs.us-east-1.amazonaws.com/123456789012/synmon-prod-run-us-east-1-browser"
    )
    assert urls("synmon-prod-results").startswith("https://sqs.eu-west-1.amazonaws.com/")
    config = celery_config(settings, {run: urls(run)})
    assert config["broker_transport_options"]["predefined_queues"][run]["region"] == "us-east-1"
    # One region per queue; without the setting everything is in SYNMON_SQS_REGION.
    assert queue_region(settings.with_overrides(sqs_regional_queues=False), run) == "eu-west-1"
    with pytest.raises(ConfigError, match="SYNMON_SQS_REGIONAL_QUEUES"):
        load_settings(
            {"SYNMON_SQS_REGIONAL_QUEUES": "true", "SYNMON_SQS_ENDPOINT": "http://127.0.0.1:1"}
        )


@pytest.mark.processes
def test_a_command_stops_with_the_variable_at_fault() -> None:
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "queues"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYNMON_LOCATIONS": "Mars Base"},
    )
    assert result.returncode != 0
    assert "configuration: SYNMON_LOCATIONS: 'Mars Base' is not a valid location" in result.stderr
    assert "Traceback" not in result.stderr


def test_allowed_targets_are_parsed_once_into_networks_and_ports() -> None:
    import ipaddress

    from config.settings import AllowedTarget

    settings = load_settings(
        {
            "SYNMON_ALLOWED_TARGETS": " 127.0.0.1:8080, 10.1.0.0/16 ,fd00::/8,[::1]:9000,"
            "[fd00::/8]:443,10.2.3.4/16:80"
        }
    )
    assert settings.allowed_targets == (
        AllowedTarget(ipaddress.ip_network("127.0.0.1/32"), 8080),
        AllowedTarget(ipaddress.ip_network("10.1.0.0/16")),
        AllowedTarget(ipaddress.ip_network("fd00::/8")),
        AllowedTarget(ipaddress.ip_network("::1/128"), 9000),
        AllowedTarget(ipaddress.ip_network("fd00::/8"), 443),
        AllowedTarget(ipaddress.ip_network("10.2.0.0/16"), 80),
    )
    # Written back the way it is read (synmon up passes the list on to its children).
    text = ",".join(str(entry) for entry in settings.allowed_targets)
    assert text == "127.0.0.1:8080,10.1.0.0/16,fd00::/8,[::1]:9000,[fd00::/8]:443,10.2.0.0/16:80"
    assert load_settings({"SYNMON_ALLOWED_TARGETS": text}) == settings


@pytest.mark.parametrize(
    "args", [["sync", "--dry-run", "checks"], ["health"], ["worker", "--kind", "http"]]
)
@pytest.mark.processes
def test_a_bad_allowed_target_stops_every_command_at_start(args: list[str], tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "checks").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={
            **os.environ,
            "SYNMON_DATA_DIR": str(tmp_path),
            "SYNMON_ALLOWED_TARGETS": "127.0.0.1:8080,intranet.example:80",
        },
    )
    assert result.returncode != 0
    assert (
        "configuration: SYNMON_ALLOWED_TARGETS: 'intranet.example:80' is not an IP address"
        in result.stderr
    ), result.stderr
    assert "Traceback" not in result.stderr


def test_a_configuration_error_is_a_permanent_synmon_error() -> None:
    from config.errors import SynmonError

    assert issubclass(ConfigError, SynmonError)
    assert ConfigError.permanent


@pytest.mark.parametrize(
    ("variable", "attr", "value"),
    [
        # Empty means unset for an optional setting, for the release and the mail server.
        ("SYNMON_SQS_ENDPOINT", "sqs_endpoint", None),
        ("SYNMON_METRICS_DIR", "metrics_dir", None),
        ("SYNMON_FLOWER_BASIC_AUTH", "flower_basic_auth", None),
        ("SYNMON_SMTP_URL", "smtp_url", "smtp://127.0.0.1:25"),
        ("SYNMON_ALLOW_PRIVATE_TARGETS", "allow_private_targets", False),
        ("SYNMON_ALLOWED_TARGETS", "allowed_targets", ()),
        # A plain text is taken as it is, even empty.
        ("SYNMON_SQS_REGION", "sqs_region", ""),
    ],
)
def test_an_empty_value_is_read_as_before(variable: str, attr: str, value: object) -> None:
    assert getattr(load_settings({variable: ""}), attr) == value


def test_an_empty_release_is_the_package_version() -> None:
    assert load_settings({"SYNMON_RELEASE": ""}).release == load_settings({}).release != ""


@pytest.mark.parametrize(
    "variable",
    ["SYNMON_HTTP_CONCURRENCY", "SYNMON_METRICS_PORT", "SYNMON_LOCATIONS", "SYNMON_LOG_LEVEL"],
)
def test_an_empty_value_where_one_is_needed_is_named(variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        load_settings({variable: ""})


def test_numbers_are_checked_against_their_declared_bounds() -> None:
    assert load_settings({"SYNMON_SQS_WAIT_TIME_SECONDS": "20"}).sqs_wait_time_seconds == 20
    assert load_settings({"SYNMON_DISPATCH_INTERVAL": "0.1"}).dispatch_interval == 0.1
    with pytest.raises(
        ConfigError, match=r"^SYNMON_SQS_WAIT_TIME_SECONDS: expected a whole number from 0 to 20"
    ):
        load_settings({"SYNMON_SQS_WAIT_TIME_SECONDS": "21"})
    for raw in ("0.05", "nan", "inf", "soon"):
        with pytest.raises(ConfigError, match=r"^SYNMON_DISPATCH_INTERVAL: expected a number"):
            load_settings({"SYNMON_DISPATCH_INTERVAL": raw})


def test_defaults_derived_from_other_settings() -> None:
    settings = load_settings({"SYNMON_DATA_DIR": "/srv/synmon", "SYNMON_ENV": "test"})
    assert settings.database_url == "sqlite:////srv/synmon/synmon.db"
    assert settings.artifacts_url == "file:///srv/synmon/artifacts"
    assert settings.log_format == "json"
    assert load_settings({"SYNMON_ENV": "test", "SYNMON_LOG_FORMAT": "text"}).log_format == "text"


def test_values_are_normalised_as_declared() -> None:
    settings = load_settings(
        {
            "SYNMON_LOG_LEVEL": "debug",
            "SYNMON_SQS_QUEUE_URL_PREFIX": "https://sqs.{region}.amazonaws.com/1//",
            "SYNMON_LOCATIONS": " eu-west-1 , us-east-1,",
        }
    )
    assert settings.log_level == "DEBUG"
    assert settings.sqs_queue_url_prefix == "https://sqs.{region}.amazonaws.com/1/"
    assert settings.locations == ("eu-west-1", "us-east-1")


def test_a_wrong_url_is_named_without_its_password() -> None:
    with pytest.raises(ConfigError, match=r"^SYNMON_DATABASE_URL: ") as caught:
        load_settings({"SYNMON_DATABASE_URL": "mysql://monitor:hunter2@db/synmon"})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"^SYNMON_FLOWER_BASIC_AUTH: ") as caught:
        load_settings({"SYNMON_FLOWER_BASIC_AUTH": "hunter2"})
    assert "hunter2" not in str(caught.value)


def test_every_field_is_a_declared_setting() -> None:
    from dataclasses import fields

    from config.settings import DECLARED, Settings, variable

    assert [item.attr for item in DECLARED] == [f.name for f in fields(Settings)]
    assert variable("locations") == "SYNMON_LOCATIONS"
    assert all(item.setting.var.startswith("SYNMON_") and item.setting.doc for item in DECLARED)
