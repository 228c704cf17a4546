#!/usr/bin/python3
"""Batching policy: adaptive (the default) against no batching and the fixed delay, same model, same run.

For each model, three repositories are generated from its shipped configuration (config.pbtxt written, model.onnx
symlinked, under BUILD/bench/repos): "adaptive" (the shipped config with `policy: ADAPTIVE`, the default), "fixed"
(the same with `policy: FIXED_DELAY`: Triton's rule with the shipped delay) and "none" (max_batch_size 0, no
dynamic_batching: every request alone at batch 1). Rounds alternate the three (the order
reversed every other round); each runs a fresh cnnserve on 127.0.0.1 and build/bin/cnnload's closed-loop sweep
(one encoded image per request: Fashion-MNIST PNGs, or ImageNet-like JPEGs for the zoo models). Each cell is the
median over rounds. The ratio column is adaptive / max(none, fixed) in requests/s; the goal is >= 0.97 at every
level, and adaptive's p50 at concurrency 1 within 10% of no batching.

Then the open loop (--rates, fractions of the model's peak: the best closed-loop requests/s of any policy, medians
of the rounds above): cnnload --rate --poisson, the same policies alternating for the same rounds. Below a
policy's capacity every policy serves the offered rate, so latency tells them apart (adaptive's p50 against the
better of the other two); at and above it, goodput (OK requests/s) does.

--interleave: the machine drifts by more than the policies differ between runs a minute apart (the three sweeps of
a round take about that long), so with this flag the three servers of a model run side by side (idle but one)
and the policies take turns at every level (one cnnload per level and policy, the first policy rotating each
round): the three cells of a level are measured seconds apart. The tables then add the paired ratio, the median
over rounds of each round's adaptive / better other, which drift between rounds does not move. No CSVs then
(the JSON keeps every round's figures).

--control (with --interleave): a fourth server per model, with the adaptive config again, takes its turn beside
the other three, and the tables add its paired ratio against the first (the median over rounds of
control / adaptive, and the lowest and highest round). The same policy against itself, measured the same way, is
this run's noise at each level: the band within which adaptive / best other cannot tell the policies apart.
--control-build DIR (with --control): the control server runs DIR/bin/cnnserve instead, so the A/A column becomes
a B/A of two builds (DIR's adaptive / this build's adaptive, the column named "B/A (DIR / this build)"), paired
the same way; e.g. the previous commit's build (a copy of its bin/cnnserve) against a policy change.

  bench/batching_policy.py [--build build] [--zoo DIR] [--models lenet5_fashion,alexnet_fashion,alexnet]
                           [--levels 1,2,4,8,16,32] [--warmup S] [--duration S] [--rounds R]
                           [--rates 0.1,0.25,0.5,0.75,0.9,1.0]   ("" for the closed loop alone) [--interleave]
                           [--control [--control-build DIR]] [--out bench/results/batching_policy/batching_policy]   (OUT.json, OUT.md, CSVs)
  bench/batching_policy.py --render RUN.json   (a stored run's tables again)
"""

import argparse
import contextlib
import json
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_curves import (ROOT, Server, add_model, cnnload_args, fashion_images, fmt, imagenet_like_images,  # noqa
                           lenet_config, log, machine, machine_line, median_rows, read_text, run_cnnload,
                           set_dynamic_batching, shown_command, without_batching, write_results, zoo_config)

POLICIES = ("adaptive", "none", "fixed")
CONTROL = "control"  # --control: the adaptive config again, on a server of its own
OPEN_LOOP_EXTRA = ["--drain-timeout-s", "10", "--max-outstanding", "1024"]


