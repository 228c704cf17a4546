#!/usr/bin/python3
"""Minimal Python client of cnnserve: classify JPEG/PNG files and print the top-k classes of each.

    /usr/bin/python3 tools/python/classify.py --server 127.0.0.1:8001 --model lenet5_fashion FILE...

Needs Debian's python3-grpcio and python3-protobuf, and the stubs that the build generates from proto/ with
protoc and grpc_python_plugin into build/python (CMake target `python_stubs`; `make` builds it). The stubs are
looked up in --stubs DIR, else $CNNSERVE_PYTHON_STUBS, else build/python beside this checkout.

Exit codes: 0 success, 1 the call failed (the gRPC code and message are printed), 2 bad arguments or missing stubs.
"""

import argparse
import os
import sys


def _default_stub_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, os.pardir, os.pardir, "build", "python")


def _import_stubs(stub_dir):
    sys.path.insert(0, os.path.abspath(stub_dir))
    try:
        import grpc  # noqa: F401  (Debian python3-grpcio)
        from cnnserve.v1 import classifier_pb2, classifier_pb2_grpc
    except ImportError as e:
        sys.stderr.write("classify.py: cannot import the gRPC stubs from %s (%s); build the python_stubs target "
                         "and use /usr/bin/python3\n" % (stub_dir, e))
        sys.exit(2)
    return grpc, classifier_pb2, classifier_pb2_grpc


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="127.0.0.1:8001", help="HOST:PORT (default 127.0.0.1:8001)")
    p.add_argument("--model", required=True)
    p.add_argument("--version", type=int, default=0, help="0: the newest")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--timeout-s", type=float, default=30.0)
    p.add_argument("--stubs", default=os.environ.get("CNNSERVE_PYTHON_STUBS") or _default_stub_dir(),
                   help="directory of the generated cnnserve/v1/*_pb2*.py")
    p.add_argument("files", nargs="+", metavar="FILE")
    args = p.parse_args(argv)

    grpc, pb, pb_grpc = _import_stubs(args.stubs)
    request = pb.ClassifyRequest(model=args.model, version=args.version, top_k=args.top_k)
    for path in args.files:
        try:
            with open(path, "rb") as f:
                request.inputs.add(image=f.read())
        except OSError as e:
            sys.stderr.write("classify.py: cannot read %s: %s\n" % (path, e.strerror))
            return 2

    # Quick reconnects: gRPC 1.51 now and then reports a good loopback connect as failed.
    options = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
               ("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(args.server, options=options) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=min(args.timeout_s, 5.0))
        except grpc.FutureTimeoutError:
            sys.stderr.write("classify.py: cannot connect to %s: UNAVAILABLE\n" % args.server)
            return 1
        stub = pb_grpc.ClassifierStub(channel)
        try:
            response = stub.Classify(request, timeout=args.timeout_s)
        except grpc.RpcError as e:
            sys.stderr.write("classify.py: Classify failed: %s: %s\n" % (e.code().name, e.details()))
            return 1

    print("model %s version %d" % (response.model, response.version))
    for path, result in zip(args.files, response.results):
        print(path)
        for rank, c in enumerate(result.classes, 1):
            print("  %d. %-20s index %2d  probability %.6f  score %.4f"
                  % (rank, c.label, c.index, c.probability, c.score))
    return 0


if __name__ == "__main__":
    sys.exit(main())
