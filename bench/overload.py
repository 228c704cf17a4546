#!/usr/bin/python3
"""Overload: cnnserve pushed past its capacity, open loop, with the shipped repository (issue 13).

For each model (vgg_fashion and fashion_ensemble as shipped in models/repository, their configs unchanged), a
fresh cnnserve (shipped defaults) and build/bin/cnnload with --batch images per request (Fashion-MNIST PNGs):
  1. the closed-loop peak: the most good (OK) requests/s over a concurrency sweep;
  2. open loop at each --multiples x that peak for --duration seconds (constant spacing): goodput (OK/s) against
     the peak, p50/p99 of accepted (every answer but a refusal) and of refused (UNAVAILABLE, RESOURCE_EXHAUSTED)
     requests apart, the errors by code, the server's peak RSS (VmHWM) and the requests left without an answer
     (cnnload cancels what is unanswered 60 s after the row; must be 0);
  3. where the cores went: the server's engine threads (named batch:<model> and lane) and the rest (gRPC,
     decoding: the front end) in cores over each row, and over a second closed-loop run at the peak's
     concurrency; "goodput per engine core vs peak" sets the OK requests per engine core-second against the
     peak's, i.e. whether the engine's work is spent on answers (1.0) or wasted on requests that then fail.
cnnload runs at nice -5 when this script is root (the load generator must not be starved by the server it
overloads); otherwise the server runs at nice +5. Where cnnload cannot send the offered rate (achieved/offered
below 0.95), the table says so.

  bench/overload.py [--build build] [--models vgg_fashion,fashion_ensemble] [--batch 4] [--multiples 4,10]
                    [--levels 1,2,4,8,16,32] [--duration 20] [--server-args "--max-queue-wait-ms 500"]
                    [--out bench/results/overload/overload]

Writes OUT.json and OUT.md and prints the table. Exit 0 done, 1 a run failed.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_curves as sc  # noqa: E402  (Server, images, machine, cnnload helpers)

REPOSITORY = os.path.join(sc.ROOT, "models", "repository")
SHORT_FALL = 0.95  # achieved/offered below this: the client could not send the offered rate
REFUSED_CODES = ("UNAVAILABLE", "RESOURCE_EXHAUSTED")


def cnnload(build, address, args, timeout=900):
    """cnnload --json at a higher priority than the server when we may raise it; returns its document."""
    cmd = [os.path.join(build, "bin", "cnnload"), "--server", address, "--json", "--quiet", "--threads", "2"]
    if os.geteuid() == 0:
        cmd = ["nice", "-n", "-5"] + cmd
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd + list(args)), proc.returncode,
                                                   proc.stderr.strip()[-2000:]))
    return json.loads(proc.stdout)


def vm_hwm_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def refused_of(row):
    return sum(n for code, n in row.get("errors", {}).items() if code in REFUSED_CODES)


ENGINE_THREADS = ("batch:", "lane")  # the server names its engine threads (engine/common/thread_name.h)


def server_cpu(pid):
    """CPU seconds so far of the server's engine threads (batch workers and compute lanes) and of all the others
    (gRPC, decode workers, HTTP): the front end."""
    engine = front = 0
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        if name.startswith(ENGINE_THREADS):
            engine += seconds
        else:
            front += seconds
    return engine, front


def cnnload_cores(build, pid, address, args):
    """cnnload's document, and the server's engine and front-end cores over the call (warm-up included). Threads
    that ended during the call are not counted (the server's threads live as long as it does)."""
    start, before = time.time(), server_cpu(pid)
    doc = cnnload(build, address, args)
    after, wall = server_cpu(pid), time.time() - start
    return doc, ((after[0] - before[0]) / wall, (after[1] - before[1]) / wall)


def quantiles(row, key):
    q = row.get(key) or {}
    return q.get("p50"), q.get("p99")


def measure_model(args, model, images):
    log_path = os.path.join(os.path.dirname(args.out), "overload_%s.log" % model)
    common = ["--model", model, "--images", images, "--batch", str(args.batch)]
    with sc.Server(args.build, REPOSITORY, log_path, args.server_args.split()) as server:
        if os.geteuid() != 0:
            subprocess.run(["renice", "-n", "5", "-p", str(server.proc.pid)], check=False,
                           stdout=subprocess.DEVNULL)
        closed = cnnload(args.build, server.address,
                         common + ["--concurrency", args.levels, "--warmup", "2", "--duration", "5"])
        peak_row = max(closed["rows"], key=lambda r: r["requests_per_s"])
        peak = peak_row["requests_per_s"]
        sc.log("%s: closed-loop peak %.1f req/s at concurrency %d" % (model, peak, peak_row["concurrency"]))
        # The cores the peak takes: the same concurrency again, with the server's threads accounted.
        again, peak_cores = cnnload_cores(args.build, server.proc.pid, server.address, common + [
            "--concurrency", str(peak_row["concurrency"]), "--warmup", "2", "--duration", "5"])
        peak_per_engine_core = again["rows"][0]["requests_per_s"] / peak_cores[0] if peak_cores[0] else None
        rows = []
        for multiple in args.multiples:
            rate = multiple * peak
            doc, cores = cnnload_cores(args.build, server.proc.pid, server.address,
                          common + ["--rate", "%.6g" % rate, "--warmup", "2", "--duration", "%g" % args.duration,
                                    "--drain-timeout-s", "60"])
            row = doc["rows"][0]
            rows.append({
                "multiple": multiple, "offered_rate": row.get("offered_rate"),
                "achieved_rate": row.get("achieved_rate"), "goodput": row["requests_per_s"],
                "goodput_vs_peak": row["requests_per_s"] / peak if peak else None,
                "engine_cores": cores[0], "front_end_cores": cores[1],
                "per_engine_core_vs_peak": (row["requests_per_s"] / cores[0] / peak_per_engine_core
                                            if cores[0] and peak_per_engine_core else None),
                "accepted_ms": quantiles(row, "latency_ms"), "refused_ms": quantiles(row, "refused_latency_ms"),
                "refused": row.get("refused_requests", refused_of(row)), "errors": row.get("errors", {}),
                "sent": row.get("sent"), "unanswered": row.get("cancelled_after_drain"),
                "peak_rss_mib": vm_hwm_mib(server.proc.pid), "cnnload_row": row,
            })
            sc.log("%s %gx: %s" % (model, multiple, rows[-1]["goodput_vs_peak"]))
        return {"model": model, "batch": args.batch, "peak": peak, "peak_concurrency": peak_row["concurrency"],
                "peak_engine_cores": peak_cores[0], "peak_front_end_cores": peak_cores[1],
                "closed_loop": closed["rows"], "open_loop": rows}


def fmt(v, digits=1):
    return "-" if v is None else ("%.*f" % (digits, v))


def markdown(result):
    lines = [sc.machine_line(result["machine"]), "",
             "| model | batch | peak req/s | load | offered/achieved req/s | goodput req/s | goodput/peak | "
             "accepted p50/p99 ms | refused p50/p99 ms | refused | other errors | peak RSS MiB | unanswered | "
             "engine / front-end cores (peak's) | goodput per engine core vs peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in result["models"]:
        for r in m["open_loop"]:
            other = {k: v for k, v in r["errors"].items() if k not in REFUSED_CODES}
            short = r["achieved_rate"] is not None and r["offered_rate"] and \
                r["achieved_rate"] < SHORT_FALL * r["offered_rate"]
            lines.append("| %s | %d | %.1f | %gx | %.0f / %.0f%s | %.1f | %s | %s / %s | %s / %s | %d | %s | %.0f | %s | "
                         "%s / %s (%s / %s) | %s |" % (
                m["model"], m["batch"], m["peak"], r["multiple"], r["offered_rate"] or 0, r["achieved_rate"] or 0,
                " (client short)" if short else "", r["goodput"], fmt(r["goodput_vs_peak"], 2),
                fmt(r["accepted_ms"][0]), fmt(r["accepted_ms"][1]), fmt(r["refused_ms"][0], 2),
                fmt(r["refused_ms"][1], 2), r["refused"], other or "0", r["peak_rss_mib"],
                r["unanswered"], fmt(r["engine_cores"], 2), fmt(r["front_end_cores"], 2),
                fmt(m["peak_engine_cores"], 2), fmt(m["peak_front_end_cores"], 2), fmt(r["per_engine_core_vs_peak"], 2)))
    lines += ["", "Command: `%s`" % result["command"]]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sc.add_shipped_model_flags(p, "overload")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--multiples", default="4,10")
    p.add_argument("--levels", default="1,2,4,8,16,32")
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--server-args", default="",
                   help="more cnnserve flags, space-separated (e.g. \"--max-queue-wait-ms 500\")")
    args = p.parse_args()
    args.multiples = [float(x) for x in args.multiples.split(",")]
    start = time.time()
    images = sc.fashion_images(os.path.join(args.build, "bench"))
    result = {"benchmark": "overload", "machine": sc.machine(), "command": " ".join(["bench/overload.py"] +
                                                                                     sys.argv[1:]),
              "models": [measure_model(args, m, images) for m in args.models.split(",")]}
    result["seconds"] = time.time() - start
    sc.write_results(args.out, result, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
