#!/usr/bin/python3
"""Server overhead: what the server (gRPC, parsing, batching, scheduling) costs on top of the engine.

1. alexnet: server images/s at saturation with raw float32 tensors (cnnload --synthetic, no decoding) divided by
   `cnnbench run` images/s at the same batch size (1, 8, 32). The server's model is configured so that every run
   has exactly that batch size (max_batch_size B, preferred_batch_size [B], max_queue_delay_us 0) and requests
   carry B images each; a few requests in flight keep the queue from running dry. Target: >= 0.9. Beside it, the
   cores cnnload and the server took while the server was measured (the client shares the two cores).
   The transport's share: `cnnbench run` again, while cnnload sends the same requests (batch B, raw tensors) at
   the rate the server answered them in that round to build/bin/bare_grpc_server (gRPC and protobuf only, the
   same malloc tuning as cnnserve, a fixed answer). The client's sends and gRPC's receives then take from the
   engine what they take from it inside the server, and server / (engine beside that traffic) is what the
   server adds on top of the transport.
2. lenet5_fashion: its compute is tiny (about 20 us per image), so it is compared with the null model (platform
   "null": same input dims, preprocessing and batching, returns zeros without running an engine) on the same
   payloads, in the same server: lenet5 requests/s / null requests/s at saturation. Target: >= 0.8.
   (lenet5 server vs `cnnbench run` is reported too, for scale.)
3. cnnload's own cost: against the null model (the cheapest possible server work), CPU cores used by cnnload and
   by the server at each concurrency, and CPU microseconds per request of each: the client must stay well below
   the server.

Runs alternate and repeat --rounds times: alexnet at each batch size the server and the two `cnnbench run`s one
right after the other (the server first in even rounds, last in odd ones), lenet5 then null. Every figure is the
median over rounds; the alexnet ratios also as the median of the rounds' own ratios (paired: this machine's speed
drifts by more between minutes than within one). Writes OUT.json and OUT.md.

  bench/server_overhead.py [--build build] [--zoo DIR] [--rounds 3] [--alexnet-batch 1,8,32] [--duration S]
                           [--out bench/results/server_overhead]
  bench/server_overhead.py --pool RUN.json [RUN.json ...]
      the alexnet rounds of stored runs pooled: per batch size, the median of all rounds' own ratios (a table on
      stdout; runs before the engine-beside-traffic measurement contribute server / engine only)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_curves as sc  # noqa: E402  (the shared helpers)

ROOT = sc.ROOT
ALEXNET_TARGET = 0.9
# Proposed for issue 17 (bench/RESULTS.md): server / (the engine beside the same traffic), the median of the rounds'
# own ratios.
BESIDE_TRAFFIC_GOAL = 0.95
LENET_NULL_TARGET = 0.8


def cnnbench(build, onnx, batch, seconds, threads=2):
    cmd = [os.path.join(build, "bin", "cnnbench"), "run", onnx, "--batch", str(batch), "--threads", str(threads),
           "--seconds", "%g" % seconds, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), proc.stderr[-2000:]))
    return [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")][0]


def engine_beside_traffic(args, bare_address, onnx, batch, rate, seconds):
    """`cnnbench run` at `batch` while cnnload sends `rate` requests/s of `batch` raw tensors to the bare server:
    (cnnbench's document, cnnload's row). cnnload starts first and ends after cnnbench."""
    cl = sc.cnnload_args("alexnet", "synthetic", batch=batch, warmup=0.5, duration=seconds + 3,
                         extra=["--rate", "%.4g" % rate])
    cmd = [os.path.join(args.build, "bin", "cnnload"), "--server", bare_address, "--json", "--quiet"] + cl
    traffic = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        engine = cnnbench(args.build, onnx, batch, seconds)
        out, err = traffic.communicate(timeout=seconds + 60)
    finally:
        sc.stop_process(traffic)
    if traffic.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), traffic.returncode, err.strip()[-2000:]))
    return engine, json.loads(out)["rows"][0]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def saturation(doc):
    """The row with the most images/s."""
    return max(doc["rows"], key=lambda r: r["images_per_s"])


def alexnet_round(args, server, bare, onnx, b, duration, rnd, row, commands):
    """One round at batch `b`: the server, `cnnbench run` alone and `cnnbench run` beside the server's traffic, one
    right after the other (the server first in even rounds, last in odd ones, which send the traffic at the
    previous round's rate), appended to `row`."""
    def measure_server():
        cl = sc.cnnload_args("alexnet_b%d" % b, "synthetic", levels=[args.alexnet_concurrency], batch=b,
                             warmup=2, duration=duration)
        commands["server b%d" % b] = sc.shown_command(cl)
        cpu0, t0 = server.cpu_seconds(), time.time()
        doc = sc.run_cnnload(args.build, server.address, cl)
        # The two cores are shared: what cnnload and the server each took while the server was measured.
        row["server_cores"].append((server.cpu_seconds() - cpu0) / (time.time() - t0))
        row["client_cores"].append(saturation(doc)["client_cpu_cores"])
        row["server"].append(saturation(doc)["images_per_s"])
        row["server_errors"] = row.get("server_errors", 0) + saturation(doc)["error_count"]

    def measure_engines():
        cpu0 = server.cpu_seconds()
        row["engine"].append(cnnbench(args.build, onnx, b, duration)["images_per_s"])
        row["server_idle_cpu_s"].append(server.cpu_seconds() - cpu0)
        engine, traffic = engine_beside_traffic(args, bare.address, onnx, b, row["server"][-1] / b, duration)
        row["engine_beside"].append(engine["images_per_s"])
        row["traffic_requests_per_s"].append(traffic["requests_per_s"])
        row["traffic_errors"] += traffic["error_count"]

    if rnd % 2 == 0:
        measure_server()
        measure_engines()
    else:
        measure_engines()
        measure_server()


def round_ratios(numerators, denominators):
    """Each round's own ratio (rounds with both figures)."""
    return [n / d for n, d in zip(numerators, denominators) if n and d]


def paired_median(numerators, denominators):
    """The median of the per-round ratios."""
    return med(round_ratios(numerators, denominators))


def alexnet_part(args, work, result, start):
    config, onnx, labels = sc.zoo_config(args.zoo, "alexnet", work)
    batches = [int(b) for b in args.alexnet_batch.split(",")]
    repo = os.path.join(work, "repos", "overhead-alexnet")
    for b in batches:
        text = sc.with_fields(config, max_batch_size=b)
        text = sc.set_dynamic_batching(text, "  max_queue_delay_us: 0\n  preferred_batch_size: [%d]" % b)
        sc.add_model(repo, "alexnet_b%d" % b, text, onnx, labels)
    rows = {b: {"server": [], "engine": [], "server_idle_cpu_s": [], "client_cores": [], "server_cores": [],
                "engine_beside": [], "traffic_requests_per_s": [], "traffic_errors": 0} for b in batches}
    commands = {}
    duration = args.duration * 2
    with sc.Server(args.build, repo, os.path.join(work, "logs", "overhead-alexnet.log")) as server, \
            sc.BareServer(args.build, input_shape="3,227,227", classes=1000) as bare:
        for rnd in range(args.rounds):
            for b in batches:
                alexnet_round(args, server, bare, onnx, b, duration, rnd, rows[b], commands)
            sc.log("overhead alexnet round %d done (%.0f s)" % (rnd + 1, time.time() - start))
    out = []
    for b in batches:
        s, e = med(rows[b]["server"]), med(rows[b]["engine"])
        beside = med(rows[b]["engine_beside"])
        out.append({"batch": b, "server_images_per_s": s, "engine_images_per_s": e, "ratio": s / e if e else None,
                    "server_all": rows[b]["server"], "engine_all": rows[b]["engine"],
                    "engine_beside_traffic_images_per_s": beside,
                    "ratio_to_engine_beside_traffic": s / beside if beside else None,
                    "ratio_paired_median": paired_median(rows[b]["server"], rows[b]["engine"]),
                    "ratio_to_engine_beside_traffic_paired_median": paired_median(rows[b]["server"],
                                                                                  rows[b]["engine_beside"]),
                    "engine_beside_traffic_all": rows[b]["engine_beside"],
                    "traffic_requests_per_s_all": rows[b]["traffic_requests_per_s"],
                    "traffic_errors": rows[b]["traffic_errors"],
                    "server_errors": rows[b].get("server_errors", 0),
                    "client_cores": med(rows[b]["client_cores"]), "server_cores": med(rows[b]["server_cores"]),
                    "server_cpu_s_while_engine_ran": max(rows[b]["server_idle_cpu_s"])})
    commands["server"] = sc.shown_command(sc.cnnload_args("alexnet_bB", "synthetic", levels=[args.alexnet_concurrency],
                                                          batch="B", warmup=2, duration=duration))
    commands["engine"] = "build/bin/cnnbench run ZOO/alexnet.onnx --batch B --threads 2 --seconds %g --json" % duration
    for b in batches:
        commands["engine b%d" % b] = commands["engine"].replace("--batch B", "--batch %d" % b)
    commands["traffic"] = "build/bin/bare_grpc_server --input-shape 3,227,227 --classes 1000; " + sc.shown_command(
        sc.cnnload_args("alexnet", "synthetic", batch="B", warmup=0.5, duration=duration + 3,
                        extra=["--rate", "R"])) + " (R: the server's requests/s of that round), `cnnbench run` " \
        "started 0.5 s after it"
    result["alexnet"] = {"rows": out, "commands": commands, "target": ALEXNET_TARGET,
                         "concurrency": args.alexnet_concurrency}


def lenet_part(args, work, result, start):
    config, onnx, labels = sc.lenet_config()
    repo = os.path.join(work, "repos", "overhead-lenet")
    sc.add_model(repo, "lenet5_fashion", config, onnx, labels)
    sc.add_model(repo, "lenet5_null", sc.null_config(config, 10))
    images = sc.fashion_images(work)
    payloads = [("raw tensor 1x32x32", "synthetic"), ("PNG 28x28", images)]
    lenet_levels = [int(c) for c in args.lenet_concurrency.split(",")]
    client_threads = ["--threads", str(args.lenet_client_threads)] if args.lenet_client_threads > 1 else []
    cells = {}
    commands = {}
    with sc.Server(args.build, repo, os.path.join(work, "logs", "overhead-lenet.log")) as server:
        for rnd in range(args.rounds):
            for payload, inputs in payloads:
                models = ["lenet5_fashion", "lenet5_null"]
                if rnd % 2:
                    models.reverse()
                for model in models:
                    cl = sc.cnnload_args(model, inputs, levels=lenet_levels, warmup=1, duration=args.duration,
                                         extra=client_threads)
                    commands["%s %s" % (model, payload)] = sc.shown_command(cl)
                    doc = sc.run_cnnload(args.build, server.address, cl)
                    row = saturation(doc)
                    cells.setdefault((payload, model), []).append(row)
            sc.log("overhead lenet5/null round %d done (%.0f s)" % (rnd + 1, time.time() - start))

        # CPU per request of each model at its saturating concurrency (raw tensors): client + server.
        cpu = {}
        for model in ["lenet5_fashion", "lenet5_null"]:
            best = max(cells[("raw tensor 1x32x32", model)], key=lambda r: r["requests_per_s"])
            cl = sc.cnnload_args(model, "synthetic", levels=[best["concurrency"]], warmup=1, duration=args.duration,
                                 extra=client_threads)
            cpu0, t0 = server.cpu_seconds(), time.time()
            doc = sc.run_cnnload(args.build, server.address, cl)
            # Over the whole cnnload run (warm-up included: the same load), as in the client table below.
            server_cores = (server.cpu_seconds() - cpu0) / (time.time() - t0)
            row = doc["rows"][0]
            rps = row["requests_per_s"]
            cpu[model] = {"concurrency": best["concurrency"], "requests_per_s": rps,
                          "client_cores": row["client_cpu_cores"], "server_cores": server_cores,
                          "cpu_us_per_request": (row["client_cpu_cores"] + server_cores) / rps * 1e6 if rps else None}
            commands["cpu %s" % model] = sc.shown_command(cl)

        # cnnload's own cost against the null model: CPU of both processes at each concurrency.
        client = []
        levels = [(int(x), 1) for x in args.client_levels.split(",")]
        levels.append((levels[-1][0], 2))  # the highest level again with two client threads: not client-bound?
        for c, threads in levels:
            cl = sc.cnnload_args("lenet5_null", "synthetic", levels=[c], warmup=0.5, duration=args.duration,
                                 extra=["--threads", str(threads)] if threads > 1 else [])
            cpu0, t0 = server.cpu_seconds(), time.time()
            doc = sc.run_cnnload(args.build, server.address, cl)
            server_cores = (server.cpu_seconds() - cpu0) / (time.time() - t0)
            row = doc["rows"][0]
            rps = row["requests_per_s"]
            client.append({"concurrency": c, "threads": threads, "requests_per_s": rps, "client_cores": row["client_cpu_cores"],
                           "server_cores": server_cores,
                           "client_us_per_request": row["client_cpu_cores"] / rps * 1e6 if rps else None,
                           "server_us_per_request": server_cores / rps * 1e6 if rps else None,
                           "p50_ms": row["latency_ms"]["p50"], "p99_ms": row["latency_ms"]["p99"],
                           "client_send_us": row["client_send_us"], "errors": row["error_count"]})
            commands["client overhead c=%d t=%d" % (c, threads)] = sc.shown_command(cl)
        sc.log("cnnload overhead done (%.0f s)" % (time.time() - start))

    out = []
    for payload, _ in payloads:
        lenet = cells[(payload, "lenet5_fashion")]
        null = cells[(payload, "lenet5_null")]
        l_rps, n_rps = med([r["requests_per_s"] for r in lenet]), med([r["requests_per_s"] for r in null])
        out.append({"payload": payload, "lenet_requests_per_s": l_rps, "null_requests_per_s": n_rps,
                    "ratio": l_rps / n_rps if n_rps else None,
                    "lenet_all": [round(r["requests_per_s"], 1) for r in lenet],
                    "null_all": [round(r["requests_per_s"], 1) for r in null],
                    "lenet_concurrency": [r["concurrency"] for r in lenet],
                    "null_concurrency": [r["concurrency"] for r in null],
                    "lenet_p99_ms": med([r["latency_ms"]["p99"] for r in lenet]),
                    "null_p99_ms": med([r["latency_ms"]["p99"] for r in null]),
                    "errors": sum(r["error_count"] for r in lenet + null)})
    engine = [cnnbench(args.build, onnx, 1, args.duration)["images_per_s"] for _ in range(args.rounds)]
    commands["engine lenet5 b1"] = "build/bin/cnnbench run models/repository/lenet5_fashion/1/model.onnx " \
                                   "--batch 1 --threads 2 --seconds %g --json" % args.duration
    # The ceiling of lenet5 / null on these CPUs: the server runs lenet5_fashion on one engine thread (its
    # config) in batches of up to 32, so each image costs at least what `cnnbench run --batch 32 --threads 1`
    # spends on it, on top of the client + server CPU the null model needs per request. Even a server that
    # added nothing else could not pass null_us / (null_us + engine_us).
    engine32 = [cnnbench(args.build, onnx, 32, args.duration, threads=1)["images_per_s"] for _ in range(args.rounds)]
    commands["engine lenet5 b32 t1"] = "build/bin/cnnbench run models/repository/lenet5_fashion/1/model.onnx " \
                                       "--batch 32 --threads 1 --seconds %g --json" % args.duration
    null_us = cpu["lenet5_null"]["cpu_us_per_request"]
    lenet_us = cpu["lenet5_fashion"]["cpu_us_per_request"]
    engine_us = 1e6 / med(engine32) if med(engine32) else None
    ceiling = {"null_cpu_us_per_request": null_us, "lenet_cpu_us_per_request": lenet_us,
               "engine_cpu_us_per_image": engine_us, "cpu": cpu,
               "ratio_ceiling": null_us / (null_us + engine_us) if engine_us and null_us else None}
    result["lenet"] = {"rows": out, "target": LENET_NULL_TARGET, "engine_b1_images_per_s": med(engine),
                       "engine_b32_t1_images_per_s": med(engine32), "ceiling": ceiling,
                       "commands": commands, "levels": lenet_levels, "client_threads": args.lenet_client_threads}
    result["client"] = client
    result["client_commands"] = [commands["client overhead c=%d t=%d" % (r["concurrency"], r["threads"])]
                                 for r in client]


def pooled_markdown(paths):
    """--pool: per batch size, the median of the rounds' own ratios over every round of the runs at `paths`."""
    pool = {}
    for path in paths:
        with open(path) as f:
            for r in json.load(f)["alexnet"]["rows"]:
                p = pool.setdefault(r["batch"], {"se": [], "be": [], "sb": []})
                beside = r.get("engine_beside_traffic_all", [])
                p["se"] += round_ratios(r["server_all"], r["engine_all"])
                p["be"] += round_ratios(beside, r["engine_all"])
                p["sb"] += round_ratios(r["server_all"], beside)
    lines = ["Pooled: %s" % " ".join(os.path.basename(p) for p in paths), "",
             "| batch | rounds | server / engine | engine beside the traffic / engine | server / engine beside the "
             "traffic | rounds >= %.2f |" % BESIDE_TRAFFIC_GOAL, "|---:|---:|---:|---:|---:|---:|"]
    for b, p in sorted(pool.items()):
        share = sum(x >= BESIDE_TRAFFIC_GOAL for x in p["sb"]) / len(p["sb"]) if p["sb"] else None
        lines.append("| %d | %d | %s | %s | **%s** | %s |" % (
            b, len(p["se"]), sc.fmt(med(p["se"]), 3), sc.fmt(med(p["be"]), 3), sc.fmt(med(p["sb"]), 3),
            "%.0f%%" % (100 * share) if share is not None else "-"))
    return "\n".join(lines)


def markdown(result):
    lines = sc.header_markdown(result)
    a = result.get("alexnet")
    if a:
        lines.append("**alexnet: server vs engine at the same batch size** (raw float32 tensors, %d requests in "
                     "flight; target >= %.1f)" % (a["concurrency"], a["target"]))
        lines.append("")
        lines.append("`%s`; `%s`" % (a["commands"]["server"], a["commands"]["engine"]))
        lines.append("")
        lines.append("| batch | server images/s | `cnnbench run` images/s | server / engine | | cnnload cores | "
                     "server cores | engine beside the traffic images/s | server / that |")
        lines.append("|---:|---:|---:|---:|---|---:|---:|---:|---:|")
        for r in a["rows"]:
            ok = r["ratio"] is not None and r["ratio"] >= a["target"]
            cores = ["%.2f" % r[k] if r.get(k) is not None else "-" for k in ("client_cores", "server_cores")]
            beside = r.get("ratio_to_engine_beside_traffic")
            lines.append("| %d | %s | %s | **%.2f** | %s | %s | %s | %s | %s |" % (
                r["batch"], sc.fmt(r["server_images_per_s"]), sc.fmt(r["engine_images_per_s"]), r["ratio"] or 0,
                "meets the target" if ok else "below the target", cores[0], cores[1],
                sc.fmt(r.get("engine_beside_traffic_images_per_s")), "**%.2f**" % beside if beside else "-"))
        lines.append("")
        lines.append("Cores: medians over rounds, of the machine's two; the server's over the whole cnnload run "
                     "(warm-up included), cnnload's over its measured window. `cnnbench run` has both to itself.")
        paired = [r for r in a["rows"] if r.get("ratio_paired_median")]
        if paired:
            lines.append("")
            lines.append("Median of the rounds' own ratios (server / engine, server / engine beside the traffic): " +
                         "; ".join("batch %d **%.2f**, **%.2f**" % (
                             r["batch"], r["ratio_paired_median"],
                             r.get("ratio_to_engine_beside_traffic_paired_median") or 0) for r in paired) +
                         " (proposed goal for the second: >= %.2f)." % BESIDE_TRAFFIC_GOAL)
        if "traffic" in a["commands"]:
            lines.append("")
            lines.append("Engine beside the traffic: `%s`. The same requests at the same rate, answered by gRPC "
                         "alone: what the client and the transport take from the engine." % a["commands"]["traffic"])
        lines.append("")
    l = result.get("lenet")
    if l:
        lines.append("**lenet5_fashion vs the null model** (same server, same payload, batch 1 per request, "
                     "the best of concurrency %s with %d cnnload threads; target >= %.1f)" %
                     ("/".join(map(str, l["levels"])), l.get("client_threads", 1), l["target"]))
        lines.append("")
        lines.append("`%s` (and `--model lenet5_null`; `--synthetic` for the raw tensors)" %
                     l["commands"]["lenet5_fashion PNG 28x28"])
        lines.append("")
        lines.append("| payload | lenet5_fashion req/s | null model req/s | lenet5 / null | lenet5 p99 ms | "
                     "null p99 ms |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for r in l["rows"]:
            lines.append("| %s | %s | %s | **%.2f** | %s | %s |" % (
                r["payload"], sc.fmt(r["lenet_requests_per_s"]), sc.fmt(r["null_requests_per_s"]), r["ratio"] or 0,
                sc.fmt(r["lenet_p99_ms"], 2), sc.fmt(r["null_p99_ms"], 2)))
        lines.append("")
        lines.append("For scale: `cnnbench run` runs lenet5_fashion at %s images/s at batch 1 (engine only, no "
                     "server)." % sc.fmt(l["engine_b1_images_per_s"]))
        lines.append("")
        c = l.get("ceiling")
        if c and c.get("ratio_ceiling"):
            lines.append("Where a lenet5 request's CPU goes (raw tensors, each model at its saturating concurrency, "
                         "cnnload + server CPU over requests/s): the null model %s CPU microseconds per request, "
                         "lenet5_fashion %s; the engine alone (`cnnbench run --batch 32 --threads 1`, %s images/s; "
                         "the server runs lenet5_fashion on one engine thread in batches of up to 32) spends %s per "
                         "image, and the remaining %s is the engine running slower among the server's threads than "
                         "alone (caches shared with gRPC, a core shared with the client) plus bigger batches' "
                         "bookkeeping. Even a server that added nothing but the standalone engine's work to the null "
                         "model's path would reach %s / (%s + %s) = **%.2f** here: the 0.8 target needs LeNet-5 "
                         "itself below %s microseconds per image on one core." % (
                             sc.fmt(c["null_cpu_us_per_request"]), sc.fmt(c["lenet_cpu_us_per_request"]),
                             sc.fmt(l["engine_b32_t1_images_per_s"]), sc.fmt(c["engine_cpu_us_per_image"]),
                             sc.fmt(c["lenet_cpu_us_per_request"] - c["null_cpu_us_per_request"] -
                                    c["engine_cpu_us_per_image"]),
                             sc.fmt(c["null_cpu_us_per_request"]), sc.fmt(c["null_cpu_us_per_request"]),
                             sc.fmt(c["engine_cpu_us_per_image"]), c["ratio_ceiling"],
                             sc.fmt(c["null_cpu_us_per_request"] * 0.25)))
            lines.append("")
    c = result.get("client")
    if c:
        lines.append("**cnnload's own cost** against the null model (raw tensor 1x32x32, batch 1): CPU cores "
                     "of each process and CPU microseconds per request")
        lines.append("")
        lines.append("`%s` (server CPU from /proc over the whole cnnload run)" %
                     result["client_commands"][0].replace("--concurrency 1 ", "--concurrency C "))
        lines.append("")
        lines.append("| concurrency | cnnload threads | requests/s | cnnload cores | server cores | "
                     "cnnload us/request | server us/request | cnnload share | p50 ms | p99 ms |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in c:
            share = r["client_cores"] / (r["client_cores"] + r["server_cores"]) \
                if r["client_cores"] + r["server_cores"] > 0 else 0
            lines.append("| %d | %d | %s | %.2f | %.2f | %s | %s | %.0f%% | %s | %s |" % (
                r["concurrency"], r.get("threads", 1), sc.fmt(r["requests_per_s"]), r["client_cores"], r["server_cores"],
                sc.fmt(r["client_us_per_request"]), sc.fmt(r["server_us_per_request"]), 100 * share,
                sc.fmt(r["p50_ms"], 2), sc.fmt(r["p99_ms"], 2)))
        lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--zoo", default=sc.DEFAULT_ZOO)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per run (alexnet: twice this)")
    p.add_argument("--alexnet-batch", default="1,8,32")
    p.add_argument("--alexnet-concurrency", type=int, default=3)
    p.add_argument("--lenet-concurrency", default="32,128")
    p.add_argument("--lenet-client-threads", type=int, default=2)
    p.add_argument("--client-levels", default="1,4,16,32")
    p.add_argument("--parts", default="alexnet,lenet")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "server_overhead"))
    p.add_argument("--pool", nargs="+", metavar="RUN.json", help="pool stored runs' alexnet rounds and exit")
    args = p.parse_args()
    if args.pool:
        print(pooled_markdown(args.pool))
        return

    work = os.path.join(args.build, "bench")
    start = time.time()
    result = {"benchmark": "server_overhead", "machine": sc.machine(),
              "command": "bench/server_overhead.py " + " ".join(sys.argv[1:])}
    parts = args.parts.split(",")
    if "alexnet" in parts:
        if not os.path.exists(os.path.join(args.zoo, "alexnet.onnx")):
            sys.exit("missing %s/alexnet.onnx: run `make zoo` first" % args.zoo)
        alexnet_part(args, work, result, start)
    if "lenet" in parts:
        lenet_part(args, work, result, start)
    result["seconds"] = round(time.time() - start, 1)
    sc.write_results(args.out, result, markdown)


if __name__ == "__main__":
    main()
