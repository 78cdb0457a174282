"""The history benchmark at its tiny size, so that it does not rot (its speed is judged
by running it in full: ``python -m bench.history --full``), and its checks of the
answers, which must catch a wrong one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from app.pipeline.rollups import hour_start
from app.storage.db import sessions
from bench import history
from bench.common import WrongResult
from tests.support.databases import postgres_database


def test_the_tiny_history_benchmark_measures_and_checks_every_question() -> None:
    figures = history.run("tiny")
    metrics = [f.metric for f in figures]
    assert metrics == [
        "3-day uptime of 40 checks",
        "one check's 3-day chart",
        "report --since 3d, 40 checks",
        "/api/checks uptime 24h/7d/30d, 40",
        "storage per 1 M results: raw runs",
        "storage per 1 M results: hourly rollup",
        "storage per 1 M results: daily rollup",
    ]
    for figure in figures:
        assert figure.benchmark == "history" and figure.synmon > 0, figure
        assert figure.met is None  # goals are judged at full size only
        if figure.baseline is not None:
            assert figure.ratio == pytest.approx(figure.synmon / figure.baseline)
    raw, hourly, daily = (f.synmon for f in figures[-3:])
    assert hourly < raw and daily < raw


def test_a_wrong_answer_is_a_wrong_result() -> None:
    now = hour_start(datetime.now(UTC)) + timedelta(minutes=history.CURRENT_MINUTES)
    synthesised = history.synthesise(6, 2, now)
    with postgres_database() as url:
        history.load(url, synthesised)
        with sessions(url).begin() as session:  # one run of one check lost from a day
            session.execute(
                text(
                    "UPDATE check_rollups_daily SET passed = passed - 1 "
                    "WHERE check_id = 'c0' AND bucket_start = (SELECT max(bucket_start) "
                    "FROM check_rollups_daily WHERE bucket_start < :today)"
                ),
                {"today": now.replace(hour=0, minute=0)},
            )
        with pytest.raises(WrongResult, match="c0") as caught:
            history.questions(url, synthesised, "tiny")
    assert caught.value.figures  # what it measured before it found out
