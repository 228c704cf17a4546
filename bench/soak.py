#!/usr/bin/python3
"""Soak: cnnserve under mixed traffic for a long time, with its RSS sampled (issue 13).

    /usr/bin/python3 bench/soak.py [--seconds 1800] [--clients 6] [--out bench/results]

Starts build/bin/cnnserve on the default repository (127.0.0.1:0, no HTTP or metrics port) and runs --clients
client threads until --seconds have passed. Each call picks a model (every model the server lists, the ensemble
included) and a protocol (native Classify or KServe ModelInfer with encoded images) at random, with 1-8
Fashion-MNIST test images as PNG, and:
  - 5% of calls are bad inputs, one of: bytes that are not an image, a model that does not exist, a KServe FP32
    tensor of the wrong shape, an FP32 tensor holding NaN, a request without images;
  - 10% carry a 5 ms deadline; 5% are cancelled by the client after 0-20 ms.
Every answer must be one that call may get: OK for a good call (or DEADLINE_EXCEEDED / CANCELLED when it had a
deadline or was cancelled, UNAVAILABLE when the server shed it), INVALID_ARGUMENT / NOT_FOUND for a bad one.
Anything else (INTERNAL, UNKNOWN, an OK for a bad input, a crash) fails the soak.

The server's VmRSS is sampled every --sample-s seconds. After --warmup-s, the growth is the median of the last
third of the samples minus the median of the first third; the soak fails when it exceeds --max-growth-mib (or
5% of the post-warm-up RSS, whichever is larger). The server must still answer, and exit 0 on SIGTERM.

Writes OUT/soak_rss.csv (t_s, rss_mib, calls) and OUT/soak.json, and prints a summary.
Exit: 0 passed, 1 failed (the reason is printed), 2 bad arguments or missing stubs.
"""

import argparse
import json
import os
import random
import statistics
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, os.pardir))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "zoo"))

import ensemble_accuracy as ea  # noqa: E402  (the server runner, stubs and PNG encoding)

BAD_FRACTION = 0.05
DEADLINE_FRACTION = 0.10
CANCEL_FRACTION = 0.05
SHORT_DEADLINE_S = 0.005
MAX_CANCEL_DELAY_S = 0.020
CALL_TIMEOUT_S = 30.0
MAX_IMAGES = 8
IMAGE_POOL = 200
RELATIVE_GROWTH_LIMIT = 0.05
MIB = 1 << 20


