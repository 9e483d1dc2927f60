"""Benchmark: generating, reading/validating and storing an England-sized dataset.

Prints wall time and peak memory (RSS) of each stage for the synthetic city at the given
size: ``generate_city`` + ``write_city``, ``read_dataset_dir`` (parse and validate every
file, as an upload is), and ``create_dataset`` into a fresh SQLite store (and PostGIS when
``--postgis URL`` is given). Run: ``.venv/bin/python bench/bench_import.py [--areas N]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    from app.store import open_store
    from geo.ingest import read_dataset_dir
    from geo.synthetic import generate_city, write_city

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--areas", type=int, default=180_000)
    parser.add_argument("--quick", action="store_true", help="20,000 areas")
    parser.add_argument("--postgis", default=None, help="also import into this PostGIS URL")
    args = parser.parse_args()
    n_areas = 20_000 if args.quick else args.areas
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "city"
        began = time.perf_counter()
        city = generate_city(n_areas=n_areas, network=False, seed=1)
        generated = time.perf_counter()
        write_city(city, folder)
        written = time.perf_counter()
        print(
            f"generate {n_areas:,} areas, {len(city.sites):,} sites, {len(city.uptake):,} uptake rows: {generated - began:.1f} s; write: {written - generated:.1f} s; peak {_peak_gb():.2f} GB"
        )
        del city
        began = time.perf_counter()
        dataset = read_dataset_dir(folder)
        print(
            f"read + validate (the upload path): {time.perf_counter() - began:.1f} s; peak {_peak_gb():.2f} GB; warnings {len(dataset.warnings)}"
        )
        stores = [("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        if args.postgis:
            stores.append(("postgis", args.postgis))
        for kind, url in stores:
            store = open_store(url)
            began = time.perf_counter()
            meta = store.create_dataset(dataset)
            stored = time.perf_counter() - began
            began = time.perf_counter()
            store.load_dataset(meta.id)
            loaded = time.perf_counter() - began
            print(
                f"{kind}: store (one transaction) {stored:.1f} s; load back {loaded:.1f} s; peak {_peak_gb():.2f} GB"
            )
            store.delete_dataset(meta.id)
            store.close()


if __name__ == "__main__":
    main()
