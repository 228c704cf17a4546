#!/usr/bin/python3
"""Invariants of the deployment files that yamllint cannot see (Debian's python3-yaml; no cluster needed).

    /usr/bin/python3 deploy/tests/check_manifests.py [SOURCE_DIR] [--rendered FILE [--expect-arg ARG]...]
                                                     [--monitoring-namespace NS]

Checks deploy/k8s (the kustomize base, as `kubectl kustomize` would assemble it, or the objects of FILE, the output
of `kubectl kustomize` for the base or an overlay), deploy/compose.yaml and deploy/nginx against each other and
against what they run: the root Dockerfile (ports, user, image, health check), the entrypoint's defaults, the
server's usage text (flags and the default drain timeout) and CMakeLists.txt (the version that tags the image).
Security: TLS certificate/key and the token file come from read-only Secret mounts (no Secret is committed), the
probes speak TLS to the gRPC port (with a client certificate under --tls-client-ca), the NetworkPolicy admits only
the gRPC port and the metrics port from the monitoring namespace, and nginx routes no model control.
--expect-arg: an argument the cnnserve container must have (e.g. what an overlay's component adds).
Prints one line per check group and every violation; exit 1 when there is any.
"""

import argparse
import glob
import os
import re
import sys

import yaml

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("source", nargs="?", default=os.path.join(os.path.dirname(__file__), "..", ".."))
parser.add_argument("--rendered", help="check these objects (kubectl kustomize output) instead of deploy/k8s")
parser.add_argument("--expect-arg", action="append", default=[], help="an argument cnnserve must be given")
parser.add_argument("--monitoring-namespace", default="monitoring",
                    help="the only namespace the NetworkPolicy may admit to the metrics port")
options = parser.parse_args()
SRC = os.path.abspath(options.source)
K8S = os.path.join(SRC, "deploy", "k8s")
IMAGE_REPOSITORY = "localhost/cnnserve"  # what deploy/tests/container_test.sh tags the Dockerfile's image as
TLS_SECRET_KEYS = ("tls.crt", "tls.key")  # the keys of a kubernetes.io/tls Secret
# The gRPC paths a client needs behind nginx, and those nginx must never route (model control and operator RPCs).
NATIVE = "/cnnserve.v1.Classifier/"
KSERVE = "/inference.GRPCInferenceService/"
ROUTED_RPCS = [NATIVE + m for m in ("Classify", "ClassifyStream", "ListModels", "DescribeModel", "Explain",
                                    "Embed")] + \
    [KSERVE + m for m in ("ModelInfer", "ModelStreamInfer", "ServerLive", "ServerReady", "ModelReady",
                          "ServerMetadata", "ModelMetadata", "ModelConfig")] + \
    ["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"]
UNROUTED_RPCS = [KSERVE + m for m in ("RepositoryModelLoad", "RepositoryModelUnload", "RepositoryIndex",
                                      "ModelStatistics")] + \
    ["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
     KSERVE + "RepositoryModelLoad/../../cnnserve.v1.Classifier/Classify",
     NATIVE + "Classify/../../inference.GRPCInferenceService/RepositoryModelUnload"]

errors = []
checked = []


def check(condition, message):
    if not condition:
        errors.append(message)
    return condition


def read(path):
    with open(os.path.join(SRC, path)) as f:
        return f.read()


def group(name):
    checked.append(name)


# ---- facts from the sources -----------------------------------------------------------------------------------
dockerfile = read("Dockerfile")
entrypoint = read("deploy/container/entrypoint.sh")
# The server's flags and their help: the string literals of server/**/*.cc (server/main.cc registers its flags
# with FlagSet, engine/common/flags.h: the flag name, then its help text, in one call).
usage = "\n".join(m.group(1) for f in sorted(glob.glob(os.path.join(SRC, "server", "**", "*.cc"), recursive=True))
                 for m in re.finditer(r'"((?:[^"\\\n]|\\.)*)"', open(f).read()))