class Soak:
    """The clients, the tallies and the verdict of one soak."""

    def __init__(self, grpc, native_pb, native_stub, kserve_pb, kserve_stub, models, images, seed):
        self.grpc = grpc
        self.native_pb = native_pb
        self.native = native_stub
        self.kserve_pb = kserve_pb
        self.kserve = kserve_stub
        self.models = models
        self.images = images
        self.seed = seed
        self.lock = threading.Lock()
        self.tally = {}  # (kind, code name) -> count
        self.unexpected = []  # first few unexpected answers, for the report
        self.calls = 0
        self.stop = threading.Event()

    # -- requests ------------------------------------------------------------------------------------------------

    def native_request(self, model, images):
        request = self.native_pb.ClassifyRequest(model=model, top_k=3)
        for image in images:
            request.inputs.add(image=image)
        return request

    def kserve_request(self, model, images):
        request = self.kserve_pb.ModelInferRequest(model_name=model)
        tensor = request.inputs.add(name="input", datatype="BYTES")
        tensor.shape.extend([len(images)])
        request.raw_input_contents.append(b"".join(struct.pack("<I", len(e)) + e for e in images))
        return request

    def kserve_fp32(self, model, shape, values):
        request = self.kserve_pb.ModelInferRequest(model_name=model)
        tensor = request.inputs.add(name="input", datatype="FP32")
        tensor.shape.extend(shape)
        request.raw_input_contents.append(struct.pack("<%df" % len(values), *values))
        return request

    def bad_call(self, rng, model):
        """(method, request, kind) of a bad input, and the codes it may get."""
        case = rng.randrange(5)
        if case == 0:
            return self.native.Classify, self.native_request(model, [b"\x89PNG\r\n\x1a\nnot really"]), "bad-bytes"
        if case == 1:
            return self.native.Classify, self.native_request("no_such_model", self.images[:1]), "bad-model"
        if case == 2:
            return self.kserve.ModelInfer, self.kserve_fp32(model, [1, 3, 5, 7], [0.5] * 105), "bad-shape"
        if case == 3:
            return self.kserve.ModelInfer, self.kserve_fp32(model, [1, 1, 32, 32], [float("nan")] * 1024), "bad-nan"
        return self.native.Classify, self.native_request(model, []), "bad-empty"

    def one_call(self, rng):
        model = rng.choice(self.models)
        if rng.random() < BAD_FRACTION:
            method, request, kind = self.bad_call(rng, model)
        else:
            images = rng.sample(self.images, rng.randint(1, MAX_IMAGES))
            if rng.random() < 0.5:
                method, request, kind = self.native.Classify, self.native_request(model, images), "native"
            else:
                method, request, kind = self.kserve.ModelInfer, self.kserve_request(model, images), "kserve"
        roll = rng.random()
        timeout = SHORT_DEADLINE_S if roll < DEADLINE_FRACTION else CALL_TIMEOUT_S
        cancel = DEADLINE_FRACTION <= roll < DEADLINE_FRACTION + CANCEL_FRACTION
        future = method.future(request, timeout=timeout)
        if cancel:
            time.sleep(rng.uniform(0, MAX_CANCEL_DELAY_S))
            future.cancel()
        try:
            future.result()
            code = self.grpc.StatusCode.OK
            detail = ""
        except self.grpc.FutureCancelledError:
            code = self.grpc.StatusCode.CANCELLED
            detail = "cancelled by the client"
        except self.grpc.RpcError as e:
            code = e.code()
            detail = e.details() or ""
        self.record(kind, code, detail, timeout == SHORT_DEADLINE_S, cancel)

    # -- verdict per call -------------------------------------------------------------------------------------------

    def allowed(self, kind, code, short_deadline, cancelled):
        C = self.grpc.StatusCode
        late = {C.DEADLINE_EXCEEDED} if short_deadline else set()
        gone = {C.CANCELLED} if cancelled else set()
        if kind.startswith("bad-"):
            wanted = {C.NOT_FOUND} if kind == "bad-model" else {C.INVALID_ARGUMENT}
            return code in wanted | late | gone | {C.UNAVAILABLE}
        return code in {C.OK, C.UNAVAILABLE} | late | gone

    def record(self, kind, code, detail, short_deadline, cancelled):
        ok = self.allowed(kind, code, short_deadline, cancelled)
        with self.lock:
            self.calls += 1
            key = "%s %s" % (kind, code.name)
            self.tally[key] = self.tally.get(key, 0) + 1
            if not ok and len(self.unexpected) < 20:
                self.unexpected.append("%s -> %s: %s" % (kind, code.name, detail[:200]))

    def client(self, index):
        rng = random.Random(self.seed * 1000 + index)
        while not self.stop.is_set():
            self.one_call(rng)


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS for pid %d" % pid)


