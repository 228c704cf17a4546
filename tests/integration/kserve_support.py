"""Support for the KServe v2 and metrics integration tests (kserve_test.py, metrics_test.py).

A real cnnserve process on 127.0.0.1 (ports chosen by the kernel), clients built from the generated Python stubs
(proto/inference/*.proto and proto/cnnserve/v1/*.proto, build/python), the Fashion-MNIST test images written by
the CTest fixture, and a Prometheus text-format scraper. Nothing here uses the server's own code.

Environment (set by tests/integration/CMakeLists.txt): CNNSERVE_BIN_DIR (cnnserve), CNNSERVE_PYTHON_STUBS,
CNNSERVE_TESTDATA_DIR (fashion_NNNNN.png/.jpg, labels.csv, input.npy), CNNSERVE_SOURCE_DIR.
"""

import csv
import ctypes
import io
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

MODEL = "lenet5_fashion"
NUM_CLASSES = 10
INPUT_DIMS = (1, 32, 32)


def env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError("environment variable %s is not set (run through ctest)" % name)
    return value


sys.path.insert(0, env("CNNSERVE_PYTHON_STUBS"))
import grpc  # noqa: E402  (Debian python3-grpcio)
from cnnserve.v1 import classifier_pb2, classifier_pb2_grpc  # noqa: E402
from inference import grpc_service_pb2 as pb  # noqa: E402
from inference import grpc_service_pb2_grpc as pb_grpc  # noqa: E402
from inference import model_config_pb2  # noqa: E402,F401  (ModelConfig enums)

CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                   ("grpc.max_reconnect_backoff_ms", 500), ("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.max_send_message_length", 64 << 20), ("grpc.use_local_subchannel_pool", 1)]