version = re.search(r"project\(cnnserve VERSION ([0-9.]+)", read("CMakeLists.txt")).group(1)
runtime_stage = dockerfile[dockerfile.rindex("\nFROM "):]
exposed = {int(p) for line in re.findall(r"^EXPOSE (.*)$", runtime_stage, re.M) for p in line.split()}
user = re.findall(r"^USER (\S+)", runtime_stage, re.M)
image_uid = int(user[-1].split(":")[0]) if user else 0
grpc_port = int(re.search(r'CNNSERVE_ADDRESS:-[0-9.]+:(\d+)', entrypoint).group(1))
metrics_port = int(re.search(r'CNNSERVE_METRICS_ADDRESS:-[0-9.]+:(\d+)', entrypoint).group(1))
http_port = int(re.search(r'CNNSERVE_HTTP_ADDRESS:-[0-9.]+:(\d+)', entrypoint).group(1))
known_flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", usage))  # listed, or named in the text (--tls-ca)
default_drain_s = float(re.search(r"^--drain-timeout-s$.*?\(default ([0-9.]+)\)", usage, re.M | re.S).group(1))
healthcheck_sh = read("deploy/container/healthcheck.sh")
expected_image = "%s:%s" % (IMAGE_REPOSITORY, version)

group("Dockerfile/entrypoint")
check(image_uid != 0, "Dockerfile: the runtime stage must end with USER <non-zero uid> (found %s)" % user)
check(grpc_port in exposed and metrics_port in exposed and http_port in exposed,
      "Dockerfile EXPOSE %s must include the entrypoint's gRPC port %d, metrics port %d and HTTP port %d"
      % (sorted(exposed), grpc_port, metrics_port, http_port))
check(re.search(r'^HEALTHCHECK .*\n?.*CMD \["cnnserve-healthcheck"\]', runtime_stage, re.M) and
      "COPY deploy/container/healthcheck.sh /usr/local/bin/cnnserve-healthcheck" in runtime_stage,
      "Dockerfile HEALTHCHECK must run deploy/container/healthcheck.sh as cnnserve-healthcheck")
check(re.search(r'CNNSERVE_ADDRESS:-[0-9.]+:%d\b' % grpc_port, healthcheck_sh) and
      'target="127.0.0.1:' in healthcheck_sh and '--health-probe "$target"' in healthcheck_sh,
      "healthcheck.sh must run cnnserve --health-probe 127.0.0.1:%d (the entrypoint's port)" % grpc_port)
check(re.search(r'--health-probe "\$target" --tls-ca "\$CNNSERVE_TLS_CA"', healthcheck_sh) and
      re.search(r'--tls-cert "\$CNNSERVE_PROBE_TLS_CERT" --tls-key "\$CNNSERVE_PROBE_TLS_KEY"', healthcheck_sh),
      "healthcheck.sh must probe with --tls-ca (TLS) and a client certificate (mTLS)")
entrypoint_flags = dict(re.findall(r'set -- (--[a-z-]+) "\$(CNNSERVE_[A-Z_]+)" "\$@"', entrypoint))
for flag, variable in sorted(entrypoint_flags.items()):
    check(flag in known_flags, "entrypoint.sh: $%s becomes %s, not a cnnserve flag" % (variable, flag))
for flag in ("--tls-cert", "--tls-key", "--tls-client-ca", "--auth-token-file"):
    check(flag in entrypoint_flags, "entrypoint.sh must map an environment variable to %s" % flag)
for flag in ("--tls-cert", "--tls-client-ca"):  # the two that change how the health check must connect
    check(flag in entrypoint_flags and "${%s:-}" % entrypoint_flags[flag] in healthcheck_sh,
          "healthcheck.sh must follow $%s (the entrypoint's %s)" % (entrypoint_flags.get(flag), flag))
check("OPENCV_IO_MAX_IMAGE_PIXELS=" in runtime_stage, "Dockerfile must set ENV OPENCV_IO_MAX_IMAGE_PIXELS")
check(re.search(r'org\.opencontainers\.image\.title="%s"' % IMAGE_REPOSITORY.split("/")[-1], dockerfile),
      "Dockerfile must LABEL org.opencontainers.image.title=%s" % IMAGE_REPOSITORY.split("/")[-1])
check(IMAGE_REPOSITORY in read("deploy/tests/container_test.sh"),
      "deploy/tests/container_test.sh must tag the image %s" % IMAGE_REPOSITORY)
