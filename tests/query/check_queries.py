#!/usr/bin/env python3
"""Runs the README's DuckDB queries (queries/*.sql) over a local data dir and
checks their answers against the server's GET /gender answers.

    check_queries.py WORKDIR URL API_KEY

WORKDIR holds the server's data dir as WORKDIR/data (the queries read
'data/...', as from the repository root with the default data dir).
"""
import json
import os
import sys
import urllib.request
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]


def run(con, name):
    sql = (ROOT / "queries" / f"{name}.sql").read_text()
    # The files may start with SET statements; the last statement is the query.
    statements = [s for s in sql.split(";") if s.strip() and not all(
        line.strip().startswith("--") or not line.strip() for line in s.splitlines())]
    for statement in statements[:-1]:
        con.execute(statement)
    cursor = con.execute(statements[-1])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def profile(url, key, clientid):
    request = urllib.request.Request(f"{url}/gender/{clientid}", headers={"x-api-key": key})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


def main():
    workdir, url, key = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
    os.chdir(workdir)
    con = duckdb.connect()
    failures = []

    top = run(con, "top_visitors")
    assert len(top) == 20, f"top_visitors returned {len(top)} rows"
    assert [r["hits"] for r in top] == sorted((r["hits"] for r in top), reverse=True)
    for row in top:
        hits = profile(url, key, row["clientid"])["hits"]
        if (hits["M"], hits["F"]) != (row["m"], row["f"]):
            failures.append(f"top_visitors {row['clientid']}: query {row['m']}/{row['f']}, GET {hits}")

    # Every visitor's rollups over all days add up to its lifetime counts.
    per_visitor = con.execute(
        "SELECT clientid, sum(m), sum(f) FROM read_parquet('data/curated/daily/*/daily.parquet') "
        "GROUP BY clientid").fetchall()
    total_m = total_f = 0
    for clientid, m, f in per_visitor:
        hits = profile(url, key, clientid)["hits"]
        total_m, total_f = total_m + hits["M"], total_f + hits["F"]
        if (hits["M"], hits["F"]) != (m, f):
            failures.append(f"rollups of {clientid}: {m}/{f}, GET {hits}")

    split = run(con, "gender_split_per_day")
    days = con.execute(
        "SELECT count(DISTINCT dt) FROM read_parquet('data/curated/daily/*/daily.parquet', "
        "hive_partitioning = true)").fetchone()[0]
    assert len(split) == min(days, 14), f"{len(split)} days of {days}"
    for row in split:
        visitors = row["visitors_m"] + row["visitors_f"] + row["visitors_tied"]
        assert visitors > 0 and row["hits_m"] + row["hits_f"] >= visitors, row

    hours = run(con, "hits_per_hour")
    hour_m = sum(r["m"] for r in hours)
    hour_f = sum(r["f"] for r in hours)
    if (hour_m, hour_f) != (total_m, total_f):
        failures.append(f"hits_per_hour totals {hour_m}/{hour_f}, GET totals {total_m}/{total_f}")
    assert all(r["hits"] == r["m"] + r["f"] for r in hours)

    # hit_id (written delta-length encoded) reads back: one distinct id per
    # curated hit, as many hits as the profiles count.
    ids, distinct = con.execute(
        "SELECT count(hit_id), count(DISTINCT hit_id) "
        "FROM read_parquet('data/curated/hits/*/*.parquet')").fetchone()
    if (ids, distinct) != (total_m + total_f,) * 2:
        failures.append(f"hit_id: {ids} ids, {distinct} distinct, {total_m + total_f} hits")

    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"queries agree with GET /gender: {len(per_visitor)} visitors, {total_m + total_f} hits, "
          f"{len(split)} days, {len(hours)} hours")


if __name__ == "__main__":
    main()
