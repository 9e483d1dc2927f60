"""Long work as background jobs: a bounded pool, progress in the store, cancellation.

A request whose work is above a size threshold gets ``202`` with the job's URL; the work
runs on a small fixed pool (``OUTREACH_JOBS__MAX_RUNNING`` threads) so a burst of
expensive requests queues instead of starving the API's own threads. Progress and the
final state are written to the store, so any worker process can answer ``GET /v1/jobs``.
Each runner touches its live jobs every few seconds (a heartbeat in ``updated_at``); at
start-up only jobs nobody has touched for a minute — left by a process that died — are
marked failed, so several workers sharing one database never fail each other's jobs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.store.base import Store
from geo._errors import InputError, OutreachError, ParameterError

log = logging.getLogger("outreach.jobs")

#: ``progress(fraction in [0, 1], message)``; raises :class:`JobCancelled` once cancelled.
Progress = Callable[[float, str], None]
#: The work: gets a progress callback, returns the URL of its stored result.
Work = Callable[[Progress], str]


class JobCancelled(Exception):
    """Raised inside a job's progress callback after the job was cancelled."""


class JobRunner:
    """Runs jobs on a bounded thread pool and records their state in the store."""

    def __init__(
        self,
        store: Store,
        *,
        max_running: int,
        min_update_interval_s: float = 0.5,
        heartbeat_s: float = 10.0,
    ):
        self.store = store
        self.executor = ThreadPoolExecutor(
            max_workers=max_running, thread_name_prefix="outreach-job"
        )
        self.min_update_interval_s = min_update_interval_s
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        store.fail_interrupted_jobs(stale_after_s=6 * heartbeat_s)
        self._heartbeat = threading.Thread(
            target=self._beat, args=(heartbeat_s,), name="outreach-job-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def _beat(self, every_s: float) -> None:
        while not self._stopped.wait(every_s):
            with self._lock:
                live = list(self._cancel)
            try:
                self.store.touch_jobs(live)
            except Exception:
                log.warning("job heartbeat failed", exc_info=True)

    def submit(self, kind: str, work: Work, *, dataset_id: str | None, org: str | None) -> str:
        """Queue ``work``; return the job id at once."""
        job_id = uuid.uuid4().hex
        self.store.create_job(
            {
                "id": job_id,
                "kind": kind,
                "status": "queued",
                "progress": 0.0,
                "dataset_id": dataset_id,
                "org": org,
            }
        )
        with self._lock:
            self._cancel[job_id] = threading.Event()
        self.executor.submit(self._run, job_id, work)
        return job_id

    def cancel(self, job_id: str) -> bool:
        """Ask a queued or running job to stop; False when it already finished."""
        job = self.store.get_job(job_id)
        if job["status"] not in ("queued", "running"):
            return False
        with self._lock:
            event = self._cancel.get(job_id)
        if event is not None:
            event.set()
        if job["status"] == "queued" or event is None:
            self.store.update_job(job_id, status="cancelled", message="cancelled before it started")
        return True

    def shutdown(self) -> None:
        self._stopped.set()
        with self._lock:
            for event in self._cancel.values():
                event.set()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _run(self, job_id: str, work: Work) -> None:
        with self._lock:
            event = self._cancel.get(job_id, threading.Event())
        try:
            if event.is_set() or self.store.get_job(job_id)["status"] == "cancelled":
                return
            self.store.update_job(job_id, status="running", message="started")
            last = [0.0, -1.0]

            def progress(fraction: float, message: str) -> None:
                if event.is_set():
                    raise JobCancelled
                now = time.monotonic()
                if now - last[0] >= self.min_update_interval_s or fraction - last[1] >= 0.1:
                    last[0], last[1] = now, fraction
                    self.store.update_job(
                        job_id, progress=float(min(max(fraction, 0.0), 0.99)), message=message[:500]
                    )

            result_url = work(progress)
            if event.is_set():
                raise JobCancelled
            self.store.update_job(
                job_id, status="succeeded", progress=1.0, result_url=result_url, message="done"
            )
        except JobCancelled:
            self.store.update_job(job_id, status="cancelled", message="cancelled")
        except (InputError, ParameterError, OutreachError) as exc:
            self.store.update_job(
                job_id,
                status="failed",
                message=str(exc)[:500],
                error=json.dumps(_domain_error(exc)),
            )
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("job %s failed (incident %s)", job_id, incident)
            self.store.update_job(
                job_id,
                status="failed",
                message=f"internal error (incident {incident})",
                error=json.dumps({"title": "Internal error", "incident": incident}),
            )
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)


def _domain_error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, InputError):
        return {"title": exc.title, "errors": [p.to_dict() for p in exc.problems]}
    if isinstance(exc, ParameterError):
        return {"title": "Invalid parameters", "errors": exc.errors}
    return {"title": type(exc).__name__, "detail": str(exc)}


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a job record."""
    error = job.get("error")
    return {
        "id": job["id"],
        "kind": job["kind"],
        "status": job["status"],
        "progress": round(float(job.get("progress") or 0.0), 4),
        "message": job.get("message"),
        "result_url": job.get("result_url"),
        "error": json.loads(error) if error else None,
        "created_at": job["created_at"].isoformat()
        if hasattr(job.get("created_at"), "isoformat")
        else job.get("created_at"),
        "updated_at": job["updated_at"].isoformat()
        if hasattr(job.get("updated_at"), "isoformat")
        else job.get("updated_at"),
    }
