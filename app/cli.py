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

    for name, register in _EXTRA_COMMANDS.items():
        register(sub.add_parser(name, help=_EXTRA_HELP[name]))
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


#: Commands contributed by other modules (gap analysis and planning), registered here so
#: the parser stays in one place: name -> function adding arguments and a handler.
_EXTRA_COMMANDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}
_EXTRA_HELP: dict[str, str] = {}


if __name__ == "__main__":
    raise SystemExit(main())
