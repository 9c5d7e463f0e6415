#!/usr/bin/env python3
"""Side-by-side benchmark of the product's curate and daily jobs against
DuckDB and polars (one thread each), on the same generated inputs.

Run through scripts/peer-bench, which builds the product's benchmark
binaries and installs the peers into .venv. Every contender runs as its own
child process, so its peak RSS is its own (os.wait4); throughput uses the
time each child measures around its work (interpreter start-up and imports
excluded). Runs are interleaved (product, duckdb, polars, product, ...), and
each row reports min / median / max over the repetitions. The outputs are
checked against each other (counts) before any figure is printed.

curate: one raw NDJSON object (the normalized line shape delivery writes) of
N hits over V visitors, all of one date -> one zstd Parquet file
(clientid, page_gender, event_time, hit_id) + per visitor: m, f, last
gender. The product does what the server does with the object: Parquet and
deltas, their apply to a new state store (journal), its checkpoint into
redb (bench_curate times the three phases). duckdb-persisted does the like
for like: the Parquet, the per-visitor counters upserted into a table of a
database file, CHECKPOINT; duckdb and polars keep the counters nowhere.
daily: curated Parquet of the 8 dates D-7 .. D (8 files per date, N/7 hits
each, over V visitors) -> one rollup Parquet per date (clientid, m, f) + the
per-visitor window sums persisted (the product: `run_daily` with the real
state store; DuckDB: a table in a database file, then CHECKPOINT). Two
cases, product and DuckDB each: the first run (7 rollups built, every window
written) and the next day (the previous day's run done untimed beforehand;
one new date rolled up, 6 rollups reused). What each persisted is read back
and compared (visitors, totals, rollup rows and hits, sampled visitors'
sums). Wall time and the CPU time of the timed part are both reported.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

DAY0 = "2026-11-24"  # the raw object's date and the daily run's date D
DAY0_MS = 1795478400000  # 2026-11-24T00:00:00Z
MS_PER_DAY = 86_400_000
FILES_PER_DAY = 8


# ---------------------------------------------------------------- inputs


def visitor_ids(rng, n, v):
    import numpy as np

    return rng.integers(0, v, size=n, dtype=np.int64)


# The hitid a server assigns (`<instance>.<counter>`), on every raw line as
# delivery writes it; bench_curate is told it is the server's own prefix.
INSTANCE = "k3Jx9aQ2LmZ."


def uuid_strings(rng, n: int) -> list:
    """N random version-4-shaped UUIDs, as a browser's tracker sends them."""
    import numpy as np

    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.tobytes().hex()
    return [
        f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
        for h in (text[32 * i : 32 * i + 32] for i in range(n))
    ]


