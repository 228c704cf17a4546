#!/usr/bin/env python3
"""Offline check of deploy/kserve (no cluster): the ServingRuntime and InferenceServices against the part of
KServe's CRD schema they use, and against what cnnserve and KServe need of each other.

  check_kserve.py SRC                    the manifests as committed (kustomization.yaml's images applied here)
  check_kserve.py SRC --rendered FILE    a `kubectl kustomize deploy/kserve` output
  check_kserve.py SRC --self-test        also: each of a list of broken copies must be rejected

1. Schema. SCHEMAS below lists, for ServingRuntime (serving.kserve.io/v1alpha1) and InferenceService
   (serving.kserve.io/v1beta1), every field the manifests may use with its type, bounds, enums and required
   fields, as KServe's API types define them (ServingRuntimeSpec, SupportedModelFormat, PredictorSpec,
   ComponentExtensionSpec, ModelSpec/ModelFormat, PredictorExtensionSpec with an inline core/v1 Container).
   A field not listed is an error, as the API server's strict field validation would make it.
2. Semantics. What makes KServe pick this runtime and route to cnnserve: runtime name or autoSelect, model format
   (and version) supported, protocolVersion set (KServe's default is v1) and offered, the container named
   kserve-container, exactly one port after KServe merges the InferenceService's container into the runtime's
   (Knative routes to one port: http1 = --http-address's port for v2, h2c = --address's port for grpc-v2),
   the model repository where the storage initializer puts storageUri (/mnt/models), probes on the gRPC health
   port, flags cnnserve knows (its usage text), --threads equal to the CPU limit, the image and uid of the
   Dockerfile, the metrics port in KServe's Prometheus annotations.
Exit 0 when every check passes, 1 otherwise.
"""
import argparse
import copy
import glob
import os
import re
import sys

import yaml

KSERVE_GROUP = "serving.kserve.io"
CONTAINER_NAME = "kserve-container"  # the predictor container KServe merges the InferenceService into
STORAGE_MOUNT = "/mnt/models"  # where KServe's storage initializer puts storageUri
STORAGE_SCHEMES = ("pvc", "s3", "gs", "https", "http", "hdfs", "webhdfs", "oci", "hf")
PROTOCOLS = ["v1", "v2", "grpc-v1", "grpc-v2"]
# Knative's port names: HTTP/1.1 or HTTP/2 cleartext (gRPC).
PORT_NAME = {"v2": "http1", "grpc-v2": "h2c"}
IMAGE_REPOSITORY = "localhost/cnnserve"

# ---- the schema subset (types as in the CRDs' openAPIV3Schema) ------------------------------------------------
STR = {"type": "string"}
BOOL = {"type": "boolean"}
INT = {"type": "integer"}
NONNEG = {"type": "integer", "minimum": 0}
STR_MAP = {"type": "object", "additionalProperties": STR}
STR_LIST = {"type": "array", "items": STR}
QUANTITY = {"type": "int-or-string", "pattern": r"^[0-9.]+(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"}
RESOURCES = {"type": "object", "properties": {"requests": {"type": "object", "additionalProperties": QUANTITY},
                                              "limits": {"type": "object", "additionalProperties": QUANTITY}}}