for pattern in ("build*", ".git"):
    check(pattern in read(".dockerignore").split(), ".dockerignore must exclude %s" % pattern)

# ---- kustomize: every resource exists and parses ---------------------------------------------------------------
group("kustomization")
kustomization = yaml.safe_load(open(os.path.join(K8S, "kustomization.yaml")))
check(kustomization.get("kind") == "Kustomization", "kustomization.yaml: kind must be Kustomization")
check("secretGenerator" not in kustomization, "kustomization.yaml must not generate Secrets (keys stay out of git; "
      "the pods reference Secrets made apart)")


def assembled_objects():
    """The base's objects as `kubectl kustomize` assembles them (resources; images are resolved below)."""
    result = []
    for resource in kustomization.get("resources", []):
        path = os.path.join(K8S, resource)
        if not check(os.path.isfile(path), "kustomization.yaml lists %s, which does not exist" % resource):
            continue
        for doc in yaml.safe_load_all(open(path)):
            if doc is not None:
                result.append((resource, doc))
    listed = set(kustomization.get("resources", []))
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            check(name in listed, "deploy/k8s/%s is not listed in kustomization.yaml" % name)
    return result


if options.rendered:
    objects = [(options.rendered, d) for d in yaml.safe_load_all(open(options.rendered)) if d is not None]
    images = {}  # kubectl kustomize already applied `images:`
else:
    objects = assembled_objects()
    images = {i["name"]: "%s:%s" % (i.get("newName", i["name"]), i.get("newTag", "latest"))
              for i in kustomization.get("images", [])}
for origin, doc in objects:
    for field in ("apiVersion", "kind", "metadata"):
        check(field in doc, "%s: a document without %s" % (origin, field))
    check(doc.get("metadata", {}).get("name"), "%s: an object without metadata.name" % origin)
    check(doc.get("kind") != "Secret" or not (doc.get("data") or doc.get("stringData")),
          "%s: Secret %s holds data: keys and tokens must not be committed" % (origin, doc["metadata"].get("name")))
names = [(d["kind"], d["metadata"]["name"]) for _, d in objects]
check(len(names) == len(set(names)), "duplicate objects: %s" % names)


def by_kind(kind):
    return [d for _, d in objects if d["kind"] == kind]


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def flag_values(argv):
    """Each --flag's value in argv, the last occurrence winning as in cnnserve: --flag=VALUE or --flag VALUE."""
    values = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and "=" in a:
            name, value = a.split("=", 1)
            values[name] = value
        elif a.startswith("--"):
            has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
            values[a] = argv[i + 1] if has_value else ""
            i += has_value
        i += 1
    return values


def secret_behind(container, path):
    """(the Secret volume source, the key) that file `path` of `container` is, when it is one, else None: a
    read-only mount of a whole Secret (no subPath, so that the kubelet updates it when the Secret changes)."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for m in container.get("volumeMounts", []):
        root = m["mountPath"].rstrip("/") + "/"
        if path.startswith(root):
            volume = volumes.get(m["name"], {})
            ok = "secret" in volume and m.get("readOnly") is True and "subPath" not in m
            return (volume["secret"], path[len(root):]) if ok else None
    return None


def check_secret_file(container, what, path):
    """`path` (given to `what`) must come from a Secret that only the pod's user and group can read."""
    found = secret_behind(container, path)
    if not check(found, "%s %s must be a file of a read-only Secret volume mount without subPath" % (what, path)):
        return None
    secret, key = found
    check(secret.get("defaultMode", 0o644) & 0o007 == 0, "Secret volume %s (%s): defaultMode %s lets every user "
          "read it" % (secret.get("secretName"), what, oct(secret.get("defaultMode", 0o644))))
    return secret.get("secretName"), key


def check_secret_flags(server_flags):
    """TLS and tokens: on, and from Secrets; certificate and key are one kubernetes.io/tls Secret's pair."""
    for flag in ("--tls-cert", "--tls-key", "--auth-token-file"):
        check(flag in server_flags, "cnnserve must be given %s (issue 12: no plaintext port, no open model "
              "control)" % flag)
    found = {}
    for flag in ("--tls-cert", "--tls-key", "--tls-client-ca", "--auth-token-file"):
        if flag in server_flags:
            found[flag] = check_secret_file(server, "cnnserve " + flag, server_flags[flag])
    cert, key = found.get("--tls-cert"), found.get("--tls-key")
    if cert and key:
        check(cert[0] == key[0] and (cert[1], key[1]) == TLS_SECRET_KEYS,
              "--tls-cert/--tls-key must be tls.crt/tls.key of one kubernetes.io/tls Secret, are %s and %s"
              % (cert, key))


