"""The ``outreach`` command line: the same code as the API, without a server.

Errors in input files are printed as a list (file, row, column, problem, fix) and the
command exits with status 2; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from app import __version__
from app.store.base import SchemaMismatch
from geo._errors import InputError, OutreachError, ParameterError

EXIT_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    try:
        result = args.handler(args)
    except InputError as exc:
        _print_problems(exc)
        return EXIT_INPUT
    except ParameterError as exc:
        print("Invalid parameters:", file=sys.stderr)
        for error in exc.errors:
            print(
                f"  - {'.'.join(str(x) for x in error.get('loc', []))}: {error.get('msg')}",
                file=sys.stderr,
            )
        return EXIT_INPUT
    except OutreachError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except SchemaMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    return int(result or 0)


def _print_problems(exc: InputError) -> None:
    print(f"{exc.title} — {len(exc.problems)} problem(s); nothing was written:", file=sys.stderr)
    for p in exc.problems:
        where = (
            p.file
            + (f" row {p.row}" if p.row is not None else "")
            + (f" column {p.column!r}" if p.column else "")
        )
        value = f" (value {p.value!r})" if p.value else ""
        print(f"  - {where}: {p.problem}{value}. Fix: {p.fix}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outreach", description="Find vaccine uptake gaps and plan pop-up outreach."
    )
    parser.add_argument("--version", action="version", version=f"outreach {__version__}")
    sub = parser.add_subparsers(dest="command")

    demo = sub.add_parser("demo", help="write the synthetic demo dataset files into DIR")
    demo.add_argument("directory", type=Path)
    demo.add_argument(
        "--areas", type=int, default=2000, help="number of output-area-like polygons (default 2000)"
    )
    demo.add_argument(
        "--sites",
        type=int,
        default=None,
        help="number of candidate sites (default: scaled to the areas)",
    )
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--no-network", action="store_true", help="skip the street network")
    demo.set_defaults(handler=_demo)

    serve = sub.add_parser(
        "serve", help="start the API (loads the demo dataset into an empty store)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (one per core for production)"
    )
    serve.add_argument(
        "--dev-key",
        action="store_true",
        help="create and print an admin key for this session (development only)",
    )
    serve.set_defaults(handler=_serve)

    load = sub.add_parser("import", help="import a dataset folder into the store")
    load.add_argument("directory", type=Path)
    load.add_argument("--name", default=None)
    _import_options(load)
    load.set_defaults(handler=_import)

    migrate_cmd = sub.add_parser(
        "migrate", help="create or upgrade the database schema (back the database up first)"
    )
    migrate_cmd.set_defaults(handler=_migrate)

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser(
        "create", help="create a key and print it (shown once) as the last word"
    )
    create.add_argument("--role", choices=("viewer", "planner", "admin"), required=True)
    create.add_argument(
        "--org", default=None, help="restrict the key to one organisation's datasets"
    )
    create.add_argument("--name", default=None, help="a label for the key")
    create.set_defaults(handler=_keys_create)
    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    listing.set_defaults(handler=_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=_keys_revoke)

    gaps = sub.add_parser(
        "gaps", help="find the gaps in a dataset folder and write them (no server)"
    )
    gaps.add_argument("directory", type=Path)
    gaps.add_argument("--target", type=float, default=0.8, help="uptake target (default 0.8)")
    gaps.add_argument(
        "--min-shortfall", type=int, default=10, help="smallest shortfall for a below_target flag"
    )
    gaps.add_argument("--out", type=Path, default=None, help="gap table: .geojson, .json or .csv")
    gaps.add_argument("--clusters", type=Path, default=None, help="cluster polygons (.geojson)")
    gaps.add_argument(
        "--inequality", type=Path, default=None, help="SII/RII and uptake by group (.json)"
    )
    gaps.add_argument("--map", type=Path, default=None, help="Folium gap map (.html)")
    _import_options(gaps)
    gaps.set_defaults(handler=_gaps)

    plan = sub.add_parser("plan", help="plan outreach sites for a dataset folder (no server)")
    plan.add_argument("directory", type=Path)
    plan.add_argument("--sites", type=int, default=10, help="fixed pop-up sites to place")
    plan.add_argument("--vans", type=int, default=0, help="mobile vans to place")
    plan.add_argument("--target", type=float, default=0.8)
    plan.add_argument("--types", default=None, help="comma-separated candidate site types")
    plan.add_argument("--distance", choices=("euclidean", "network"), default="euclidean")
    plan.add_argument(
        "--params",
        type=Path,
        default=None,
        help="JSON file with any further plan parameters (as the API takes)",
    )
    plan.add_argument("--out", type=Path, default=None, help="the plan (.json)")
    plan.add_argument("--sites-csv", type=Path, default=None, help="the chosen sites (.csv)")
    plan.add_argument("--map", type=Path, default=None, help="Folium plan map (.html)")
    _import_options(plan)
    plan.set_defaults(handler=_plan)
    return parser


def _import_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cap-vaccinated",
        action="store_true",
        help="cap vaccinated at eligible (warning) instead of refusing",
    )
    parser.add_argument(
        "--drop-unmatched-uptake",
        action="store_true",
        help="drop uptake rows for unknown areas (warning)",
    )
    parser.add_argument(
        "--no-repair", action="store_true", help="refuse invalid polygons instead of repairing them"
    )
    parser.add_argument(
        "--map-column",
        action="append",
        default=[],
        metavar="SOURCE=TARGET",
        help="rename a column, e.g. MYCODE=area_code (repeatable)",
    )


def import_options(args: argparse.Namespace) -> object:
    from geo.ingest import ImportOptions

    mapping = {}
    for item in args.map_column:
        source, _, target = item.partition("=")
        if not target:
            raise ParameterError(
                [{"loc": ["--map-column"], "msg": f"expected SOURCE=TARGET, got {item!r}"}]
            )
        mapping[source] = target
    return ImportOptions(
        column_map=mapping,
        cap_vaccinated=args.cap_vaccinated,
        drop_unmatched_uptake=args.drop_unmatched_uptake,
        repair_geometry=not args.no_repair,
    )


def _settings():  # type: ignore[no-untyped-def]
    from app.settings import Settings

    return Settings()


def _demo(args: argparse.Namespace) -> int:
    from geo.synthetic import generate_city, write_city

    city = generate_city(
        n_areas=args.areas, n_sites=args.sites, network=not args.no_network, seed=args.seed
    )
    paths = write_city(city, args.directory)
    for part, path in paths.items():
        print(f"{part:>11}: {path}")
    return 0


def ensure_demo(
    settings: object, store: object, *, log: Callable[[str], None] = print
) -> str | None:
    """Load the demo dataset when the store holds no dataset; return its id if loaded."""
    from geo.ingest import read_dataset_dir
    from geo.synthetic import generate_city, write_city

    _items, total = store.list_datasets(limit=1)  # type: ignore[attr-defined]
    if total:
        return None
    folder = Path(settings.data_dir) / "demo"  # type: ignore[attr-defined]
    if not (folder / "uptake.csv").exists():
        log(f"writing the demo city to {folder} …")
        write_city(generate_city(seed=42), folder)
    dataset = read_dataset_dir(folder, name="Demo city (synthetic)")
    meta = store.create_dataset(dataset)  # type: ignore[attr-defined]
    log(f"loaded the demo dataset {meta.id} ({meta.n_areas} areas)")
    return str(meta.id)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.auth import create_key
    from app.main import StartupRefused, create_app
    from app.store import open_store

    settings = _settings()
    store = open_store(settings.resolved_database_url)
    if settings.load_demo:
        ensure_demo(settings, store)
    if args.dev_key:
        if settings.environment == "production":
            print("error: --dev-key is for development only", file=sys.stderr)
            return EXIT_INPUT
        _, secret = create_key(store, role="admin", name="outreach serve --dev-key")
        print(f"Admin key for writes (this session): {secret}")
    try:
        app = create_app(settings, store=store)
    except StartupRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    reads = "open to anonymous readers" if settings.anonymous_read else "need a key"
    print(
        f"Serving on http://{args.host}:{args.port} (store: {settings.store_kind}; reads {reads}); API docs at /docs"
    )
    if args.workers > 1:
        # Each worker builds its own app (and store connections) from the same settings.
        store.close()
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="info",
        )
    else:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def _import(args: argparse.Namespace) -> int:
    from app.store import open_store
    from geo.ingest import read_dataset_dir

    dataset = read_dataset_dir(args.directory, name=args.name, options=import_options(args))  # type: ignore[arg-type]
    store = open_store(_settings().resolved_database_url)
    meta = store.create_dataset(dataset)
    for warning in meta.warnings:
        print(f"warning: {warning['file']}: {warning['problem']}", file=sys.stderr)
    print(f"imported {meta.name!r}: {meta.n_areas} areas, {meta.n_sites} sites; id {meta.id}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from app.store.migrate import database_revision, migrate

    url = _settings().resolved_database_url
    before = database_revision(url)
    after = migrate(url)
    if before == after:
        print(f"the database schema is already at revision {after}, the newest this release knows")
    else:
        print(f"upgraded the database schema from revision {before or '(none)'} to {after}")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from app.auth import create_key
    from app.store import open_store

    store = open_store(_settings().resolved_database_url)
    key_id, secret = create_key(store, role=args.role, org=args.org, name=args.name)
    print(
        f"Created {args.role} key {key_id}{' for ' + args.org if args.org else ''}; it is shown only once: {secret}"
    )
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from app.store import open_store

    store = open_store(_settings().resolved_database_url)
    for key in store.list_keys():
        state = "revoked" if key.get("revoked_at") else "active"
        print(
            f"{key['id']}  {key['prefix']}…  {key['role']:<8} org={key.get('org') or '-'}  {state}  {key.get('name') or ''}"
        )
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from app.store import NotFound, open_store

    store = open_store(_settings().resolved_database_url)
    try:
        store.revoke_key(args.key_id)
    except NotFound:
        print(f"error: no key with id {args.key_id!r}", file=sys.stderr)
        return EXIT_INPUT
    print(f"revoked key {args.key_id}")
    return 0


def _progress_bar(description: str):  # type: ignore[no-untyped-def]
    """A tqdm bar driven by ``progress(fraction, message)`` callbacks."""
    from tqdm import tqdm

    bar = tqdm(
        total=100,
        desc=description,
        unit="%",
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
        file=sys.stderr,
    )

    def update(fraction: float, message: str) -> None:
        bar.n = round(100 * min(max(fraction, 0.0), 1.0))
        bar.set_postfix_str(message[:40], refresh=False)
        bar.refresh()

    return bar, update


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    print(f"wrote {path}")


def _gaps(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from app.cli_outputs import gap_outputs
    from geo.ingest import read_dataset_dir
    from models.gaps import GapParams, analyse_gaps

    params = GapParams(target=args.target, min_shortfall=args.min_shortfall)
    dataset = read_dataset_dir(args.directory, options=import_options(args))  # type: ignore[arg-type]
    bar, update = _progress_bar("gaps")
    try:
        result = analyse_gaps(dataset, params, progress=update)
        update(1.0, "done")
    finally:
        bar.close()
    outputs = gap_outputs(
        dataset,
        result,
        params,
        settings=_settings(),
        title=f"{dataset.name}: gaps to {args.target:.0%}",
    )
    for path, key in (
        (args.out, "table"),
        (args.clusters, "clusters"),
        (args.inequality, "inequality"),
        (args.map, "map"),
    ):
        if path is not None:
            _write(path, outputs.render(key, path.suffix.lower()))
    flagged = int((result.table["flag"] != "none").sum())
    shortfall = int(np.sum(result.table["shortfall"]))
    print(
        json.dumps(
            {
                "areas": len(result.table),
                "flagged": flagged,
                "clusters": len(result.clusters),
                "shortfall": shortfall,
            }
        )
    )
    return 0


def _plan(args: argparse.Namespace) -> int:
    import json

    from app.cli_outputs import plan_outputs
    from geo.ingest import read_dataset_dir
    from models.gaps import GapParams, analyse_gaps
    from models.plan_params import PlanParams

    extra = json.loads(args.params.read_text()) if args.params else {}
    values = {
        "n_sites": args.sites,
        "n_vans": args.vans,
        "target": args.target,
        "distance": args.distance,
        **extra,
    }
    if args.types:
        values["site_types"] = [t.strip() for t in args.types.split(",") if t.strip()]
    params = PlanParams.from_dict(values)
    dataset = read_dataset_dir(args.directory, options=import_options(args))  # type: ignore[arg-type]
    bar, update = _progress_bar("plan")
    try:
        gaps = analyse_gaps(
            dataset, GapParams(target=params.target), progress=lambda f, m: update(0.4 * f, m)
        )
        from app.planning import new_plan

        plan = new_plan(
            dataset.name, dataset, gaps, params, progress=lambda f, m: update(0.4 + 0.6 * f, m)
        )
        update(1.0, "done")
    finally:
        bar.close()
    outputs = plan_outputs(
        dataset,
        gaps,
        plan,
        settings=_settings(),
        title=f"{dataset.name}: {len(plan['sites'])} sites",
    )
    for path, key in ((args.out, "plan"), (args.sites_csv, "sites_csv"), (args.map, "map")):
        if path is not None:
            _write(path, outputs.render(key, path.suffix.lower()))
    totals = outputs.published["totals"]
    print(
        json.dumps(
            {
                "sites": len(plan["sites"]),
                "reached": totals.get("reached"),
                "reached_share": plan["totals"].get("reached_share"),
                "gap_pct": plan.get("gap_pct"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
