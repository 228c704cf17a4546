#!/usr/bin/python3
"""SIGTERM under load: what a draining cnnserve answers (issue 13).

For each model, a fresh cnnserve on the shipped repository (models/repository, shipped defaults, --log-level
info) and build/bin/cnnload in a closed loop of --concurrency requests (Fashion-MNIST PNGs, --batch images each).
At the middle of the measured window the server gets SIGTERM. Reported per model: the server's own drain line
("shutdown: N requests in flight; answered OK a, failed b CODE, unanswered u"), its exit code, the time from the
signal to its exit, and what the client saw (OK and errors by code). Unanswered must be 0 and the exit code 0.

  bench/sigterm.py [--build build] [--models vgg_fashion,fashion_ensemble] [--concurrency 32] [--batch 4]
                   [--duration 10] [--out bench/results/sigterm/sigterm]

Writes OUT.json and OUT.md and prints the table. Exit 0 when every run had 0 unanswered and exit code 0, else 1.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_curves as sc  # noqa: E402  (Server, images, machine)

REPOSITORY = os.path.join(sc.ROOT, "models", "repository")
DRAIN_RE = re.compile(r"shutdown: (\d+) requests in flight; answered OK (\d+), failed (.*), unanswered (\d+)")
WARMUP_S = 2.0


def run_model(args, model, images):
    log_path = os.path.join(os.path.dirname(args.out), "sigterm_%s.log" % model)
    server = sc.Server(args.build, REPOSITORY, log_path, ["--log-level", "info"])
    server.__enter__()
    cmd = [os.path.join(args.build, "bin", "cnnload"), "--server", server.address, "--json", "--quiet",
           "--model", model, "--images", images, "--batch", str(args.batch), "--concurrency",
           str(args.concurrency), "--threads", "2", "--warmup", "%g" % WARMUP_S, "--duration", "%g" % args.duration,
           "--drain-timeout-s", "30"]
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    signalled = {}

    def signal_at_middle():
        time.sleep(WARMUP_S + args.duration / 2)
        signalled["t"] = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)

    t = threading.Thread(target=signal_at_middle)
    t.start()
    t.join()
    exit_code = server.proc.wait(120)
    drain_s = time.monotonic() - signalled["t"]
    out, err = client.communicate(timeout=300)
    server.__exit__(None, None, None)
    doc = json.loads(out) if client.returncode == 0 and out.strip() else None
    with open(log_path, errors="replace") as f:
        match = DRAIN_RE.search(f.read())
    drained = None
    if match:
        drained = {"in_flight": int(match.group(1)), "answered_ok": int(match.group(2)),
                   "failed": match.group(3), "unanswered": int(match.group(4))}
    row = doc["rows"][0] if doc else {}
    return {"model": model, "concurrency": args.concurrency, "batch": args.batch, "exit_code": exit_code,
            "drain_s": drain_s, "server": drained, "client_ok": row.get("ok_requests"),
            "client_errors": row.get("errors"), "cnnload_exit": client.returncode,
            "cnnload_stderr": err.strip()[-500:] if client.returncode != 0 else ""}


def markdown(result):
    lines = [sc.machine_line(result["machine"]), "",
             "| model | in flight | batch | admitted at the signal | answered OK | failed (by code) | unanswered | "
             "exit code | signal to exit s | client: OK / errors by code |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        s = r["server"] or {}
        lines.append("| %s | %d | %d | %s | %s | %s | %s | %s | %.2f | %s / %s |" % (
            r["model"], r["concurrency"], r["batch"], s.get("in_flight", "?"), s.get("answered_ok", "?"),
            s.get("failed", "?"), s.get("unanswered", "?"), r["exit_code"], r["drain_s"], r["client_ok"],
            r["client_errors"]))
    lines += ["", "Command: `%s`" % result["command"]]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sc.add_shipped_model_flags(p, "sigterm")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--duration", type=float, default=10)
    args = p.parse_args()
    start = time.time()
    images = sc.fashion_images(os.path.join(args.build, "bench"))
    result = {"benchmark": "sigterm", "machine": sc.machine(),
              "command": " ".join(["bench/sigterm.py"] + sys.argv[1:]),
              "runs": [run_model(args, m, images) for m in args.models.split(",")]}
    result["seconds"] = time.time() - start
    sc.write_results(args.out, result, markdown)
    bad = [r for r in result["runs"] if r["exit_code"] != 0 or not r["server"] or r["server"]["unanswered"] != 0]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