PORT_NUMBER = {"type": "integer", "minimum": 1, "maximum": 65535}
CONTAINER_PORT = {"type": "object", "required": ["containerPort"], "properties": {
    "containerPort": PORT_NUMBER,
    "name": {"type": "string", "pattern": r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$"},  # IANA_SVC_NAME
    "protocol": {"type": "string", "enum": ["TCP", "UDP", "SCTP"]}}}
PROBE = {"type": "object", "properties": {
    "exec": {"type": "object", "properties": {"command": STR_LIST}},
    "httpGet": {"type": "object", "required": ["port"], "properties": {
        "path": STR, "port": {"type": "int-or-string"}, "scheme": {"type": "string", "enum": ["HTTP", "HTTPS"]}}},
    "grpc": {"type": "object", "required": ["port"], "properties": {"port": PORT_NUMBER, "service": STR}},
    "initialDelaySeconds": NONNEG, "periodSeconds": {"type": "integer", "minimum": 1},
    "timeoutSeconds": {"type": "integer", "minimum": 1}, "failureThreshold": {"type": "integer", "minimum": 1},
    "successThreshold": {"type": "integer", "minimum": 1}}}
SECURITY_CONTEXT = {"type": "object", "properties": {
    "runAsNonRoot": BOOL, "runAsUser": NONNEG, "runAsGroup": NONNEG, "allowPrivilegeEscalation": BOOL,
    "readOnlyRootFilesystem": BOOL, "privileged": BOOL,
    "capabilities": {"type": "object", "properties": {"add": STR_LIST, "drop": STR_LIST}},
    "seccompProfile": {"type": "object", "required": ["type"], "properties": {
        "type": {"type": "string", "enum": ["RuntimeDefault", "Localhost", "Unconfined"]}, "localhostProfile": STR}}}}
CONTAINER_FIELDS = {
    "name": STR, "image": STR, "imagePullPolicy": {"type": "string", "enum": ["Always", "Never", "IfNotPresent"]},
    "command": STR_LIST, "args": STR_LIST,
    "env": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {"name": STR,
                                                                                             "value": STR}}},
    "ports": {"type": "array", "items": CONTAINER_PORT}, "resources": RESOURCES,
    "readinessProbe": PROBE, "livenessProbe": PROBE, "startupProbe": PROBE, "securityContext": SECURITY_CONTEXT,
    "volumeMounts": {"type": "array", "items": {"type": "object", "required": ["name", "mountPath"], "properties": {
        "name": STR, "mountPath": STR, "readOnly": BOOL, "subPath": STR}}}}
CONTAINER = {"type": "object", "required": ["name"], "properties": CONTAINER_FIELDS}
DNS_LABEL = {"type": "string", "pattern": r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"}
METADATA = {"type": "object", "required": ["name"], "properties": {
    "name": DNS_LABEL, "namespace": STR, "labels": STR_MAP, "annotations": STR_MAP}}
SUPPORTED_MODEL_FORMAT = {"type": "object", "required": ["name"], "properties": {
    "name": STR, "version": STR, "autoSelect": BOOL, "priority": {"type": "integer", "minimum": 1}}}
SERVING_RUNTIME_SPEC = {"type": "object", "required": ["containers"], "properties": {
    "supportedModelFormats": {"type": "array", "items": SUPPORTED_MODEL_FORMAT},
    "protocolVersions": {"type": "array", "items": {"type": "string", "enum": PROTOCOLS}},
    "multiModel": BOOL, "disabled": BOOL,
    "containers": {"type": "array", "minItems": 1, "items": CONTAINER},
    "volumes": {"type": "array", "items": {"type": "object", "required": ["name"], "open": True}},
    "nodeSelector": STR_MAP, "labels": STR_MAP, "annotations": STR_MAP,
    "imagePullSecrets": {"type": "array", "items": {"type": "object", "properties": {"name": STR}}}}}
MODEL_SPEC = {"type": "object", "required": ["modelFormat"], "properties": dict(CONTAINER_FIELDS, **{
    "modelFormat": {"type": "object", "required": ["name"], "properties": {"name": STR, "version": STR}},
    "runtime": STR, "runtimeVersion": STR, "protocolVersion": {"type": "string", "enum": PROTOCOLS},
    "storageUri": STR})}
PREDICTOR_SPEC = {"type": "object", "required": ["model"], "properties": {
    "model": MODEL_SPEC, "minReplicas": NONNEG, "maxReplicas": NONNEG, "scaleTarget": NONNEG,
    "scaleMetric": {"type": "string", "enum": ["cpu", "memory", "concurrency", "rps"]},
    "containerConcurrency": NONNEG, "timeout": NONNEG,
    "canaryTrafficPercent": {"type": "integer", "minimum": 0, "maximum": 100},
    "serviceAccountName": STR, "labels": STR_MAP, "annotations": STR_MAP}}


def resource(api_version, kind, spec):
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "properties": {
        "apiVersion": {"type": "string", "enum": [api_version]}, "kind": {"type": "string", "enum": [kind]},
        "metadata": METADATA, "spec": spec}}


SCHEMAS = {
    "ServingRuntime": resource(KSERVE_GROUP + "/v1alpha1", "ServingRuntime", SERVING_RUNTIME_SPEC),
    "InferenceService": resource(KSERVE_GROUP + "/v1beta1", "InferenceService", {
        "type": "object", "required": ["predictor"], "properties": {"predictor": PREDICTOR_SPEC}}),
}

TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "int-or-string": lambda v: isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def validate(value, schema, path, errors):
    """Appends to `errors` every way `value` breaks `schema` (the mini-schema above)."""
    kind = schema["type"]
    if not TYPE_CHECKS[kind](value):
        errors.append("%s: expected %s, got %s %r" % (path, kind, type(value).__name__, value))
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s: %r is not one of %s" % (path, value, schema["enum"]))
    if "pattern" in schema and not re.match(schema["pattern"], str(value)):
        errors.append("%s: %r does not match %s" % (path, value, schema["pattern"]))
    if "minimum" in schema and isinstance(value, int) and value < schema["minimum"]:
        errors.append("%s: %d is below the minimum %d" % (path, value, schema["minimum"]))
    if "maximum" in schema and isinstance(value, int) and value > schema["maximum"]:
        errors.append("%s: %d is above the maximum %d" % (path, value, schema["maximum"]))
    if kind == "array":
        if len(value) < schema.get("minItems", 0):
            errors.append("%s: needs at least %d items" % (path, schema["minItems"]))
        for i, item in enumerate(value):
            validate(item, schema["items"], "%s[%d]" % (path, i), errors)
    elif kind == "object":
        for name in schema.get("required", []):
            if name not in value:
                errors.append("%s: the required field %s is missing" % (path, name))
        for name, item in value.items():
            if "additionalProperties" in schema:
                validate(item, schema["additionalProperties"], "%s.%s" % (path, name), errors)
            elif name in schema.get("properties", {}):
                validate(item, schema["properties"][name], "%s.%s" % (path, name), errors)
            elif not schema.get("open"):
                errors.append("%s: unknown field %s" % (path, name))


# ---- facts from the sources ----------------------------------------------------------------------------------
class Facts:
    """What the manifests must agree with: cnnserve's flags (its usage text), the image's uid and tag."""

    def __init__(self, src):
        def read(path):
            with open(os.path.join(src, path)) as f:
                return f.read()
        # The string literals of server/**/*.cc: main.cc registers each flag with FlagSet by its name.
        usage = "\n".join(m.group(1)
                          for f in sorted(glob.glob(os.path.join(src, "server", "**", "*.cc"), recursive=True))
                          for m in re.finditer(r'"((?:[^"\\\n]|\\.)*)"', read(f)))
        self.flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", usage))
        version = re.search(r"project\(cnnserve VERSION ([0-9.]+)", read("CMakeLists.txt")).group(1)
        self.image = "%s:%s" % (IMAGE_REPOSITORY, version)
        dockerfile = read("Dockerfile")
        users = re.findall(r"^USER (\d+)", dockerfile[dockerfile.rindex("\nFROM "):], re.M)
        self.uid = int(users[-1]) if users else 0


