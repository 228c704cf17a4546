#!/usr/bin/python3
"""Bounded gRPC load for the deploy tests: Classify calls against one address (nginx or a replica).

    /usr/bin/python3 deploy/tests/grpc_load.py --server 127.0.0.1:PORT --stubs BUILD/python \
        --images DIR [--requests N | --seconds S] [--concurrency C] [--out result.json] \
        [--tls-ca CA.crt [--tls-cert C --tls-key K]] [--token-file F]

DIR holds the Fashion-MNIST test images and labels.csv that models/zoo/train_fashion_mnist.py
--write-test-images writes. C threads share one channel (one HTTP/2 connection, as a real client would), each
running one call at a time (so at most C calls are in flight), one image per call, until N calls were started or
S seconds have passed. Every call is recorded: start and end (Unix time, seconds), gRPC status code, and whether
the top-1 class equals the label. The summary goes to stdout and, with --out, the whole record as JSON.
--tls-ca: TLS, the server verified against that CA (and a client certificate with --tls-cert/--tls-key);
--token-file: every call carries `authorization: Bearer <the file's first line>`.
Exit code 0 when the run finished (whatever the calls returned: the caller judges), 2 on bad arguments.
"""

import argparse
import csv
import json
import os
import sys
import threading
import time


def load_images(folder):
    images = []
    with open(os.path.join(folder, "labels.csv"), newline="") as f:
        for row in csv.DictReader(f):
            with open(os.path.join(folder, row["filename"]), "rb") as img:
                images.append((row["filename"], img.read(), int(row["label"])))
    if not images:
        raise SystemExit("grpc_load.py: no images in %s/labels.csv" % folder)
    return images


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True)
    p.add_argument("--stubs", required=True, help="directory of the generated cnnserve/v1/*_pb2*.py")
    p.add_argument("--images", required=True)
    p.add_argument("--model", default="lenet5_fashion")
    p.add_argument("--requests", type=int, default=0, help="stop after this many calls (0: no limit)")
    p.add_argument("--seconds", type=float, default=0, help="stop starting calls after this long (0: no limit)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--timeout-s", type=float, default=10.0, help="deadline of each call")
    p.add_argument("--out", help="write every call's record here (JSON)")
    p.add_argument("--tls-ca", help="TLS: the CA that signed the server's certificate (PEM)")
    p.add_argument("--tls-cert", help="mTLS: this client certificate (PEM; with --tls-key)")
    p.add_argument("--tls-key", help="mTLS: the client certificate's key (PEM)")
    p.add_argument("--token-file", help="send the bearer token this file holds")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_cert and not args.tls_ca):
        p.error("--tls-cert and --tls-key go together, with --tls-ca")
    if args.requests <= 0 and args.seconds <= 0:
        p.error("give --requests or --seconds")
    if args.concurrency < 1:
        p.error("--concurrency must be at least 1")

    sys.path.insert(0, os.path.abspath(args.stubs))
    import grpc  # Debian python3-grpcio
    from cnnserve.v1 import classifier_pb2 as pb, classifier_pb2_grpc as pb_grpc

    images = load_images(args.images)
    options = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
               ("grpc.max_reconnect_backoff_ms", 500)]
    if args.tls_ca:
        pem = [open(f, "rb").read() if f else None for f in (args.tls_ca, args.tls_key, args.tls_cert)]
        channel = grpc.secure_channel(args.server, grpc.ssl_channel_credentials(*pem), options=options)
    else:
        channel = grpc.insecure_channel(args.server, options=options)
    metadata = None
    if args.token_file:
        with open(args.token_file) as f:
            metadata = [("authorization", "Bearer " + f.readline().strip())]
    grpc.channel_ready_future(channel).result(timeout=10)
    stub = pb_grpc.ClassifierStub(channel)

    lock = threading.Lock()
    started = [0]
    records = []
    t0 = time.time()

    def next_index():
        with lock:
            if args.requests > 0 and started[0] >= args.requests:
                return None
            if args.seconds > 0 and time.time() - t0 >= args.seconds:
                return None
            started[0] += 1
            return started[0] - 1

    def worker():
        while True:
            i = next_index()
            if i is None:
                return
            name, data, label = images[i % len(images)]
            request = pb.ClassifyRequest(model=args.model, top_k=1)
            request.inputs.add(image=data)
            start = time.time()
            code, correct, detail = "OK", False, ""
            try:
                response = stub.Classify(request, timeout=args.timeout_s, metadata=metadata)
                correct = response.results[0].classes[0].index == label
            except grpc.RpcError as e:
                code, detail = e.code().name, e.details() or ""
            end = time.time()
            with lock:
                records.append({"i": i, "file": name, "start": start, "end": end, "code": code,
                                "correct": correct, "detail": detail})

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    channel.close()

    records.sort(key=lambda r: r["i"])
    ok = [r for r in records if r["code"] == "OK"]
    failures = {}
    for r in records:
        if r["code"] != "OK":
            failures[r["code"]] = failures.get(r["code"], 0) + 1
    summary = {"server": args.server, "calls": len(records), "ok": len(ok), "failures": failures,
               "correct": sum(r["correct"] for r in ok), "seconds": round(elapsed, 3),
               "calls_per_s": round(len(records) / elapsed, 1) if elapsed > 0 else 0.0,
               "concurrency": args.concurrency, "start": t0}
    print(json.dumps(summary))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": summary, "records": records}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
