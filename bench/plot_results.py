#!/usr/bin/python3
"""Plots of the benchmark results, and the generated sections of bench/RESULTS.md.

Reads bench/results/{server_curves,server_overhead,engine_vs_peers}.json (whichever exist), writes PNGs next to
them with matplotlib's Agg backend (Debian's python3-matplotlib):

  server_throughput.png     images/s against concurrency, batching on and off, per model
  server_p99.png            p99 latency against throughput (the operating curve), batching on and off
  server_latency_load.png   open loop: p50/p90/p99/p99.9 latency against offered load
  engine_vs_peers.png       images/s of cnnbench, ONNX Runtime and PyTorch per model and batch size
  server_overhead.png       server/engine and lenet5/null ratios against their targets

With --update-md FILE, replaces each block between "<!-- BEGIN GENERATED name -->" and
"<!-- END GENERATED name -->" in FILE by bench/results/name.md (name: engine_vs_peers, server_curves,
server_overhead, server_security); text outside the markers is left alone.

  bench/plot_results.py [--results bench/results] [--update-md bench/RESULTS.md]
"""
import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ["engine_vs_peers", "server_curves", "server_overhead", "server_security"]


def load(results, name):
    path = os.path.join(results, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def setup_matplotlib():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "font.size": 9, "axes.grid": True,
                         "grid.alpha": 0.3})
    return plt


def footer(fig, doc):
    m = doc["machine"]
    fig.text(0.01, 0.005, "%s, %d cores; %s; %s" % (m["cpu"], m["cores"], m["date"], doc["command"][:110]),
             fontsize=6, color="gray")


def plot_curves(plt, doc, out_dir):
    models = []
    for run in doc["closed_loop"]:
        if run["model"] not in models:
            models.append(run["model"])
    styles = {"on": ("tab:blue", "o", "-"), "off": ("tab:orange", "s", "--")}

    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        for run in doc["closed_loop"]:
            if run["model"] != model:
                continue
            c, mk, ls = styles.get(run["batching"], ("gray", "x", ":"))
            rows = sorted(run["rows"], key=lambda r: r["concurrency"])
            ax.plot([r["concurrency"] for r in rows], [r["images_per_s"] for r in rows], color=c, marker=mk,
                    linestyle=ls, label="dynamic batching %s" % run["batching"])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency (requests in flight)")
        ax.set_ylabel("images/s")
        ax.set_ylim(bottom=0)
        ax.set_title("%s: throughput vs concurrency" % model)
        ax.legend()
    footer(fig, doc)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(os.path.join(out_dir, "server_throughput.png"))
    plt.close(fig)

    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        for run in doc["closed_loop"]:
            if run["model"] != model:
                continue
            c, mk, ls = styles.get(run["batching"], ("gray", "x", ":"))
            rows = sorted(run["rows"], key=lambda r: r["concurrency"])
            xs = [r["images_per_s"] for r in rows]
            ys = [r["latency_ms"]["p99"] for r in rows]
            ax.plot(xs, ys, color=c, marker=mk, linestyle=ls, label="dynamic batching %s" % run["batching"])
            for r, x, y in zip(rows, xs, ys):
                ax.annotate("c=%d" % r["concurrency"], (x, y), textcoords="offset points", xytext=(3, 3),
                            fontsize=6, color=c)
        ax.set_yscale("log")
        ax.set_xlabel("throughput (images/s)")
        ax.set_ylabel("p99 latency (ms)")
        ax.set_title("%s: p99 latency vs throughput" % model)
        ax.legend()
    footer(fig, doc)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(os.path.join(out_dir, "server_p99.png"))
    plt.close(fig)

    if doc.get("open_loop"):
        runs = doc["open_loop"]
        fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.8), squeeze=False)
        for ax, run in zip(axes[0], runs):
            rows = sorted(run["rows"], key=lambda r: r["target_rate"])
            xs = [r["offered_rate"] for r in rows]
            for key, label, color in (("p50", "p50", "tab:green"), ("p90", "p90", "tab:blue"),
                                      ("p99", "p99", "tab:orange"), ("p999", "p99.9", "tab:red")):
                ax.plot(xs, [r["latency_ms"][key] for r in rows], marker="o", color=color, label=label)
            ax.axvline(run["peak_requests_per_s"], color="gray", linestyle=":", linewidth=1)
            ax.text(run["peak_requests_per_s"], 0.02, " closed-loop peak", transform=ax.get_xaxis_transform(),
                    fontsize=6, color="gray", rotation=90, ha="right", va="bottom")
            ax.set_yscale("log")
            ax.set_xlabel("offered load (requests/s, Poisson arrivals)")
            ax.set_ylabel("latency (ms)")
            ax.set_title("%s (batching %s): latency vs load" % (run["model"], run["batching"]))
            ax.legend()
        footer(fig, doc)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(os.path.join(out_dir, "server_latency_load.png"))
        plt.close(fig)


