#!/usr/bin/python3
"""Minimal Python client of cnnserve: classify JPEG/PNG files and print the top-k classes of each.

    /usr/bin/python3 tools/python/classify.py --server 127.0.0.1:8001 --model lenet5_fashion FILE...

Security (the same flags as cnnctl and cnnload): any of --tls-ca FILE (the CA that the server's certificate must
chain to; default: the system's roots), --tls-cert FILE --tls-key FILE (a client certificate for mTLS) and
--tls-server-name NAME (the name the server's certificate must carry when the address is not in it) makes the
connection TLS; --token T (default: the environment variable CNNSERVE_TOKEN) is sent as
`authorization: Bearer T` with the call.

Needs Debian's python3-grpcio and python3-protobuf, and the stubs that the build generates from proto/ with
protoc and grpc_python_plugin into build/python (CMake target `python_stubs`; `make` builds it). The stubs are
looked up in --stubs DIR, else $CNNSERVE_PYTHON_STUBS, else build/python beside this checkout.

Exit codes: 0 success, 1 the call failed (the gRPC code and message are printed), 2 bad arguments, unreadable files
or missing stubs.
"""

import argparse
import os
import sys

TOKEN_ENV = "CNNSERVE_TOKEN"


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


def _connection_error(grpc, channel):
    """": WHY" for a channel that did not connect: gRPC's last connection error (refused, TLS handshake failed, ...),
    from one fail-fast call of the always-open health service; "" when it says nothing."""
    check = channel.unary_unary("/grpc.health.v1.Health/Check")  # bytes in and out: b"" is the overall health
    try:
        check(b"", timeout=1.0, wait_for_ready=False)
    except grpc.RpcError as e:
        return ": " + e.details() if e.details() else ""
    return ""


def _read_pem(parser, flag, path):
    """The bytes of PEM file `path` given as `flag`; a usage error (exit 2) naming both when it is unusable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        parser.error("%s '%s': cannot read the file: %s" % (flag, path, e.strerror))
    if not data:
        parser.error("%s '%s': the file is empty" % (flag, path))
    if b"-----BEGIN " not in data:
        parser.error("%s '%s': no PEM block (-----BEGIN ...) in the file" % (flag, path))
    return data


def _security(parser, args, grpc):
    """(channel credentials or None for plaintext, extra channel options, call metadata) from the flags."""
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert needs --tls-key (its private key)" if args.tls_cert
                     else "--tls-key needs --tls-cert (the client certificate)")
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV, "")
    source = "--token" if args.token is not None else TOKEN_ENV
    if args.token is not None and not token:
        parser.error("--token: must not be empty")
    for i, c in enumerate(token):
        if not "!" <= c <= "~":  # an HTTP/2 header value after "Bearer ": visible ASCII, no spaces
            parser.error("%s: the token has a character that cannot be sent in a header (position %d; allowed: "
                         "visible ASCII, no spaces)" % (source, i + 1))
    metadata = (("authorization", "Bearer " + token),) if token else ()
    if not (args.tls_ca or args.tls_cert or args.tls_server_name):
        return None, [], metadata
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read_pem(parser, "--tls-ca", args.tls_ca) if args.tls_ca else None,
        private_key=_read_pem(parser, "--tls-key", args.tls_key) if args.tls_key else None,
        certificate_chain=_read_pem(parser, "--tls-cert", args.tls_cert) if args.tls_cert else None)
    options = [("grpc.ssl_target_name_override", args.tls_server_name)] if args.tls_server_name else []
    return credentials, options, metadata


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="127.0.0.1:8001", help="HOST:PORT (default 127.0.0.1:8001)")
    p.add_argument("--model", required=True)
    p.add_argument("--version", type=int, default=0, help="0: the newest")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--timeout-s", type=float, default=30.0)
    p.add_argument("--stubs", default=os.environ.get("CNNSERVE_PYTHON_STUBS") or _default_stub_dir(),
                   help="directory of the generated cnnserve/v1/*_pb2*.py")
    p.add_argument("--tls-ca", metavar="FILE", help="PEM CA that the server's certificate must chain to (TLS)")
    p.add_argument("--tls-cert", metavar="FILE", help="PEM client certificate (mTLS; needs --tls-key)")
    p.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    p.add_argument("--tls-server-name", metavar="NAME",
                   help="the name the server's certificate must carry when the address is not in it")
    p.add_argument("--token", metavar="T",
                   help="sent as 'authorization: Bearer T' (default: $%s; never printed)" % TOKEN_ENV)
    p.add_argument("files", nargs="+", metavar="FILE")
    args = p.parse_args(argv)
    grpc, pb, pb_grpc = _import_stubs(args.stubs)
    credentials, security_options, metadata = _security(p, args, grpc)
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
    options += security_options
    if credentials is None:
        channel = grpc.insecure_channel(args.server, options=options)
    else:
        channel = grpc.secure_channel(args.server, credentials, options=options)
    with channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=min(args.timeout_s, 5.0))
        except grpc.FutureTimeoutError:
            sys.stderr.write("classify.py: cannot connect to %s: UNAVAILABLE%s\n"
                             % (args.server, _connection_error(grpc, channel)))
            return 1
        stub = pb_grpc.ClassifierStub(channel)
        try:
            response = stub.Classify(request, timeout=args.timeout_s, metadata=metadata)
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
