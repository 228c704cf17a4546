#!/usr/bin/python3
"""The null model against the bare gRPC ceiling: what cnnserve's request path costs beyond gRPC itself.

    bench/bare_ceiling.py [--build build] [--rounds 3] [--duration 3] [--concurrency 32,128] [--client-threads 2]
                          [--server-args "--max-inline-run-us 0"] [--markdown FILE] [--json FILE]

Two servers side by side: cnnserve serving lenet5_null (platform "null": the shipped lenet5_fashion's input,
preprocessing and batching, zeros instead of an engine) and build/bin/bare_grpc_server (bench/bare_grpc: the same
Classify messages answered with a fixed response by gRPC's callback API, no model, no queue), twice: as it is,
and with --decode, where each input first goes through cnnserve's own decoding and preprocessing (PrepareItem, the
call the null model makes) on the gRPC thread: the ceiling of gRPC plus decoding. The same cnnload sends the same
payloads to all three, raw float32 tensors 1x32x32 and 28x28 PNGs, closed loop at each --concurrency; the servers
take turns within every round (the order flips between rounds) and each cell is the median over rounds of the best
concurrency's requests/s. Prints a markdown table with null / bare and null / (bare + decode) (goal of issue 17:
>= 0.85; for PNGs the one against bare + decode, which does the same decoding work).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import server_curves as sc  # noqa: E402

GOAL = 0.85
PAYLOADS = [("raw tensor 1x32x32", "synthetic"), ("PNG 28x28", None)]


def best_row(doc):
    return max(doc["rows"], key=lambda r: r["requests_per_s"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--concurrency", default="32,128")
    p.add_argument("--client-threads", type=int, default=2)
    p.add_argument("--server-args", default="", help="more cnnserve flags, space-separated")
    p.add_argument("--markdown", help="also write the table here")
    p.add_argument("--json", help="write every row here")
    args = p.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    extra = ["--threads", str(args.client_threads)] if args.client_threads > 1 else []
    started = time.time()
    m = sc.machine()
    cells, commands = {}, {}
    with tempfile.TemporaryDirectory(prefix="cnnserve-bare-") as work:
        config, _, _ = sc.lenet_config()
        repo = os.path.join(work, "repository")
        sc.add_model(repo, "lenet5_null", sc.null_config(config, 10))
        payloads = [(name, inputs or sc.fashion_images(work)) for name, inputs in PAYLOADS]
        with sc.Server(args.build, repo, os.path.join(work, "cnnserve.log"), args.server_args.split()) as server, \
                sc.BareServer(args.build) as bare, sc.BareServer(args.build, decode=True) as bare_decode:
            targets = [("null", server.address), ("bare", bare.address), ("decode", bare_decode.address)]
            for rnd in range(args.rounds):
                for payload, inputs in payloads:
                    for name, address in (targets if rnd % 2 == 0 else targets[::-1]):
                        cl = sc.cnnload_args("lenet5_null", inputs, levels=levels, warmup=1, duration=args.duration,
                                             extra=extra)
                        commands[payload] = sc.shown_command(cl)
                        row = best_row(sc.run_cnnload(args.build, address, cl))
                        cells.setdefault((payload, name), []).append(row)
                sc.log("bare ceiling round %d done (%.0f s)" % (rnd + 1, time.time() - started))

    med = statistics.median
    lines = ["Machine: %s." % sc.machine_line(m), "",
             "Command: `bench/bare_ceiling.py %s` (%.0f s); cnnload: `%s`"
             % (" ".join(sys.argv[1:]), time.time() - started, commands[PAYLOADS[0][0]]), "",
             "| payload | null model req/s | bare gRPC req/s | null / bare | bare + decode req/s | null / (bare + decode)"
             " | null p99 ms | bare p99 ms | bare + decode p99 ms | rounds (null / bare / bare + decode) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    rows = []

    def verdict(ratio):
        return "**%.2f** %s" % (ratio, "meets" if ratio >= GOAL else "below")

    for payload, _ in PAYLOADS:
        null, bare, decode = (cells[(payload, name)] for name in ("null", "bare", "decode"))
        n, b, d = (med(r["requests_per_s"] for r in rs) for rs in (null, bare, decode))
        ratio, ratio_decode = n / b if b else 0, n / d if d else 0
        rows.append({"payload": payload, "null_requests_per_s": n, "bare_requests_per_s": b,
                     "bare_decode_requests_per_s": d, "ratio": ratio, "ratio_decode": ratio_decode,
                     "null": null, "bare": bare, "bare_decode": decode})
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            payload, "{:,.1f}".format(n), "{:,.1f}".format(b), verdict(ratio), "{:,.1f}".format(d),
            verdict(ratio_decode), " | ".join("%.2f" % med(r["latency_ms"]["p99"] for r in rs)
                                                for rs in (null, bare, decode)),
            " / ".join(", ".join("%.0f" % r["requests_per_s"] for r in rs) for rs in (null, bare, decode))))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": m, "rows": rows}, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
