#!/usr/bin/python3
"""Engine vs peers: cnnbench (oneDNN) against ONNX Runtime and PyTorch on the same zoo ONNX files.

Runs each runtime as its own process, alternating runtimes within every round so that machine noise hits all of
them alike, repeats the rounds, and reports per (model, batch) the median images/s of each runtime and the
ratios cnnserve/ORT and cnnserve/PyTorch. Writes a Markdown table (stdout and --markdown FILE) and the raw JSON
lines (--raw FILE).

  bench/engine_vs_peers.py [--zoo DIR] [--models lenet5,alexnet,zfnet,vgg16] [--batch 1,8,32]
                           [--threads 2] [--seconds 2] [--rounds 3]
                           [--runtimes cnnserve,onnxruntime[,cnnserve_direct][,pytorch]]

The first runtime listed is the one the ratio columns divide by the others.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_json_lines(cmd, timeout):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), proc.returncode, proc.stderr.strip()[-2000:]))
    rows = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows


def command(runtime, model_path, name, args):
    common = ["--batch", args.batch, "--threads", str(args.threads), "--seconds", str(args.seconds), "--json"]
    if runtime == "cnnserve":
        return [os.path.join(args.build, "bin", "cnnbench"), "run", model_path] + common
    if runtime == "cnnserve_direct":  # same engine, direct convolutions only (smallest footprint)
        return [os.path.join(args.build, "bin", "cnnbench"), "run", model_path, "--no-winograd"] + common
    if runtime == "onnxruntime":
        return ["node", os.path.join(ROOT, "bench", "peers", "ort_run.js"), model_path] + common
    if runtime == "pytorch":
        return ["/usr/bin/python3", os.path.join(ROOT, "bench", "peers", "torch_run.py"), model_path,
                "--model", name] + common
    raise ValueError(runtime)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default=os.path.expanduser("~/.cache/cnnserve/zoo"))
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--models", default="lenet5,alexnet,zfnet,vgg16")
    p.add_argument("--batch", default="1,8,32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runtimes", default="cnnserve,onnxruntime,cnnserve_direct")
    p.add_argument("--markdown", default=None, help="also write the Markdown table here")
    p.add_argument("--raw", default=None, help="write every JSON line here")
    args = p.parse_args()

    runtimes = args.runtimes.split(",")
    results = {}  # (model, batch, runtime) -> list of rows
    raw = []
    start = time.time()
    for rnd in range(args.rounds):
        for name in args.models.split(","):
            path = os.path.join(args.zoo, name + ".onnx")
            if not os.path.exists(path):
                sys.exit("missing %s: run `make zoo` first" % path)
            order = runtimes[rnd % len(runtimes):] + runtimes[:rnd % len(runtimes)]  # rotate who goes first
            for runtime in order:
                rows = run_json_lines(command(runtime, path, name, args), timeout=1800)
                for row in rows:
                    row["runtime"] = runtime
                    row["round"] = rnd
                    raw.append(row)
                    results.setdefault((name, int(row["batch"]), runtime), []).append(row)
                print("round %d %-8s %-12s done (%.0f s)" % (rnd + 1, name, runtime, time.time() - start),
                      file=sys.stderr, flush=True)

    def med(name, batch, runtime, key):
        rows = results.get((name, batch, runtime), [])
        return statistics.median(r[key] for r in rows) if rows else None

    lines = []
    lines.append("Machine: %s, %d cores; threads=%d; %d rounds x %.1f s per batch size; medians over rounds."
                 % (cpu_name(), os.cpu_count(), args.threads, args.rounds, args.seconds))
    lines.append("")
    header = "| model | batch |"
    sep = "|---|---:|"
    for r in runtimes:
        header += " %s img/s | %s p50 ms |" % (r, r)
        sep += "---:|---:|"
    for r in runtimes[1:]:
        header += " %s/%s |" % (runtimes[0], r)
        sep += "---:|"
    header += " cnnserve peak RSS MB |"
    sep += "---:|"
    lines += [header, sep]
    for name in args.models.split(","):
        for batch in [int(b) for b in args.batch.split(",")]:
            row = "| %s | %d |" % (name, batch)
            ips = {}
            for r in runtimes:
                ips[r] = med(name, batch, r, "images_per_s")
                p50 = med(name, batch, r, "p50_ms")
                row += " %s | %s |" % ("%.1f" % ips[r] if ips[r] else "-", "%.2f" % p50 if p50 else "-")
            for r in runtimes[1:]:
                ratio = ips[runtimes[0]] / ips[r] if ips[runtimes[0]] and ips[r] else None
                row += " %s |" % ("%.2fx" % ratio if ratio else "-")
            rss = med(name, batch, runtimes[0], "peak_rss_mb")
            row += " %s |" % ("%.0f" % rss if rss else "-")
            lines.append(row)
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    if args.raw:
        with open(args.raw, "w") as f:
            for row in raw:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