def check_exec_probe(probe, p, tls, mtls):
    """An exec probe: cnnserve's own health client on the gRPC port, with the TLS files the port needs."""
    cmd = p["exec"]["command"]
    flags = flag_values(cmd[1:])
    target = "127.0.0.1:%d" % grpc_port
    check(cmd[0] == "cnnserve" and flags.get("--health-probe") == target,
          "%s must run cnnserve --health-probe %s, runs %s" % (probe, target, cmd))
    check(p.get("timeoutSeconds", 1) > 2, "%s: timeoutSeconds must exceed the probe client's own 2 s" % probe)
    for flag in flags:
        check(flag in known_flags, "%s: %s is not a flag of cnnserve" % (probe, flag))
    needed = (["--tls-ca"] if tls else []) + (["--tls-cert", "--tls-key"] if mtls else [])
    for flag in needed:
        if check(flag in flags, "%s must pass %s (the gRPC port runs %s)" % (probe, flag, "mTLS" if mtls else "TLS")):
            check_secret_file(server, probe + " " + flag, flags[flag])


# ---- the Deployment ----------------------------------------------------------------------------------------------
group("Deployment")
deployments = by_kind("Deployment")
check(len(deployments) == 1, "expected one Deployment, found %d" % len(deployments))
deployment = deployments[0]
spec = deployment["spec"]
pod = spec["template"]["spec"]
pod_labels = spec["template"]["metadata"]["labels"]
check(matches(spec["selector"]["matchLabels"], pod_labels), "Deployment selector does not match its pod labels")
check("replicas" not in spec, "Deployment must leave spec.replicas to the HorizontalPodAutoscaler")
containers = {c["name"]: c for c in pod["containers"]}
all_containers = pod.get("initContainers", []) + pod["containers"]
server = containers.get("cnnserve")
check(server is not None, "the pod has no container named cnnserve")

for c in all_containers:
    resolved = images.get(c["image"], c["image"])
    check(resolved == expected_image, "container %s runs %s (after kustomize images), the Dockerfile's image is "
          "tagged %s" % (c["name"], resolved, expected_image))
    # The HPA computes CPU utilization from the requests of every container of the pod.
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            check(r in res.get(kind, {}), "container %s: resources.%s.%s not set" % (c["name"], kind, r))
    sc = c.get("securityContext", {})
    check(sc.get("allowPrivilegeEscalation") is False, "container %s: allowPrivilegeEscalation must be false"
          % c["name"])
    check("ALL" in sc.get("capabilities", {}).get("drop", []), "container %s: capabilities must drop ALL"
          % c["name"])
    check(sc.get("runAsUser", 1) != 0 and sc.get("runAsNonRoot", True) is not False,
          "container %s: must not run as root" % c["name"])