def shipped_config(name, zoo, work):
    """(config, onnx, labels, inputs) of a shipped Fashion-MNIST model or a zoo model."""
    if name == "lenet5_fashion":
        config, onnx, labels = lenet_config()
        return config, onnx, labels, fashion_images(work)
    d = os.path.join(ROOT, "models", "repository", name)
    if os.path.isdir(d):
        return (read_text(os.path.join(d, "config.pbtxt")), os.path.join(d, "1", "model.onnx"),
                os.path.join(d, "labels.txt"), fashion_images(work))
    if not os.path.exists(os.path.join(zoo, name + ".onnx")):
        sys.exit("missing %s/%s.onnx: run `make zoo` first" % (zoo, name))
    config, onnx, labels = zoo_config(zoo, name, work)
    return config, onnx, labels, imagenet_like_images(work)


def policy_config(config, policy):
    """The shipped config for `policy`: with `policy: ADAPTIVE` (the default), `policy: FIXED_DELAY`, or without
    batching."""
    if policy == "none":
        return without_batching(config)
    m = re.search(r"(?ms)^dynamic_batching\s*\{(.*?)^\}", config)
    block = m.group(1).strip() if m else ""
    block = re.sub(r"(?m)^\s*policy:.*$", "", block).strip()
    block += "\n  policy: %s" % ("ADAPTIVE" if policy == "adaptive" else "FIXED_DELAY")
    return set_dynamic_batching(config, "  " + block)


