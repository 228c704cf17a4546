#!/usr/bin/python3
"""Top-1 accuracy of served models (single models or ensembles) on the 10,000 Fashion-MNIST test images.

    /usr/bin/python3 bench/ensemble_accuracy.py [--repository models/repository] [--models a,b,c]
        [--cnnserve build/bin/cnnserve | --server HOST:PORT] [--batch 50] [--concurrency 4]
        [--count 10000] [--format png|jpeg] [--json FILE [--per-image]] [--server-arg=--threads=2 ...]

Starts `cnnserve --model-repository REPO --address 127.0.0.1:0` (the port is read from its "cnnserve listening
on HOST:PORT" line), or uses a running server with --server; asks ListModels for the models; sends the test
images as PNG files (the raw 28x28 gray pixels, as train_fashion_mnist.py --write-test-images writes them; JPEG
quality 95 with --format jpeg) in Classify requests of --batch images, --concurrency requests at a time, to each
model named by --models (default: every model with a READY version), in turn; compares the top-1 class index with
the label and prints a markdown table (model, platform, input, correct, accuracy, seconds, images/s) and, with
--json FILE, the same as JSON (--per-image: also every image's top-1 class). A started server is stopped
(SIGTERM) at the end. Ensembles are served through the same Classify RPC, so they are measured like any model.

Needs Debian's python3-grpcio/python3-protobuf/python3-pil, and the stubs the build generates (CMake target
python_stubs): --stubs DIR, else $CNNSERVE_PYTHON_STUBS, else the python/ folder beside the cnnserve binary's
bin/ folder (build-train/python for build-train/bin/cnnserve), else build/python.

Exit codes: 0 every model measured, 1 a model failed (its error is in the table/JSON) or the server did not
start, 2 bad arguments or missing stubs.
"""

import argparse
import concurrent.futures
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, os.pardir))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, "models", "zoo"))

LISTEN_RE = re.compile(r"cnnserve listening on (\S+)")


def import_stubs(stub_dir):
    sys.path.insert(0, os.path.abspath(stub_dir))
    try:
        import grpc  # noqa: F401
        from cnnserve.v1 import classifier_pb2, classifier_pb2_grpc
    except ImportError as e:
        sys.stderr.write("ensemble_accuracy.py: cannot import the gRPC stubs from %s (%s); build the python_stubs "
                         "target and use /usr/bin/python3\n" % (stub_dir, e))
        sys.exit(2)
    return grpc, classifier_pb2, classifier_pb2_grpc


def default_stub_dir(cnnserve):
    env = os.environ.get("CNNSERVE_PYTHON_STUBS")
    if env:
        return env
    if cnnserve:
        beside = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(cnnserve))), "python")
        if os.path.isdir(beside):
            return beside
    return os.path.join(ROOT, "build", "python")


def encode_images(images, fmt):
    """uint8 N x 28 x 28 -> list of PNG (or JPEG q95) file bytes."""
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is None:
        if fmt != "png":
            sys.stderr.write("ensemble_accuracy.py: --format jpeg needs PIL (python3-pil)\n")
            sys.exit(2)
        import train_fashion_mnist as fm
        return [fm._png_bytes(im) for im in images]
    out = []
    for im in images:
        buf = io.BytesIO()
        if fmt == "png":
            Image.fromarray(im, mode="L").save(buf, format="PNG")
        else:
            Image.fromarray(im, mode="L").save(buf, format="JPEG", quality=95)
        out.append(buf.getvalue())
    return out


