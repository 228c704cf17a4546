#!/usr/bin/python3
"""Server security overhead: what TLS and token authorization cost, against plaintext, in the same run.

Starts one cnnserve per mode on 127.0.0.1, each serving the shipped lenet5_fashion and its null-model twin
(lenet5_null: same input and batching, no engine, so the transport's cost is the largest share):
  plaintext    no TLS, no tokens
  tls          --tls-cert/--tls-key (certificates made by tests/integration/make_test_certs.sh, EC P-256)
  tls+token    the same plus --auth-token-file (a sha256: line; the client sends `authorization: Bearer ...`)
  mtls+token   with --modes: --tls-client-ca too, and cnnload presents a client certificate
and runs cnnload --synthetic (raw float32 tensors: no decoding) at a fixed concurrency on each model and mode.
Rounds alternate: within a round the modes run one after another, the order rotating between rounds, so that
noise hits every mode alike; each figure is the median over rounds. The idle servers wait while another runs.
Connections are long-lived (cnnload connects once), so the figures are the per-request cost of encryption and of
the token check, not of handshakes.

Writes OUT.json and OUT.md: requests/s, p50 and p99 latency, server CPU microseconds per request, and the ratios
to plaintext (requests/s ratio below 1 and p99 ratio above 1 are the cost).

  bench/server_security.py [--build build] [--rounds 3] [--duration S] [--concurrency 8]
                           [--models lenet5_fashion,lenet5_null] [--modes plaintext,tls,tls+token]
                           [--out bench/results/server_security]

Total time about rounds x models x modes x (warm-up + duration) plus start-up: 3 x 2 x 3 x 4 s = 72 s by default.
"""
import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_curves as sc  # noqa: E402  (the shared helpers)

ROOT = sc.ROOT
MODES = ["plaintext", "tls", "tls+token", "mtls+token"]
BENCH_TOKEN = "bench-security-token-0123456789abcdef"  # only ever on loopback, in a throwaway server


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def make_certs(work):
    """Certificates for 127.0.0.1 made by openssl (the tests' script); returns their directory."""
    certs = os.path.join(work, "security", "certs")
    subprocess.run(["/bin/bash", os.path.join(ROOT, "tests", "integration", "make_test_certs.sh"), certs],
                   check=True, stdout=subprocess.DEVNULL)
    return certs


def token_file(work):
    """A token file holding only the digest of BENCH_TOKEN, with every scope."""
    path = os.path.join(work, "security", "tokens.txt")
    sc.write_text(path, "# bench/server_security.py\nsha256:%s all\n"
                  % hashlib.sha256(BENCH_TOKEN.encode()).hexdigest())
    return path


def server_flags(mode, certs, tokens):
    flags = []
    if mode != "plaintext":
        flags += ["--tls-cert", os.path.join(certs, "server.pem"), "--tls-key", os.path.join(certs, "server.key")]
    if mode.startswith("mtls"):
        flags += ["--tls-client-ca", os.path.join(certs, "ca.pem")]
    if mode.endswith("+token"):
        flags += ["--auth-token-file", tokens]
    return flags


def client_flags(mode, certs):
    """cnnload's security flags for `mode` (the token goes through the environment, see client_env)."""
    flags = []
    if mode != "plaintext":
        flags += ["--tls-ca", os.path.join(certs, "ca.pem")]
    if mode.startswith("mtls"):
        flags += ["--tls-cert", os.path.join(certs, "client.pem"), "--tls-key", os.path.join(certs, "client.key")]
    return flags


def client_env(mode):
    return {"CNNSERVE_TOKEN": BENCH_TOKEN if mode.endswith("+token") else ""}


def measure(args, servers, certs):
    """{(model, mode): [row per round]}, each row a cnnload row plus server_cores over the run."""
    cells = {}
    modes = args.modes.split(",")
    start = time.time()
    for rnd in range(args.rounds):
        order = modes[rnd % len(modes):] + modes[:rnd % len(modes)]
        for model in args.models.split(","):
            for mode in order:
                server = servers[mode]
                cl = sc.cnnload_args(model, "synthetic", levels=[args.concurrency], warmup=args.warmup,
                                     duration=args.duration, extra=client_flags(mode, certs))
                cpu0, t0 = server.cpu_seconds(), time.time()
                doc = sc.run_cnnload(args.build, server.address, cl, env=client_env(mode))
                row = dict(doc["rows"][0], server_cores=(server.cpu_seconds() - cpu0) / (time.time() - t0),
                           security=doc.get("security"))
                cells.setdefault((model, mode), []).append(row)
        sc.log("security round %d done (%.0f s)" % (rnd + 1, time.time() - start))
    return cells