def _die_with_parent():
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Server:
    """build/bin/cnnserve --address 127.0.0.1:0 ARGS..., started and waited for (ServerReady over KServe)."""

    LISTENING = "cnnserve listening on "
    METRICS = "cnnserve metrics on "
    HTTP = "cnnserve http on "

    def __init__(self, args, timeout_s=180):
        self.dir = tempfile.mkdtemp(prefix="cnnserve_kserve_")
        self.out_path = os.path.join(self.dir, "stdout.txt")
        self.err_path = os.path.join(self.dir, "stderr.txt")
        argv = [os.path.join(env("CNNSERVE_BIN_DIR"), "cnnserve"), "--address", "127.0.0.1:0"] + list(args)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         preexec_fn=_die_with_parent)
        self.address = None
        self.metrics_url = None
        self.http_url = None  # "http://127.0.0.1:PORT" when the HTTP front end runs
        self.channel = None
        deadline = time.monotonic() + timeout_s
        while self.address is None:
            text = self.stdout()
            for line in text.splitlines(keepends=True):
                if line.startswith(self.METRICS) and line.endswith("\n"):
                    self.metrics_url = line[len(self.METRICS):].strip()
                if line.startswith(self.HTTP) and line.endswith("\n"):
                    self.http_url = line[len(self.HTTP):].strip()
                if line.startswith(self.LISTENING) and line.endswith("\n"):
                    self.address = line[len(self.LISTENING):].strip()
            if self.address is not None:
                break
            if self.proc.poll() is not None:
                raise RuntimeError("cnnserve exited (%s) during start-up; its log:\n%s"
                                   % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("cnnserve did not start within %d s; its log:\n%s" % (timeout_s, self.log()))
            time.sleep(0.02)
        self.channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.kserve = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.native = classifier_pb2_grpc.ClassifierStub(self.channel)
        while not self.kserve.ServerReady(pb.ServerReadyRequest(), timeout=10).ready:
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("cnnserve is not ready; its log:\n" + self.log())
            time.sleep(0.05)

    def stdout(self):
        with open(self.out_path, "r", errors="replace") as f:
            return f.read()

    def log(self):
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def running(self):
        return self.proc.poll() is None

    def stop(self, timeout_s=60):
        """SIGTERM and wait; the exit code (SIGKILL after the timeout)."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------------------------------
# Test data.

class TestImages:
    """The fixture's images: names, bytes, labels; input.npy rows for the PNGs."""

    def __init__(self):
        self.dir = env("CNNSERVE_TESTDATA_DIR")
        self.rows = []
        with open(os.path.join(self.dir, "labels.csv")) as f:
            for row in csv.DictReader(f):
                self.rows.append((row["filename"], int(row["label"])))
        self._input = None

    def files(self, extension, count):
        names = [name for name, _ in self.rows if name.endswith(extension)][:count]
        assert len(names) == count, "not enough %s test images in %s" % (extension, self.dir)
        return names

    def read(self, name):
        with open(os.path.join(self.dir, name), "rb") as f:
            return f.read()

    def tensor(self, png_name):
        """The exact model input (1 x 32 x 32 float32) of a PNG, from input.npy."""
        if self._input is None:
            self._input = np.load(os.path.join(self.dir, "input.npy"))
        index = int(re.match(r"fashion_(\d+)\.png$", png_name).group(1))
        return self._input[index]

    def pixels(self, png_name, channels=1):
        """The PNG's pixels as H x W x C uint8 (decoded with PIL, not by the server)."""
        from PIL import Image
        image = Image.open(io.BytesIO(self.read(png_name)))
        image = image.convert("L" if channels == 1 else "RGB")
        array = np.asarray(image, dtype=np.uint8)
        return array.reshape(array.shape[0], array.shape[1], channels)


# ---------------------------------------------------------------------------------------------------------------
# Requests and responses.

def frame_bytes(elements):
    """KServe BYTES raw form: each element as a 4-byte little-endian length and the bytes."""
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def unframe_bytes(raw):
    elements = []
    at = 0
    while at < len(raw):
        (length,) = struct.unpack_from("<I", raw, at)
        at += 4
        elements.append(raw[at:at + length])
        at += length
    assert at == len(raw), "bad BYTES framing"
    return elements


def infer_request(model=MODEL, name="input", datatype="FP32", shape=(), raw=None, version="", request_id="",
                  outputs=()):
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    tensor = request.inputs.add(name=name, datatype=datatype)
    tensor.shape.extend(shape)
    if raw is not None:
        request.raw_input_contents.append(raw)
    for output in outputs:
        out = request.outputs.add(name=output[0])
        if len(output) > 1 and output[1] is not None:
            out.parameters["classification"].int64_param = output[1]
    return request


def fp32_request(tensors, **kwargs):
    batch = np.ascontiguousarray(np.stack(tensors).astype("<f4"))
    return infer_request(datatype="FP32", shape=batch.shape, raw=batch.tobytes(), **kwargs)


def output_rows(response, index=0):
    """An FP32 [N, C] output of a ModelInferResponse as an N x C array."""
    tensor = response.outputs[index]
    assert tensor.datatype == "FP32", tensor.datatype
    shape = tuple(tensor.shape)
    return np.frombuffer(response.raw_output_contents[index], dtype="<f4").reshape(shape)


def classification_rows(response, index=0):
    """A BYTES [N, k] classification output as N lists of (score, class index, label or None)."""
    tensor = response.outputs[index]
    assert tensor.datatype == "BYTES", tensor.datatype
    n, k = tuple(tensor.shape)
    elements = unframe_bytes(response.raw_output_contents[index])
    assert len(elements) == n * k
    rows = []
    for i in range(n):
        row = []
        for element in elements[i * k:(i + 1) * k]:
            parts = element.decode().split(":", 2)
            row.append((float(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else None))
        rows.append(row)
    return rows


def native_classify(server, images, model=MODEL):
    """The native API's result for encoded images: per image (scores[C], probabilities[C], top-1, labels)."""
    request = classifier_pb2.ClassifyRequest(model=model, top_k=NUM_CLASSES)
    for image in images:
        request.inputs.add(image=image)
    response = server.native.Classify(request, timeout=60)
    results = []
    for result in response.results:
        scores = np.zeros(NUM_CLASSES, dtype=np.float64)
        probabilities = np.zeros(NUM_CLASSES, dtype=np.float64)
        labels = {}
        for c in result.classes:
            scores[c.index] = c.score
            probabilities[c.index] = c.probability
            labels[c.index] = c.label
        results.append({"scores": scores, "probabilities": probabilities, "top1": result.classes[0].index,
                        "order": [c.index for c in result.classes], "labels": labels})
    return results


def softmax(rows):
    rows = np.asarray(rows, dtype=np.float64)
    e = np.exp(rows - rows.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------------------------
# Prometheus text format.

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(url):
    """GET url; returns (text, {(name, frozenset(labels.items())): value}, {family: type})."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, response.status
        text = response.read().decode()
    samples = {}
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return text, samples, types


def sample(samples, name, model=MODEL, version="1", **extra):
    labels = {"model": model, "version": version}
    labels.update(extra)
    return samples.get((name, frozenset(labels.items())))


def make_repository(models):
    """A temporary repository with copies of lenet5_fashion under the given names, plus optional extra folders:
    models = {name: config_text or None (None: a copy of lenet5_fashion)}. Returns its path."""
    source = os.path.join(env("CNNSERVE_SOURCE_DIR"), "models", "repository", MODEL)
    root = tempfile.mkdtemp(prefix="cnnserve_kserve_repo_")
    with open(os.path.join(source, "config.pbtxt")) as f:
        lenet_config = f.read()
    for name, config in models.items():
        folder = os.path.join(root, name)
        os.makedirs(folder)
        if config is None:
            config = lenet_config.replace('name: "%s"' % MODEL, 'name: "%s"' % name)
            shutil.copy(os.path.join(source, "labels.txt"), folder)
            os.makedirs(os.path.join(folder, "1"))
            shutil.copy(os.path.join(source, "1", "model.onnx"), os.path.join(folder, "1"))
        with open(os.path.join(folder, "config.pbtxt"), "w") as f:
            f.write(config)
    return root
