#!/usr/bin/python3
"""Engine vs peers: cnnbench (oneDNN) against ONNX Runtime 1.30 and PyTorch 1.13 on the same zoo ONNX files.

Runs each runtime as its own process, alternating runtimes within every round (the order rotates from round to
round) so that machine noise hits all of them alike, repeats the rounds, and reports per (model, batch) the
median images/s over rounds of each runtime and the ratio of the first runtime to each other one. Writes a
Markdown table (stdout and --markdown FILE, with the machine and the command), the raw JSON lines (--raw FILE)
and the medians as JSON (--summary FILE, read by bench/plot_results.py).

  bench/engine_vs_peers.py [--zoo DIR] [--models lenet5,alexnet,zfnet,vgg16] [--batch 1,8,32]
                           [--threads 2] [--seconds 2] [--rounds 3]
                           [--runtimes cnnserve,onnxruntime,pytorch[,cnnserve_direct][,cnnserve_bf16][,cnnserve_int8]
                                       [,onnxruntime_int8][,onnxruntime_int8_ranged]]

Runtimes: cnnserve (`cnnbench run`, the engine's defaults), cnnserve_direct (`cnnbench run --no-winograd`),
cnnserve_bf16 (`cnnbench run --precision bf16`), cnnserve_int8 (`cnnbench run --precision int8` with
ZOO/MODEL.calibration.txt, which `make zoo-int8` writes), onnxruntime_int8 (ONNX Runtime on
ZOO/MODEL.int8.qdq.onnx: the same model quantized with the same scales as QuantizeLinear/DequantizeLinear by
models/zoo/quantize_qdq.py, also written by `make zoo-int8`), onnxruntime_int8_ranged (ONNX Runtime on
ZOO/MODEL.int8.ranged.qdq.onnx, written by `quantize_qdq.py --outputs ranged`: the same scales, plus a
QuantizeLinear on every quantized layer's output that has a range, so that ONNX Runtime also fuses the layers
whose output the engine keeps in fp32, e.g. before LRN; ONNX Runtime's fastest int8 graph with our scales),
onnxruntime (bench/peers/ort_run.js, npm onnxruntime-node), pytorch (bench/peers/torch_run.py, eager PyTorch
from Debian, the same architecture built from models/zoo/architectures.py). The first runtime listed is the one
the ratio columns divide by the others.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_curves as sc  # noqa: E402  (machine description)

RUNTIME_NAMES = {"cnnserve": "cnnbench run (oneDNN 2.6, Winograd allowed)",
                 "cnnserve_direct": "cnnbench run --no-winograd",
                 "cnnserve_bf16": "cnnbench run --precision bf16",
                 "cnnserve_int8": "cnnbench run --precision int8 --calibration ZOO/MODEL.calibration.txt",
                 "onnxruntime": "onnxruntime-node 1.30",
                 "onnxruntime_int8": "onnxruntime-node 1.30 on ZOO/MODEL.int8.qdq.onnx (same scales)",
                 "onnxruntime_int8_ranged": "onnxruntime-node 1.30 on ZOO/MODEL.int8.ranged.qdq.onnx (same scales, "
                                            "every ranged layer output quantized)",
                 "pytorch": "PyTorch 1.13 eager"}


def run_json_lines(cmd, timeout):
    """The JSON lines of a runner's stdout, and its "# ..." header lines from stderr (runtime versions)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), proc.returncode, proc.stderr.strip()[-2000:]))
    rows = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    headers = [l.strip() for l in proc.stderr.splitlines() if l.startswith("# ")]
    return rows, headers