group("security context")
psc = pod.get("securityContext", {})
check(psc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot must be true")
check(psc.get("runAsUser") == image_uid, "pod runAsUser %s must be the image's USER %d"
      % (psc.get("runAsUser"), image_uid))
check(psc.get("runAsUser", 0) != 0 and psc.get("runAsGroup", 0) != 0, "pod must set a non-zero runAsUser/Group")

group("ports and probes")
if server:
    ports = {p["name"]: p["containerPort"] for p in server.get("ports", [])}
    check(ports.get("grpc") == grpc_port, "container port grpc must be %d (the image's --address), is %s"
          % (grpc_port, ports.get("grpc")))
    check(ports.get("metrics") == metrics_port, "container port metrics must be %d, is %s"
          % (metrics_port, ports.get("metrics")))
    check(ports.get("http") in (None, http_port), "container port http must be %d (the image's --http-address), is %s"
          % (http_port, ports.get("http")))
    check(set(ports.values()) <= exposed, "container ports %s not all EXPOSEd by the Dockerfile %s"
          % (sorted(ports.values()), sorted(exposed)))
    args = server.get("args", [])
    for a in args:
        flag = a.split("=", 1)[0]
        if flag.startswith("--"):
            check(flag in known_flags, "cnnserve args: %s is not a flag of the server's usage text" % flag)
    for a in options.expect_arg:
        check(a in args, "cnnserve args %s lack %s" % (args, a))
    server_flags = flag_values(args)
    tls = "--tls-cert" in server_flags
    mtls = "--tls-client-ca" in server_flags
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = server.get(probe)
        if not check(p is not None, "cnnserve: no %s" % probe):
            continue
        if "exec" in p:
            check_exec_probe(probe, p, tls, mtls)
        elif check("grpc" in p, "cnnserve: %s must be an exec or a native gRPC probe" % probe):
            check(not tls, "%s: the kubelet's native gRPC probe cannot speak TLS, and the gRPC port does (--tls-cert):"
                  " use an exec probe (cnnserve --health-probe ... --tls-ca ...)" % probe)
            port = p["grpc"].get("port")
            check(port in ports.values(), "%s port %s is not a container port %s" % (probe, port, ports))
            check(port == grpc_port, "%s must probe the gRPC port %d, probes %s" % (probe, grpc_port, port))
            service = p["grpc"].get("service", "")
            check(service in ("", "cnnserve.v1.Classifier"),
                  "%s asks for health service '%s', which cnnserve does not report" % (probe, service))

    group("TLS, tokens and Secrets")
    check_secret_flags(server_flags)
    mode = server_flags.get("--model-control-mode", "none")
    check(mode in ("none", "explicit", "poll"), "--model-control-mode %s is not none, explicit or poll" % mode)
    check(options.rendered or mode == "none", "the base must run --model-control-mode=none (models are the "
          "image's; components/poll-repository is the option), runs %s" % mode)
    check(mode != "poll" or server_flags.get("--strict-readiness") == "false",
          "poll mode on a volume every pod shares needs --strict-readiness=false: one model folder that fails to "
          "load would take every pod out of rotation at once")
    metrics_address = server_flags.get("--metrics-address", "0.0.0.0:%d" % metrics_port)  # the entrypoint's
    metrics_open = metrics_address != "none" and metrics_address.rsplit(":", 1)[0] not in (
        "127.0.0.1", "localhost", "[::1]")

    group("shutdown timing")
    drain_s = default_drain_s
    for i, a in enumerate(args):
        if a.startswith("--drain-timeout-s="):
            drain_s = float(a.split("=", 1)[1])
        elif a == "--drain-timeout-s" and i + 1 < len(args):
            drain_s = float(args[i + 1])
    pre_stop = server.get("lifecycle", {}).get("preStop", {})
    sleep_s = 0.0
    if "exec" in pre_stop:
        cmd = pre_stop["exec"]["command"]
        if check(cmd[0] == "sleep" and len(cmd) == 2, "preStop must be [sleep, SECONDS], is %s" % cmd):
            sleep_s = float(cmd[1])
    elif "sleep" in pre_stop:
        sleep_s = float(pre_stop["sleep"]["seconds"])
    check(sleep_s >= 2, "preStop must sleep a few seconds so that endpoints are removed before the drain")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace > sleep_s + drain_s, "terminationGracePeriodSeconds %s must exceed preStop %s s + drain %s s"
          % (grace, sleep_s, drain_s))
    liveness = server.get("livenessProbe", {})
    check(liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3) > drain_s,
          "the liveness probe (NOT_SERVING while draining) must not kill the pod within the drain (%s s)" % drain_s)

    group("volumes")
    volumes = {v["name"] for v in pod.get("volumes", [])}
    for c in all_containers:
        for m in c.get("volumeMounts", []):
            check(m["name"] in volumes, "container %s mounts unknown volume %s" % (c["name"], m["name"]))
    mounts = {m["mountPath"]: m for m in server.get("volumeMounts", [])}
    check("/models" in mounts, "the model repository volume must be mounted at /models (the image's "
          "--model-repository)")
    if server.get("securityContext", {}).get("readOnlyRootFilesystem"):
        check("/tmp" in mounts, "readOnlyRootFilesystem needs a writable /tmp volume")