# ---- loading -------------------------------------------------------------------------------------------------
def load_source(src):
    """The documents of deploy/kserve as kustomize would emit them (resources in order, images applied)."""
    base = os.path.join(src, "deploy", "kserve")
    with open(os.path.join(base, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    docs = []
    for name in kustomization.get("resources", []):
        with open(os.path.join(base, name)) as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d is not None)
    listed = set(kustomization.get("resources", []))
    unlisted = sorted(os.path.basename(p) for p in glob.glob(os.path.join(base, "*.yaml"))
                      if os.path.basename(p) not in listed | {"kustomization.yaml"})
    images = {i["name"]: "%s:%s" % (i.get("newName", i["name"]), i["newTag"]) for i in kustomization.get("images", [])}
    for doc in docs:
        if doc.get("kind") == "ServingRuntime":
            for c in doc.get("spec", {}).get("containers", []):
                c["image"] = images.get(c.get("image"), c.get("image"))
    return docs, unlisted


def load_rendered(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None], []


# ---- semantic checks -----------------------------------------------------------------------------------------
def parse_args(args):
    """{flag: [values]} of `--flag=value` arguments; others under None."""
    flags = {}
    for a in args:
        m = re.fullmatch(r"(--[a-z][a-z-]*)=(.*)", a)
        flags.setdefault(m.group(1) if m else None, []).append(m.group(2) if m else a)
    return flags


def port_of(flags, flag, errors):
    values = flags.get(flag, [])
    m = re.fullmatch(r"0\.0\.0\.0:(\d+)", values[0]) if len(values) == 1 else None
    if not m:
        errors.append("cnnserve args: need exactly one %s=0.0.0.0:PORT (every interface of the pod), got %s"
                      % (flag, values))
        return None
    return int(m.group(1))


def check_runtime_container(runtime, facts, errors):
    """The runtime's container; returns the server's ports {"http", "grpc"} (None where unusable)."""
    spec = runtime["spec"]
    containers = spec.get("containers", [])
    if [c.get("name") for c in containers] != [CONTAINER_NAME]:
        errors.append("ServingRuntime: one container named %s (KServe merges the predictor into it), got %s"
                      % (CONTAINER_NAME, [c.get("name") for c in containers]))
    c = containers[0] if containers else {}
    if c.get("image") != facts.image:
        errors.append("ServingRuntime: image %r, expected the Dockerfile's %s" % (c.get("image"), facts.image))
    flags = parse_args(c.get("args", []))
    for flag, values in flags.items():
        if flag is None:
            errors.append("cnnserve args: write flags as --flag=value, got %s" % values)
        elif flag not in facts.flags:
            errors.append("cnnserve args: %s is not a flag of cnnserve's usage text" % flag)
        elif len(values) > 1:
            errors.append("cnnserve args: %s given %d times" % (flag, len(values)))
    if flags.get("--model-repository") != [STORAGE_MOUNT]:
        errors.append("cnnserve args: --model-repository=%s (the storage initializer's mount), got %s"
                      % (STORAGE_MOUNT, flags.get("--model-repository")))
    if flags.get("--model-control-mode") != ["none"]:
        errors.append("cnnserve args: --model-control-mode=none (models come with the revision)")
    ports = {"http": port_of(flags, "--http-address", errors), "grpc": port_of(flags, "--address", errors)}
    metrics = port_of(flags, "--metrics-address", errors)
    annotations = spec.get("annotations", {})
    if metrics is not None and annotations.get("prometheus.kserve.io/port") != str(metrics):
        errors.append("ServingRuntime annotations: prometheus.kserve.io/port must be --metrics-address's %s, got %r"
                      % (metrics, annotations.get("prometheus.kserve.io/port")))
    if c.get("ports"):
        errors.append("ServingRuntime: no container ports here (KServe would merge them with the "
                      "InferenceService's: Knative routes to one port); each InferenceService declares its own")
    check_resources_and_threads(c, flags, errors)
    check_probes(c, ports["grpc"], errors)
    check_security(c.get("securityContext", {}), facts.uid, errors)
    return ports


def check_resources_and_threads(c, flags, errors):
    resources = c.get("resources", {})
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    if not limits.get("cpu") or not limits.get("memory") or requests != limits:
        errors.append("ServingRuntime resources: cpu and memory limits, requests equal to them, got %s" % resources)
    if flags.get("--threads") != [str(limits.get("cpu"))]:
        errors.append("cnnserve args: --threads=%s must equal the CPU limit %r" % (flags.get("--threads"),
                                                                                 limits.get("cpu")))


def check_probes(c, grpc_port, errors):
    expected = ["cnnserve", "--health-probe", "127.0.0.1:%s" % grpc_port]
    for name in ("readinessProbe", "livenessProbe"):
        probe = c.get(name, {})
        if probe.get("exec", {}).get("command") != expected or set(probe) & {"httpGet", "grpc"}:
            errors.append("ServingRuntime %s: exec %s only (the health service on --address, whichever port the "
                          "InferenceService exposes), got %s" % (name, expected, probe))


def check_security(sc, uid, errors):
    if not (sc.get("runAsNonRoot") is True and sc.get("runAsUser") == uid and uid != 0 and
            sc.get("allowPrivilegeEscalation") is False and sc.get("capabilities", {}).get("drop") == ["ALL"]):
        errors.append("ServingRuntime securityContext: runAsNonRoot, runAsUser %d (the image's USER), no privilege "
                      "escalation, capabilities dropped (ALL), got %s" % (uid, sc))


def format_supported(model_format, runtime, explicit):
    """KServe's match: the format's name (and version when the model gives one); autoSelect unless named."""
    for f in runtime["spec"].get("supportedModelFormats", []):
        if (explicit or f.get("autoSelect")) and f.get("name") == model_format.get("name") and \
                model_format.get("version") in (None, f.get("version")):
            return True
    return False


def check_inference_service(isvc, runtime, ports, errors):
    name = isvc["metadata"]["name"]
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    rt = model.get("runtime")
    if rt is not None and rt != runtime["metadata"]["name"]:
        errors.append("InferenceService %s: runtime %r is not the ServingRuntime %r" % (name, rt,
                                                                                      runtime["metadata"]["name"]))
    if not format_supported(model["modelFormat"], runtime, rt is not None):
        errors.append("InferenceService %s: modelFormat %s is not supported by the runtime" % (name,
                                                                                            model["modelFormat"]))
    protocol = model.get("protocolVersion")
    if protocol not in PORT_NAME or protocol not in runtime["spec"].get("protocolVersions", []):
        errors.append("InferenceService %s: protocolVersion %r (KServe assumes v1 when unset) must be one the "
                      "runtime offers of %s" % (name, protocol, sorted(PORT_NAME)))
    else:
        port = ports["http" if protocol == "v2" else "grpc"]
        want = [{"name": PORT_NAME[protocol], "containerPort": port, "protocol": "TCP"}]
        if model.get("ports") != want:
            errors.append("InferenceService %s: protocolVersion %s needs ports %s (the runtime's %s), got %s"
                          % (name, protocol, want, "--http-address" if protocol == "v2" else "--address",
                             model.get("ports")))
    uri = model.get("storageUri", "")
    if not re.match(r"^(%s)://\S+$" % "|".join(STORAGE_SCHEMES), uri):
        errors.append("InferenceService %s: storageUri %r must name the model repository (%s://...)"
                      % (name, uri, "|".join(STORAGE_SCHEMES)))
    low, high = predictor.get("minReplicas", 1), predictor.get("maxReplicas", 0)
    if low < 1 or (high and high < low):
        errors.append("InferenceService %s: minReplicas >= 1 (a cold pod loads every model first) and maxReplicas "
                      ">= minReplicas, got %s and %s" % (name, low, high))
    return protocol


def check(docs, facts, unlisted=()):
    """All errors of a set of documents (empty: they pass)."""
    errors = ["deploy/kserve/%s is not in kustomization.yaml's resources" % f for f in unlisted]
    kinds = {}
    for doc in docs:
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if kind not in SCHEMAS:
            errors.append("unexpected document kind %r" % kind)
            continue
        schema_errors = []
        validate(doc, SCHEMAS[kind], "%s/%s" % (kind, (doc.get("metadata") or {}).get("name")), schema_errors)
        errors.extend(schema_errors)
        if not schema_errors:
            kinds.setdefault(kind, []).append(doc)
    runtimes, services = kinds.get("ServingRuntime", []), kinds.get("InferenceService", [])
    if len(runtimes) != 1 or not services:
        return errors + ["need one valid ServingRuntime and InferenceServices, got %d and %d"
                         % (len(runtimes), len(services))]
    runtime = runtimes[0]
    offered = runtime["spec"].get("protocolVersions", [])
    if not {"v2", "grpc-v2"} <= set(offered) or \
            "onnx" not in [f.get("name") for f in runtime["spec"].get("supportedModelFormats", [])]:
        errors.append("ServingRuntime: protocolVersions v2 and grpc-v2 and the model format onnx, got %s" % offered)
    ports = check_runtime_container(runtime, facts, errors)
    protocols = {check_inference_service(s, runtime, ports, errors) for s in services}
    if not {"v2", "grpc-v2"} <= protocols:
        errors.append("an InferenceService example for each of v2 and grpc-v2, got %s" % sorted(map(str, protocols)))
    return errors


# ---- self-test: broken copies that must be rejected ----------------------------------------------------------
def runtime_of(docs):
    return next(d for d in docs if d["kind"] == "ServingRuntime")


def container_of(docs):
    return runtime_of(docs)["spec"]["containers"][0]


def service(docs, protocol):
    return next(d for d in docs if d["kind"] == "InferenceService" and
                d["spec"]["predictor"]["model"].get("protocolVersion") == protocol)


def model_of(docs, protocol="v2"):
    return service(docs, protocol)["spec"]["predictor"]["model"]


def replace_arg(docs, flag, value):
    c = container_of(docs)
    c["args"] = [a for a in c["args"] if not a.startswith(flag + "=")] + ([flag + "=" + value] if value else [])


# (what is broken, the change, a fragment of the error it must cause)
BROKEN = [
    ("protocolVersions typo", lambda d: runtime_of(d)["spec"].update(protocolVersions=["v2", "grpc_v2"]),
     "'grpc_v2' is not one of"),
    ("format priority 0", lambda d: runtime_of(d)["spec"]["supportedModelFormats"][0].update(priority=0),
     "below the minimum 1"),
    ("unknown spec field", lambda d: runtime_of(d)["spec"].update(
        supportedModelFormat=runtime_of(d)["spec"].pop("supportedModelFormats")), "unknown field supportedModelFormat"),
    ("no protocolVersion", lambda d: model_of(d).pop("protocolVersion"), "KServe assumes v1 when unset"),
    ("another runtime's name", lambda d: model_of(d).update(runtime="cnnserve-runtime"),
     "is not the ServingRuntime"),
    ("unsupported model format", lambda d: model_of(d)["modelFormat"].update(name="onnxruntime"),
     "is not supported by the runtime"),
    ("unsupported format version", lambda d: model_of(d)["modelFormat"].update(version="2"),
     "is not supported by the runtime"),
    ("port as a string", lambda d: model_of(d)["ports"][0].update(containerPort="8000"), "expected integer"),
    ("gRPC port named http1", lambda d: model_of(d, "grpc-v2")["ports"][0].update(name="http1"), "needs ports"),
    ("REST port is not --http-address", lambda d: replace_arg(d, "--http-address", "0.0.0.0:8080"),
     "needs ports"),
    ("HTTP only on loopback", lambda d: replace_arg(d, "--http-address", "127.0.0.1:8000"),
     "--http-address=0.0.0.0:PORT"),
    ("repository not the storage mount", lambda d: replace_arg(d, "--model-repository", "/models"),
     "--model-repository=/mnt/models"),
    ("a port in the runtime", lambda d: container_of(d).update(ports=[{"name": "http1", "containerPort": 8000}]),
     "no container ports here"),
    ("flag cnnserve lacks", lambda d: container_of(d)["args"].append("--http-port=8000"), "is not a flag"),
    ("flag as two arguments", lambda d: container_of(d)["args"].extend(["--log-level", "info"]), "--flag=value"),
    ("threads above the CPU limit", lambda d: replace_arg(d, "--threads", "4"), "must equal the CPU limit"),
    ("probe on another port", lambda d: container_of(d)["readinessProbe"]["exec"].update(
        command=["cnnserve", "--health-probe", "127.0.0.1:9000"]), "readinessProbe"),
    ("no storageUri", lambda d: model_of(d).pop("storageUri"), "storageUri"),
    ("root", lambda d: container_of(d)["securityContext"].update(runAsUser=0), "securityContext"),
    ("container name", lambda d: container_of(d).update(name="cnnserve"), "one container named kserve-container"),
    ("scaleMetric not KServe's", lambda d: service(d, "v2")["spec"]["predictor"].update(scaleMetric="latency"),
     "'latency' is not one of"),
    ("metrics annotation", lambda d: replace_arg(d, "--metrics-address", "0.0.0.0:9090"),
     "prometheus.kserve.io/port"),
    ("scale to zero", lambda d: service(d, "v2")["spec"]["predictor"].update(minReplicas=0), "minReplicas >= 1"),
    ("image not the Dockerfile's", lambda d: container_of(d).update(image="cnnserve:latest"), "image"),
]


def self_test(docs, facts):
    failures = 0
    for what, change, expected in BROKEN:
        broken = copy.deepcopy(docs)
        change(broken)
        errors = check(broken, facts)
        hit = [e for e in errors if expected in e]
        print("%s rejected: %s%s" % ("ok  " if hit else "FAIL", what,
                                     " (%s)" % hit[0] if hit else "; errors were %s" % errors))
        failures += not hit
    return failures


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="the repository's root")
    p.add_argument("--rendered", metavar="FILE", help="check this kubectl kustomize output instead")
    p.add_argument("--self-test", action="store_true", help="also check that broken copies are rejected")
    args = p.parse_args()
    facts = Facts(args.src)
    docs, unlisted = load_rendered(args.rendered) if args.rendered else load_source(args.src)
    errors = check(docs, facts, unlisted)
    for e in errors:
        print("FAIL " + e)
    print("%s: %d documents (%s), %s" % ("rendered" if args.rendered else "deploy/kserve", len(docs),
                                         ", ".join(sorted({d.get("kind", "?") for d in docs})),
                                         "%d errors" % len(errors) if errors else "all checks pass"))
    failures = len(errors)
    if args.self_test and not errors:
        failures += self_test(docs, facts)
        print("self-test: %d broken copies, %d not rejected" % (len(BROKEN), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
