"""The job runner: progress, results, cancellation, failures, and heartbeats that keep
one worker from failing another worker's live jobs."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from app.jobs import JobRunner, job_view
from app.store.sqlite import SqliteStore
from geo._errors import ParameterError


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(f"sqlite:///{tmp_path / 'jobs.db'}")


def _wait(store: SqliteStore, job_id: str, timeout: float = 20.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = store.get_job(job_id)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_progress_result_and_failures(store: SqliteStore) -> None:
    runner = JobRunner(store, max_running=1, min_update_interval_s=0.0)
    seen: list[float] = []
    submitted = threading.Event()

    def work(progress) -> str:  # type: ignore[no-untyped-def]
        submitted.wait(5)
        for step in range(5):
            progress(step / 5, f"step {step}")
            seen.append(store.get_job(job_id)["progress"])
        return "/v1/plans/abc"

    job_id = runner.submit("plan", work, dataset_id=None, org=None)
    submitted.set()
    done = _wait(store, job_id)
    assert (
        done["status"] == "succeeded"
        and done["progress"] == 1.0
        and done["result_url"] == "/v1/plans/abc"
    )
    assert seen == sorted(seen) and seen[-1] == pytest.approx(0.8)

    def bad(progress) -> str:  # type: ignore[no-untyped-def]
        raise ParameterError([{"loc": ["n_sites"], "msg": "too many"}])

    failed = job_view(_wait(store, runner.submit("plan", bad, dataset_id=None, org=None)))
    assert failed["status"] == "failed" and failed["error"]["errors"][0]["msg"] == "too many"

    def boom(progress) -> str:  # type: ignore[no-untyped-def]
        raise RuntimeError("secret stack detail")

    crashed = job_view(_wait(store, runner.submit("plan", boom, dataset_id=None, org=None)))
    assert (
        crashed["status"] == "failed"
        and "secret" not in str(crashed)
        and "incident" in crashed["message"]
    )
    runner.shutdown()


def test_cancel_queued_and_running(store: SqliteStore) -> None:
    runner = JobRunner(store, max_running=1, min_update_interval_s=0.0)
    release = threading.Event()

    def slow(progress) -> str:  # type: ignore[no-untyped-def]
        while not release.is_set():
            progress(0.1, "waiting")
            time.sleep(0.02)
        return "/done"

    running = runner.submit("plan", slow, dataset_id=None, org=None)
    queued = runner.submit("plan", slow, dataset_id=None, org=None)
    time.sleep(0.2)
    assert runner.cancel(queued) and store.get_job(queued)["status"] == "cancelled"
    assert runner.cancel(running)
    assert _wait(store, running)["status"] == "cancelled"
    release.set()
    assert runner.cancel(running) is False  # already finished
    runner.shutdown()


def test_startup_fails_only_abandoned_jobs(store: SqliteStore) -> None:
    store.create_job({"id": "a" * 32, "kind": "plan", "status": "running", "progress": 0.5})
    store.create_job({"id": "b" * 32, "kind": "plan", "status": "running", "progress": 0.5})
    with store.engine.begin() as conn:  # job a: nobody has touched it for ten minutes
        conn.execute(
            update(store.t["jobs"])
            .where(store.t["jobs"].c.id == "a" * 32)
            .values(updated_at=datetime.now(UTC) - timedelta(minutes=10))
        )
    runner = JobRunner(store, max_running=1, heartbeat_s=0.05)
    assert store.get_job("a" * 32)["status"] == "failed"
    assert store.get_job("b" * 32)["status"] == "running"  # another worker's live job

    release = threading.Event()
    job_id = runner.submit(
        "plan", lambda progress: (release.wait(5), "/x")[1], dataset_id=None, org=None
    )
    first = store.get_job(job_id)["updated_at"]
    time.sleep(0.3)
    assert store.get_job(job_id)["updated_at"] > first  # the heartbeat keeps it alive
    release.set()
    _wait(store, job_id)
    runner.shutdown()
