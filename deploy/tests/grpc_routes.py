#!/usr/bin/python3
"""Which RPCs an address answers, with which token: the route table of deploy/nginx and the tokens of a replica.

    /usr/bin/python3 deploy/tests/grpc_routes.py --server HOST:PORT --stubs BUILD/python --via proxy|replica \
        --image FILE --client-token-file F --admin-token-file F [--tls-ca F [--tls-cert F --tls-key F]]

Calls each RPC of the table below once (one channel, TLS when --tls-ca is given) and compares the gRPC status
with what it must be. --via proxy: the address is nginx with deploy/nginx/nginx.conf in front of replicas that run
--auth-token-file and --model-control-mode none; the routed RPCs reach a replica (which checks the token), the
others are refused by nginx with PERMISSION_DENIED and nginx's message, even with a token of scope `all`.
--via replica: the same calls straight to a replica: model control is then refused by the replica's mode
(FAILED_PRECONDITION), the repository index and statistics answer, which shows that nginx is what refuses them.
The client token has scopes infer,metadata; the admin token has `all` (deploy/secrets/make-dev-secrets.sh).
Prints one line per call; exit 0 when every status is the expected one, 1 otherwise, 2 on bad arguments.
"""

import argparse
import os
import sys

NGINX_REFUSAL = "not routed by the cnnserve proxy"  # deploy/nginx/nginx.conf, @grpc_permission_denied
HEALTH_CHECK_OVERALL = b""  # grpc.health.v1.HealthCheckRequest{service: ""} on the wire
HEALTH_SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING} on the wire


def read_token(path):
    with open(path) as f:
        return f.read().strip()


def channel_for(args, grpc):
    if not args.tls_ca:
        return grpc.insecure_channel(args.server)
    with open(args.tls_ca, "rb") as f:
        root = f.read()
    key = cert = None
    if args.tls_cert:
        with open(args.tls_key, "rb") as f:
            key = f.read()
        with open(args.tls_cert, "rb") as f:
            cert = f.read()
    return grpc.secure_channel(args.server, grpc.ssl_channel_credentials(root, key, cert))


def table(args, pb, kpb):
    """(name, method path, request, token kind, expected code name, expected message part). Unload comes
    before load, so that a replica that wrongly accepted both would still serve the model."""
    with open(args.image, "rb") as f:
        image = f.read()
    classify = pb.ClassifyRequest(model=args.model, top_k=1)
    classify.inputs.add(image=image)
    proxy = args.via == "proxy"
    refused = ("PERMISSION_DENIED", NGINX_REFUSAL)
    rows = [
        ("health overall, no token", "/grpc.health.v1.Health/Check", HEALTH_CHECK_OVERALL, None, "OK", ""),
        ("ServerLive, no token", "/inference.GRPCInferenceService/ServerLive", kpb.ServerLiveRequest(), None,
         "OK", ""),
        ("ServerReady, no token", "/inference.GRPCInferenceService/ServerReady", kpb.ServerReadyRequest(), None,
         "OK", ""),
        ("Classify, no token", "/cnnserve.v1.Classifier/Classify", classify, None, "UNAUTHENTICATED", ""),
        ("Classify, client token", "/cnnserve.v1.Classifier/Classify", classify, "client", "OK", ""),
        ("ListModels, client token", "/cnnserve.v1.Classifier/ListModels", pb.ListModelsRequest(), "client",
         "OK", ""),
        ("DescribeModel, client token", "/cnnserve.v1.Classifier/DescribeModel",
         pb.DescribeModelRequest(model=args.model), "client", "OK", ""),
        ("ModelMetadata, client token", "/inference.GRPCInferenceService/ModelMetadata",
         kpb.ModelMetadataRequest(name=args.model), "client", "OK", ""),
        ("ServerMetadata, client token", "/inference.GRPCInferenceService/ServerMetadata",
         kpb.ServerMetadataRequest(), "client", "OK", ""),
        ("RepositoryModelUnload, admin token", "/inference.GRPCInferenceService/RepositoryModelUnload",
         kpb.RepositoryModelUnloadRequest(model_name=args.model), "admin",
         *(refused if proxy else ("FAILED_PRECONDITION", "none"))),
        ("RepositoryModelLoad, admin token", "/inference.GRPCInferenceService/RepositoryModelLoad",
         kpb.RepositoryModelLoadRequest(model_name=args.model), "admin",
         *(refused if proxy else ("FAILED_PRECONDITION", "none"))),
        # nginx matches the path as sent (what a replica routes on), not its normalised form.
        ("a path normalised to ListModels", "/inference.GRPCInferenceService/RepositoryModelLoad/../../"
         "cnnserve.v1.Classifier/ListModels", pb.ListModelsRequest(), "admin",
         *(refused if proxy else ("UNIMPLEMENTED", ""))),
        ("RepositoryModelLoad, no token", "/inference.GRPCInferenceService/RepositoryModelLoad",
         kpb.RepositoryModelLoadRequest(model_name=args.model), None,
         *(refused if proxy else ("UNAUTHENTICATED", ""))),
        ("RepositoryIndex, admin token", "/inference.GRPCInferenceService/RepositoryIndex",
         kpb.RepositoryIndexRequest(), "admin", *(refused if proxy else ("OK", ""))),
        ("ModelStatistics, admin token", "/inference.GRPCInferenceService/ModelStatistics",
         kpb.ModelStatisticsRequest(name=args.model), "admin", *(refused if proxy else ("OK", ""))),
        ("reflection, admin token", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None,
         "admin", *(refused if proxy else ("OK", ""))),
    ]
    return rows