def markdown(result):
    lines = ["Machine: %s." % machine_line(result["machine"]), "",
             "Command: `%s` (%.0f s); %d round(s), %s, each cell the median over rounds; paired: the median over "
             "rounds of each round's adaptive / best other." % (
                 result["command"], result["seconds"], result["rounds"],
                 "interleaved at every level" if result.get("interleaved") else "alternating"), ""]
    for model in result["models"]:
        runs = result["runs"][model]
        lines.append("**%s**: requests/s and p50 ms by policy (the shipped config with `policy: ADAPTIVE`, the "
                     "default, or `policy: FIXED_DELAY`; none: max_batch_size 0)" % model)
        lines.append("")
        lines.append("`%s`" % runs["adaptive"]["command"])
        lines.append("")
        lines.append("| concurrency | adaptive req/s | none req/s | fixed req/s | adaptive / best other | "
                     "paired | adaptive p50 | none p50 | fixed p50 | adaptive p99 |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        rows = {p: {r["concurrency"]: r for r in runs[p]["rows"]} for p in POLICIES}
        control = runs["paired"].get(CONTROL)
        if control:
            lines[-2] += " %s paired (lowest-highest round) |" % control_name(result)
            lines[-1] += "---:|"
        for level in sorted(rows["adaptive"]):
            a, n, f = (rows[p].get(level) for p in POLICIES)
            best = max(x["requests_per_s"] for x in (n, f) if x)
            ratio = a["requests_per_s"] / best if best else None
            lines.append("| %d | %s | %s | %s | **%s** | %s | %s | %s | %s | %s |" % (
                level, fmt(a["requests_per_s"]), fmt(n and n["requests_per_s"]), fmt(f and f["requests_per_s"]),
                fmt(ratio, 2), fmt(runs["paired"]["requests_per_s"].get(level), 2), fmt(a["latency_ms"]["p50"], 2),
                fmt(n and n["latency_ms"]["p50"], 2), fmt(f and f["latency_ms"]["p50"], 2),
                fmt(a["latency_ms"]["p99"], 2)))
            if control:
                lines[-1] += " %s |" % control_cell(control, level)
        lines.append("")
        if model in result.get("open_loop", {}):
            lines += open_loop_markdown(model, result["open_loop"][model], control_name(result))
    return "\n".join(lines)


def control_name(result):
    """The control column's name: A/A, or B/A when the control ran another build (--control-build)."""
    return "B/A (%s / this build)" % result["control_build"] if result.get("control_build") else "A/A"


def control_cell(control, point):
    """The control column's cell (A/A or B/A): the control's paired ratio at `point`, and its lowest and highest round."""
    if control["median"].get(point) is None:
        return "-"
    return "%s (%s-%s)" % (fmt(control["median"][point], 2), fmt(control["low"][point], 2),
                           fmt(control["high"][point], 2))


def goodput(row):
    return row["requests_per_s"]


def p50(row):
    return row["latency_ms"]["p50"]


def p99(row):
    return row["latency_ms"]["p99"]


def open_loop_markdown(model, open_loop, control_label):
    """The open-loop table of one model: per rate, goodput and latency by policy, adaptive against the better of
    none and fixed (the higher goodput, the lower p50)."""
    lines = ["**%s, open loop** (Poisson arrivals at fractions of the peak, %s requests/s: the best closed-loop "
             "median above); goodput (OK requests/s), p50 and p99 ms by policy" % (model, fmt(open_loop["peak"])),
             "", "`%s`" % open_loop["runs"]["adaptive"]["command"], "",
             "| rate | offered req/s | adaptive goodput | none | fixed | adaptive / best other goodput | "
             "paired | adaptive p50 | none p50 | fixed p50 | adaptive / best other p50 | paired | adaptive p99 | "
             "none p99 | fixed p99 |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    paired = open_loop["runs"]["paired"]
    control = paired.get(CONTROL)
    if control:
        lines[-2] += " %s paired goodput (lowest-highest round) |" % control_label
        lines[-1] += "---:|"
    rows = {p: {r["target_rate"]: r for r in open_loop["runs"][p]["rows"]} for p in POLICIES}
    for fraction, rate in zip(open_loop["fractions"], open_loop["rates"]):
        a, n, f = (min(rows[p].items(), key=lambda kv: abs(kv[0] - rate))[1] for p in POLICIES)
        best_goodput = max(goodput(n), goodput(f))
        best_p50 = min(p50(n), p50(f))
        lines.append("| %.2f | %s | %s | %s | %s | **%s** | %s | %s | %s | %s | **%s** | %s | %s | %s | %s |" % (
            fraction, fmt(rate), fmt(goodput(a)), fmt(goodput(n)), fmt(goodput(f)),
            fmt(goodput(a) / best_goodput if best_goodput else None, 2),
            fmt(paired["requests_per_s"].get(a["target_rate"]), 2),
            fmt(p50(a), 2), fmt(p50(n), 2), fmt(p50(f), 2), fmt(p50(a) / best_p50 if best_p50 else None, 2),
            fmt(paired["p50"].get(a["target_rate"]), 2), fmt(p99(a), 2), fmt(p99(n), 2), fmt(p99(f), 2)))
        if control:
            lines[-1] += " %s |" % control_cell(control, a["target_rate"])
    lines.append("")
    return lines


def peak_requests_per_s(policy_runs):
    """The best median closed-loop requests/s of any policy and level."""
    return max(r["requests_per_s"] for policy in POLICIES for r in policy_runs[policy]["rows"])


def run_rounds(args, configs, work, start, make_args, label, points):
    """Runs every (model, policy) for args.rounds alternating rounds (the order reversed every other round), a
    fresh server per run and one cnnload over all `points`. Returns runs[model][policy] = {"rounds": [rows of each
    round], "command"}. `make_args`(model, inputs, points) gives cnnload's flags."""
    runs = {}
    for rnd in range(args.rounds):
        order = configs if rnd % 2 == 0 else list(reversed(configs))
        for model, policy, repo, inputs in order:
            cl_args = make_args(model, inputs, points[model])
            with Server(args.build, repo, os.path.join(work, "logs", "%s-%s.log" % (model, policy))) as server:
                doc = run_cnnload(args.build, server.address, cl_args,
                                  os.path.join(args.out, "%s-%s-%s-r%d.csv" % (model, policy, label, rnd + 1)))
            run = runs.setdefault(model, {}).setdefault(policy, {"rounds": [], "command": shown_command(cl_args)})
            run["rounds"].append(doc["rows"])
            log("%s loop, round %d: %s %s done (%.0f s)" % (label, rnd + 1, model, policy, time.time() - start))
    return runs


def server_build(args, policy):
    """The build whose cnnserve serves `policy`: --control-build for the control, if given."""
    return args.control_build if policy == CONTROL and args.control_build else args.build


def run_interleaved(args, configs, work, start, make_args, label, points):
    """As run_rounds, but per model the servers (one per policy) run side by side for all rounds and the policies take turns
    at every point (one cnnload each; the first policy rotates every round)."""
    runs = {}
    for model in dict.fromkeys(c[0] for c in configs):
        entries = [c for c in configs if c[0] == model]
        runs[model] = {policy: {"rounds": [[] for _ in range(args.rounds)], "command": shown_command(
            make_args(model, inputs, points[model])) + " (a run per level)"} for _, policy, _, inputs in entries}
        with contextlib.ExitStack() as stack:
            servers = {policy: stack.enter_context(Server(server_build(args, policy), repo, os.path.join(
                work, "logs", "%s-%s.log" % (model, policy)))) for _, policy, repo, _ in entries}
            for rnd in range(args.rounds):
                for point in points[model]:
                    for _, policy, _, inputs in entries[rnd % len(entries):] + entries[:rnd % len(entries)]:
                        doc = run_cnnload(args.build, servers[policy].address, make_args(model, inputs, [point]))
                        runs[model][policy]["rounds"][rnd] += doc["rows"]
                log("%s loop, round %d: %s done (%.0f s)" % (label, rnd + 1, model, time.time() - start))
    return runs


def point_of(row):
    return row["concurrency"] if row["concurrency"] is not None else row["target_rate"]


def round_ratios(policy_runs, ratio):
    """Per point, the list over rounds of `ratio`(adaptive's row, {policy: that round's row at the same point}),
    None values left out."""
    ratios = {}
    for rnd, rows in enumerate(policy_runs["adaptive"]["rounds"]):
        by_point = {p: {point_of(r): r for r in run["rounds"][rnd]} for p, run in policy_runs.items()}
        for row in rows:
            value = ratio(row, {p: points[point_of(row)] for p, points in by_point.items()})
            if value is not None:
                ratios.setdefault(point_of(row), []).append(value)
    return ratios


def paired_ratios(policy_runs, value, better):
    """Per point, the median over rounds of adaptive's `value` against the better (`better`: max or min) of the
    other two policies in the same round."""
    def ratio(row, same_round):
        best = better(value(same_round[p]) for p in POLICIES[1:])
        return value(row) / best if best else None
    return {point: statistics.median(r) for point, r in round_ratios(policy_runs, ratio).items()}


def control_ratios(policy_runs):
    """Per point, the median, lowest and highest over rounds of the control's requests/s against adaptive's in the
    same round."""
    ratios = round_ratios(policy_runs, lambda row, same_round: goodput(same_round[CONTROL]) / goodput(row)
                          if goodput(row) else None)
    return {"median": {point: statistics.median(r) for point, r in ratios.items()},
            "low": {point: min(r) for point, r in ratios.items()},
            "high": {point: max(r) for point, r in ratios.items()}}


def summarize(runs):
    """Adds to runs[model][policy] the median rows over rounds, and to runs[model] the paired ratios."""
    for model, policy_runs in runs.items():
        paired = {"requests_per_s": paired_ratios(policy_runs, goodput, max),
                  "p50": paired_ratios(policy_runs, p50, min)}
        if CONTROL in policy_runs:
            paired[CONTROL] = control_ratios(policy_runs)
        for run in policy_runs.values():
            run["rows"] = median_rows(run["rounds"])
        policy_runs["paired"] = paired
    return runs


def number_keys(table):
    """`table` with its keys made numbers again (JSON stores the paired ratios' levels and rates as strings)."""
    return {(int(k) if k.lstrip("-").isdigit() else float(k)): v for k, v in table.items()}


def load_result(path):
    """A result as write_results stored it, with the paired tables keyed by numbers as markdown() expects; exits with
    a message for a file that is not such a result, or one stored before the paired ratios existed."""
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit("%s: cannot read the run: %s" % (path, e))
    if result.get("benchmark") != "batching_policy" or not all("paired" in r for r in result["runs"].values()):
        sys.exit("%s: not a batching_policy run with paired ratios (older runs have none)" % path)
    paired_tables = [runs["paired"] for runs in result["runs"].values()]
    paired_tables += [ol["runs"]["paired"] for ol in result.get("open_loop", {}).values()]
    for paired in paired_tables:
        for name in ("requests_per_s", "p50"):
            paired[name] = number_keys(paired[name])
        if CONTROL in paired:
            paired[CONTROL] = {k: number_keys(v) for k, v in paired[CONTROL].items()}
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--zoo", default=os.path.expanduser("~/.cache/cnnserve/zoo"))
    p.add_argument("--models", default="lenet5_fashion,alexnet_fashion,alexnet")
    p.add_argument("--levels", default="1,2,4,8,16,32")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rates", default="0.1,0.25,0.5,0.75,0.9,1.0",
                   help="open-loop rates as fractions of the peak (\"\": closed loop only)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "batching_policy", "batching_policy"))
    p.add_argument("--interleave", action="store_true",
                   help="the three servers of a model side by side, the policies taking turns at every level")
    p.add_argument("--control", action="store_true",
                   help="with --interleave: a second adaptive server per model, its ratio to the first the noise")
    p.add_argument("--control-build", default="",
                   help="with --control: the control runs this build's bin/cnnserve (a B/A of two builds)")
    p.add_argument("--render", default="", metavar="RUN.json",
                   help="print the tables of a stored run again (nothing is measured)")
    args = p.parse_args()
    if args.render:
        print(markdown(load_result(args.render)))
        return
    if args.control and not args.interleave:
        p.error("--control needs --interleave")
    if args.control_build and not args.control:
        p.error("--control-build needs --control")
    control_server = os.path.join(args.control_build, "bin", "cnnserve")
    if args.control_build and not os.access(control_server, os.X_OK):
        p.error("--control-build: no executable %s" % control_server)
    run = run_interleaved if args.interleave else run_rounds

    work = os.path.join(args.build, "bench")
    levels = [int(c) for c in args.levels.split(",")]
    models = args.models.split(",")
    start = time.time()
    configs = []  # (model, policy, repo, inputs)
    for model in models:
        config, onnx, labels, inputs = shipped_config(model, args.zoo, work)
        for policy in POLICIES:
            repo = os.path.join(work, "repos", "%s-policy-%s" % (model, policy))
            add_model(repo, model, policy_config(config, policy), onnx, labels)
            configs.append((model, policy, repo, inputs))
        if args.control:
            configs.append((model, CONTROL, os.path.join(work, "repos", "%s-policy-adaptive" % model), inputs))

    runs = summarize(run(args, configs, work, start, lambda model, inputs, points: cnnload_args(
        model, inputs, levels=points, warmup=args.warmup, duration=args.duration), "closed",
        {model: levels for model in models}))
    open_loop = {}
    fractions = [float(f) for f in args.rates.split(",") if f.strip()]
    if fractions:
        rates = {model: [f * peak_requests_per_s(runs[model]) for f in fractions] for model in runs}
        ol_runs = summarize(run(args, configs, work, start, lambda model, inputs, points: cnnload_args(
            model, inputs, rates=points, warmup=args.warmup, duration=args.duration, extra=OPEN_LOOP_EXTRA),
            "open", rates))
        for model in ol_runs:
            open_loop[model] = {"peak": peak_requests_per_s(runs[model]), "fractions": fractions,
                                "rates": rates[model], "runs": ol_runs[model]}
    result = {"benchmark": "batching_policy", "machine": machine(), "rounds": args.rounds, "models": models,
              "interleaved": args.interleave,
              "control_build": os.path.abspath(args.control_build) if args.control_build else None,
              "runs": runs, "open_loop": open_loop,
              "command": "bench/batching_policy.py " + " ".join(sys.argv[1:]), "seconds": time.time() - start}
    write_results(args.out, result, markdown)


if __name__ == "__main__":
    main()
