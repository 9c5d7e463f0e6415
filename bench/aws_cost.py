#!/usr/bin/env python3
"""The cost model of docs/DEPLOY.md ("Cost at 1,000 hits/s sustained") as
arithmetic: every line is quantity x unit price per 30-day month, per
million hits = monthly / hits in millions. Prints the itemised lines and the
summary table; `--check docs/DEPLOY.md` also fails when the summary table in
the document differs from what the arithmetic gives (so a changed price or
assumption is changed in both places).

Unit prices: us-east-1 list prices as DEPLOY.md cites them. Sizes in GB are
GiB (2^30 bytes), as AWS bills data.
"""
import argparse
import math
import re
import sys

MONTH_S = 30 * 86_400
GIB = 2**30
KIB = 1024

# Unit prices (USD).
APIGW_FIRST_300M, APIGW_NEXT = 1.00, 0.90          # per million requests
LAMBDA_REQUEST = 0.20                               # per million
LAMBDA_GB_S = 0.0000133334                          # arm64
KINESIS_IN_GB, KINESIS_OUT_GB, KINESIS_STREAM_H = 0.08, 0.04, 0.04  # on demand
KINESIS_SHARD_H, KINESIS_PUT_UNIT_M = 0.015, 0.014  # provisioned
FIREHOSE_GB, DP_GB, DP_PER_1000_OBJECTS = 0.029, 0.020, 0.005
DDB_WRU_M, DDB_RRU_M = 0.625, 0.125                 # on demand, per million
DDB_WCU_H, DDB_RCU_H = 0.00065, 0.00013             # provisioned
DDB_STORAGE_GB, DDB_PITR_GB = 0.25, 0.20
S3_PUT_1000, S3_GET_1000 = 0.005, 0.0004
S3_STANDARD_GB, S3_GLACIER_IR_GB = 0.023, 0.004
LOGS_GB, ALARM_METRIC = 0.50, 0.10
KMS_10000, SQS_M = 0.03, 0.40

# Assumptions shared by every model (DEPLOY.md states each).
HITS_PER_S, LOOKUPS_PER_S = 1_000, 100
HIT_BYTES = 100
HTTP_GB, POST_S, LOOKUP_S = 0.25, 0.020, 0.008
ACCESS_LOG_BYTES = 350
CONSUMER_SHARDS, CONSUMER_BATCH_S, CONSUMER_GB = 4, 0.150, 0.25
UTILISATION = 0.70                                   # auto scaling target
DAILY_WRITES_PER_DAY = 3.80e6                        # measured at full scale
PROVISIONED_SHARDS = 2

# model: (hits per POST, visitor-updates per hit (measured), POSTs via the function URL)
MODELS = {
    "A, servers batching 10 hits a request": (10, 0.992, False),
    "B, the daily job's population": (10, 1.000, False),
    "browser, one hit a request through the function URL": (1, 1.000, True),
}


def lines(hits_per_post, updates_per_hit, function_url):
    hits = HITS_PER_S * MONTH_S
    lookups = LOOKUPS_PER_S * MONTH_S
    posts = hits / hits_per_post
    api_requests = lookups + (0 if function_url else posts)
    http_invocations = posts + lookups
    updates = hits * updates_per_hit
    m = 1e6
    api_m = api_requests / m
    out = {
        "API Gateway HTTP API": min(api_m, 300) * APIGW_FIRST_300M + max(api_m - 300, 0) * APIGW_NEXT,
        "Lambda http requests": http_invocations / m * LAMBDA_REQUEST,
        "Lambda http duration": HTTP_GB * (posts * POST_S + lookups * LOOKUP_S) * LAMBDA_GB_S,
        "Kinesis data in": hits * KIB / GIB * KINESIS_IN_GB,
        "Kinesis data out": 2 * hits * HIT_BYTES / GIB * KINESIS_OUT_GB,
        "Kinesis stream-hours": 720 * KINESIS_STREAM_H,
        "Firehose ingestion": hits * 5 * KIB / GIB * FIREHOSE_GB,
        "Firehose dynamic partitioning": hits * HIT_BYTES / GIB * DP_GB + 86_400 / 1000 * DP_PER_1000_OBJECTS,
        "Lambda transform": 0.40,
        "Lambda consumer": CONSUMER_SHARDS * MONTH_S * (LAMBDA_REQUEST / m + CONSUMER_BATCH_S * CONSUMER_GB * LAMBDA_GB_S),
        "DynamoDB consumer writes": updates / m * DDB_WRU_M,
        "DynamoDB consumer reads": updates / m * DDB_RRU_M,
        "DynamoDB lookups": lookups / m * DDB_RRU_M,
        "DynamoDB daily window writes": DAILY_WRITES_PER_DAY * 30 / m * DDB_WRU_M,
        "DynamoDB storage + PITR": 5 * (DDB_STORAGE_GB + DDB_PITR_GB),
        "Lambda curate": 43_200 * 6 * 1.0 * LAMBDA_GB_S,
        "Lambda daily": 30 * 30 * 60 * 3.0 * LAMBDA_GB_S,
        "S3 requests": 181_680 / 1000 * S3_PUT_1000 + 432_000 / 1000 * S3_GET_1000,
        "S3 storage": 1_486 * S3_STANDARD_GB + 528 * S3_GLACIER_IR_GB,
        "CloudWatch Logs, access logs": api_requests * ACCESS_LOG_BYTES / GIB * LOGS_GB,
        "CloudWatch Logs, background functions": 9.4 * LOGS_GB,
        "CloudWatch alarms": 31 * ALARM_METRIC,
        "KMS": CONSUMER_SHARDS * 3 * 8_640 / 10_000 * KMS_10000,
        "SQS": 0.2 * SQS_M,
    }
    return hits, out


