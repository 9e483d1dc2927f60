"""The command line: demo files, import, keys, and `outreach serve` as `make run` uses it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.cli import main


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OUTREACH_DATA_DIR": str(tmp_path / "var"),
        "OUTREACH_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'o.db'}",
    }


def test_demo_import_and_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    assert main(["demo", str(tmp_path / "city"), "--areas", "300", "--seed", "3"]) == 0
    written = sorted(p.name for p in (tmp_path / "city").iterdir())
    assert written == [
        "areas.gpkg",
        "indicators.csv",
        "network.osm",
        "sites.csv",
        "truth.csv",
        "uptake.csv",
    ]
    assert main(["import", str(tmp_path / "city"), "--name", "small"]) == 0
    assert "imported 'small'" in capsys.readouterr().out
    assert main(["keys", "create", "--role", "planner", "--org", "north"]) == 0
    secret = capsys.readouterr().out.split()[-1]
    assert secret.startswith("okey_")
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "planner" in listing and secret not in listing
    key_id = listing.split()[0]
    assert main(["keys", "revoke", key_id]) == 0
    assert main(["keys", "revoke", "nope"]) == 2


def test_import_errors_are_listed_with_exit_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    main(["demo", str(tmp_path / "city"), "--areas", "300", "--no-network"])
    uptake = tmp_path / "city" / "uptake.csv"
    lines = uptake.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",-1"
    lines[2] = lines[2].rsplit(",", 1)[0] + ",x"
    uptake.write_text("\n".join(lines) + "\n")
    assert main(["import", str(tmp_path / "city")]) == 2
    err = capsys.readouterr().err
    assert "uptake.csv row 2 column 'vaccinated': the count is negative" in err
    assert "uptake.csv row 3 column 'vaccinated': the count is not a number" in err
    assert "nothing was written" in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_loads_the_demo_into_an_empty_store(tmp_path: Path) -> None:
    """What `make run` does: serve with anonymous reads, demo loaded, a key printed."""
    port = _free_port()
    env = {**_env(tmp_path), "OUTREACH_ANONYMOUS_READ": "true"}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--dev-key"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    pytest.fail(process.stdout.read() if process.stdout else "server exited")
                time.sleep(0.5)
        else:
            pytest.fail("the server did not start within 120 s")
        assert health.json()["status"] == "ok" and health.json()["store"] == "sqlite"
        datasets = httpx.get(f"http://127.0.0.1:{port}/v1/datasets", timeout=10).json()
        assert datasets["total"] == 1 and datasets["items"][0]["n_areas"] == 2000
        assert "Demo city" in datasets["items"][0]["name"]
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "Demo city" in page.text
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert "Admin key for writes (this session): okey_" in output


def test_gaps_and_plan_commands_write_published_outputs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    demo_dir: Path,
) -> None:
    import csv
    import io
    import json
    import re

    from app.assets import assets_installed

    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "out"
    maps = assets_installed()
    gaps_args = [
        "gaps",
        str(demo_dir),
        "--target",
        "0.85",
        "--out",
        str(out / "gaps.geojson"),
        "--clusters",
        str(out / "clusters.geojson"),
        "--inequality",
        str(out / "inequality.json"),
    ]
    assert main(gaps_args + (["--map", str(out / "gaps.html")] if maps else [])) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    gaps = json.loads((out / "gaps.geojson").read_text())
    assert gaps["total"] == summary["areas"] == 2000 and gaps["target"] == 0.85
    counts = [
        f["properties"][c]
        for f in gaps["features"]
        for c in ("eligible", "vaccinated", "unvaccinated", "shortfall")
    ]
    assert all(v is None or ((v == 0 or v > 7) and v % 5 == 0) for v in counts)
    assert json.loads((out / "clusters.geojson").read_text())["total"] == summary["clusters"] > 0
    assert json.loads((out / "inequality.json").read_text())["sii"]["sii"] > 0
    plan_args = [
        "plan",
        str(demo_dir),
        "--sites",
        "4",
        "--vans",
        "1",
        "--out",
        str(out / "plan.json"),
        "--sites-csv",
        str(out / "sites.csv"),
    ]
    assert main(plan_args + (["--map", str(out / "plan.html")] if maps else [])) == 0
    plan = json.loads((out / "plan.json").read_text())
    rows = list(csv.DictReader(io.StringIO((out / "sites.csv").read_text())))
    assert [r["site_id"] for r in rows] == [s["site_id"] for s in plan["sites"]] and 1 <= len(
        rows
    ) <= 5
    assert plan["totals"]["reached"] <= plan["totals"]["shortfall_total"]
    if maps:
        for page in ("gaps.html", "plan.html"):
            # Self-contained: nothing linked, not even this virtualenv's copy of the assets
            # (the libraries' own code mentions URLs such as SVG's namespace; the browser
            # test of the standalone map shows the page requests nothing).
            text = (out / page).read_text()
            assert not re.findall(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=", text)
            assert "file://" not in text and "/static/vendor" not in text
            assert "L.map(" in text and "Font Awesome 6 Free" in text
    assert main(["gaps", str(demo_dir), "--out", str(out / "gaps.xlsx")]) == 2
    assert "cannot write out as .xlsx" in capsys.readouterr().err
