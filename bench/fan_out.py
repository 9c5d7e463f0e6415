#!/usr/bin/env python3
"""Hits spread over many event dates against a release server (issue 26,
SPEC 14), the two cases of docs/PERFORMANCE.md "Hits spread over many event
dates":

  bench/fan_out.py one-shot  BINARY [--requests 20] [--runs 1]
      REQUESTS x 500 hits, each on its own date, then a timed POST /admin/flush.
  bench/fan_out.py sustained BINARY [--rate 1000] [--dates 500] [--seconds 60] [--runs 1]
      RATE hits/s (10 requests a second) spread over DATES event dates for
      SECONDS, sampling the curate lag (GET /metrics) every second and
      counting 503s; then a timed flush.

Each run gets a fresh data dir (under $FAN_OUT_DIR, default the system's
temporary directory); --runs N repeats the case and prints min/median/max.
The data dirs are deleted only after the last run: on ext4 without a
journal, new inodes are slow to allocate for up to five minutes after many
were deleted, so deleting one run's 20,000 files would slow the next run
(start an invocation a few minutes after the last one for the same reason).
Prints one line per run and the spread.
"""
import argparse, json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

DAY_MS = 86_400_000
FIRST_DAY_MS = 946_684_800_000  # 2000-01-01, the first date SPEC 2 accepts
KEEP = ["--retain-raw-days", "0", "--retain-curated-days", "0", "--retain-daily-days", "0"]


def start(binary, extra):
    data = tempfile.mkdtemp(dir=os.environ.get("FAN_OUT_DIR"))
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    key = "fan-out-" + os.urandom(12).hex()
    log = open(data + ".log", "w")
    proc = subprocess.Popen([binary, "serve", "--data-dir", data, "--addr", f"127.0.0.1:{port}",
                             "--api-key", key, *KEEP, *extra], stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            break
        except Exception:
            time.sleep(0.05)
    return proc, data, base, key


def post(base, key, path, body=b"", timeout=30):
    req = urllib.request.Request(base + path, body, {"content-type": "application/json", "x-api-key": key}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def hits(first_day, n, dates, visitors=50):
    return json.dumps([{"clientid": f"f-{(first_day + i) % visitors}", "pageGender": "F",
                        "timestamp": FIRST_DAY_MS + ((first_day + i) % dates) * DAY_MS + 3_600_000}
                       for i in range(n)]).encode()


def files(data, sub):
    return sum(len(f) for _, _, f in os.walk(os.path.join(data, sub)))


def flush(base, key):
    t = time.monotonic()
    status, body = post(base, key, "/admin/flush", timeout=600)
    return status, time.monotonic() - t


def one_shot(args, dirs):
    proc, data, base, key = start(args.binary, ["--flush-interval-ms", "3600000", "--buffer-bytes", "1000000000"])
    dirs.append(data)
    try:
        accepted = 0
        for r in range(args.requests):
            status, body = post(base, key, "/hits", hits(r * 500, 500, 10**6))
            assert status == 202, (status, body)
            accepted += json.loads(body)["accepted"]
        status, took = flush(base, key)
        print(f"one-shot: {accepted} hits on {accepted} dates; flush {status} in {took:.2f} s; "
              f"raw files {files(data, 'raw')}; curated files {files(data, 'curated/hits')}", flush=True)
        return {"flush s": took}
    finally:
        proc.terminate(); proc.wait()


def lag_seconds(base, key):
    req = urllib.request.Request(base + "/metrics", headers={"x-api-key": key})
    text = urllib.request.urlopen(req, timeout=5).read().decode()
    m = re.search(r"^gender_curate_lag_seconds\s+(\S+)", text, re.M)
    return float(m.group(1)) if m else float("nan")


def sustained(args, dirs):
    proc, data, base, key = start(args.binary, [])
    dirs.append(data)
    per_request = args.rate // 10
    counts = {"202": 0, "503": 0, "other": 0, "hits": 0}
    lags = []
    stop = time.monotonic() + args.seconds
    try:
        def sample():
            while time.monotonic() < stop:
                lags.append(lag_seconds(base, key))
                time.sleep(1)
        sampler = threading.Thread(target=sample); sampler.start()
        n, next_at = 0, time.monotonic()
        while time.monotonic() < stop:
            status, body = post(base, key, "/hits", hits(n * per_request, per_request, args.dates))
            if status == 202:
                counts["202"] += 1; counts["hits"] += json.loads(body)["accepted"]
            elif status == 503:
                counts["503"] += 1
            else:
                counts["other"] += 1
            n += 1
            next_at += 0.1
            time.sleep(max(0.0, next_at - time.monotonic()))
        sampler.join()
        status, took = flush(base, key)
        worst = max(lags) if lags else float("nan")
        print(f"sustained: {args.rate} hits/s over {args.dates} dates for {args.seconds} s: "
              f"{counts['hits']} hits accepted, {counts['503']} requests 503, {counts['other']} other; "
              f"curate lag max {worst:.1f} s, last {lags[-1] if lags else float('nan'):.1f} s; "
              f"flush {status} in {took:.2f} s; raw files {files(data, 'raw')}; curated files {files(data, 'curated/hits')}",
              flush=True)
        return {"lag max s": worst, "flush s": took, "503s": counts["503"]}
    finally:
        proc.terminate(); proc.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="case", required=True)
    a = sub.add_parser("one-shot"); a.add_argument("binary"); a.add_argument("--requests", type=int, default=20)
    b = sub.add_parser("sustained"); b.add_argument("binary")
    b.add_argument("--rate", type=int, default=1000); b.add_argument("--dates", type=int, default=500)
    b.add_argument("--seconds", type=int, default=60)
    for case in (a, b):
        case.add_argument("--runs", type=int, default=1, help="repetitions (min/median/max)")
    args = p.parse_args()
    case = one_shot if args.case == "one-shot" else sustained
    dirs, results = [], []
    try:
        for _ in range(args.runs):
            results.append(case(args, dirs))
    finally:
        for data in dirs:
            shutil.rmtree(data, ignore_errors=True)
            try:
                os.remove(data + ".log")
            except OSError:
                pass
    if len(results) > 1:
        for name in results[0]:
            values = [r[name] for r in results]
            print(f"{name}: min {min(values):.2f}, median {statistics.median(values):.2f}, max {max(values):.2f}")


if __name__ == "__main__":
    sys.exit(main())
