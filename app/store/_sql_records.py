"""Cached results, plans, jobs and API keys in SQL: small rows, a statement or two each.

Shared by both backends through :class:`~app.store.sql.SqlStore`, which supplies the
engine and tables; kept apart from the dataset tables' code (imports, bulk writes,
bounding boxes) that the backends specialise.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from app.store.base import Conflict, NotFound


class SqlRecords:
    """The :class:`~app.store.base.Store` methods for results, plans, jobs and keys."""

    engine: Engine
    #: Single-statement reads without a transaction (see :class:`SqlStore`).
    _reader: Engine
    t: dict[str, Table]

    # --- results -------------------------------------------------------------
    def save_result(self, dataset_id: str, key: str, parts: dict[str, bytes]) -> None:
        table = self.t["results"]
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(table).where((table.c.dataset_id == dataset_id) & (table.c.key == key))
                )
                conn.execute(
                    table.insert(),
                    [
                        {"dataset_id": dataset_id, "key": key, "part": p, "data": d}
                        for p, d in parts.items()
                    ],
                )
        except IntegrityError:
            pass  # computed concurrently by another worker, or the dataset was deleted

    def has_result(self, dataset_id: str, key: str) -> bool:
        table = self.t["results"]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.part)
                .where((table.c.dataset_id == dataset_id) & (table.c.key == key))
                .limit(1)
            ).first()
        return row is not None

    def load_result(self, dataset_id: str, key: str) -> dict[str, bytes] | None:
        table = self.t["results"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.part, table.c.data).where(
                    (table.c.dataset_id == dataset_id) & (table.c.key == key)
                )
            ).all()
        return {part: bytes(data) for part, data in rows} or None

    # --- plans ---------------------------------------------------------------
    def save_plan(self, plan: dict[str, Any], *, org: str | None = None) -> None:
        summary = {k: plan.get(k) for k in ("id", "dataset_id", "created_at")}
        summary["n_sites"] = len(plan.get("sites", []))
        summary["reached"] = (plan.get("totals") or {}).get("reached")
        summary["reached_share"] = (plan.get("totals") or {}).get("reached_share")
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    self.t["plans"]
                    .insert()
                    .values(
                        id=plan["id"],
                        dataset_id=plan["dataset_id"],
                        created_at=datetime.fromisoformat(plan["created_at"]),
                        org=org,
                        summary=json.dumps(summary),
                        body=json.dumps(plan),
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"plan {plan['id']} already exists or its dataset is gone") from exc

    def get_plan(self, plan_id: str) -> tuple[dict[str, Any], str | None]:
        table = self.t["plans"]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.body, table.c.org).where(table.c.id == plan_id)
            ).first()
        if row is None:
            raise NotFound("plan", plan_id)
        return json.loads(row.body), row.org

    def list_plans(self, *, dataset_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        table = self.t["plans"]
        query = (
            select(table.c.summary, table.c.org).order_by(table.c.created_at.desc()).limit(limit)
        )
        if dataset_id is not None:
            query = query.where(table.c.dataset_id == dataset_id)
        with self.engine.connect() as conn:
            return [{**json.loads(row.summary), "org": row.org} for row in conn.execute(query)]

    # --- jobs ----------------------------------------------------------------
    def create_job(self, job: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(self.t["jobs"].insert().values(created_at=now, updated_at=now, **job))

    def update_job(self, job_id: str, **fields: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(self.t["jobs"])
                .where(self.t["jobs"].c.id == job_id)
                .values(updated_at=datetime.now(UTC), **fields)
            )

    def get_job(self, job_id: str) -> dict[str, Any]:
        table = self.t["jobs"]
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.id == job_id)).mappings().first()
        if row is None:
            raise NotFound("job", job_id)
        return dict(row)

    def fail_interrupted_jobs(self, *, stale_after_s: float = 60.0) -> int:
        """Mark as failed the jobs left queued/running by a process that died: those whose
        runner stopped touching them (``updated_at``) more than ``stale_after_s`` ago.
        Live jobs of other workers are touched every few seconds, so they are left alone."""
        table = self.t["jobs"]
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(table)
                .where(
                    table.c.status.in_(("queued", "running"))
                    & (table.c.updated_at < now - timedelta(seconds=stale_after_s))
                )
                .values(
                    status="failed",
                    message="interrupted by a service restart; submit it again",
                    updated_at=now,
                )
            )
        return int(result.rowcount or 0)

    def touch_jobs(self, job_ids: list[str]) -> None:
        """Heartbeat: the runner still holds these jobs."""
        if not job_ids:
            return
        table = self.t["jobs"]
        with self.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.id.in_(job_ids) & table.c.status.in_(("queued", "running")))
                .values(updated_at=datetime.now(UTC))
            )

    # --- keys ----------------------------------------------------------------
    def create_key(self, record: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.t["api_keys"].insert().values(created_at=datetime.now(UTC), **record))

    def find_key(self, key_hash: str) -> dict[str, Any] | None:
        """The key's record, read on every request (never cached): a key revoked by any
        process stops working at once."""
        table = self.t["api_keys"]
        with self._reader.connect() as conn:
            row = conn.execute(select(table).where(table.c.key_hash == key_hash)).mappings().first()
        return dict(row) if row else None

    def list_keys(self) -> list[dict[str, Any]]:
        table = self.t["api_keys"]
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.created_at)).mappings().all()
        return [{k: v for k, v in row.items() if k != "key_hash"} for row in rows]

    def revoke_key(self, key_id: str) -> None:
        table = self.t["api_keys"]
        with self.engine.begin() as conn:
            result = conn.execute(
                update(table)
                .where((table.c.id == key_id) & table.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            if result.rowcount == 0:
                exists = conn.execute(select(table.c.id).where(table.c.id == key_id)).first()
                if exists is None:
                    raise NotFound("key", key_id)

    def count_keys(self) -> int:
        table = self.t["api_keys"]
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(table).where(table.c.revoked_at.is_(None))
                ).scalar_one()
            )
