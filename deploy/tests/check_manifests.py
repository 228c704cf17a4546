#!/usr/bin/python3
"""Invariants of the deployment files that yamllint cannot see (Debian's python3-yaml; no cluster needed).

    /usr/bin/python3 deploy/tests/check_manifests.py [SOURCE_DIR]

Checks deploy/k8s (the kustomize base, as `kubectl kustomize` would assemble it), deploy/compose.yaml and
deploy/nginx against each other and against what they run: the root Dockerfile (ports, user, image), the
entrypoint's defaults, server/main.cc (flags and the default drain timeout) and CMakeLists.txt (the version that
tags the image). Prints one line per check group and every violation; exit 1 when there is any.
"""

import os
import re
import sys

import yaml

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(SRC, "deploy", "k8s")
IMAGE_REPOSITORY = "localhost/cnnserve"  # what deploy/tests/container_test.sh tags the Dockerfile's image as

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
main_cc = read("server/main.cc")
version = re.search(r"project\(cnnserve VERSION ([0-9.]+)", read("CMakeLists.txt")).group(1)
runtime_stage = dockerfile[dockerfile.rindex("\nFROM "):]
exposed = {int(p) for line in re.findall(r"^EXPOSE (.*)$", runtime_stage, re.M) for p in line.split()}
user = re.findall(r"^USER (\S+)", runtime_stage, re.M)
image_uid = int(user[-1].split(":")[0]) if user else 0
grpc_port = int(re.search(r'CNNSERVE_ADDRESS:-[0-9.]+:(\d+)', entrypoint).group(1))
metrics_port = int(re.search(r'CNNSERVE_METRICS_ADDRESS:-[0-9.]+:(\d+)', entrypoint).group(1))
known_flags = set(re.findall(r"^  (--[a-z-]+)", main_cc[main_cc.index("kUsage"):], re.M))
default_drain_s = float(re.search(r"--drain-timeout-s SECONDS .*\(default ([0-9.]+)\)", main_cc).group(1))
expected_image = "%s:%s" % (IMAGE_REPOSITORY, version)

group("Dockerfile/entrypoint")
check(image_uid != 0, "Dockerfile: the runtime stage must end with USER <non-zero uid> (found %s)" % user)
check(grpc_port in exposed and metrics_port in exposed,
      "Dockerfile EXPOSE %s must include the entrypoint's gRPC port %d and metrics port %d"
      % (sorted(exposed), grpc_port, metrics_port))
check(re.search(r'^HEALTHCHECK .*\n?.*"--health-probe", "127\.0\.0\.1:%d"' % grpc_port, runtime_stage, re.M),
      "Dockerfile HEALTHCHECK must probe 127.0.0.1:%d with cnnserve --health-probe" % grpc_port)
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
objects = []
for resource in kustomization.get("resources", []):
    path = os.path.join(K8S, resource)
    if not check(os.path.isfile(path), "kustomization.yaml lists %s, which does not exist" % resource):
        continue
    for doc in yaml.safe_load_all(open(path)):
        if doc is None:
            continue
        for field in ("apiVersion", "kind", "metadata"):
            check(field in doc, "%s: a document without %s" % (resource, field))
        check(doc.get("metadata", {}).get("name"), "%s: an object without metadata.name" % resource)
        objects.append((resource, doc))
listed = set(kustomization.get("resources", []))
for name in sorted(os.listdir(K8S)):
    if name.endswith(".yaml") and name != "kustomization.yaml":
        check(name in listed, "deploy/k8s/%s is not listed in kustomization.yaml" % name)
names = [(d["kind"], d["metadata"]["name"]) for _, d in objects]
check(len(names) == len(set(names)), "duplicate objects: %s" % names)
images = {i["name"]: "%s:%s" % (i.get("newName", i["name"]), i.get("newTag", "latest"))
          for i in kustomization.get("images", [])}


def by_kind(kind):
    return [d for _, d in objects if d["kind"] == kind]


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


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
    check(set(ports.values()) <= exposed, "container ports %s not all EXPOSEd by the Dockerfile %s"
          % (sorted(ports.values()), sorted(exposed)))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = server.get(probe)
        if not check(p is not None, "cnnserve: no %s" % probe):
            continue
        if not check("grpc" in p, "cnnserve: %s must be a native gRPC probe" % probe):
            continue
        port = p["grpc"].get("port")
        check(port in ports.values(), "%s port %s is not a container port %s" % (probe, port, ports))
        check(port == grpc_port, "%s must probe the gRPC port %d, probes %s" % (probe, grpc_port, port))
        service = p["grpc"].get("service", "")
        check(service in ("", "cnnserve.v1.Classifier"),
              "%s asks for health service '%s', which cnnserve does not report" % (probe, service))
    args = server.get("args", [])
    for a in args:
        flag = a.split("=", 1)[0]
        if flag.startswith("--"):
            check(flag in known_flags, "cnnserve args: %s is not a flag of server/main.cc" % flag)

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
    if grpc_ports:
        check(grpc_ports[0].get("appProtocol") in ("kubernetes.io/h2c", "grpc", "h2c"),
              "Service %s: the grpc port should declare appProtocol h2c for L7 proxies" % name)
for s in headless:
    check(not s["spec"].get("publishNotReadyAddresses", False),
          "the headless Service must not publish pods that are not ready")

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
for flag in svc["cnnserve"].get("command", []):
    if flag.startswith("--"):
        check(flag.split("=", 1)[0] in known_flags, "compose command: %s is not a cnnserve flag" % flag)
for volume in svc["nginx"].get("volumes", []):
    host = volume.split(":")[0]
    check(os.path.exists(os.path.join(SRC, "deploy", host)), "compose mounts %s, which does not exist" % host)

group("nginx")
nginx_conf = read("deploy/nginx/nginx.conf")
check(re.search(r"grpc_pass grpc://cnnserve;", nginx_conf), "nginx.conf must grpc_pass to upstream cnnserve")
check(re.search(r"^\s*upstream cnnserve \{", nginx_conf, re.M), "nginx.conf must define upstream cnnserve")
upstreams = re.findall(r"^server (\S+):(\d+)", read("deploy/nginx/upstream.conf"), re.M)
check(upstreams and all(host == "cnnserve" and int(port) == grpc_port for host, port in upstreams),
      "deploy/nginx/upstream.conf must point at the compose service cnnserve:%d" % grpc_port)
check(re.search(r"^listen \S*?(\d+) http2;", read("deploy/nginx/listen.conf"), re.M),
      "deploy/nginx/listen.conf must listen with http2")

for e in errors:
    print("check_manifests: FAIL: %s" % e)
print("check_manifests: %s (%s; image %s, uid %d, ports %d/%d, drain %gs default)"
      % ("FAIL" if errors else "OK", ", ".join(checked), expected_image, image_uid, grpc_port, metrics_port,
         default_drain_s))
sys.exit(1 if errors else 0)