# ---- Services, HPA, PDB --------------------------------------------------------------------------------------
group("Services")
services = by_kind("Service")
headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
cluster_ip = [s for s in services if s["spec"].get("clusterIP") != "None"
              and s["spec"].get("type", "ClusterIP") == "ClusterIP"]
check(len(headless) == 1, "need one headless Service (clusterIP: None) for client-side round_robin")
check(len(cluster_ip) == 1, "need one ClusterIP Service for proxies")
container_port_names = {p["name"]: p["containerPort"] for p in (server or {}).get("ports", [])}
for s in services:
    name = s["metadata"]["name"]
    check(matches(s["spec"].get("selector"), pod_labels), "Service %s does not select the pods" % name)
    for p in s["spec"]["ports"]:
        target = p.get("targetPort", p["port"])
        ok = target in container_port_names if isinstance(target, str) else target in container_port_names.values()
        check(ok, "Service %s port %s targets %s, not a container port" % (name, p.get("name"), target))
    grpc_ports = [p for p in s["spec"]["ports"] if p.get("name") == "grpc"]
    check(grpc_ports and grpc_ports[0]["port"] == grpc_port, "Service %s must serve grpc on %d" % (name, grpc_port))
    if grpc_ports and tls:
        check(grpc_ports[0].get("appProtocol") not in ("kubernetes.io/h2c", "h2c", "grpc"),
              "Service %s: the grpc port speaks TLS; appProtocol %s tells proxies cleartext HTTP/2"
              % (name, grpc_ports[0].get("appProtocol")))
    elif grpc_ports:
        check(grpc_ports[0].get("appProtocol") in ("kubernetes.io/h2c", "grpc", "h2c"),
              "Service %s: the grpc port should declare appProtocol h2c for L7 proxies" % name)
for s in headless:
    check(not s["spec"].get("publishNotReadyAddresses", False),
          "the headless Service must not publish pods that are not ready")

group("NetworkPolicy")


def admitted_ports(policy):
    """{port number: [ingress rules admitting it]}; every rule must name its ports."""
    admitted = {}
    for rule in policy["spec"].get("ingress", []):
        if not check(rule.get("ports"), "NetworkPolicy %s: an ingress rule without ports admits every port"
                     % policy["metadata"]["name"]):
            continue
        for p in rule["ports"]:
            port = container_port_names.get(p.get("port"), p.get("port"))
            check("endPort" not in p, "NetworkPolicy: a port range admits more than the pods' ports")
            admitted.setdefault(port, []).append(rule)
    return admitted


def only_from_namespace(rule, namespace):
    sources = rule.get("from", [])
    return bool(sources) and all(
        set(src) <= {"namespaceSelector", "podSelector"} and
        src.get("namespaceSelector", {}).get("matchLabels") == {"kubernetes.io/metadata.name": namespace} and
        not src["namespaceSelector"].get("matchExpressions") for src in sources)


policies = [n for n in by_kind("NetworkPolicy")
            if matches(n["spec"].get("podSelector", {}).get("matchLabels"), pod_labels)]
if check(len(policies) == 1, "need one NetworkPolicy selecting the cnnserve pods, found %d" % len(policies)):
    policy = policies[0]
    check("Ingress" in policy["spec"].get("policyTypes", []), "the NetworkPolicy must restrict Ingress")
    admitted = admitted_ports(policy)
    check(grpc_port in admitted, "the NetworkPolicy must admit the gRPC port %d" % grpc_port)
    for port in admitted:
        check(port in (grpc_port, http_port, metrics_port),
              "the NetworkPolicy admits port %s, which clients do not need" % port)
    for rule in admitted.get(metrics_port, []):
        check(only_from_namespace(rule, options.monitoring_namespace),
              "the NetworkPolicy must admit the metrics port %d only from the namespace %s (namespaceSelector "
              "kubernetes.io/metadata.name), admits %s" % (metrics_port, options.monitoring_namespace,
                                                           rule.get("from", "everyone")))

