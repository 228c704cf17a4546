#!/usr/bin/python3
"""Pools stored runs of bench/batching_policy.py --interleave: every round of every run, closed loop.

One five-round run moves by several points between runs an hour apart, and the ratio it reports, adaptive / the
better of none and fixed *in each round*, is biased low where none and fixed are close: the better of two noisy
figures is on average above either. This script takes the rounds of several runs of the same policy code and, per
model and level:
  - picks the other policy once, by the higher median over all pooled rounds (not round by round);
  - takes each round's adaptive / that policy (the two measured seconds apart, so drift between rounds cancels);
  - reports the median of those paired ratios with a 95% bootstrap interval (resampling rounds), the share of
    rounds at or above --goal, and each run's own median, so a run that disagrees with the others shows.
Where a run has a --control server running this build (the adaptive config again, not --control-build), each
round's control / adaptive is the noise of one round at that level: the table gives their median, lowest and
highest (each run counted once, however many times it is named).

  bench/pool_batching.py [--goal 0.97] [--out FILE.md] RUN.json[:SERVER] ...

SERVER is the server of that run whose build is being judged: "adaptive" (the default) or "control" (e.g. a run
with --control-build, whose control ran the code under judgment). Every run must have been measured with
--interleave (the JSON keeps each round's rows).
"""

import argparse
import json
import os
import random
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batching_policy import CONTROL  # noqa: E402
from server_curves import fmt  # noqa: E402

OTHERS = ("none", "fixed")
BOOTSTRAP_SAMPLES = 4000


def load_run(spec):
    """(name, server, result) of "RUN.json[:SERVER]"; exits with a message when the run cannot be pooled."""
    path, _, server = spec.partition(":")
    server = server or "adaptive"
    if server not in ("adaptive", CONTROL):
        sys.exit("%s: the server must be adaptive or control, got %r" % (spec, server))
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit("%s: cannot read the run: %s" % (path, e))
    if not result.get("interleaved"):
        sys.exit("%s: not an --interleave run (its rounds are not paired level by level)" % path)
    for model, runs in result["runs"].items():
        if server not in runs:
            sys.exit("%s: model %s has no %s server" % (path, model, server))
    return os.path.basename(path), server, result


def requests_per_s(rounds, level):
    """Per round, the requests/s at `level` (None where the round has no row for it)."""
    values = []
    for rows in rounds:
        found = [row["requests_per_s"] for row in rows if row["concurrency"] == level]
        values.append(found[0] if found else None)
    return values


def paired(numerators, denominators):
    """numerator / denominator of each round where both were measured."""
    return [n / d for n, d in zip(numerators, denominators) if n is not None and d]


def bootstrap_interval(values, rng):
    """The 2.5th and 97.5th percentiles of the median of `values` resampled with replacement."""
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(BOOTSTRAP_SAMPLES))
    return medians[int(0.025 * BOOTSTRAP_SAMPLES)], medians[int(0.975 * BOOTSTRAP_SAMPLES) - 1]


def pool_level(runs, model, level):
    """{"other", "ratios" (pooled), "per_run" (each run's median), "noise" (control / adaptive, pooled)} of one
    model and level over `runs` (load_run's tuples)."""
    judged, others, per_run_rounds, noise, noise_seen = [], {p: [] for p in OTHERS}, [], [], set()
    for name, server, result in runs:
        model_runs = result["runs"].get(model)
        if model_runs is None:
            continue
        mine = requests_per_s(model_runs[server]["rounds"], level)
        theirs = {p: requests_per_s(model_runs[p]["rounds"], level) for p in OTHERS}
        judged.append(mine)
        for p in OTHERS:
            others[p].append(theirs[p])
        if CONTROL in model_runs and not result.get("control_build") and name not in noise_seen:
            noise_seen.add(name)
            noise += paired(requests_per_s(model_runs[CONTROL]["rounds"], level),
                            requests_per_s(model_runs["adaptive"]["rounds"], level))
    pooled = {p: [v for run in others[p] for v in run if v is not None] for p in OTHERS}
    if not all(pooled.values()):
        return None
    other = max(OTHERS, key=lambda p: statistics.median(pooled[p]))
    for mine, theirs in zip(judged, others[other]):
        per_run_rounds.append(paired(mine, theirs))
    return {"other": other, "ratios": [r for run in per_run_rounds for r in run],
            "per_run": [statistics.median(run) if run else None for run in per_run_rounds], "noise": noise}


def noise_cell(noise):
    """The A/A cell: median, lowest-highest and count of single-round control / adaptive ratios."""
    if not noise:
        return "-"
    return "%s, %s-%s (%d)" % (fmt(statistics.median(noise), 3), fmt(min(noise), 2), fmt(max(noise), 2), len(noise))


def levels_of(runs, model):
    return sorted({row["concurrency"] for _, server, result in runs if model in result["runs"]
                   for rows in result["runs"][model][server]["rounds"] for row in rows})


def markdown(runs, goal, rng):
    names = ", ".join("%s (%s)" % (name, server) for name, server, _ in runs)
    lines = ["Pooled runs: %s. Paired ratio: a round's judged server / the other policy in the same round; the "
             "other policy is the one with the higher median over all pooled rounds at that level." % names, ""]
    models = list(dict.fromkeys(m for _, _, result in runs for m in result["models"]))
    for model in models:
        lines += ["**%s**" % model, "",
                  "| concurrency | other | rounds | median paired ratio | 95%% interval | rounds >= %s | "
                  "each run's median | A/A: median, lowest-highest (rounds) |" % fmt(goal, 2),
                  "|---:|---|---:|---:|---|---:|---|---|"]
        for level in levels_of(runs, model):
            pooled = pool_level(runs, model, level)
            if pooled is None or not pooled["ratios"]:
                continue
            ratios = pooled["ratios"]
            low, high = bootstrap_interval(ratios, rng)
            share = sum(r >= goal for r in ratios) / len(ratios)
            noise = pooled["noise"]
            lines.append("| %d | %s | %d | **%s** | %s-%s | %.0f%% | %s | %s |" % (
                level, pooled["other"], len(ratios), fmt(statistics.median(ratios), 3), fmt(low, 3),
                fmt(high, 3), 100 * share, ", ".join(fmt(m, 2) for m in pooled["per_run"]),
                noise_cell(noise)))
        lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="RUN.json[:adaptive|control]")
    p.add_argument("--goal", type=float, default=0.97)
    p.add_argument("--seed", type=int, default=1, help="the bootstrap's seed (the same runs give the same table)")
    p.add_argument("--out", default="", help="also write the table to this file")
    args = p.parse_args()
    text = markdown([load_run(spec) for spec in args.runs], args.goal, random.Random(args.seed))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
