"""Load benchmark: street-level bbox gap queries against a real server, on each backend.

Run ``python bench/bench_load.py`` (60 s per backend), ``--seconds 20`` while iterating,
or ``--quick`` (10 s per backend). Prints figures; not a test. Loopback only, bounded in
time and requests.

For each backend (embedded SQLite and, when a server answers, PostGIS in a schema of its
own that is dropped afterwards) the benchmark loads the demo city (2,000 areas, seed 42)
into a new database, starts ``uvicorn app.main:create_app --factory --workers N`` (one
worker per core by default, as deployed) on a free loopback port, warms every worker's
gap analysis, then drives ``--clients`` concurrent connections for ``--seconds`` with
``wrk`` (C; Debian's ``wrk`` package), or with the Python httpx client when wrk is
missing. Each request is ``GET /v1/datasets/{id}/gaps?bbox=…&format=geojson`` for a
random box of ~500 m × 500 m (street-level zoom) inside the city, with a viewer key.
Reported: requests, throughput, latency p50/p95/p99 (ms, measured by the client,
queueing included), errors (non-200 or transport), mean features per response, and
the CPU used by the server processes (Linux ``/proc``): with 50 clients always waiting
for an answer, latency ≈ 50 / throughput, and throughput is bounded by the server's CPU
per request — the figure to improve. The load generator, the server and (for PostGIS)
the database share the machine's cores, so anything else running skews the figures:
the machine's load is printed before each run; compare runs made back to back.
Target (issue 6): p95 ≤ 100 ms, zero errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_POSTGIS_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/outreach_test"
BOX_M = 500.0
METRES_PER_DEGREE_LAT = 111_320.0
_UVICORN = (
    sys.executable,
    "-m",
    "uvicorn",
    "app.main:create_app",
    "--factory",
    "--log-level",
    "warning",
)


@dataclass(frozen=True)
class Figures:
    backend: str
    clients: int
    duration_s: float
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_features: float
    server_cpu: float
    client_cpu: float

    @property
    def throughput(self) -> float:
        return self.requests / self.duration_s

    def line(self) -> str:
        return (
            f"{self.backend:<8} {self.clients:>3} clients {self.duration_s:5.1f} s: "
            f"{self.requests:>6} requests, {self.throughput:7.1f} req/s, "
            f"p50 {self.p50_ms:6.1f} ms, p95 {self.p95_ms:6.1f} ms, p99 {self.p99_ms:6.1f} ms, "
            f"{self.errors} errors, {self.mean_features:.1f} features/response; CPU: server "
            f"{self.server_cpu:.0%}, client {'wrk' if math.isnan(self.client_cpu) else format(self.client_cpu, '.0%')} of one core, "
            f"{self.server_cpu_ms:.1f} ms server CPU per request"
        )

    @property
    def server_cpu_ms(self) -> float:
        """Server process CPU per request: what bounds throughput on a quiet machine."""
        return 1000 * self.server_cpu * self.duration_s / max(self.requests, 1)


# --- a database with the demo dataset, and a server on it -------------------------------
@contextmanager
def database(backend: str, folder: Path, postgis_url: str) -> Iterator[str]:
    """A new database of ``backend`` (URL yielded); PostGIS: a schema dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgis_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{postgis_url}?options=-csearch_path%3D{schema},public"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def load_demo(url: str, demo_dir: Path) -> tuple[str, str, tuple[float, float, float, float]]:
    """Import the demo city; return (dataset id, viewer key, WGS84 bounds)."""
    from app.auth import create_key
    from app.store import open_store
    from geo.ingest import read_dataset_dir

    dataset = read_dataset_dir(demo_dir, name="Demo city (bench)")
    store = open_store(url)
    try:
        started = time.perf_counter()
        dataset_id = store.create_dataset(dataset).id
        print(f"  imported the demo city in {time.perf_counter() - started:.2f} s", flush=True)
        key = create_key(store, role="viewer", name="bench_load")[1]
    finally:
        store.close()
    minx, miny, maxx, maxy = (float(v) for v in dataset.areas.total_bounds)
    return dataset_id, key, (minx, miny, maxx, maxy)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(url: str, folder: Path, *, workers: int = 1) -> Iterator[tuple[str, int]]:
    """``uvicorn app.main:create_app --factory`` on a free loopback port: (base URL, pid)."""
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")},
        "OUTREACH_DATABASE_URL": url,
        "OUTREACH_DATA_DIR": str(folder),
        "OUTREACH_LOAD_DEMO": "false",
    }
    log = (folder / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [
            *_UVICORN,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backlog",
            "2048",
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {log.name}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --- the load ----------------------------------------------------------------------------
def street_boxes(bounds: tuple[float, float, float, float], n: int, seed: int = 0) -> list[str]:
    """``n`` random ~500 m × 500 m boxes (WGS84 ``minx,miny,maxx,maxy``) inside ``bounds``."""
    minx, miny, maxx, maxy = bounds
    rng = np.random.default_rng(seed)
    half_lat = BOX_M / 2 / METRES_PER_DEGREE_LAT
    half_lon = half_lat / math.cos(math.radians((miny + maxy) / 2))
    cx = rng.uniform(minx + half_lon, maxx - half_lon, n)
    cy = rng.uniform(miny + half_lat, maxy - half_lat, n)
    return [
        f"{x - half_lon:.6f},{y - half_lat:.6f},{x + half_lon:.6f},{y + half_lat:.6f}"
        for x, y in zip(cx, cy, strict=True)
    ]


async def _client(
    http: httpx.AsyncClient,
    path: str,
    boxes: list[str],
    start: int,
    stop_at: float,
    budget: list[int],
    latencies: list[float],
    failures: list[str],
    features: list[int],
) -> None:
    i = start
    while time.perf_counter() < stop_at and budget[0] > 0:
        budget[0] -= 1
        box = boxes[i % len(boxes)]
        i += 1
        began = time.perf_counter()
        try:
            response = await http.get(path, params={"bbox": box, "format": "geojson"})
            elapsed = time.perf_counter() - began
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:120]}")
                continue
            features.append(len(response.json()["features"]))
            latencies.append(elapsed)
        except httpx.HTTPError as exc:
            failures.append(f"{type(exc).__name__}: {exc}")


