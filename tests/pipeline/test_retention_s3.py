"""Artifacts on S3 go with their runs (moto's S3 on a loopback port): by batch on both
databases, and with a whole partition on Postgres; a store that cannot delete keeps the
runs for the next pass."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from sqlalchemy import func, select

from app.execution.artifacts import S3Store, store_for
from app.execution.runs import RunResult
from app.pipeline.retention import Pruned, maintain_partitions, partitions, prune
from app.storage.models import CheckRunRow
from tests.pipeline.test_ingest import NOW, definitions, prepare, result, store
from tests.support.processes import MotoServer, moto_server

DAY = timedelta(days=1)
BUCKET = "synmon-artifacts"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


def objects(moto: MotoServer) -> set[str]:
    client = boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        region_name="eu-west-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    with_bucket(client)
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents") or []
    return {entry["Key"] for entry in listed}


def with_bucket(client: object) -> None:
    try:
        client.create_bucket(  # type: ignore[attr-defined]
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def with_screenshot(s3: S3Store, run: RunResult) -> RunResult:
    key = f"{run.check_id}/{run.run_id}/00-shot.png"
    url = s3.put(key, b"png", "image/png")
    run.artifacts.append({"name": "shot", "key": key, "url": url, "content_type": "image/png"})
    return run


def run_count(Session: object) -> int:
    with Session() as session:  # type: ignore[operator]
        return int(session.scalar(select(func.count()).select_from(CheckRunRow)))


def test_artifacts_on_s3_go_with_their_runs(database_url: str, moto: MotoServer) -> None:
    settings, Session = prepare(database_url, definitions())
    settings = settings.with_overrides(
        artifacts_url=f"s3://{BUCKET}/screens", s3_endpoint=moto.endpoint
    )
    s3 = store_for(settings)
    assert isinstance(s3, S3Store)
    objects(moto)  # the bucket exists
    before = objects(moto)
    old = [with_screenshot(s3, result("failed", NOW - 40 * DAY - i * DAY)) for i in range(3)]
    young = with_screenshot(s3, result("failed", NOW - DAY))
    store(Session, settings, [*old, young])
    keys = {f"screens/{r.artifacts[0]['key']}" for r in [*old, young]}
    assert objects(moto) - before == keys

    # A store that cannot delete (its bucket does not exist) undoes the batch: the runs
    # stay, still naming their artifacts, for the next pass.
    missing = S3Store("synmon-no-such-bucket", "screens", settings)
    with pytest.raises(ClientError):
        prune(Session, settings, missing, NOW)
    assert run_count(Session) == 4

    assert prune(Session, settings, s3, NOW) == Pruned(runs=3, artifacts=3)
    assert objects(moto) - before == {f"screens/{young.artifacts[0]['key']}"}
    assert run_count(Session) == 1


def test_a_dropped_partition_takes_its_artifacts_off_s3(
    postgres_url: str, moto: MotoServer
) -> None:
    settings, Session = prepare(postgres_url, definitions())
    settings = settings.with_overrides(
        artifacts_url=f"s3://{BUCKET}/screens", s3_endpoint=moto.endpoint
    )
    s3 = store_for(settings)
    assert isinstance(s3, S3Store)
    before = objects(moto)
    with Session.begin() as session:
        bound = partitions(session)[0].upper
    assert bound is not None
    maintain_partitions(Session, bound)
    runs = [with_screenshot(s3, result("failed", bound + timedelta(hours=h))) for h in (1, 2)]
    store(Session, settings, runs, now=bound + timedelta(hours=3))
    now = bound + 2 * DAY + settings.runs_retention
    done = prune(Session, settings, s3, now)
    # The legacy partition and both days (the second day empty) are past the cutoff.
    assert (done.runs, done.artifacts, done.partitions) == (2, 2, 3)
    assert objects(moto) - before == set()
    assert run_count(Session) == 0