def call(grpc, channel, method, request, metadata, timeout_s):
    """One call; returns (code name, details). Streams (reflection) get one empty request message."""
    identity = (lambda b: b)
    if request is None:
        stub = channel.stream_stream(method, request_serializer=identity, response_deserializer=identity)
        try:
            for _ in stub(iter([b""]), metadata=metadata, timeout=timeout_s):
                break
            return "OK", ""
        except grpc.RpcError as e:
            return e.code().name, e.details() or ""
    serialize = identity if isinstance(request, bytes) else (lambda m: m.SerializeToString())
    stub = channel.unary_unary(method, request_serializer=serialize, response_deserializer=identity)
    try:
        response = stub(request, metadata=metadata, timeout=timeout_s)
    except grpc.RpcError as e:
        return e.code().name, e.details() or ""
    if method.startswith("/grpc.health.v1.") and response != HEALTH_SERVING:
        return "OK", "health answered %r, not SERVING" % response
    return "OK", ""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True)
    p.add_argument("--stubs", required=True, help="directory of the generated cnnserve/v1 and inference stubs")
    p.add_argument("--via", required=True, choices=("proxy", "replica"))
    p.add_argument("--image", required=True, help="an image the model classifies (PNG or JPEG)")
    p.add_argument("--model", default="lenet5_fashion")
    p.add_argument("--client-token-file", required=True)
    p.add_argument("--admin-token-file", required=True)
    p.add_argument("--tls-ca")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--timeout-s", type=float, default=10.0)
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if args.tls_cert and not args.tls_ca:
        p.error("--tls-cert needs --tls-ca")

    sys.path.insert(0, os.path.abspath(args.stubs))
    import grpc  # Debian python3-grpcio
    from cnnserve.v1 import classifier_pb2 as pb
    from inference import grpc_service_pb2 as kpb

    tokens = {"client": read_token(args.client_token_file), "admin": read_token(args.admin_token_file)}
    rows = table(args, pb, kpb)
    channel = channel_for(args, grpc)
    grpc.channel_ready_future(channel).result(timeout=args.timeout_s)
    wrong = 0
    for name, method, request, token, want_code, want_text in rows:
        metadata = [("authorization", "Bearer " + tokens[token])] if token else None
        code, details = call(grpc, channel, method, request, metadata, args.timeout_s)
        ok = code == want_code and want_text in details and not details.startswith("health answered")
        wrong += not ok
        print("grpc_routes: %-4s via %s: %-36s -> %s%s (want %s%s)" % (
            "ok" if ok else "FAIL", args.via, name, code, (": " + details[:120]) if details else "", want_code,
            (" with '%s'" % want_text) if want_text else ""))
    channel.close()
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
