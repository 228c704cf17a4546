#!/usr/bin/python3
"""Ensembles measured through the gRPC server: accuracy of every voting strategy next to every member, and the
overhead of an ensemble request against its members' requests run back to back.

    /usr/bin/python3 bench/ensemble_suite.py [--cnnserve build/bin/cnnserve] [--ensemble fashion_ensemble]
        [--count 10000] [--batches 1,8,32] [--rounds 40] [--out bench/results]

1. Builds a temporary repository: every member of ENSEMBLE (models/repository/ENSEMBLE/config.pbtxt) linked from
   models/repository, plus one ensemble entry per strategy (ens_hard_majority, ens_soft_mean, ens_weighted_soft,
   ens_geometric_mean, ens_borda, ens_max_confidence) over the same members, quorum = all members.
   WEIGHTED_SOFT's weights are fixed a priori by architecture (vgg 2, alexnet 1.5, lenet 1), not fitted to the
   test set.
2. Starts cnnserve on 127.0.0.1:0 with it and classifies the Fashion-MNIST test images (PNG bytes, as
   bench/ensemble_accuracy.py sends them) with every member and every ensemble: top-1 accuracy per model.
3. Overhead: for each batch size B, --rounds rounds of (a) one ensemble request of B images and (b) one request
   of the same B images to each member in turn (back to back, as a client without ensembles would do), in
   alternating order, sequentially on one channel after warm-up. Reports the median wall time of each and their
   ratio (a) / (b): the issue's bound is 1.10.

Writes OUT/ensemble_accuracy.{md,json} and OUT/ensemble_overhead.{md,json} and prints both tables.
Exit code: 0 done, 1 a request failed or the server did not start, 2 bad arguments.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, os.pardir))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "zoo"))

import ensemble_accuracy as ea  # noqa: E402  (the server runner, image encoding and accuracy measurement)

STRATEGIES = ["HARD_MAJORITY", "SOFT_MEAN", "WEIGHTED_SOFT", "GEOMETRIC_MEAN", "BORDA", "MAX_CONFIDENCE"]
WEIGHTS = [("vgg", 2.0), ("alexnet", 1.5), ("lenet", 1.0)]


def members_of(config_path):
    text = open(config_path).read()
    members = re.findall(r'members\s*\{\s*model:\s*"([^"]+)"', text)
    if not members:
        raise SystemExit("ensemble_suite.py: no members in %s" % config_path)
    return members


def weight_of(member):
    for prefix, weight in WEIGHTS:
        if member.startswith(prefix):
            return weight
    return 1.0


def build_repository(source, ensemble):
    members = members_of(os.path.join(source, ensemble, "config.pbtxt"))
    repo = tempfile.mkdtemp(prefix="cnnserve_ensemble_suite_")
    for m in members:
        os.symlink(os.path.join(source, m), os.path.join(repo, m))
    labels = os.path.join(source, members[0], "labels.txt")
    for strategy in STRATEGIES:
        name = "ens_" + strategy.lower()
        os.mkdir(os.path.join(repo, name))
        shutil.copy(labels, os.path.join(repo, name, "labels.txt"))
        lines = ['name: "%s"' % name, 'platform: "ensemble"', "max_batch_size: 64", "ensemble {"]
        for m in members:
            w = weight_of(m) if strategy == "WEIGHTED_SOFT" else 1.0
            lines.append('  members { model: "%s" weight: %g }' % (m, w))
        lines += ["  strategy: %s" % strategy, "  quorum: %d" % len(members), "  member_timeout_ms: 60000", "}",
                  'labels: "labels.txt"']
        with open(os.path.join(repo, name, "config.pbtxt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    return repo, members


def overhead(stub, pb, grpc, ensemble, members, encoded, batches, rounds, warmup=5):
    rows = []
    for b in batches:
        images = encoded[:b]

        def request(model):
            req = pb.ClassifyRequest(model=model, top_k=1)
            for x in images:
                req.inputs.add(image=x)
            t0 = time.perf_counter()
            resp = stub.Classify(req, timeout=120)
            dt = time.perf_counter() - t0
            if len(resp.results) != len(images):
                raise RuntimeError("%s: %d results for %d images" % (model, len(resp.results), len(images)))
            return dt

        def back_to_back():
            return sum(request(m) for m in members)

        for _ in range(warmup):
            request(ensemble)
            back_to_back()
        ens, seq = [], []
        for r in range(rounds):
            if r % 2 == 0:
                ens.append(request(ensemble))
                seq.append(back_to_back())
            else:
                seq.append(back_to_back())
                ens.append(request(ensemble))
        e, s = statistics.median(ens), statistics.median(seq)
        rows.append({"batch": b, "rounds": rounds, "ensemble_ms": round(1000 * e, 3),
                     "members_back_to_back_ms": round(1000 * s, 3), "ratio": round(e / s, 3),
                     "ensemble_p90_ms": round(1000 * sorted(ens)[int(0.9 * (len(ens) - 1))], 3),
                     "members_p90_ms": round(1000 * sorted(seq)[int(0.9 * (len(seq) - 1))], 3)})
        print("batch %3d: ensemble %.2f ms, members back to back %.2f ms, ratio %.3f" % (
            b, 1000 * e, 1000 * s, e / s), file=sys.stderr, flush=True)
    return rows


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return "%s, %d cores, %s" % (cpu, os.cpu_count() or 0, platform.platform())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cnnserve", default=os.path.join(ROOT, "build", "bin", "cnnserve"))
    p.add_argument("--repository", default=os.path.join(ROOT, "models", "repository"))
    p.add_argument("--ensemble", default="fashion_ensemble")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--batch", type=int, default=50, help="images per request in the accuracy run")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight in the accuracy run")
    p.add_argument("--batches", default="1,8,32", help="batch sizes of the overhead run")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--skip-accuracy", action="store_true")
    args = p.parse_args(argv)
    batches = [int(x) for x in args.batches.split(",") if x]
    if args.count < 1 or args.rounds < 1 or not batches or min(batches) < 1:
        p.error("--count, --rounds and --batches must be positive")
    if not os.access(args.cnnserve, os.X_OK):
        p.error("%s is not executable (build the cnnserve target)" % args.cnnserve)

    grpc, pb, pb_grpc = ea.import_stubs(ea.default_stub_dir(args.cnnserve))
    import train_fashion_mnist as fm
    images, labels = fm.load_split("test", fm.DATA_DIR)
    images, labels = images[:args.count], [int(y) for y in labels[:args.count]]
    encoded = ea.encode_images(images, "png")

    repo, members = build_repository(os.path.abspath(args.repository), args.ensemble)
    ensembles = ["ens_" + s.lower() for s in STRATEGIES]
    server = None
    accuracy, over = [], []
    rc = 0
    try:
        server = ea.Server(args.cnnserve, repo, [], 600.0)
        options = [("grpc.max_receive_message_length", 64 << 20)]
        with grpc.insecure_channel(server.address, options=options) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            stub = pb_grpc.ClassifierStub(channel)
            if not args.skip_accuracy:
                for name in members + ensembles:
                    r = ea.measure(stub, pb, grpc, name, encoded, labels, args.batch, args.concurrency, 300.0)
                    r["kind"] = "member" if name in members else "ensemble"
                    accuracy.append(r)
                    print("%-22s %s" % (name, r["error"] or "%.2f%%" % (100 * r["accuracy"])), file=sys.stderr,
                          flush=True)
                    rc = rc or (1 if r["error"] else 0)
            over = overhead(stub, pb, grpc, "ens_soft_mean", members, encoded, batches, args.rounds)
    except RuntimeError as e:
        print("ensemble_suite.py: %s" % e, file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(repo, ignore_errors=True)

    os.makedirs(args.out, exist_ok=True)
    command = "/usr/bin/python3 bench/ensemble_suite.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = "Command: `%s`  \nMachine: %s  \nDate: %s\n\n" % (command.strip(), machine(),
                                                             time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    if accuracy:
        member_acc = [r["accuracy"] for r in accuracy if r["kind"] == "member" and not r["error"]]
        best_member = max(member_acc)
        mean_member = sum(member_acc) / len(member_acc)
        lines = ["| model | kind | top-1 accuracy | vs best member | vs mean member |", "|---|---|---|---|---|"]
        for r in accuracy:
            if r["error"]:
                lines.append("| %s | %s | error: %s | | |" % (r["model"], r["kind"], r["error"]))
                continue
            lines.append("| %s | %s | %.2f%% | %+.2f | %+.2f |" % (
                r["model"], r["kind"], 100 * r["accuracy"], 100 * (r["accuracy"] - best_member),
                100 * (r["accuracy"] - mean_member)))
        table = "\n".join(lines)
        md = header + "%d Fashion-MNIST test images, PNG through native Classify.\n\n%s\n" % (len(encoded), table)
        open(os.path.join(args.out, "ensemble_accuracy.md"), "w").write(md)
        json.dump({"images": len(encoded), "members": members, "results": accuracy, "best_member": best_member,
                   "mean_member": mean_member}, open(os.path.join(args.out, "ensemble_accuracy.json"), "w"),
                  indent=2)
        print(table)
    lines = ["| batch | ensemble (median ms) | members back to back (median ms) | ratio | ensemble p90 | members p90 |",
             "|---|---|---|---|---|---|"]
    for r in over:
        lines.append("| %d | %.2f | %.2f | %.3f | %.2f | %.2f |" % (
            r["batch"], r["ensemble_ms"], r["members_back_to_back_ms"], r["ratio"], r["ensemble_p90_ms"],
            r["members_p90_ms"]))
    table = "\n".join(lines)
    md = header + ("ens_soft_mean (%d members) vs the same PNGs sent to each member in turn; sequential requests "
                   "on one channel, %d rounds in alternating order after 5 warm-up rounds.\n\n%s\n") % (
                       len(members), args.rounds, table)
    open(os.path.join(args.out, "ensemble_overhead.md"), "w").write(md)
    json.dump(over, open(os.path.join(args.out, "ensemble_overhead.json"), "w"), indent=2)
    print(table)
    return rc


if __name__ == "__main__":
    sys.exit(main())