group("HorizontalPodAutoscaler")
hpas = by_kind("HorizontalPodAutoscaler")
if check(len(hpas) == 1, "need one HorizontalPodAutoscaler"):
    hpa = hpas[0]
    check(hpa["apiVersion"] == "autoscaling/v2", "HPA apiVersion must be autoscaling/v2")
    ref = hpa["spec"]["scaleTargetRef"]
    check(ref["kind"] == "Deployment" and ref["name"] == deployment["metadata"]["name"],
          "HPA must scale Deployment %s" % deployment["metadata"]["name"])
    cpu = [m for m in hpa["spec"].get("metrics", []) if m.get("type") == "Resource"
           and m["resource"]["name"] == "cpu"]
    check(cpu, "HPA must scale on CPU")
    check(hpa["spec"].get("minReplicas", 1) >= 2, "HPA minReplicas must be at least 2 (a drain needs a peer)")
    check(hpa["spec"]["maxReplicas"] >= hpa["spec"].get("minReplicas", 1), "HPA maxReplicas < minReplicas")

group("PodDisruptionBudget")
pdbs = by_kind("PodDisruptionBudget")
if check(len(pdbs) == 1, "need one PodDisruptionBudget"):
    pdb = pdbs[0]
    check(pdb["apiVersion"] == "policy/v1", "PDB apiVersion must be policy/v1")
    check(matches(pdb["spec"]["selector"]["matchLabels"], pod_labels), "PDB does not select the pods")
    if hpas:
        min_replicas = hpas[0]["spec"].get("minReplicas", 1)
        if "maxUnavailable" in pdb["spec"]:
            check(pdb["spec"]["maxUnavailable"] < min_replicas, "PDB maxUnavailable must be below minReplicas")
        else:
            check(pdb["spec"]["minAvailable"] < min_replicas, "PDB minAvailable must be below minReplicas")

# ---- compose and nginx ---------------------------------------------------------------------------------------
group("compose")
compose = yaml.safe_load(read("deploy/compose.yaml"))
svc = compose["services"]
check(svc["cnnserve"]["image"] == expected_image, "compose cnnserve image %s, expected %s"
      % (svc["cnnserve"]["image"], expected_image))
check(svc["cnnserve"].get("init") is True, "compose cnnserve must run with init: true (SIGTERM drains)")
hc = svc["cnnserve"].get("healthcheck", {}).get("test", [])
hc = hc.split() if isinstance(hc, str) else hc
check("--health-probe" in hc and "127.0.0.1:%d" % grpc_port in hc,
      "compose cnnserve healthcheck must be cnnserve --health-probe 127.0.0.1:%d" % grpc_port)
check(svc["nginx"].get("depends_on", {}).get("cnnserve", {}).get("condition") == "service_healthy",
      "compose nginx must wait for healthy cnnserve replicas")
compose_command = svc["cnnserve"].get("command", [])
for flag in compose_command:
    if flag.startswith("--"):
        check(flag.split("=", 1)[0] in known_flags, "compose command: %s is not a cnnserve flag" % flag)
for volume in svc["nginx"].get("volumes", []):
    host = volume.split(":")[0]
    check(os.path.exists(os.path.join(SRC, "deploy", host)), "compose mounts %s, which does not exist" % host)

group("compose secrets")
declared_secrets = compose.get("secrets", {})


def compose_secret_file(service, what, path):
    """`path` must be /run/secrets/NAME of a file secret the service lists (compose mounts it read-only)."""
    name = path[len("/run/secrets/"):] if path.startswith("/run/secrets/") else None
    listed = [x if isinstance(x, str) else x.get("source") for x in svc[service].get("secrets", [])]
    check(name in listed and "file" in declared_secrets.get(name, {}),
          "compose %s: %s %s must be a file secret of the service (/run/secrets/NAME)" % (service, what, path))


compose_flags = flag_values(compose_command)
for flag in ("--tls-cert", "--tls-key", "--auth-token-file"):
    if check(flag in compose_flags, "compose cnnserve must be given %s" % flag):
        compose_secret_file("cnnserve", flag, compose_flags[flag])
check(compose_flags.get("--model-control-mode") == "none", "compose cnnserve must run --model-control-mode=none")
hc_flags = flag_values(hc[1:]) if hc else {}
if "--tls-cert" in compose_flags and check("--tls-ca" in hc_flags,
                                           "compose healthcheck must pass --tls-ca (the gRPC port runs TLS)"):
    compose_secret_file("cnnserve", "healthcheck --tls-ca", hc_flags["--tls-ca"])