def plot_peers(plt, doc, out_dir):
    runtimes = doc["runtimes"]
    keys = []
    for cell in doc["cells"]:
        key = (cell["model"], cell["batch"])
        if key not in keys:
            keys.append(key)
    ips = {(c["model"], c["batch"], c["runtime"]): c["images_per_s"] for c in doc["cells"]}
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:gray"]
    fig, ax = plt.subplots(figsize=(max(6, 0.75 * len(keys) + 2), 4))
    width = 0.8 / len(runtimes)
    for i, r in enumerate(runtimes):
        xs = [k + (i - (len(runtimes) - 1) / 2) * width for k in range(len(keys))]
        ys = [ips.get((m, b, r), 0) for m, b in keys]
        ax.bar(xs, ys, width, label=doc["versions"].get(r, r), color=colors[i % len(colors)])
    ax.set_yscale("log")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(["%s\nbatch %d" % k for k in keys], fontsize=7)
    ax.set_ylabel("images/s (log scale)")
    ax.set_title("Engine vs peers, fp32, %d threads (median of %d rounds)" % (doc["threads"], doc["rounds"]))
    ax.legend(fontsize=7)
    footer(fig, doc)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(os.path.join(out_dir, "engine_vs_peers.png"))
    plt.close(fig)


def plot_overhead(plt, doc, out_dir):
    bars = []
    if doc.get("alexnet"):
        for r in doc["alexnet"]["rows"]:
            bars.append(("alexnet b%d\nserver/engine" % r["batch"], r["ratio"] or 0, doc["alexnet"]["target"]))
    if doc.get("lenet"):
        for r in doc["lenet"]["rows"]:
            bars.append(("lenet5/null\n%s" % r["payload"], r["ratio"] or 0, doc["lenet"]["target"]))
    if not bars:
        return
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(bars) + 1), 3.5))
    for i, (label, ratio, target) in enumerate(bars):
        ax.bar(i, ratio, 0.6, color="tab:green" if ratio >= target else "tab:red")
        ax.hlines(target, i - 0.4, i + 0.4, colors="black", linestyles="--", linewidth=1)
        ax.annotate("%.2f" % ratio, (i, ratio), ha="center", xytext=(0, 3), textcoords="offset points", fontsize=8)
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([b[0] for b in bars], fontsize=7)
    ax.set_ylabel("ratio (dashed: target)")
    ax.set_ylim(0, max(1.1, max(b[1] for b in bars) * 1.15))
    ax.set_title("Server overhead")
    footer(fig, doc)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(os.path.join(out_dir, "server_overhead.png"))
    plt.close(fig)


def update_md(path, results):
    with open(path) as f:
        text = f.read()
    for name in SECTIONS:
        md = os.path.join(results, name + ".md")
        # Only what the current scripts wrote (they write NAME.json beside NAME.md).
        if not os.path.exists(md) or not os.path.exists(os.path.join(results, name + ".json")):
            continue
        with open(md) as f:
            body = f.read().strip()
        pattern = re.compile(r"(<!-- BEGIN GENERATED %s -->\n).*?(\n<!-- END GENERATED %s -->)" % (name, name),
                             re.S)
        if not pattern.search(text):
            print("plot_results: no markers for %s in %s" % (name, path), file=sys.stderr)
            continue
        text = pattern.sub(lambda m: m.group(1) + body + m.group(2), text)
    with open(path, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--update-md", default=None)
    args = p.parse_args()
    plt = setup_matplotlib()
    written = []
    curves = load(args.results, "server_curves")
    if curves:
        plot_curves(plt, curves, args.results)
        written += ["server_throughput.png", "server_p99.png"]
        if curves.get("open_loop"):
            written.append("server_latency_load.png")
    peers = load(args.results, "engine_vs_peers")
    if peers:
        plot_peers(plt, peers, args.results)
        written.append("engine_vs_peers.png")
    overhead = load(args.results, "server_overhead")
    if overhead:
        plot_overhead(plt, overhead, args.results)
        written.append("server_overhead.png")
    print("plot_results: wrote %s" % ", ".join(os.path.join(args.results, w) for w in written), file=sys.stderr)
    if args.update_md:
        update_md(args.update_md, args.results)


if __name__ == "__main__":
    main()