def gen_raw(path: Path, n: int, v: int, seed: int, uuid: bool = False) -> None:
    """N normalized NDJSON lines over V visitors, distinct times within DAY0,
    each with the hitid the server assigned, or with `uuid` a producer's
    UUID (the browser ingest case, SPEC 19), which the product deduplicates."""
    import numpy as np
    import polars as pl

    if path.exists():
        return
    rng = np.random.default_rng(seed)
    ids = visitor_ids(rng, n, v)
    genders = np.where(rng.random(n) < 0.5, "M", "F")
    step = MS_PER_DAY // n
    times = DAY0_MS + rng.permutation(n).astype(np.int64) * step
    hitid = (
        pl.col("u")
        if uuid
        else pl.concat_str(pl.lit(INSTANCE), pl.int_range(pl.len()).cast(pl.Utf8))
    )
    columns = {"id": ids, "g": genders, "t": times}
    if uuid:
        columns["u"] = uuid_strings(rng, n)
    df = pl.DataFrame(columns).select(
        pl.concat_str(
            pl.lit('{"clientid":"visitor-'),
            pl.col("id").cast(pl.Utf8).str.zfill(7),
            pl.lit('","pageGender":"'),
            pl.col("g"),
            pl.lit('","timestamp":"'),
            pl.from_epoch(pl.col("t"), time_unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
            pl.lit('","hitid":"'),
            hitid,
            pl.lit('"}'),
        ).alias("line")
    )
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w") as out:
        for chunk in df.iter_slices(1_000_000):
            out.write("\n".join(chunk["line"].to_list()))
            out.write("\n")
    tmp.rename(path)


def window_dates(end: str = DAY0):
    """The 7 dates of the window ending on `end`, oldest first."""
    import datetime

    d = datetime.date.fromisoformat(end)
    return [(d - datetime.timedelta(days=back)).isoformat() for back in range(6, -1, -1)]


def day_before(date: str) -> str:
    import datetime

    return (datetime.date.fromisoformat(date) - datetime.timedelta(days=1)).isoformat()


def input_dates():
    """D-7 .. D: the window of D and the date before it (the previous day's
    window is D-7 .. D-1, so the next-day run has one new date)."""
    return [day_before(window_dates()[0])] + window_dates()


def gen_curated(root: Path, n: int, v: int, seed: int) -> None:
    """curated/hits/dt=D/part-K.parquet for D-7 .. D, N/7 hits per date (so
    each 7-day window holds N)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = root / ".complete"
    if done.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    dates = input_dates()
    per_file = n // (7 * FILES_PER_DAY)
    schema = pa.schema(
        [
            pa.field("clientid", pa.string(), nullable=False),
            pa.field("page_gender", pa.string(), nullable=False),
            pa.field("event_time", pa.timestamp("ms", tz="UTC"), nullable=False),
        ]
    )
    for i, date in enumerate(dates):
        day_start = DAY0_MS - (len(dates) - 1 - i) * MS_PER_DAY
        out = root / "curated" / "hits" / f"dt={date}"
        out.mkdir(parents=True, exist_ok=True)
        for k in range(FILES_PER_DAY):
            ids = visitor_ids(rng, per_file, v)
            table = pa.table(
                {
                    "clientid": pa.array([f"visitor-{x:07d}" for x in ids.tolist()]),
                    "page_gender": pa.array(np.where(rng.random(per_file) < 0.5, "M", "F")),
                    "event_time": pa.array(
                        day_start + rng.integers(0, MS_PER_DAY, size=per_file),
                        type=pa.timestamp("ms", tz="UTC"),
                    ),
                },
                schema=schema,
            )
            pq.write_table(table, out / f"part-{k}.parquet", compression="zstd", row_group_size=128 * 1024)
    done.touch()


# ---------------------------------------------------------------- peers (run in a child)


def duckdb_connect(database: str = ":memory:"):
    import duckdb

    con = duckdb.connect(database)
    con.execute("SET threads=1")
    con.execute("SET preserve_insertion_order=false")
    return con


def duckdb_curate_parquet(con, raw: str, parquet: str) -> None:
    """The raw NDJSON object -> the curated hits Parquet, as both DuckDB curate rows write it."""
    con.execute(
        f"""COPY (SELECT clientid, pageGender AS page_gender,
                         CAST("timestamp" AS TIMESTAMPTZ) AS event_time, hitid AS hit_id
                  FROM read_json('{raw}', format='newline_delimited',
                                 columns={{clientid: 'VARCHAR', pageGender: 'VARCHAR', "timestamp": 'VARCHAR', hitid: 'VARCHAR'}}))
            TO '{parquet}' (FORMAT parquet, COMPRESSION zstd)"""
    )


def peer_duckdb_curate(raw: str, out: str) -> dict:
    con = duckdb_connect()
    start = time.perf_counter()
    parquet = os.path.join(out, "hits.parquet")
    duckdb_curate_parquet(con, raw, parquet)
    row = con.execute(
        f"""SELECT count(*), sum(m), sum(f), count(*) FILTER (WHERE last = 'M')
            FROM (SELECT clientid, count(*) FILTER (WHERE page_gender = 'M') AS m,
                         count(*) FILTER (WHERE page_gender = 'F') AS f,
                         arg_max(page_gender, event_time) AS last
                  FROM read_parquet('{parquet}') GROUP BY clientid)"""
    ).fetchone()
    seconds = time.perf_counter() - start
    return {"visitors": row[0], "m": int(row[1]), "f": int(row[2]), "last_m": row[3], "seconds": seconds}


def peer_duckdb_curate_persisted(raw: str, out: str) -> dict:
    """Like for like with the product's row: the same Parquet, and each
    visitor's counters kept in a table of a DuckDB file (an upsert, as a
    second object for the same visitors would need), then `CHECKPOINT`."""
    con = duckdb_connect(os.path.join(out, "profiles.duckdb"))
    con.execute(
        """CREATE TABLE profiles (clientid VARCHAR PRIMARY KEY, m BIGINT, f BIGINT,
                                  last_gender VARCHAR, last_seen TIMESTAMPTZ)"""
    )
    con.execute("CHECKPOINT")
    start = time.perf_counter()
    parquet = os.path.join(out, "hits.parquet")
    duckdb_curate_parquet(con, raw, parquet)
    con.execute(
        f"""INSERT INTO profiles
            SELECT clientid, count(*) FILTER (WHERE page_gender = 'M'), count(*) FILTER (WHERE page_gender = 'F'),
                   arg_max(page_gender, event_time), max(event_time)
            FROM read_parquet('{parquet}') GROUP BY clientid
            ON CONFLICT (clientid) DO UPDATE SET
                m = m + excluded.m, f = f + excluded.f,
                last_gender = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_gender ELSE last_gender END,
                last_seen = greatest(last_seen, excluded.last_seen)"""
    )
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - start
    row = con.execute(
        "SELECT count(*), sum(m), sum(f), count(*) FILTER (WHERE last_gender = 'M') FROM profiles"
    ).fetchone()
    return {"visitors": row[0], "m": int(row[1]), "f": int(row[2]), "last_m": row[3], "seconds": seconds}


def peer_polars_curate(raw: str, out: str) -> dict:
    import polars as pl

    start = time.perf_counter()
    parquet = os.path.join(out, "hits.parquet")
    schema = {"clientid": pl.Utf8, "pageGender": pl.Utf8, "timestamp": pl.Utf8, "hitid": pl.Utf8}
    (
        pl.scan_ndjson(raw, schema=schema)
        .select(
            pl.col("clientid"),
            pl.col("pageGender").alias("page_gender"),
            pl.col("timestamp")
            .str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="ms", time_zone="UTC")
            .alias("event_time"),
            pl.col("hitid").alias("hit_id"),
        )
        .sink_parquet(parquet, compression="zstd")
    )
    per_visitor = (
        pl.scan_parquet(parquet)
        .group_by("clientid")
        .agg(
            (pl.col("page_gender") == "M").sum().alias("m"),
            (pl.col("page_gender") == "F").sum().alias("f"),
            pl.col("page_gender").sort_by("event_time").last().alias("last"),
        )
        .select(
            pl.len().alias("visitors"),
            pl.col("m").sum(),
            pl.col("f").sum(),
            (pl.col("last") == "M").sum().alias("last_m"),
        )
        .collect()
    )
    seconds = time.perf_counter() - start
    row = per_visitor.row(0)
    return {"visitors": row[0], "m": int(row[1]), "f": int(row[2]), "last_m": int(row[3]), "seconds": seconds}


def daily_rollup_sql(root: str, date: str, target: str) -> str:
    """One date's rollup, sorted by clientid, to zstd Parquet."""
    return f"""COPY (SELECT clientid, count(*) FILTER (WHERE page_gender = 'M') AS m,
                        count(*) FILTER (WHERE page_gender = 'F') AS f
                 FROM read_parquet('{root}/curated/hits/dt={date}/*.parquet')
                 GROUP BY clientid ORDER BY clientid)
           TO '{target}' (FORMAT parquet, COMPRESSION zstd)"""