def command(runtime, model_path, name, args):
    common = ["--batch", args.batch, "--threads", str(args.threads), "--seconds", str(args.seconds),
              "--warmup-runs", str(args.warmup_runs), "--json"]
    if runtime == "cnnserve":
        return [os.path.join(args.build, "bin", "cnnbench"), "run", model_path] + common
    if runtime == "cnnserve_direct":  # same engine, direct convolutions only (smallest footprint)
        return [os.path.join(args.build, "bin", "cnnbench"), "run", model_path, "--no-winograd"] + common
    if runtime == "cnnserve_bf16":  # same engine, bf16 layers (fp32 in and out)
        return [os.path.join(args.build, "bin", "cnnbench"), "run", model_path, "--precision", "bf16"] + common
    if runtime == "cnnserve_int8":  # same engine, int8 layers with the zoo's calibration file (make zoo-int8)
        calibration = os.path.join(os.path.dirname(model_path), name + ".calibration.txt")
        if not os.path.exists(calibration):
            raise RuntimeError("%s is missing: make zoo-int8 writes it" % calibration)
        return [os.path.join(args.build, "bin", "cnnbench"), "run", model_path, "--precision", "int8",
                "--calibration", calibration] + common
    if runtime in ("onnxruntime_int8", "onnxruntime_int8_ranged"):  # QDQ copies (models/zoo/quantize_qdq.py)
        ranged = runtime == "onnxruntime_int8_ranged"
        suffix = ".int8.ranged.qdq.onnx" if ranged else ".int8.qdq.onnx"
        qdq = os.path.join(os.path.dirname(model_path), name + suffix)
        if not os.path.exists(qdq):
            raise RuntimeError("%s is missing: %s writes it" % (
                qdq, "models/zoo/quantize_qdq.py ... --outputs ranged" if ranged else "make zoo-int8"))
        return ["node", os.path.join(ROOT, "bench", "peers", "ort_run.js"), qdq, "--model", name] + common
    if runtime == "onnxruntime":
        return ["node", os.path.join(ROOT, "bench", "peers", "ort_run.js"), model_path] + common
    if runtime == "pytorch":
        return ["/usr/bin/python3", os.path.join(ROOT, "bench", "peers", "torch_run.py"), model_path,
                "--model", name] + common
    raise ValueError(runtime)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default=os.path.expanduser("~/.cache/cnnserve/zoo"))
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--models", default="lenet5,alexnet,zfnet,vgg16")
    p.add_argument("--batch", default="1,8,32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup-runs", type=int, default=1,
                   help="unmeasured runs per batch size (and >= 0.5 s) in every runtime; VGG-16 at batch 32 in "
                        "PyTorch takes 10 s per run")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runtimes", default="cnnserve,onnxruntime,pytorch")
    p.add_argument("--markdown", default=None, help="also write the Markdown table here")
    p.add_argument("--raw", default=None, help="write every JSON line here")
    p.add_argument("--summary", default=None, help="write the medians (and the machine, command) as JSON here")
    args = p.parse_args()
    machine = sc.machine()
    versions = {}

    runtimes = args.runtimes.split(",")
    for name in args.models.split(","):  # every file and runtime name checked before the first run
        path = os.path.join(args.zoo, name + ".onnx")
        if not os.path.exists(path):
            sys.exit("missing %s: run `make zoo` first" % path)
        for runtime in runtimes:
            if runtime not in RUNTIME_NAMES:
                sys.exit("unknown runtime %r (known: %s)" % (runtime, ", ".join(sorted(RUNTIME_NAMES))))
            try:
                command(runtime, path, name, args)
            except RuntimeError as e:
                sys.exit("runtime %s, model %s: %s" % (runtime, name, e))
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
                rows, headers = run_json_lines(command(runtime, path, name, args), timeout=1800)
                if headers and runtime not in versions:
                    versions[runtime] = headers[0][2:].split(" model=")[0]
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
    if sc.busy_warning(machine):
        lines += [sc.busy_warning(machine), ""]
    lines.append("Machine: %s." % sc.machine_line(machine))
    lines.append("")
    lines.append("Runtimes: %s; threads=%d; %d rounds x %.1f s (and >= 5 runs) per batch size after %d warm-up "
                 "run(s) and 0.5 s, order rotating; medians over rounds; %.0f s in all." % (
                     "; ".join("%s = %s" % (r, versions.get(r, RUNTIME_NAMES.get(r, r))) for r in runtimes),
                     args.threads, args.rounds, args.seconds, args.warmup_runs, time.time() - start))
    lines.append("")
    lines.append("Command: `bench/engine_vs_peers.py %s`" % " ".join(sys.argv[1:]).replace(
        os.path.expanduser("~"), "~"))
    lines.append("")
    header = "| model | batch |"
    sep = "|---|---:|"
    for r in runtimes:
        header += " %s img/s | %s p50 ms |" % (r, r)
        sep += "---:|---:|"
    for r in runtimes[1:]:
        header += " %s / %s |" % (runtimes[0], r)
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
    if args.summary:
        cells = []
        for name in args.models.split(","):
            for batch in [int(b) for b in args.batch.split(",")]:
                for r in runtimes:
                    ips = med(name, batch, r, "images_per_s")
                    if ips is not None:
                        cells.append({"model": name, "batch": batch, "runtime": r, "images_per_s": ips,
                                      "p50_ms": med(name, batch, r, "p50_ms"),
                                      "all": [row["images_per_s"] for row in results[(name, batch, r)]]})
        with open(args.summary, "w") as f:
            json.dump({"benchmark": "engine_vs_peers", "machine": machine, "versions": versions,
                       "runtimes": runtimes, "threads": args.threads, "rounds": args.rounds,
                       "seconds": args.seconds, "command": "bench/engine_vs_peers.py " + " ".join(sys.argv[1:]),
                       "cells": cells}, f, indent=1)


if __name__ == "__main__":
    main()