def provisioned_dynamodb(updates_per_hit):
    wcu = math.ceil(HITS_PER_S * updates_per_hit / UTILISATION - 1e-9)
    rcu = math.ceil((HITS_PER_S * updates_per_hit + LOOKUPS_PER_S) / UTILISATION - 1e-9)
    return wcu * 720 * DDB_WCU_H + rcu * 720 * DDB_RCU_H


def provisioned_kinesis(hits):
    # One PUT payload unit per 25 KB record: every hit record is one unit.
    return PROVISIONED_SHARDS * 720 * KINESIS_SHARD_H + hits / 1e6 * KINESIS_PUT_UNIT_M


def summary():
    rows = {}
    for name, (hpp, uph, url) in MODELS.items():
        hits, out = lines(hpp, uph, url)
        on_demand = sum(out.values())
        dynamo = out["DynamoDB consumer writes"] + out["DynamoDB consumer reads"] + out["DynamoDB lookups"]
        prov_ddb = on_demand - dynamo + provisioned_dynamodb(uph)
        kinesis = out["Kinesis data in"] + out["Kinesis data out"] + out["Kinesis stream-hours"]
        prov_all = prov_ddb - kinesis + provisioned_kinesis(hits)
        per_m = hits / 1e6
        rows[name] = (on_demand, on_demand / per_m, prov_ddb / per_m, prov_all / per_m, out)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", metavar="DEPLOY_MD", help="compare with the document's summary table")
    args = parser.parse_args()
    rows = summary()
    for name, (monthly, od, pd, pa, out) in rows.items():
        print(f"## {name}")
        for item, usd in out.items():
            print(f"  {item:40s} ${usd:10,.2f}  ${usd / 2592:.3f}/M")
        print(f"  {'total, on demand':40s} ${monthly:10,.2f}  ${od:.3f}/M")
        print(f"  provisioned DynamoDB ${pd:.3f}/M, + provisioned Kinesis ${pa:.3f}/M\n")
    if not args.check:
        return 0
    text = open(args.check, encoding="utf-8").read()
    problems = []
    for name, (_, od, pd, pa, _) in rows.items():
        label = re.escape(name.split(",")[0])
        m = re.search(rf"^\| {label}, [^|]*\| \$([0-9.]+) \| \$([0-9.]+) \| \*\*\$([0-9.]+)\*\* \|$", text, re.M)
        if not m:
            problems.append(f"no summary row for model {name!r}")
            continue
        for said, computed, what in zip(map(float, m.groups()), (od, pd, pa), ("on demand", "provisioned DynamoDB", "+ provisioned Kinesis")):
            if abs(said - computed) > 0.0015:
                problems.append(f"{name} / {what}: document says ${said:.3f}, arithmetic gives ${computed:.3f}")
    for p in problems:
        print("aws_cost:", p, file=sys.stderr)
    if problems:
        return 1
    print(f"aws_cost: {args.check} summary table matches the arithmetic ({len(rows)} models x 3 configurations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