def rollup_file(out: str, date: str) -> str:
    target = os.path.join(out, f"dt={date}")
    os.makedirs(target, exist_ok=True)
    return os.path.join(target, "daily.parquet")


def duckdb_window(con, out: str, end: str) -> None:
    """The window ending on `end` from its 7 rollup files, persisted as the
    table `window_sums` in the connection's database file, then CHECKPOINT
    (written and synced, as a state store's commit is)."""
    files = ", ".join(f"'{rollup_file(out, d)}'" for d in window_dates(end))
    con.execute(
        f"""CREATE OR REPLACE TABLE window_sums AS
              SELECT clientid, sum(m)::BIGINT AS m, sum(f)::BIGINT AS f
              FROM read_parquet([{files}]) GROUP BY clientid"""
    )
    con.execute("CHECKPOINT")


def duckdb_window_result(con, out: str, end: str, seconds: float, cpu: float, sample: str) -> dict:
    """What the peer persisted, for the comparison (after the clock)."""
    files = ", ".join(f"'{rollup_file(out, d)}'" for d in window_dates(end))
    visitors, m, f = con.execute("SELECT count(*), sum(m), sum(f) FROM window_sums").fetchone()
    rows, hits = con.execute(f"SELECT count(*), sum(m) + sum(f) FROM read_parquet([{files}])").fetchone()
    ids = [i for i in sample.split(",") if i]
    got = dict(
        (row[0], [int(row[1]), int(row[2])])
        for row in con.execute("SELECT clientid, m, f FROM window_sums WHERE clientid IN (SELECT unnest(?))", [ids]).fetchall()
    )
    return {
        "visitors": int(visitors), "m": int(m), "f": int(f), "rollup_rows": int(rows), "rollup_hits": int(hits),
        "sample": {i: got.get(i) for i in ids}, "seconds": seconds, "cpu_seconds": cpu,
    }