async def run_load(
    base: str,
    dataset_id: str,
    key: str,
    boxes: list[str],
    *,
    clients: int,
    duration_s: float,
    max_requests: int,
) -> tuple[list[float], list[str], list[int], float]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=30
    ) as http:
        latencies: list[float] = []
        failures: list[str] = []
        features: list[int] = []
        budget = [max_requests]
        began = time.perf_counter()
        await asyncio.gather(
            *(
                _client(
                    http,
                    f"/v1/datasets/{dataset_id}/gaps",
                    boxes,
                    k * 997,
                    began + duration_s,
                    budget,
                    latencies,
                    failures,
                    features,
                )
                for k in range(clients)
            )
        )
        return latencies, failures, features, time.perf_counter() - began


_WRK_SCRIPT = """
local boxes = {%(boxes)s}
local i = 0
wrk.headers["Authorization"] = "Bearer %(key)s"
request = function()
  i = i + 1
  return wrk.format("GET", "%(path)s?format=geojson&bbox=" .. boxes[(i %% #boxes) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%%d,"duration_us":%%d,"errors":%%d,"p50":%%d,"p95":%%d,"p99":%%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def run_wrk(
    base: str,
    dataset_id: str,
    key: str,
    boxes: list[str],
    *,
    clients: int,
    duration_s: float,
    folder: Path,
) -> dict[str, float]:
    """Drive the load with wrk (C, event-driven): its own CPU use is small, so the
    latencies measured are the server's, not the load generator's queueing."""
    script = folder / "bbox.lua"
    script.write_text(
        _WRK_SCRIPT
        % {
            "boxes": ",".join(f'"{b}"' for b in boxes),
            "key": key,
            "path": f"/v1/datasets/{dataset_id}/gaps",
        }
    )
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and its children (uvicorn's worker processes)."""
    total = _cpu_seconds(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += _cpu_seconds(int(stat.parent.name))
    return total


def bench_backend(
    backend: str,
    demo_dir: Path,
    *,
    clients: int,
    duration_s: float,
    max_requests: int,
    postgis_url: str,
    workers: int,
    use_wrk: bool,
) -> Figures:
    with tempfile.TemporaryDirectory(prefix=f"bench-load-{backend}-") as tmp:
        folder = Path(tmp)
        with database(backend, folder, postgis_url) as url:
            dataset_id, key, bounds = load_demo(url, demo_dir)
            boxes = street_boxes(bounds, 5000)
            with server(url, folder, workers=workers) as (base, pid):
                started = time.perf_counter()
                headers = {"Authorization": f"Bearer {key}"}
                # Warm every worker: each computes (or loads from the store) the analysis.
                for box in boxes[: 4 * workers]:
                    httpx.get(
                        f"{base}/v1/datasets/{dataset_id}/gaps",
                        params={"bbox": box, "format": "geojson"},
                        headers=headers,
                        timeout=300,
                    ).raise_for_status()
                print(
                    f"  first requests (gap analysis, {workers} worker(s)) {time.perf_counter() - started:.2f} s",
                    flush=True,
                )
                sample = [
                    len(
                        httpx.get(
                            f"{base}/v1/datasets/{dataset_id}/gaps",
                            params={"bbox": b, "format": "geojson"},
                            headers=headers,
                            timeout=30,
                        ).json()["features"]
                    )
                    for b in boxes[-50:]
                ]
                server_cpu, client_cpu = _tree_cpu_seconds(pid), _own_cpu_seconds()
                if use_wrk:
                    began = time.perf_counter()
                    out = run_wrk(
                        base,
                        dataset_id,
                        key,
                        boxes,
                        clients=clients,
                        duration_s=duration_s,
                        folder=folder,
                    )
                    elapsed = time.perf_counter() - began
                    server_cpu = (_tree_cpu_seconds(pid) - server_cpu) / elapsed
                    figures = Figures(
                        backend,
                        clients,
                        out["duration_us"] / 1e6,
                        int(out["requests"]),
                        int(out["errors"]),
                        out["p50"] / 1000,
                        out["p95"] / 1000,
                        out["p99"] / 1000,
                        float(np.mean(sample)),
                        server_cpu,
                        math.nan,
                    )
                    return figures
                latencies, failures, features, elapsed = asyncio.run(
                    run_load(
                        base,
                        dataset_id,
                        key,
                        boxes,
                        clients=clients,
                        duration_s=duration_s,
                        max_requests=max_requests,
                    )
                )
                server_cpu = (_tree_cpu_seconds(pid) - server_cpu) / elapsed
                client_cpu = (_own_cpu_seconds() - client_cpu) / elapsed
        for failure in sorted(set(failures))[:5]:
            print(f"  error: {failure}")
        if failures:
            for log in folder.glob("server-*.log"):
                print(f"  server log (last lines):\n{log.read_text(errors='replace')[-2000:]}")
    ms = np.asarray(latencies) * 1000 if latencies else np.array([math.nan])
    return Figures(
        backend,
        clients,
        elapsed,
        len(latencies) + len(failures),
        len(failures),
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 95)),
        float(np.percentile(ms, 99)),
        float(np.mean(features)) if features else 0.0,
        server_cpu,
        client_cpu,
    )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_load() -> str:
    """Load average and how busy the cores were over the last second (Linux ``/proc``):
    a figure measured while something else ran is not comparable."""
    try:
        loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])

        def busy_idle() -> tuple[int, int]:
            ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
            idle = ticks[3] + ticks[4]  # idle + iowait
            return sum(ticks) - idle, idle

        busy0, idle0 = busy_idle()
        time.sleep(1.0)
        busy1, idle1 = busy_idle()
    except (OSError, ValueError, IndexError):
        return "unknown (no /proc)"
    share = (busy1 - busy0) / max(busy1 - busy0 + idle1 - idle0, 1)
    return f"load average {loadavg}, cores {share:.0%} busy"


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _postgis_available(url: str) -> str | None:
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT postgis_version()"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10 s per backend")
    parser.add_argument(
        "--seconds",
        "--duration",
        dest="duration",
        metavar="S",
        type=float,
        default=60.0,
        help="per backend",
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--max-requests", type=int, default=200_000, help="cap per backend")
    parser.add_argument("--backend", choices=("sqlite", "postgis", "both"), default="both")
    parser.add_argument(
        "--postgis-url",
        default=os.environ.get("OUTREACH_TEST_POSTGIS_URL", DEFAULT_POSTGIS_URL),
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="uvicorn worker processes (default: one per core, as deployed)",
    )
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="load generator: wrk (C; default when installed) or the Python httpx client",
    )
    args = parser.parse_args()
    duration = 10.0 if args.quick else args.duration
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
    if not use_wrk:
        print(
            "load generator: httpx (install Debian's wrk for a generator that leaves the cores to the server)"
        )

    from geo.synthetic import generate_city, write_city

    backends = ["sqlite", "postgis"] if args.backend == "both" else [args.backend]
    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="bench-load-demo-") as demo:
        write_city(generate_city(seed=42), demo)
        for backend in backends:
            if backend == "postgis":
                reason = _postgis_available(args.postgis_url)
                if reason is not None:
                    print(f"== postgis: skipped, no PostGIS at {args.postgis_url} ({reason})")
                    continue
            print(f"== {backend}: {args.clients} clients for {duration:.0f} s", flush=True)
            print(f"  machine before the run: {_machine_load()}", flush=True)
            figures = bench_backend(
                backend,
                Path(demo),
                clients=args.clients,
                duration_s=duration,
                max_requests=args.max_requests,
                postgis_url=args.postgis_url,
                workers=args.workers,
                use_wrk=use_wrk,
            )
            print("  " + figures.line(), flush=True)
            results.append(figures)
    print("\nbackend  | req/s | p50 ms | p95 ms | p99 ms | errors | target p95 ≤ 100 ms")
    for f in results:
        verdict = "met" if f.p95_ms <= 100 and f.errors == 0 else "NOT met"
        print(
            f"{f.backend:<8} | {f.throughput:5.0f} | {f.p50_ms:6.1f} | {f.p95_ms:6.1f} | "
            f"{f.p99_ms:6.1f} | {f.errors:6d} | {verdict}"
        )
    if args.json:
        print(json.dumps([{**f.__dict__, "throughput": f.throughput} for f in results]))
    return 0 if all(f.errors == 0 for f in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
