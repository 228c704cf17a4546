#!/usr/bin/python3
"""Per-primitive times of a oneDNN run: the median of every primitive's executions, in plan order.

Runs COMMAND (usually `cnnbench run MODEL --batch B ...`) with ONEDNN_VERBOSE=1, which makes oneDNN 2.6 print a
line per primitive execution with its kind, implementation, shapes and milliseconds, and prints a table: median
ms, executions, kind, implementation, shapes. Primitives with the same kind, implementation and shapes (e.g. the
two 256x256 convolutions of a VGG block) share a row, whose median is per execution; "total per run" adds each
row's median times its executions per run (executions / the most frequent count). Weight reorders made at load
(once, or once per slice) run a number of times that is not a multiple of that count and are left out of it.

  bench/layer_times.py [--top N] -- build/bin/cnnbench run ZOO/vgg16.onnx --precision int8 \\
      --calibration ZOO/vgg16.calibration.txt --batch 8 --seconds 4
"""
import argparse
import collections
import os
import statistics
import subprocess
import sys


def parse_exec_lines(lines):
    """{(kind, impl, shapes): [ms, ...]} in order of first appearance, from oneDNN 2.x verbose exec lines."""
    rows = collections.OrderedDict()
    for line in lines:
        fields = line.strip().split(",")
        # onednn_verbose,exec,cpu,KIND,IMPL,PROP,MEMORY...,ATTRS,AUX,SHAPES,MS
        if len(fields) < 6 or fields[1] != "exec":
            continue
        try:
            ms = float(fields[-1])
        except ValueError:
            continue
        rows.setdefault((fields[3], fields[4], fields[-2]), []).append(ms)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=0, help="only the N slowest rows (0: all, in plan order)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit("%s failed (%d): %s" % (" ".join(command), proc.returncode, proc.stderr.strip()[-2000:]))
    rows = parse_exec_lines(proc.stdout.splitlines())
    if not rows:
        sys.exit("no oneDNN exec lines in the output: is the command running oneDNN 2.x?")
    runs = collections.Counter(len(times) for times in rows.values()).most_common(1)[0][0]
    table = [(statistics.median(times), len(times), key) for key, times in rows.items()]
    total = sum(median * count / runs for median, count, _ in table if count % runs == 0)
    if args.top > 0:
        table = sorted(table, key=lambda row: -row[0] * row[1])[: args.top]
    print("%9s %6s  %-13s %-30s %s" % ("median ms", "execs", "kind", "implementation", "shapes"))
    for median, count, (kind, impl, shapes) in table:
        print("%9.3f %6d  %-13s %-30s %s" % (median, count, kind, impl, shapes))
    print("total per run %.2f ms (%d runs)" % (total, runs))


if __name__ == "__main__":
    main()