for name, secret in declared_secrets.items():
    check(set(secret) == {"file"} and "secrets/" in secret["file"],
          "compose secret %s must be a file under a secrets folder, is %s" % (name, secret))
check("-----BEGIN" not in read("deploy/compose.yaml"), "compose must not carry keys inline")

group("nginx")
nginx_conf = read("deploy/nginx/nginx.conf")
backend_conf = read("deploy/nginx/backend.conf")
listen_conf = read("deploy/nginx/listen.conf")
check(re.search(r"^\s*upstream cnnserve \{", nginx_conf, re.M), "nginx.conf must define upstream cnnserve")
check(re.search(r"^\s*include backend\.conf;", nginx_conf, re.M) and not re.search(r"^\s*grpc_pass", nginx_conf, re.M),
      "nginx.conf must reach the replicas only through backend.conf (include backend.conf)")
upstreams = re.findall(r"^server (\S+):(\d+)", read("deploy/nginx/upstream.conf"), re.M)
check(upstreams and all(host == "cnnserve" and int(port) == grpc_port for host, port in upstreams),
      "deploy/nginx/upstream.conf must point at the compose service cnnserve:%d" % grpc_port)
check(re.search(r"^listen \S*?(\d+) (ssl )?http2;", listen_conf, re.M),
      "deploy/nginx/listen.conf must listen with http2")
nginx_files = {}
for conf_name, conf in (("backend.conf", backend_conf), ("listen.conf", listen_conf)):
    for directive, path in re.findall(r"^(\w+) (/run/secrets/\S+);", conf, re.M):
        nginx_files[directive] = path
        compose_secret_file("nginx", "%s %s" % (conf_name, directive), path)
if "--tls-cert" in compose_flags:
    check(re.search(r"^grpc_pass grpcs://cnnserve;", backend_conf, re.M) and
          re.search(r"^grpc_ssl_verify on;", backend_conf, re.M) and "grpc_ssl_trusted_certificate" in nginx_files,
          "backend.conf must speak TLS to the TLS replicas and verify them (grpcs://, grpc_ssl_verify on, "
          "grpc_ssl_trusted_certificate)")
if "--tls-client-ca" in compose_flags:
    check("grpc_ssl_certificate" in nginx_files, "replicas under mTLS: backend.conf needs grpc_ssl_certificate")


def nginx_routes():
    """The regular expressions of nginx.conf's map $request_uri $cnnserve_routed whose value is 1."""
    block = re.search(r"map \$request_uri \$cnnserve_routed \{(.*?)\}", nginx_conf, re.S)
    if not check(block, "nginx.conf must map $request_uri to $cnnserve_routed (the RPCs it routes)"):
        return []
    check(re.search(r"^\s*default 0;", block.group(1), re.M), "nginx.conf: $cnnserve_routed must default to 0")
    check(re.search(r"if \(\$cnnserve_routed = 0\) \{\s*return 418;", nginx_conf) and
          re.search(r"error_page 418 = @grpc_permission_denied;", nginx_conf) and
          re.search(r"@grpc_permission_denied \{[^}]*grpc-status 7 always;[^}]*return 204;", nginx_conf, re.S),
          "nginx.conf must refuse unrouted RPCs with grpc-status 7 (PERMISSION_DENIED)")
    return [re.compile(r[1:]) for r, v in re.findall(r'^\s*"(~[^"]+)" (\d);', block.group(1), re.M) if v == "1"]


routes = nginx_routes()
for path in ROUTED_RPCS:
    check(any(r.search(path) for r in routes), "nginx.conf does not route %s, which clients need" % path)
for path in UNROUTED_RPCS:
    check(not any(r.search(path) for r in routes), "nginx.conf routes %s (model control or operator RPC)" % path)

for e in errors:
    print("check_manifests: FAIL: %s" % e)
print("check_manifests: %s (%s; image %s, uid %d, ports %d/%d, drain %gs default)"
      % ("FAIL" if errors else "OK", ", ".join(checked), expected_image, image_uid, grpc_port, metrics_port,
         default_drain_s))
sys.exit(1 if errors else 0)