def summarize(cells, args):
    out = []
    modes = args.modes.split(",")
    for model in args.models.split(","):
        base = None
        for mode in modes:
            rows = cells[(model, mode)]
            rps = med([r["requests_per_s"] for r in rows])
            cell = {"model": model, "mode": mode, "client_security": rows[0]["security"],
                    "requests_per_s": rps,
                    "p50_ms": med([r["latency_ms"]["p50"] for r in rows]),
                    "p99_ms": med([r["latency_ms"]["p99"] for r in rows]),
                    # Server CPU over the whole cnnload run (warm-up included: the same load) per request.
                    "server_cpu_us_per_request": med([r["server_cores"] / r["requests_per_s"] * 1e6
                                                      for r in rows if r["requests_per_s"]]),
                    "requests_per_s_all": [round(r["requests_per_s"], 1) for r in rows],
                    "errors": sum(r["error_count"] for r in rows)}
            if base is None:
                base = cell
            cell["rps_vs_plaintext"] = rps / base["requests_per_s"] if base["requests_per_s"] else None
            cell["p99_vs_plaintext"] = cell["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None
            out.append(cell)
    return out


def markdown(result):
    lines = sc.header_markdown(result)
    lines += ["**TLS and tokens against plaintext** (raw float32 tensors 1x32x32, batch 1, %d requests in flight, "
              "one cnnload connection; median of %d rounds, modes alternating)" % (result["concurrency"],
                                                                                   result["rounds"]),
              "", "`%s` plus, per mode, `--tls-ca ca.pem` (TLS), `--tls-cert client.pem --tls-key client.key` "
              "(mTLS) and the token in `CNNSERVE_TOKEN`" % result["cnnload_command"], "",
              "| model | mode | requests/s | vs plaintext | p50 ms | p99 ms | p99 vs plaintext | server CPU us/request "
              "| errors |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in result["rows"]:
        lines.append("| %s | %s | %s | **%s** | %s | %s | %s | %s | %d |"
                     % (c["model"], c["mode"], sc.fmt(c["requests_per_s"]), sc.fmt(c["rps_vs_plaintext"], 2),
                        sc.fmt(c["p50_ms"], 2), sc.fmt(c["p99_ms"], 2), sc.fmt(c["p99_vs_plaintext"], 2),
                        sc.fmt(c["server_cpu_us_per_request"]), c["errors"]))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--models", default="lenet5_fashion,lenet5_null")
    p.add_argument("--modes", default="plaintext,tls,tls+token", help="first is the baseline; of " + ",".join(MODES))
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "server_security"))
    args = p.parse_args()
    for mode in args.modes.split(","):
        if mode not in MODES:
            p.error("--modes: unknown mode %r (of %s)" % (mode, ",".join(MODES)))

    work = os.path.join(args.build, "bench")
    start = time.time()
    result = {"benchmark": "server_security", "machine": sc.machine(),
              "command": "bench/server_security.py " + " ".join(sys.argv[1:]),
              "concurrency": args.concurrency, "rounds": args.rounds,
              "cnnload_command": sc.shown_command(sc.cnnload_args("MODEL", "synthetic", levels=[args.concurrency],
                                                                  warmup=args.warmup, duration=args.duration))}
    config, onnx, labels = sc.lenet_config()
    repo = os.path.join(work, "repos", "security")
    sc.add_model(repo, "lenet5_fashion", config, onnx, labels)
    sc.add_model(repo, "lenet5_null", sc.null_config(config, 10))
    certs = make_certs(work)
    tokens = token_file(work)

    servers = {}
    try:
        for mode in args.modes.split(","):
            log_path = os.path.join(work, "logs", "security-%s.log" % mode.replace("+", "-"))
            servers[mode] = sc.Server(args.build, repo, log_path, server_flags(mode, certs, tokens)).__enter__()
        cells = measure(args, servers, certs)
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)
    result["rows"] = summarize(cells, args)
    result["seconds"] = round(time.time() - start, 1)
    sc.write_results(args.out, result, markdown)


if __name__ == "__main__":
    main()