def duckdb_file(out: str):
    import duckdb

    con = duckdb.connect(os.path.join(out, "window.duckdb"))
    con.execute("SET threads=1")
    con.execute("SET preserve_insertion_order=false")
    return con


def peer_duckdb_daily_first(root: str, out: str, sample: str) -> dict:
    """First run: the 7 rollups built, the window persisted."""
    con = duckdb_file(out)
    start, cpu = time.perf_counter(), time.process_time()
    for date in window_dates(DAY0):
        con.execute(daily_rollup_sql(root, date, rollup_file(out, date)))
    duckdb_window(con, out, DAY0)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return duckdb_window_result(con, out, DAY0, seconds, cpu, sample)


def peer_duckdb_daily_prepare(root: str, out: str) -> dict:
    """Untimed: the previous day's run (rollups of D-7 .. D-1, their window)."""
    con = duckdb_file(out)
    before = day_before(DAY0)
    for date in window_dates(before):
        con.execute(daily_rollup_sql(root, date, rollup_file(out, date)))
    duckdb_window(con, out, before)
    return {"seconds": 0.0}


def peer_duckdb_daily_next(root: str, out: str, sample: str) -> dict:
    """Next day, incremental: only the new date rolled up, the window from
    the 7 rollup files (6 reused), persisted the same way."""
    con = duckdb_file(out)
    start, cpu = time.perf_counter(), time.process_time()
    con.execute(daily_rollup_sql(root, DAY0, rollup_file(out, DAY0)))
    duckdb_window(con, out, DAY0)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return duckdb_window_result(con, out, DAY0, seconds, cpu, sample)


PEERS = {
    "duckdb-curate": peer_duckdb_curate,
    "duckdb-persisted-curate": peer_duckdb_curate_persisted,
    "polars-curate": peer_polars_curate,
    "duckdb-daily-first": peer_duckdb_daily_first,
    "duckdb-daily-prepare": peer_duckdb_daily_prepare,
    "duckdb-daily-next": peer_duckdb_daily_next,
}


# ---------------------------------------------------------------- driver