def growth(samples, warmup_s):
    """(growth MiB, base MiB) between the first and last third of the samples after the warm-up."""
    after = [rss for t, rss, _ in samples if t >= warmup_s]
    if len(after) < 3:
        return None, None
    third = max(1, len(after) // 3)
    base = statistics.median(after[:third])
    return statistics.median(after[-third:]) - base, base


def list_models(stub, pb):
    response = stub.ListModels(pb.ListModelsRequest(), timeout=CALL_TIMEOUT_S)
    return sorted({m.name for m in response.models})


def parse_args(argv):
    p = argparse.ArgumentParser(description="cnnserve soak under mixed traffic, RSS sampled")
    p.add_argument("--cnnserve", default=os.path.join(ROOT, "build", "bin", "cnnserve"))
    p.add_argument("--repository", default=os.path.join(ROOT, "models", "repository"))
    p.add_argument("--stubs", default=None, help="Python gRPC stubs (default: build/python)")
    p.add_argument("--seconds", type=float, default=1800)
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--sample-s", type=float, default=10)
    p.add_argument("--warmup-s", type=float, default=120)
    p.add_argument("--max-growth-mib", type=float, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1 or args.sample_s <= 0 or args.warmup_s < 0:
        p.error("--seconds, --clients and --sample-s must be positive, --warmup-s not negative")
    if args.warmup_s >= args.seconds:
        p.error("--warmup-s must be shorter than --seconds")
    return args


def load_images():
    import train_fashion_mnist as fm
    images, _ = fm.load_split("test", fm.DATA_DIR)
    return ea.encode_images(images[:IMAGE_POOL], "png")


def sample_loop(soak, pid, start, sample_s, samples):
    while not soak.stop.wait(sample_s):
        samples.append((time.monotonic() - start, rss_mib(pid), soak.calls))


def run(args):
    grpc, native_pb, native_grpc = ea.import_stubs(args.stubs or ea.default_stub_dir(args.cnnserve))
    from inference import grpc_service_pb2 as kserve_pb, grpc_service_pb2_grpc as kserve_grpc
    images = load_images()
    server = ea.Server(args.cnnserve, args.repository,
                       ["--http-address", "none", "--metrics-address", "none"], start_timeout_s=300)
    verdict = {"passed": False}
    try:
        channel = grpc.insecure_channel(server.address)
        native = native_grpc.ClassifierStub(channel)
        models = list_models(native, native_pb)
        soak = Soak(grpc, native_pb, native, kserve_pb, kserve_grpc.GRPCInferenceServiceStub(channel), models,
                    images, args.seed)
        start = time.monotonic()
        samples = [(0.0, rss_mib(server.proc.pid), 0)]
        threads = [threading.Thread(target=soak.client, args=(i,), daemon=True) for i in range(args.clients)]
        threads.append(threading.Thread(target=sample_loop, args=(soak, server.proc.pid, start, args.sample_s,
                                                                  samples), daemon=True))
        for t in threads:
            t.start()
        while time.monotonic() - start < args.seconds and server.proc.poll() is None:
            time.sleep(min(1.0, args.sample_s))
        soak.stop.set()
        for t in threads:
            t.join(CALL_TIMEOUT_S + 5)
        alive = server.proc.poll() is None
        final_ok = False
        if alive:
            final = native.Classify(soak.native_request(models[0], images[:1]), timeout=CALL_TIMEOUT_S)
            final_ok = len(final.results) == 1
        grown, base = growth(samples, args.warmup_s)
        limit = max(args.max_growth_mib, RELATIVE_GROWTH_LIMIT * (base or 0))
        verdict = {
            "seconds": args.seconds, "clients": args.clients, "models": models, "calls": soak.calls,
            "tally": dict(sorted(soak.tally.items())), "unexpected": soak.unexpected,
            "rss_start_mib": samples[0][1], "rss_peak_mib": max(s[1] for s in samples),
            "rss_after_warmup_mib": base, "growth_mib": grown, "growth_limit_mib": limit,
            "server_alive": alive, "answers_after_soak": final_ok,
        }
    finally:
        exit_code = server.stop()
    verdict["exit_code"] = exit_code
    reasons = []
    if not verdict.get("server_alive"):
        reasons.append("the server died (log tail:\n%s)" % server.log_tail())
    if verdict.get("unexpected"):
        reasons.append("unexpected answers: %s" % "; ".join(verdict["unexpected"][:5]))
    if verdict.get("growth_mib") is None:
        reasons.append("too few RSS samples after the warm-up")
    elif verdict["growth_mib"] > verdict["growth_limit_mib"]:
        reasons.append("RSS grew %.1f MiB after the warm-up (limit %.1f)" % (verdict["growth_mib"],
                                                                             verdict["growth_limit_mib"]))
    if exit_code != 0:
        reasons.append("cnnserve exited %s on SIGTERM" % exit_code)
    verdict["passed"] = not reasons
    verdict["reasons"] = reasons
    return verdict, samples


def main(argv=None):
    args = parse_args(argv)
    verdict, samples = run(args)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "soak_rss.csv"), "w") as f:
        f.write("t_s,rss_mib,calls\n")
        for t, rss, calls in samples:
            f.write("%.1f,%.1f,%d\n" % (t, rss, calls))
    with open(os.path.join(args.out, "soak.json"), "w") as f:
        json.dump(verdict, f, indent=2)
    print("soak: %d calls in %g s by %d clients over %s" % (verdict.get("calls", 0), args.seconds, args.clients,
                                                            ", ".join(verdict.get("models", []))))
    for key, n in verdict.get("tally", {}).items():
        print("  %-32s %8d" % (key, n))
    if verdict.get("growth_mib") is not None:
        print("RSS: start %.1f MiB, after warm-up %.1f MiB, peak %.1f MiB, growth %.1f MiB (limit %.1f)" % (
            verdict["rss_start_mib"], verdict["rss_after_warmup_mib"], verdict["rss_peak_mib"],
            verdict["growth_mib"], verdict["growth_limit_mib"]))
    print("exit code on SIGTERM: %s" % verdict.get("exit_code"))
    if verdict["passed"]:
        print("soak passed")
        return 0
    print("soak FAILED: " + " | ".join(verdict["reasons"]))
    return 1


if __name__ == "__main__":
    sys.exit(main())