class Server:
    """A cnnserve child process on 127.0.0.1:0; stderr goes to a temporary log file."""

    def __init__(self, binary, repository, extra_args, start_timeout_s):
        self.log = tempfile.NamedTemporaryFile(prefix="cnnserve-accuracy-", suffix=".log", delete=False)
        cmd = [binary, "--model-repository", repository, "--address", "127.0.0.1:0"] + list(extra_args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.address = None
        found = threading.Event()

        def read_stdout():
            for line in self.proc.stdout:
                m = LISTEN_RE.search(line)
                if m and not found.is_set():
                    self.address = m.group(1)
                    found.set()
            found.set()

        threading.Thread(target=read_stdout, daemon=True).start()
        if not found.wait(start_timeout_s) or self.address is None:
            self.stop()
            raise RuntimeError("cnnserve did not print its address within %g s (exit code %s); log tail:\n%s" % (
                start_timeout_s, self.proc.returncode, self.log_tail()))

    def log_tail(self, lines=20):
        try:
            with open(self.log.name, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def measure(stub, pb, grpc, model, encoded, labels, batch, concurrency, timeout_s):
    """Classify every image with `model`; returns a result dict (error set when a request failed)."""
    chunks = [(i, min(i + batch, len(encoded))) for i in range(0, len(encoded), batch)]

    def run(chunk):
        lo, hi = chunk
        req = pb.ClassifyRequest(model=model, top_k=1)
        for b in encoded[lo:hi]:
            req.inputs.add(image=b)
        resp = stub.Classify(req, timeout=timeout_s)
        if len(resp.results) != hi - lo:
            raise RuntimeError("%d results for %d images" % (len(resp.results), hi - lo))
        return lo, [r.classes[0].index if r.classes else -1 for r in resp.results], resp

    predictions = [-1] * len(encoded)
    version = None
    t0 = time.time()
    error = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(run, c) for c in chunks]
        for f in concurrent.futures.as_completed(futures):
            try:
                lo, top1, resp = f.result()
            except grpc.RpcError as e:
                error = error or "%s: %s" % (e.code().name, e.details())
                continue
            except Exception as e:  # noqa: BLE001  (report, do not hide)
                error = error or str(e)
                continue
            predictions[lo:lo + len(top1)] = top1
            version = resp.version
    seconds = time.time() - t0
    correct = sum(int(p == y) for p, y in zip(predictions, labels))
    return {"model": model, "version": version, "images": len(encoded), "correct": correct,
            "accuracy": correct / float(len(encoded)), "seconds": round(seconds, 3),
            "images_per_s": round(len(encoded) / seconds, 1) if seconds > 0 else None, "error": error,
            "top1": predictions}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repository", default=os.path.join(ROOT, "models", "repository"))
    p.add_argument("--models", help="comma-separated model names (default: every READY model, by name)")
    p.add_argument("--cnnserve", default=os.environ.get("CNNSERVE_BIN") or os.path.join(ROOT, "build", "bin",
                                                                                       "cnnserve"),
                   help="the server binary to start (default $CNNSERVE_BIN or build/bin/cnnserve)")
    p.add_argument("--server", metavar="HOST:PORT", help="use this running server instead of starting one")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra cnnserve argument (repeatable), e.g. --server-arg=--threads=2")
    p.add_argument("--stubs", help="directory of the generated cnnserve/v1/*_pb2*.py")
    p.add_argument("--batch", type=int, default=50, help="images per Classify request (default 50)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    p.add_argument("--count", type=int, default=10000, help="first N test images (default all 10,000)")
    p.add_argument("--format", choices=("png", "jpeg"), default="png")
    p.add_argument("--timeout-s", type=float, default=120.0, help="per request")
    p.add_argument("--start-timeout-s", type=float, default=600.0, help="for the server to load and warm up")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX files (default Debian's)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--per-image", action="store_true",
                   help="with --json: include each model's top-1 class index per image (\"top1\", -1: failed)")
    args = p.parse_args(argv)
    if args.batch < 1 or args.concurrency < 1 or args.count < 1:
        p.error("--batch, --concurrency and --count must be positive")

    grpc, pb, pb_grpc = import_stubs(args.stubs or default_stub_dir(None if args.server else args.cnnserve))
    import train_fashion_mnist as fm  # the project's Fashion-MNIST reader
    images, labels = fm.load_split("test", args.data_dir or fm.DATA_DIR)
    images, labels = images[:args.count], [int(y) for y in labels[:args.count]]
    encoded = encode_images(images, args.format)

    server = None
    results = []
    rc = 0
    try:
        if args.server:
            address = args.server
        else:
            if not os.access(args.cnnserve, os.X_OK):
                p.error("%s is not an executable (build the cnnserve target or pass --cnnserve)" % args.cnnserve)
            t0 = time.time()
            server = Server(args.cnnserve, args.repository, args.server_arg, args.start_timeout_s)
            address = server.address
            print("cnnserve listening on %s (started in %.1f s)" % (address, time.time() - t0), file=sys.stderr)
        options = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                   ("grpc.max_receive_message_length", 64 << 20)]
        with grpc.insecure_channel(address, options=options) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            stub = pb_grpc.ClassifierStub(channel)
            listed = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=30).models}
            if args.models:
                names = [n for n in args.models.split(",") if n]
            else:
                names = sorted(n for n, m in listed.items() if any(v.state == "READY" for v in m.versions))
                skipped = sorted(set(listed) - set(names))
                if skipped:
                    print("not READY, skipped: %s" % ", ".join(skipped), file=sys.stderr)
            for name in names:
                r = measure(stub, pb, grpc, name, encoded, labels, args.batch, args.concurrency, args.timeout_s)
                m = listed.get(name)
                r["platform"] = (m.platform or "onnx") if m is not None else ""
                r["input_shape"] = list(m.input_shape) if m is not None else []
                results.append(r)
                print("%-24s %s" % (name, "error: " + r["error"] if r["error"] else
                                    "%.2f%% (%d/%d) in %.1f s" % (100 * r["accuracy"], r["correct"], r["images"],
                                                                  r["seconds"])), file=sys.stderr, flush=True)
                if r["error"]:
                    rc = 1
    except RuntimeError as e:
        print("ensemble_accuracy.py: %s" % e, file=sys.stderr)
        return 1
    finally:
        if server is not None:
            code = server.stop()
            if code not in (0, None):
                print("cnnserve exited with %s; log %s" % (code, server.log.name), file=sys.stderr)
            else:
                os.unlink(server.log.name)

    print("| model | platform | input | correct | top-1 accuracy | seconds | images/s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        shape = "x".join(str(d) for d in r["input_shape"]) or "-"
        if r["error"]:
            print("| %s | %s | %s | error: %s | | | |" % (r["model"], r["platform"], shape, r["error"]))
        else:
            print("| %s | %s | %s | %d / %d | %.2f%% | %.1f | %.0f |" % (
                r["model"], r["platform"], shape, r["correct"], r["images"], 100 * r["accuracy"], r["seconds"],
                r["images_per_s"] or 0))
    if args.json:
        if not args.per_image:
            for r in results:
                r.pop("top1", None)
        doc = {"repository": os.path.abspath(args.repository) if not args.server else None,
               "server": args.server, "images": len(encoded), "format": args.format, "batch": args.batch,
               "concurrency": args.concurrency, "models": results}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