def peak_rss_kib() -> int:
    """This process's VmHWM: its own peak, not counting the pages a forked
    child shares with its parent before exec (which ru_maxrss includes)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_child(cmd, env=None):
    """Runs one contender; returns its JSON line with peak RSS and CPU time."""
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"peer-bench: {' '.join(map(str, cmd))} exited {proc.returncode}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["rss_mib"] = result["rss_kib"] / 1024
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def peer_cmd(name, *args):
    env = dict(os.environ, POLARS_MAX_THREADS="1", RAYON_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return [sys.executable, __file__, "peer", name, *map(str, args)], env


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def parquet_rows(directory: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in directory.rglob("*.parquet"))


def spread(values):
    return min(values), statistics.median(values), max(values)


def check_agree(what, results, keys):
    first_name, first = next(iter(results.items()))
    for name, result in results.items():
        for key in keys:
            if result[key] != first[key]:
                sys.exit(f"peer-bench: {what}: {name} {key}={result[key]} but {first_name} {key}={first[key]}")


def bench_curate(work: Path, bins: Path, n: int, v: int, reps: int, seed: int, uuid: bool = False):
    kind = "uuid" if uuid else "hitid"
    raw = work / "inputs" / f"raw-{kind}-{n}-{v}-{seed}" / "hits.ndjson"
    gen_raw(raw, n, v, seed, uuid)
    # With UUIDs the product is not told a prefix of its own: every hit goes
    # through its dedup index, as on a server receiving browser hits. The
    # peers run the same statements (no dedup: theirs is the easier job).
    own_prefix = [] if uuid else ["--own-prefix", INSTANCE]
    runs = {"product": [], "duckdb-persisted": [], "duckdb": [], "polars": []}
    if uuid:
        # The same input with every id taken as the server's own (an empty
        # prefix): what deduplicating costs, apart from what the longer ids
        # cost to parse and store.
        runs["product-no-dedup"] = []
    for _ in range(reps):
        for name in runs:
            out = fresh(work / "out" / f"curate-{name}")
            if name.startswith("product"):
                # What the server does with the object: Parquet, deltas, the
                # apply to a new state store, and its checkpoint into redb.
                state = fresh(work / "out" / "curate-product-state")
                prefix = ["--own-prefix", ""] if name == "product-no-dedup" else own_prefix
                result = run_child([bins / "bench_curate", raw, out, "--state", state, *prefix])
            else:
                cmd, env = peer_cmd(f"{name}-curate", raw, out)
                result = run_child(cmd, env)
            result["rows"] = parquet_rows(out)
            runs[name].append(result)
    check_agree(f"curate {n}/{v}", {k: r[0] for k, r in runs.items()}, ["rows", "visitors", "m", "f", "last_m"])
    if runs["product"][0]["rows"] != n:
        sys.exit(f"peer-bench: curate wrote {runs['product'][0]['rows']} rows, not {n}")
    phases = ["prepare_seconds", "apply_seconds", "checkpoint_seconds", "prepare_peak_kib", "apply_peak_kib"]
    return {
        name: [(n / r["seconds"], r["rss_mib"], {p: r[p] for p in phases if p in r}) for r in rs]
        for name, rs in runs.items()
    }


def sample_ids(v: int) -> list:
    """About 50 clientids spread over the visitors, plus one that never has hits."""
    step = max(1, v // 50)
    return [f"visitor-{i:07d}" for i in range(0, v, step)] + ["visitor-none"]


def check_daily(what, product, peer, total):
    for key in ["visitors", "m", "f", "rollup_rows", "rollup_hits"]:
        if product[key] != peer[key]:
            sys.exit(f"peer-bench: {what}: product {key}={product[key]} but duckdb {key}={peer[key]}")
    for clientid, sums in peer["sample"].items():
        if product["sample"].get(clientid) != sums:
            sys.exit(f"peer-bench: {what}: {clientid}: product {product['sample'].get(clientid)} but duckdb {sums}")
    if product["rollup_hits"] != total:
        sys.exit(f"peer-bench: {what}: the window counted {product['rollup_hits']} hits, not {total}")


def bench_daily(work: Path, bins: Path, n: int, v: int, reps: int, seed: int):
    """First run and next day, product and DuckDB interleaved. The product
    is `run_daily` with the real state store; each run is prepared by an
    untimed child (profiles; for the next day, the previous day's run)."""
    root = work / "inputs" / f"curated8-{n}-{v}-{seed}"
    gen_curated(root, n, v, seed)
    import pyarrow.parquet as pq

    total = sum(
        pq.ParquetFile(p).metadata.num_rows
        for d in window_dates()
        for p in (root / "curated" / "hits" / f"dt={d}").glob("*.parquet")
    )
    ids = sample_ids(v)
    state = work / "out" / "daily-product-state"
    daily = bins / "bench_daily"
    runs = {"product first run": [], "duckdb first run": [], "product next day": [], "duckdb next day": []}
    for rep in range(reps):
        for name in runs:
            kind = "first" if "first" in name else "next"
            if name.startswith("product"):
                run_child([daily, "prepare", root, state, DAY0, v, kind])
                result = run_child([daily, "run", root, state, DAY0])
                if rep == 0:
                    seen = run_child([daily, "check", state, *ids])
                    result.update({k: seen[k] for k in ["visitors", "m", "f", "sample"]})
            else:
                out = fresh(work / "out" / f"daily-duckdb-{kind}")
                if kind == "next":
                    cmd, env = peer_cmd("duckdb-daily-prepare", root, out)
                    run_child(cmd, env)
                cmd, env = peer_cmd(f"duckdb-daily-{kind}", root, out, ",".join(ids))
                result = run_child(cmd, env)
            runs[name].append(result)
    check_daily(f"daily {n}/{v} first run", runs["product first run"][0], runs["duckdb first run"][0], total)
    check_daily(f"daily {n}/{v} next day", runs["product next day"][0], runs["duckdb next day"][0], total)
    return {name: [(r["seconds"], r["rss_mib"], r["cpu_seconds"]) for r in rs] for name, rs in runs.items()}


def fmt3(values, f):
    lo, mid, hi = spread(values)
    return f"{f(mid)} ({f(lo)} / {f(hi)})"


def print_curate(n, v, res, uuid=False):
    base = statistics.median(t for t, _, _ in res["product"])
    ids = "producer UUID hitids, the product deduplicating" if uuid else "server-assigned hitids"
    print(f"\ncurate: {n:,} hits, {v:,} visitors, {ids} -> Parquet + per-visitor m/f/last  (median (min / max))")
    print(f"| contender | hits/s | peak RSS MiB | product speed-up |")
    print(f"|---|---|---|---|")
    for name, rs in res.items():
        speed = [t for t, _, _ in rs]
        rss = [r for _, r, _ in rs]
        ratio = base / statistics.median(speed)
        print(f"| {name} | {fmt3(speed, lambda x: f'{x / 1e6:.2f} M')} | {fmt3(rss, lambda x: f'{x:.0f}')} | {ratio:.2f}x |")
    # The product's row is everything the server does with the object; its
    # phases, and the rate at which hits become visible (the checkpoint runs
    # in the server's background).
    phases = [p for _, _, p in res["product"]]
    if phases and "apply_seconds" in phases[0]:
        parts = ", ".join(
            f"{key.removesuffix('_seconds')} {fmt3([p[key] for p in phases], lambda x: f'{x:.3f}')} s"
            for key in ["prepare_seconds", "apply_seconds", "checkpoint_seconds"]
        )
        visible = [n / (p["prepare_seconds"] + p["apply_seconds"]) for p in phases]
        peer = statistics.median(t for t, _, _ in res["duckdb"])
        print(
            f"product phases: {parts}; visible without the checkpoint: "
            f"{fmt3(visible, lambda x: f'{x / 1e6:.2f} M')} hits/s = {statistics.median(visible) / peer:.2f}x DuckDB"
        )
        if "product-no-dedup" in res:
            plain = res["product-no-dedup"]
            time_ratio = statistics.median(t for t, _, _ in plain) / base
            rss_ratio = statistics.median(r for _, r, _ in res["product"]) / statistics.median(r for _, r, _ in plain)
            print(f"deduplicating's own cost (product / product-no-dedup, medians): time {time_ratio:.2f}x, peak RSS {rss_ratio:.2f}x")
        if "prepare_peak_kib" in phases[0]:
            peaks = ", ".join(
                f"{label} {fmt3([p[key] / 1024 for p in phases], lambda x: f'{x:.0f}')} MiB"
                for label, key in [("prepare", "prepare_peak_kib"), ("apply", "apply_peak_kib")]
            )
            print(f"product peak RSS by the end of: {peaks}; of the whole run: the table's")


def print_daily(n, v, res):
    print(f"\ndaily: {n:,} hits, {v:,} visitors in the window -> rollups + window sums persisted  (median (min / max))")
    print("| contender | seconds | CPU seconds | peak RSS MiB | speed-up: DuckDB / product, medians (time; CPU) |")
    print("|---|---|---|---|---|")
    for kind in ["first run", "next day"]:
        mine, peer = res[f"product {kind}"], res[f"duckdb {kind}"]
        med = lambda rs, i: statistics.median(r[i] for r in rs)
        for name in [f"product {kind}", f"duckdb {kind}"]:
            rs = res[name]
            ratio = (
                f"{med(peer, 0) / med(mine, 0):.2f}x; {med(peer, 2) / med(mine, 2):.2f}x" if name.startswith("product") else ""
            )
            secs = fmt3([r[0] for r in rs], lambda x: f"{x:.3f}")
            cpu = fmt3([r[2] for r in rs], lambda x: f"{x:.2f}")
            rss = fmt3([r[1] for r in rs], lambda x: f"{x:.0f}")
            print(f"| {name} | {secs} | {cpu} | {rss} | {ratio} |")
        pairs = [p[0] / m[0] for m, p in zip(mine, peer)]
        cpu_pairs = [p[2] / m[2] for m, p in zip(mine, peer)]
        print(
            f"| ({kind}, per repetition, min / median / max) | | | | "
            f"time {fmt3(pairs, lambda x: f'{x:.2f}x')}; CPU {fmt3(cpu_pairs, lambda x: f'{x:.2f}x')} |"
        )


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "peer":
        result = PEERS[sys.argv[2]](*sys.argv[3:])
        result["rss_kib"] = peak_rss_kib()
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bins", required=True, type=Path, help="directory with bench_curate and bench_daily")
    parser.add_argument("--work", required=True, type=Path, help="where inputs (cached) and outputs go")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="100k hits, 1 repetition: outputs agree, nothing else")
    parser.add_argument("--full", action="store_true", help="also the scale table (100k..10M hits)")
    parser.add_argument("--curate", default="1000000:100000", help="N:V of the curate peer table")
    parser.add_argument("--daily", default="10000000:1000000", help="N:V of the daily peer table")
    parser.add_argument("--only", choices=["curate", "daily"], help="run one of the two tables")
    parser.add_argument(
        "--hitids",
        choices=["assigned", "uuid", "both"],
        default="assigned",
        help="curate input: server-assigned hitids, producer UUIDs (deduplicated by the product), or both tables",
    )
    parser.add_argument("--cpu", type=int, help="pin this process and every contender to this CPU")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    if args.smoke:
        args.reps, args.curate, args.daily = 1, "100000:10000", "100000:10000"
        args.hitids = "both"
    load = os.getloadavg()[0]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    pinned = f", pinned to CPU {args.cpu}" if args.cpu is not None else ""
    print(f"peer-bench: {os.cpu_count()} x {cpu}, load {load:.2f}, {args.reps} repetition(s), one thread each{pinned}")
    if load > 0.5 and not args.smoke:
        print("peer-bench: warning: the machine is not quiet (load > 0.5); figures will be noisy")
    import duckdb
    import polars

    print(f"peer-bench: duckdb {duckdb.__version__}, polars {polars.__version__}")
    n, v = map(int, args.curate.split(":"))
    m, w = map(int, args.daily.split(":"))
    curate = daily = None
    if args.only != "daily":
        kinds = {"assigned": [False], "uuid": [True], "both": [False, True]}[args.hitids]
        curate = [(uuid, bench_curate(args.work, args.bins, n, v, args.reps, args.seed, uuid)) for uuid in kinds]
    if args.only != "curate":
        daily = bench_daily(args.work, args.bins, m, w, args.reps, args.seed)
    if args.smoke:
        # Debug builds: the point is that the outputs agree, not the speed.
        print("peer-bench smoke: outputs agree (curate: product, duckdb-persisted, duckdb, polars; daily: product, duckdb)")
        return
    for uuid, result in curate or []:
        print_curate(n, v, result, uuid)
    if curate and len(curate) == 2:
        # Issue 25's ratio: the dedup path (UUIDs) against the assigned path.
        (_, assigned), (_, uuids) = curate
        med = lambda rs, i: statistics.median(r[i] for r in rs)
        print(
            f"\nthe dedup path against the server-assigned path (product medians): "
            f"time {med(assigned['product'], 0) / med(uuids['product'], 0):.2f}x, "
            f"peak RSS {med(uuids['product'], 1) / med(assigned['product'], 1):.2f}x"
        )
    if daily:
        print_daily(m, w, daily)
    if args.full:
        # Curate's memory follows the visitors, not the hits: 10M hits over
        # 100k visitors sit next to 1M over 100k.
        scale = [(100_000, 10_000), (1_000_000, 100_000), (10_000_000, 100_000), (10_000_000, 1_000_000)]
        for n, v in scale:
            print_curate(n, v, bench_curate(args.work, args.bins, n, v, args.reps, args.seed))
        for n, v in [(100_000, 10_000), (1_000_000, 100_000), (10_000_000, 1_000_000)]:
            print_daily(n, v, bench_daily(args.work, args.bins, n, v, args.reps, args.seed))
    print("\npeer-bench: outputs agree for every contender (counts; daily also sampled per-visitor sums)")


if __name__ == "__main__":
    main()
