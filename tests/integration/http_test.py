"""The HTTP front end of a real cnnserve on 127.0.0.1 (--http-address 127.0.0.1:0), checked against the same
server's gRPC answers (KServe v2 and the native Classifier) for the same inputs, with Python's own HTTP client
(http.client) and raw sockets for the connection-level cases. Nothing here uses the server's code.

Run by ctest (tests/integration/CMakeLists.txt), which sets the environment kserve_support.py reads.
"""

import http.client
import json
import os
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.parse

import numpy as np

import kserve_support as ks
from kserve_support import MODEL, NUM_CLASSES, pb, classifier_pb2

ENSEMBLE = "fashion_ensemble"
# How long a test waits for the server to close a stalled connection: well above the 5 s read timeout.
CLOSE_WAIT_S = 30


class Http:
    """One keep-alive connection to the server's HTTP port."""

    def __init__(self, url, token=None):
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.token = token

    def call(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.token is not None:
            headers["Authorization"] = "Bearer " + self.token
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        return response.status, response, response.read()

    def json(self, method, path, body=None, headers=None, status=200):
        code, response, data = self.call(method, path, body, headers)
        assert code == status, "%s %s: %d %r" % (method, path, code, data[:300])
        return json.loads(data)


def raw_socket(url):
    parsed = urllib.parse.urlparse(url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=CLOSE_WAIT_S)
    return sock


def read_until_closed(sock):
    """Everything the server sends until it closes the connection (socket timeout: CLOSE_WAIT_S)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


class HttpTest(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.images = ks.TestImages()
        cls.server = ks.Server(["--http-address", "127.0.0.1:0", "--metrics-address", "none"])
        assert cls.server.http_url, "no 'cnnserve http on' line:\n" + cls.server.stdout()

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            assert cls.server.stop() == 0, "cnnserve did not exit 0 on SIGTERM"

    def setUp(self):
        self.http = Http(self.server.http_url)

    def tearDown(self):
        self.http.conn.close()

    def error(self, method, path, body=None, headers=None):
        code, _, data = self.http.call(method, path, body, headers)
        return code, json.loads(data)["error"]

    # --- health and metadata -----------------------------------------------------------------------------------

    def test_health_and_server_metadata(self):
        self.assertEqual(self.http.json("GET", "/v2/health/live"), {"live": True})
        self.assertEqual(self.http.json("GET", "/v2/health/ready"), {"ready": True})
        grpc_meta = self.server.kserve.ServerMetadata(pb.ServerMetadataRequest(), timeout=10)
        rest = self.http.json("GET", "/v2")
        self.assertEqual(rest["name"], grpc_meta.name)
        self.assertEqual(rest["version"], grpc_meta.version)
        self.assertEqual(rest["extensions"], list(grpc_meta.extensions))

    def test_model_metadata_and_ready_match_grpc(self):
        for path in ("/v2/models/" + MODEL, "/v2/models/%s/versions/1" % MODEL):
            rest = self.http.json("GET", path)
            grpc_meta = self.server.kserve.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=10)
            self.assertEqual(rest["name"], grpc_meta.name)
            self.assertEqual(rest["versions"], list(grpc_meta.versions))
            self.assertEqual(rest["platform"], grpc_meta.platform)
            self.assertEqual(rest["inputs"], [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
                                              for t in grpc_meta.inputs])
            self.assertEqual(rest["outputs"], [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
                                               for t in grpc_meta.outputs])
        self.assertEqual(self.http.json("GET", "/v2/models/%s/ready" % MODEL), {"name": MODEL, "ready": True})
        config = self.http.json("GET", "/v2/models/%s/config" % MODEL)
        self.assertEqual(config["name"], MODEL)
        self.assertEqual(config["input"][0]["dims"], ["1", "32", "32"])
        self.assertEqual(self.error("GET", "/v2/models/no_such_model")[0], 404)
        self.assertEqual(self.error("GET", "/v2/models/no_such_model/ready")[0], 404)
        code, message = self.error("GET", "/v2/models/%s/versions/abc" % MODEL)
        self.assertEqual(code, 400)
        self.assertIn("abc", message)

    # --- KServe infer -------------------------------------------------------------------------------------------

    def grpc_infer(self, request):
        return self.server.kserve.ModelInfer(request, timeout=60)

    def test_infer_json_fp32_equals_grpc(self):
        names = self.images.files(".png", 3)
        tensors = np.stack([self.images.tensor(n) for n in names]).astype(np.float32)
        body = {"id": "json-1", "inputs": [{"name": "input", "shape": list(tensors.shape), "datatype": "FP32",
                                            "data": tensors.tolist()}]}
        rest = self.http.json("POST", "/v2/models/%s/infer" % MODEL, body)
        expected = ks.output_rows(self.grpc_infer(ks.fp32_request(list(tensors))))
        self.assertEqual(rest["id"], "json-1")
        self.assertEqual(rest["model_name"], MODEL)
        self.assertEqual(rest["outputs"][0]["shape"], [3, NUM_CLASSES])
        got = np.array(rest["outputs"][0]["data"], dtype=np.float32).reshape(3, NUM_CLASSES)
        np.testing.assert_array_equal(got, expected)

    def binary_call(self, header, binary, path=None):
        header_bytes = json.dumps(header).encode()
        return self.http.call("POST", path or "/v2/models/%s/infer" % MODEL, header_bytes + binary,
                              {"Inference-Header-Content-Length": str(len(header_bytes)),
                               "Content-Type": "application/octet-stream"})

    def split_binary(self, response, data):
        length = int(response.getheader("Inference-Header-Content-Length"))
        return json.loads(data[:length]), data[length:]

    def test_infer_binary_fp32_equals_grpc(self):
        names = self.images.files(".png", 4)
        tensors = np.stack([self.images.tensor(n) for n in names]).astype("<f4")
        header = {"inputs": [{"name": "input", "shape": list(tensors.shape), "datatype": "FP32",
                              "parameters": {"binary_data_size": tensors.nbytes}}],
                  "parameters": {"binary_data_output": True}}
        code, response, data = self.binary_call(header, tensors.tobytes())
        self.assertEqual(code, 200, data[:300])
        meta, tail = self.split_binary(response, data)
        expected = self.grpc_infer(ks.fp32_request(list(tensors)))
        self.assertEqual(meta["outputs"][0]["parameters"]["binary_data_size"], len(tail))
        self.assertEqual(tail, expected.raw_output_contents[0])

    def test_infer_binary_images_with_classification_equals_grpc(self):
        for model in (MODEL, ENSEMBLE):
            names = self.images.files(".png", 3) + self.images.files(".jpg", 2)
            images = [self.images.read(n) for n in names]
            framed = ks.frame_bytes(images)
            header = {"inputs": [{"name": "input", "shape": [len(images)], "datatype": "BYTES",
                                  "parameters": {"binary_data_size": len(framed)}}],
                      "outputs": [{"name": "logits" if model == MODEL else self.output_name(model),
                                   "parameters": {"classification": 3}}]}
            code, _, data = self.binary_call(header, framed, "/v2/models/%s/infer" % model)
            self.assertEqual(code, 200, data[:300])
            rest = json.loads(data)
            request = ks.infer_request(model=model, datatype="BYTES", shape=[len(images)], raw=framed,
                                       outputs=[(header["outputs"][0]["name"], 3)])
            expected = ks.unframe_bytes(self.grpc_infer(request).raw_output_contents[0])
            self.assertEqual(rest["outputs"][0]["shape"], [len(images), 3])
            self.assertEqual([e.encode() for e in rest["outputs"][0]["data"]], expected)

    def output_name(self, model):
        meta = self.server.kserve.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=10)
        return meta.outputs[0].name

    def test_infer_json_uint8_equals_grpc(self):
        name = self.images.files(".png", 1)[0]
        pixels = self.images.pixels(name)
        body = {"inputs": [{"name": "input", "shape": [1] + list(pixels.shape), "datatype": "UINT8",
                            "data": pixels.flatten().tolist()}]}
        rest = self.http.json("POST", "/v2/models/%s/infer" % MODEL, body)
        request = ks.infer_request(datatype="UINT8", shape=[1] + list(pixels.shape), raw=pixels.tobytes())
        expected = ks.output_rows(self.grpc_infer(request))
        np.testing.assert_array_equal(np.array(rest["outputs"][0]["data"], dtype=np.float32), expected[0])

    def test_infer_bad_requests(self):
        path = "/v2/models/%s/infer" % MODEL
        good = {"name": "input", "shape": [1, 1, 32, 32], "datatype": "FP32", "data": [0.0] * 1024}
        cases = [
            (b"{not json", 400, "not valid JSON"),
            ({"inputs": "x"}, 400, "inputs is not an array"),
            ({"inputs": [dict(good, datatype="INT8")]}, 400, "INT8"),
            ({"inputs": [dict(good, datatype=7)]}, 400, "inputs[0].datatype"),
            ({"inputs": [dict(good, shape=[1, 1, 32, "x"])]}, 400, "inputs[0].shape[3]"),
            ({"inputs": [dict(good, data=[0.0] * 1000)]}, 400, "has 1000 elements"),
            ({"inputs": [dict(good, data=["a"] * 1024)]}, 400, "inputs[0].data[0]"),
            ({"inputs": [dict(good, shape=[1, 1, 16, 64])]}, 400, "does not match"),
            ({"inputs": [good], "outputs": [{"name": "nope"}]}, 400, "nope"),
            ({"inputs": [good], "outputs": [{"name": "logits", "parameters": {"classification": "x"}}]}, 400,
             "classification"),
            ({"inputs": [good], "id": 5}, 400, "id is not a string"),
        ]
        for body, status, fragment in cases:
            code, message = self.error("POST", path, body)
            self.assertEqual(code, status, (body if isinstance(body, bytes) else json.dumps(body)[:200], message))
            self.assertIn(fragment, message)
        self.assertEqual(self.error("POST", "/v2/models/no_such_model/infer", {"inputs": [good]})[0], 404)

    def test_infer_timeout_is_the_deadline(self):
        # Triton's "timeout" parameter (microseconds): 1 us has passed before the request is scheduled.
        path = "/v2/models/%s/infer" % MODEL
        good = {"name": "input", "shape": [1, 1, 32, 32], "datatype": "FP32", "data": [0.0] * 1024}
        code, message = self.error("POST", path, {"inputs": [good], "parameters": {"timeout": 1}})
        self.assertEqual(code, 504, message)
        self.assertIn("deadline", message)
        self.assertIn("outputs", self.http.json("POST", path, {"inputs": [good], "parameters": {"timeout": 60000000}}))
        for bad in (0, -3, "x", 1.5):
            code, message = self.error("POST", path, {"inputs": [good], "parameters": {"timeout": bad}})
            self.assertEqual(code, 400, (bad, message))
            self.assertIn("parameters.timeout", message)
        png = self.images.read(self.images.files(".png", 1)[0])
        native = "/v1/models/%s:classify" % MODEL
        code, message = self.error("POST", native + "?timeout=1", png, {"Content-Type": "image/png"})
        self.assertEqual(code, 504, message)
        code, message = self.error("POST", native + "?timeout=x", png, {"Content-Type": "image/png"})
        self.assertEqual(code, 400, message)
        self.assertIn("timeout", message)

    def test_too_many_header_fields_get_431(self):
        headers = "".join("X-Field-%d: v\r\n" % i for i in range(150))
        sock = raw_socket(self.server.http_url)
        sock.sendall(("GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n"
                      % headers).encode())
        answer = read_until_closed(sock)
        sock.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 431"), answer[:200])
        self.assertIn(b"at most 100 fields", answer)
        self.assertEqual(self.http.call("GET", "/v2/health/live")[0], 200)

    def test_binary_lengths_that_lie(self):
        header = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 32, 32], "datatype": "FP32",
                                         "parameters": {"binary_data_size": 4096}}]}).encode()
        data = b"\xff" * 4096  # not JSON, so that a header length that is too long shows in the JSON parse
        path = "/v2/models/%s/infer" % MODEL
        for length, tail, fragment in [(len(header) + 10, data, "not valid JSON"),
                                       (len(header) + len(data) + 1, data, "outside"),
                                       ("12x", data, "not a decimal"),
                                       (len(header), data[:-4], "add up to 4096"),
                                       (len(header), data + b"xx", "add up to 4096")]:
            code, _, body = self.http.call("POST", path, header + tail,
                                           {"Inference-Header-Content-Length": str(length)})
            self.assertEqual(code, 400, body)
            self.assertIn(fragment, json.loads(body)["error"])

    def test_statistics_and_repository_match_grpc(self):
        self.http.json("POST", "/v2/models/%s/infer" % MODEL,
                       {"inputs": [{"name": "input", "shape": [1, 1, 32, 32], "datatype": "FP32",
                                    "data": [0.5] * 1024}]})
        rest = self.http.json("GET", "/v2/models/%s/stats" % MODEL)["model_stats"][0]
        grpc_stats = self.server.kserve.ModelStatistics(pb.ModelStatisticsRequest(name=MODEL), timeout=10)
        self.assertEqual(rest["name"], MODEL)
        self.assertGreaterEqual(grpc_stats.model_stats[0].inference_count, rest["inference_count"])
        self.assertGreater(rest["inference_count"], 0)
        self.assertEqual(len(self.http.json("GET", "/v2/models/stats")["model_stats"]),
                         len(self.server.kserve.ModelStatistics(pb.ModelStatisticsRequest(), timeout=10).model_stats))
        index = self.http.json("POST", "/v2/repository/index", {})
        grpc_index = self.server.kserve.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10)
        self.assertEqual([(m["name"], m.get("version", ""), m["state"]) for m in index],
                         [(m.name, m.version, m.state) for m in grpc_index.models])
        code, message = self.error("POST", "/v2/repository/models/%s/load" % MODEL, {})
        self.assertEqual(code, 400)  # FAILED_PRECONDITION: model control mode none
        self.assertIn("none", message)

    # --- native JSON ---------------------------------------------------------------------------------------------

    def test_v1_models_and_describe_match_grpc(self):
        rest = self.http.json("GET", "/v1/models")["models"]
        grpc_models = self.server.native.ListModels(classifier_pb2.ListModelsRequest(), timeout=10).models
        self.assertEqual([m["name"] for m in rest], [m.name for m in grpc_models])
        self.assertEqual([m["input_shape"] for m in rest], [list(m.input_shape) for m in grpc_models])
        described = self.http.json("GET", "/v1/models/" + MODEL)
        grpc_described = self.server.native.DescribeModel(classifier_pb2.DescribeModelRequest(model=MODEL),
                                                          timeout=10)
        self.assertEqual(described["layer_table"], grpc_described.layer_table)
        self.assertEqual(described["total_params"], grpc_described.total_params)
        self.assertEqual([(l["name"], l["output_name"], l["op"], l["output_shape"], l["params"],
                           l["receptive_field"], l["activation_values"], l["activation_bytes"])
                          for l in described["layers"]],
                         [(l.name, l.output_name, l.op, list(l.output_shape), l.params, l.receptive_field,
                           l.activation_values, l.activation_bytes)
                          for l in grpc_described.layers])
        self.assertEqual((described["input_values"], described["total_activation_values"],
                          described["total_activation_bytes"]),
                         (grpc_described.input_values, grpc_described.total_activation_values,
                          grpc_described.total_activation_bytes))
        self.assertEqual(described["total_activation_values"],
                         described["input_values"] + sum(l["activation_values"] for l in described["layers"]))
        self.assertEqual(len(described["labels"]), NUM_CLASSES)
        self.assertEqual(self.error("GET", "/v1/models/no_such_model")[0], 404)

    def classes(self, classes):
        return [(c["index"], c["label"], np.float32(c["score"]), np.float32(c["probability"])) for c in classes]

    def grpc_classes(self, classes):
        return [(c.index, c.label, np.float32(c.score), np.float32(c.probability)) for c in classes]

    def test_v1_classify_equals_native_grpc(self):
        names = self.images.files(".png", 2) + self.images.files(".jpg", 1)
        for model in (MODEL, ENSEMBLE):
            def native(images):
                request = classifier_pb2.ClassifyRequest(model=model, top_k=4, include_member_results=True)
                for image in images:
                    request.inputs.add(image=image)
                return self.server.native.Classify(request, timeout=60)

            # One image per request as a body (against gRPC with the same one image: a batch of another size
            # may round differently), then all of them as one multipart form.
            for name in names:
                rest = self.http.json("POST", "/v1/models/%s:classify?top_k=4&members=true" % model,
                                      self.images.read(name), {"Content-Type": "image/png"})
                self.assertEqual(self.classes(rest["results"][0]["classes"]),
                                 self.grpc_classes(native([self.images.read(name)]).results[0].classes))
            expected = native([self.images.read(n) for n in names])
            boundary = "cnnserve-test-boundary"
            body = b"".join(b"--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                            b"Content-Type: application/octet-stream\r\n\r\n%s\r\n"
                            % (boundary.encode(), n.encode(), self.images.read(n)) for n in names)
            body += b"--%s--\r\n" % boundary.encode()
            rest = self.http.json("POST", "/v1/models/%s/versions/1:classify?top_k=4&members=true&timings=true"
                                  % model, body, {"Content-Type": "multipart/form-data; boundary=" + boundary})
            self.assertEqual(len(rest["results"]), len(names))
            for got, want in zip(rest["results"], expected.results):
                self.assertEqual(self.classes(got["classes"]), self.grpc_classes(want.classes))
                if model == ENSEMBLE:
                    self.assertEqual(np.float32(got["agreement"]), np.float32(want.agreement))
                    self.assertEqual(np.float32(got["margin"]), np.float32(want.margin))
                    self.assertEqual([m["model"] for m in got["members"]], [m.model for m in want.members])
                else:
                    self.assertNotIn("agreement", got)
            self.assertEqual(rest["members_total"], expected.members_total)
            self.assertEqual(set(rest["timings"]), {"decode_us", "queue_us", "inference_us", "total_us"})

    def test_v1_classify_bad_requests(self):
        path = "/v1/models/%s:classify" % MODEL
        png = self.images.read(self.images.files(".png", 1)[0])
        self.assertEqual(self.error("POST", path, png, {"Content-Type": "text/plain"})[0], 415)
        self.assertEqual(self.error("POST", path, b"not an image", {"Content-Type": "image/png"})[0], 400)
        self.assertEqual(self.error("POST", path + "?top_k=-1", png, {"Content-Type": "image/png"})[0], 400)
        self.assertEqual(self.error("POST", path + "?top_k=x", png, {"Content-Type": "image/png"})[0], 400)
        self.assertEqual(self.error("POST", path + "?members=maybe", png, {"Content-Type": "image/png"})[0], 400)
        self.assertEqual(self.error("POST", "/v1/models/nope:classify", png, {"Content-Type": "image/png"})[0], 404)

    def test_v1_explain_equals_native_grpc(self):
        png = self.images.read(self.images.files(".png", 1)[0])
        query = "?patch=8&stride=4&layer=pool2"
        rest = self.http.json("POST", "/v1/models/%s:explain%s" % (MODEL, query), png, {"Content-Type": "image/png"})
        want = self.server.native.Explain(classifier_pb2.ExplainRequest(
            model=MODEL, input=classifier_pb2.Input(image=png), patch=8, stride=4, layer="pool2"), timeout=60)
        occlusion = rest["occlusion"]
        self.assertEqual((occlusion["rows"], occlusion["cols"]), (want.occlusion.rows, want.occlusion.cols))
        self.assertEqual(occlusion["target_class"], want.occlusion.target_class)
        self.assertEqual([np.float32(v) for v in occlusion["drop"]], [np.float32(v) for v in want.occlusion.drop])
        self.assertEqual([int(d) for d in rest["features"]["shape"]], [16, 5, 5])
        self.assertEqual(len(rest["features"]["values"]), 16 * 5 * 5)
        path = "/v1/models/%s:explain" % MODEL
        self.assertEqual(self.error("POST", path + "?patch=40&stride=4", png, {"Content-Type": "image/png"})[0], 400)
        self.assertEqual(self.error("POST", path + "?patch=x", png, {"Content-Type": "image/png"})[0], 400)
        self.assertEqual(self.error("POST", path + "?layer=fc9", png, {"Content-Type": "image/png"})[0], 400)
        self.assertEqual(self.error("POST", path, png, {"Content-Type": "image/png"})[0], 400)  # neither

    # --- routing, static files, connections ---------------------------------------------------------------------

    def test_routing_errors(self):
        self.assertEqual(self.error("GET", "/no/such/route")[0], 404)
        code, response, data = self.http.call("DELETE", "/v2/health/live")
        self.assertEqual(code, 405)
        self.assertEqual(response.getheader("Allow"), "GET")
        self.assertEqual(self.error("GET", "/v2/models/%s/infer" % MODEL)[0], 405)

    def test_static_files(self):
        code, response, data = self.http.call("GET", "/")
        self.assertEqual(code, 200)
        self.assertTrue(response.getheader("Content-Type").startswith("text/html"))
        self.assertIn(b"<html", data.lower())
        code, response, _ = self.http.call("GET", "/static/app.js")
        self.assertEqual(code, 200)
        self.assertTrue(response.getheader("Content-Type").startswith("text/javascript"))
        self.assertEqual(self.http.call("GET", "/static/no_such_file.js")[0], 404)

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        sock_before = None
        for _ in range(20):
            self.assertEqual(self.http.json("GET", "/v2/health/live"), {"live": True})
            if sock_before is None:
                sock_before = self.http.conn.sock
            self.assertIs(self.http.conn.sock, sock_before)

    def test_huge_content_length_is_refused_before_the_body(self):
        sock = raw_socket(self.server.http_url)
        sock.sendall(b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000000\r\n\r\n" % MODEL.encode())
        data = read_until_closed(sock)
        sock.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:200])
        self.assertIn(b"exceeds the limit", data)

    def test_stalled_client_is_closed(self):
        # A request line that never ends: the server closes the connection after its read timeout.
        sock = raw_socket(self.server.http_url)
        sock.sendall(b"GET /v2/health/li")
        start = time.monotonic()
        read_until_closed(sock)
        sock.close()
        self.assertLess(time.monotonic() - start, CLOSE_WAIT_S)

    def test_half_closed_client_is_closed(self):
        # Headers promise a body, then the client shuts its sending side: the server must not wait for it.
        sock = raw_socket(self.server.http_url)
        sock.sendall(b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"in"
                     % MODEL.encode())
        sock.shutdown(socket.SHUT_WR)
        data = read_until_closed(sock)
        sock.close()
        self.assertNotIn(b"200 OK", data)
        # And the server still serves.
        self.assertEqual(self.http.json("GET", "/v2/health/live"), {"live": True})


class HttpAuthTest(unittest.TestCase):
    """Token scopes on HTTP: the same token file and scopes as gRPC."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="cnnserve_http_auth_")
        cls.token_file = os.path.join(cls.dir, "tokens.txt")
        with open(cls.token_file, "w") as f:
            f.write("reader-token metadata\ninfer-token infer\n")
        # ks.Server waits on KServe ServerReady, which is open.
        cls.server = ks.Server(["--http-address", "127.0.0.1:0", "--metrics-address", "none",
                                "--auth-token-file", cls.token_file])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_scopes(self):
        url = self.server.http_url
        anonymous = Http(url)
        self.assertEqual(anonymous.json("GET", "/v2/health/live"), {"live": True})  # open, as on gRPC
        self.assertEqual(anonymous.json("GET", "/v2/health/ready"), {"ready": True})
        self.assertEqual(anonymous.call("GET", "/")[0], 200)  # the page holds no data
        code, response, data = anonymous.call("GET", "/v2/models/" + MODEL)
        self.assertEqual(code, 401)
        self.assertTrue(response.getheader("WWW-Authenticate").startswith("Bearer"))
        self.assertNotIn(b"reader-token", data)
        self.assertEqual(Http(url, "wrong-token").call("GET", "/v1/models")[0], 401)
        reader = Http(url, "reader-token")
        self.assertEqual(reader.call("GET", "/v1/models")[0], 200)
        body = {"inputs": [{"name": "input", "shape": [1, 1, 32, 32], "datatype": "FP32", "data": [0.0] * 1024}]}
        code, response, _ = reader.call("POST", "/v2/models/%s/infer" % MODEL, body)
        self.assertEqual(code, 403)
        self.assertIn("insufficient_scope", response.getheader("WWW-Authenticate"))
        self.assertEqual(reader.call("GET", "/v2/models/%s/stats" % MODEL)[0], 403)
        self.assertEqual(reader.call("POST", "/v2/repository/models/%s/unload" % MODEL, {})[0], 403)
        self.assertEqual(Http(url, "infer-token").call("POST", "/v2/models/%s/infer" % MODEL, body)[0], 200)


class HttpTlsTest(unittest.TestCase):
    """--tls-cert/--tls-key (and --tls-client-ca) serve the HTTP port over TLS only, with gRPC's files."""

    def start(self, extra):
        certs = tempfile.mkdtemp(prefix="cnnserve_http_tls_")
        subprocess.run(["bash", os.path.join(os.path.dirname(os.path.abspath(__file__)), "make_test_certs.sh"),
                        certs], check=True, capture_output=True, timeout=60)
        out = open(os.path.join(certs, "stdout.txt"), "wb")
        argv = [os.path.join(ks.env("CNNSERVE_BIN_DIR"), "cnnserve"), "--address", "127.0.0.1:0",
                "--http-address", "127.0.0.1:0", "--metrics-address", "none",
                "--tls-cert", os.path.join(certs, "server.pem"), "--tls-key", os.path.join(certs, "server.key")]
        proc = subprocess.Popen(argv + [a.replace("CERTS", certs) for a in extra], stdout=out,
                                stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (proc.kill(), proc.wait(), out.close()))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            with open(out.name) as f:
                lines = [l for l in f.read().splitlines() if l.startswith(ks.Server.HTTP)]
            if lines:
                return certs, urllib.parse.urlparse(lines[0][len(ks.Server.HTTP):])
            time.sleep(0.05)
        self.fail("cnnserve with TLS did not start")

    def test_https_only(self):
        certs, url = self.start([])
        self.assertEqual(url.scheme, "https")
        context = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=60)
        for _ in range(2):  # two requests on one connection (keep-alive over TLS)
            conn.request("GET", "/v2/health/live")
            response = conn.getresponse()
            self.assertEqual((response.status, json.loads(response.read())), (200, {"live": True}))
        conn.close()
        plain = http.client.HTTPConnection(url.hostname, url.port, timeout=CLOSE_WAIT_S)
        with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
            plain.request("GET", "/v2/health/live")
            plain.getresponse().read()
        plain.close()

    def test_head_over_the_budget_gets_431_over_tls(self):
        """A 200 KB header block is cut off where it crosses the head budget (75,154 bytes with the defaults)."""
        certs, url = self.start([])
        context = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        lines = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000) for i in range(200))
        with context.wrap_socket(socket.create_connection((url.hostname, url.port), timeout=60),
                                 server_hostname=url.hostname) as tls:
            tls.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
            answer = b""
            try:
                while True:
                    data = tls.recv(4096)
                    if not data:
                        break
                    answer += data
            except (ssl.SSLError, ConnectionError):
                pass  # the close after the answer may be abrupt; the answer is what counts
        self.assertTrue(answer.startswith(b"HTTP/1.1 431"), answer[:200])
        self.assertIn(b"take more than 75154 bytes", answer)

    def test_client_certificates_required_with_client_ca(self):
        certs, url = self.start(["--tls-client-ca", "CERTS/ca.pem"])
        context = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        anonymous = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=60)
        with self.assertRaises((ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)):
            anonymous.request("GET", "/v2/health/live")
            anonymous.getresponse().read()
        context.load_cert_chain(os.path.join(certs, "client.pem"), os.path.join(certs, "client.key"))
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=60)
        conn.request("GET", "/v2/health/live")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
