#!/usr/bin/python3
"""Server curves: throughput against latency of cnnserve through gRPC, measured with build/bin/cnnload.

For each model (lenet5_fashion, alexnet) and dynamic batching on and off, starts a cnnserve on 127.0.0.1 with a
generated repository and runs
  * a closed-loop concurrency sweep (--concurrency 1,2,4,8,16,32): throughput and latency percentiles per level;
  * with --open-loop (default on, batching on only): an open-loop Poisson rate sweep at fractions of the
    closed-loop peak: latency percentiles against offered load.
Requests carry encoded images, one per request: Fashion-MNIST PNGs (28x28 gray) for lenet5_fashion and
ImageNet-like JPEGs (500x375, seeded and generated here) for alexnet, so decoding and preprocessing are part of
what is measured, as in production.

  bench/server_curves.py [--build build] [--zoo DIR] [--models lenet5_fashion,alexnet] [--levels 1,2,4,8,16,32]
                         [--warmup S] [--duration S] [--rounds R] [--no-open-loop]
                         [--out bench/results/server_curves]   (writes OUT.json, OUT.md and OUT/*.csv)

Batching "on" is the shipped configuration: models/repository/lenet5_fashion/config.pbtxt, and for alexnet the
one models/repository/add_zoo_models.sh writes (max_batch_size 32, max_queue_delay_us 2000, preferred 8 and 32).
"off" is the same with max_batch_size 0 and no dynamic_batching block: every request runs alone at batch 1.
Repositories are generated under BUILD/bench/ (config.pbtxt written, model.onnx symlinked), never in
models/repository. With --rounds R > 1 the sweeps of all configurations alternate R times and each cell is the
median over rounds.

This module also holds what the other server benchmarks share (bench/server_overhead.py imports it): Server
(a cnnserve child process), the repository and image generators, run_cnnload() and machine().
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"
DEFAULT_ZOO = os.path.expanduser(os.environ.get("ZOO_DIR", "~/.cache/cnnserve/zoo"))


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The machine.

def cpu_busy_fraction(seconds=1.0):
    """The share of all cores' time that was not idle over `seconds` (from /proc/stat): how busy the machine is
    with other work just before a benchmark starts."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return idle, sum(values[:8])
    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
        return round(1 - (idle1 - idle0) / max(1, total1 - total0), 3)
    except (OSError, ValueError, IndexError):
        return None


def machine():
    """A dict describing the machine: CPU, cores, memory, OS, kernel, load at the start."""
    cpu = "unknown"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown":
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1]
    except OSError:
        pass
    mem_gib = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gib = int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    os_name = platform.system()
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    isa = "avx512" if "avx512f" in flags else ("avx2" if "avx2" in flags else "")
    return {
        "cpu": cpu, "isa": isa, "cores": os.cpu_count(), "memory_gib": round(mem_gib, 1), "os": os_name,
        "kernel": platform.release(), "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpu_busy_at_start": cpu_busy_fraction(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def busy_warning(m):
    """A warning line when other work kept the machine busy just before the run (over 20% of all cores' time in
    the second before it started), else None."""
    busy = m.get("cpu_busy_at_start")
    if busy is None:  # older results: judge by the load average
        busy = min(1.0, m["loadavg_at_start"][0] / m["cores"]) if m["loadavg_at_start"][0] > 1.5 * m["cores"] else 0
    if busy <= 0.2:
        return None
    return ("**Warning: the machine was busy when this ran (%.0f%% of its %d cores' time went to other processes "
            "in the second before the start; load average %.1f): other processes took CPU time from the measured "
            "ones, so these numbers understate what the machine can do. Regenerate them on a quiet machine.**"
            % (100 * busy, m["cores"], m["loadavg_at_start"][0]))


def machine_line(m):
    busy = m.get("cpu_busy_at_start")
    return ("%s (%s), %d cores, %.0f GiB, %s, Linux %s; at the start: load average %s, %s; %s"
            % (m["cpu"], m["isa"] or "no AVX", m["cores"], m["memory_gib"], m["os"], m["kernel"],
               "/".join("%.2f" % x for x in m["loadavg_at_start"]),
               "CPU %.0f%% busy with other work" % (100 * busy) if busy is not None else "CPU use unknown",
               m["date"]))


# ---------------------------------------------------------------------------------------------------------------
# Repositories and images (generated into build dirs, never into models/repository).

def read_text(path):
    with open(path) as f:
        return f.read()


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def without_batching(config):
    """The same config with max_batch_size 0 and no dynamic_batching block (each request runs alone)."""
    config = re.sub(r"(?m)^max_batch_size:\s*\d+", "max_batch_size: 0", config)
    config = re.sub(r"(?ms)^dynamic_batching\s*\{.*?^\}\s*\n", "", config)
    if "max_batch_size" not in config:
        config += "\nmax_batch_size: 0\n"
    return config


def with_fields(config, **fields):
    """Replaces (or appends) top-level scalar fields, e.g. max_batch_size=8."""
    for key, value in fields.items():
        line = "%s: %s" % (key, value)
        if re.search(r"(?m)^%s:" % key, config):
            config = re.sub(r"(?m)^%s:.*$" % key, line, config)
        else:
            config += "\n" + line + "\n"
    return config


def set_dynamic_batching(config, block):
    """Replaces the dynamic_batching block by `block` (text inside the braces; None: remove it)."""
    config = re.sub(r"(?ms)^dynamic_batching\s*\{.*?^\}\s*\n", "", config)
    if block is not None:
        config += "\ndynamic_batching {\n%s\n}\n" % block
    return config


def add_model(repo, name, config, onnx=None, labels=None):
    """Writes REPO/NAME/config.pbtxt (name set to NAME), links REPO/NAME/1/model.onnx -> onnx, copies labels."""
    config = re.sub(r'(?m)^name:\s*".*"', 'name: "%s"' % name, config)
    if not re.search(r"(?m)^name:", config):
        config = 'name: "%s"\n' % name + config
    d = os.path.join(repo, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    write_text(os.path.join(d, "config.pbtxt"), config)
    if onnx:
        os.makedirs(os.path.join(d, "1"))
        os.symlink(os.path.abspath(onnx), os.path.join(d, "1", "model.onnx"))
    if labels:
        shutil.copy(labels, os.path.join(d, "labels.txt"))
    return d


def lenet_config():
    """(config text, onnx path, labels path) of the shipped lenet5_fashion."""
    d = os.path.join(ROOT, "models", "repository", "lenet5_fashion")
    return read_text(os.path.join(d, "config.pbtxt")), os.path.join(d, "1", "model.onnx"), \
        os.path.join(d, "labels.txt")


def zoo_config(zoo, name, work):
    """(config text, onnx path, labels path) of a zoo model as models/repository/add_zoo_models.sh writes it."""
    tmp = os.path.join(work, "zoo-config")
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)
    subprocess.run([os.path.join(ROOT, "models", "repository", "add_zoo_models.sh"), "--zoo-dir", zoo, tmp, name],
                   check=True, stdout=subprocess.DEVNULL)
    config = read_text(os.path.join(tmp, name, "config.pbtxt"))
    onnx = os.path.join(zoo, name + ".onnx")
    labels = os.path.join(zoo, name + ".labels.txt")
    return config, onnx, labels


def null_config(config, num_classes):
    """The null-platform twin of `config`: same input dims, preprocessing and batching, zeros out."""
    config = re.sub(r'(?m)^platform:\s*".*"\s*$', "", config)
    config = 'platform: "null"\n' + config
    config = re.sub(r'(?m)^labels:\s*".*"\s*$', "", config)
    return with_fields(config, num_classes=num_classes)


def fashion_images(work, count=200):
    """A directory of `count` Fashion-MNIST test images as PNG (the dataset's own 28x28 gray pixels)."""
    out = os.path.join(work, "images", "fashion_png")
    if os.path.isdir(out) and len(os.listdir(out)) >= count:
        return out
    raw = os.path.join(work, "images", "fashion_raw")
    subprocess.run([PYTHON, os.path.join(ROOT, "models", "zoo", "train_fashion_mnist.py"), "--write-test-images",
                    raw, "--count", str(count)], check=True, stdout=subprocess.DEVNULL)
    os.makedirs(out, exist_ok=True)
    for f in sorted(os.listdir(raw)):
        if f.endswith(".png"):
            shutil.copy(os.path.join(raw, f), os.path.join(out, f))
    return out


def imagenet_like_images(work, count=64, size=(500, 375), seed=0):
    """`count` seeded RGB JPEGs (quality 90) of ImageNet's typical size: smooth colour fields plus noise, so that
    they compress like photographs rather than like flat colour."""
    import numpy as np
    from PIL import Image
    out = os.path.join(work, "images", "imagenet_like")
    if os.path.isdir(out) and len([f for f in os.listdir(out) if f.endswith(".jpg")]) >= count:
        return out
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    for i in range(count):
        coarse = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.float32)
        smooth = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((w, h), Image.BICUBIC), np.float32)
        noisy = np.clip(smooth + rng.normal(0, 12, size=(h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(os.path.join(out, "img_%03d.jpg" % i), quality=90)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Servers and load.

class Server:
    """A cnnserve child process on 127.0.0.1 (an ephemeral port) serving `repo`; a context manager that stops it
    with SIGTERM (SIGKILL after 30 s)."""

    def __init__(self, build, repo, log_path, args=()):
        self.cmd = [os.path.join(build, "bin", "cnnserve"), "--model-repository", repo, "--address", "127.0.0.1:0",
                    "--metrics-address", "none", "--log-level", "warn"] + list(args)
        self.log_path = log_path
        self.proc = None
        self.address = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        deadline = time.time() + 600
        for line in self.proc.stdout:  # "cnnserve listening on HOST:PORT" comes once every model is warm
            m = re.match(r"cnnserve listening on (\S+)", line)
            if m:
                self.address = m.group(1)
                break
            if time.time() > deadline:
                break
        if not self.address:
            self.__exit__(None, None, None)
            raise RuntimeError("cnnserve did not start; see %s" % self.log_path)
        return self

    def cpu_seconds(self):
        """User + system CPU seconds of the server so far (from /proc)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc):
        stop_process(self.proc)
        self.log.close()
        return False


class BareServer:
    """build/bin/bare_grpc_server on 127.0.0.1 (an ephemeral port), answering a model of `input_shape` (C,H,W)
    with `classes` classes; a context manager that stops it."""

    def __init__(self, build, decode=False, input_shape="1,32,32", classes=10):
        self.cmd = [os.path.join(build, "bin", "bare_grpc_server"), "--address", "127.0.0.1:0",
                    "--input-shape", input_shape, "--classes", str(classes)] + (["--decode"] if decode else [])
        self.proc = None
        self.address = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, text=True)
        m = re.match(r"bare_grpc_server listening on (\S+)", self.proc.stdout.readline())
        if not m:
            self.__exit__()
            raise RuntimeError("bare_grpc_server did not start")
        self.address = m.group(1)
        return self

    def __exit__(self, *exc):
        stop_process(self.proc)
        return False


def stop_process(proc, timeout=30):
    """SIGTERM, SIGKILL after `timeout` s, reaped; closes its stdout pipe. None is fine."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc and proc.stdout:
        proc.stdout.close()


def add_shipped_model_flags(parser, out_name):
    """--build, --models (the shipped vgg_fashion and fashion_ensemble) and --out bench/results/OUT_NAME/OUT_NAME:
    the flags of the benchmarks that run the shipped repository (bench/overload.py, bench/sigterm.py)."""
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--models", default="vgg_fashion,fashion_ensemble")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", out_name, out_name))


def cnnload_args(model, inputs, levels=None, rates=None, batch=1, warmup=1.0, duration=3.0, extra=()):
    """cnnload's flags (without --server/--json/--csv), as recorded next to the results."""
    args = ["--model", model, "--batch", str(batch), "--warmup", "%g" % warmup, "--duration", "%g" % duration]
    args += ["--synthetic"] if inputs == "synthetic" else ["--images", inputs]
    if levels:
        args += ["--concurrency", ",".join(str(c) for c in levels)]
    if rates:
        args += ["--rate", ",".join("%.6g" % r for r in rates), "--poisson"]
    return args + list(extra)


def run_cnnload(build, address, args, csv_path=None, timeout=1800, env=None):
    """Runs cnnload --json (with `env` added to the environment, e.g. CNNSERVE_TOKEN); returns its document
    (raises on a non-zero exit)."""
    cmd = [os.path.join(build, "bin", "cnnload"), "--server", address, "--json", "--quiet"] + list(args)
    if csv_path:
        os.makedirs(os.path.dirname(csv_path), exist_ok=True)
        cmd += ["--csv", csv_path]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **env) if env else None)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), proc.returncode, proc.stderr.strip()[-2000:]))
    for line in proc.stderr.splitlines():
        if "warning" in line:
            log(line)
    return json.loads(proc.stdout)


def write_results(out, result, markdown):
    """Writes OUT.json (`result`) and OUT.md (`markdown`(result)), prints the markdown and logs the duration."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    md = markdown(result)
    with open(out + ".md", "w") as f:
        f.write(md + "\n")
    print(md)
    log("%s: %.0f s" % (result["benchmark"], result["seconds"]))


def shown_command(args, rel_to=ROOT):
    """The cnnload command as shown in RESULTS.md: paths relative to the checkout, the address as ADDR."""
    out = []
    for a in args:
        if isinstance(a, str) and os.path.isabs(a) and a.startswith(rel_to + os.sep):
            a = os.path.relpath(a, rel_to)
        out.append(a)
    return "build/bin/cnnload --server ADDR " + " ".join(out)


def median_rows(runs):
    """Per level, the row whose images/s is the median over rounds (keeps a real row, not a blend)."""
    by_level = {}
    for rows in runs:
        for row in rows:
            key = row["concurrency"] if row["concurrency"] is not None else row["target_rate"]
            by_level.setdefault(key, []).append(row)
    out = []
    for key, rows in by_level.items():
        rows = sorted(rows, key=lambda r: r["images_per_s"])
        out.append(dict(rows[(len(rows) - 1) // 2], rounds=len(rows),
                        images_per_s_all=[round(r["images_per_s"], 1) for r in rows]))
    return out


# ---------------------------------------------------------------------------------------------------------------
# The curves.

def fmt(v, digits=1):
    if v is None:
        return "-"
    return "{:,.{d}f}".format(v, d=digits)


def errors_text(row):
    return ", ".join("%s %d" % kv for kv in sorted(row["errors"].items())) or "0"


def header_markdown(result):
    """The machine and the command, above a benchmark's tables."""
    warning = busy_warning(result["machine"])
    return ([warning, ""] if warning else []) + ["Machine: %s." % machine_line(result["machine"]), "",
            "Command: `%s` (%.0f s); each table below gives the cnnload command it ran (ADDR: the server's "
            "ephemeral address)." % (result["command"], result.get("seconds", 0)), ""]


def curves_markdown(result):
    lines = header_markdown(result)
    for run in result["closed_loop"]:
        lines.append("**%s, dynamic batching %s** (%s; %s, batch %d per request)" % (
            run["model"], run["batching"], run["config_note"], run["input"], run["batch"]))
        lines.append("")
        lines.append("`%s`" % run["command"])
        lines.append("")
        lines.append("| concurrency | requests/s | images/s | p50 ms | p90 ms | p95 ms | p99 ms | p99.9 ms | max ms | "
                     "errors | client CPU |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for row in run["rows"]:
            lat = row["latency_ms"]
            lines.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f |" % (
                row["concurrency"], fmt(row["requests_per_s"]), fmt(row["images_per_s"]), fmt(lat["p50"], 2),
                fmt(lat["p90"], 2), fmt(lat["p95"], 2), fmt(lat["p99"], 2), fmt(lat["p999"], 2),
                fmt(lat["max"], 2), errors_text(row), row["client_cpu_cores"]))
        lines.append("")
    for run in result["open_loop"]:
        lines.append("**%s, dynamic batching %s, open loop (Poisson arrivals)**: rates at %s of the closed-loop peak "
                     "(%s requests/s)" % (run["model"], run["batching"],
                                          ", ".join("%d%%" % round(100 * f) for f in run["fractions"]),
                                          fmt(run["peak_requests_per_s"])))
        lines.append("")
        lines.append("`%s`" % run["command"])
        lines.append("")
        lines.append("| target req/s | offered req/s | achieved req/s | completed req/s | p50 ms | p90 ms | p99 ms | "
                     "p99.9 ms | max ms | errors | send lag p99 ms |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for row in run["rows"]:
            lat = row["latency_ms"]
            lag = row.get("send_lag_us", {}).get("p99")
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                fmt(row["target_rate"]), fmt(row["offered_rate"]), fmt(row["achieved_rate"]),
                fmt(row["requests_per_s"]),
                fmt(lat["p50"], 2), fmt(lat["p90"], 2), fmt(lat["p99"], 2), fmt(lat["p999"], 2), fmt(lat["max"], 2),
                errors_text(row), fmt(lag / 1000 if lag is not None else None, 2)))
        lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--zoo", default=DEFAULT_ZOO)
    p.add_argument("--models", default="lenet5_fashion,alexnet")
    p.add_argument("--levels", default="1,2,4,8,16,32")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before each level (default 1)")
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per level (default 3)")
    p.add_argument("--alexnet-scale", type=float, default=1.5,
                   help="alexnet's warm-up and duration are multiplied by this (default 1.5: slower requests)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--no-open-loop", action="store_true")
    p.add_argument("--fractions", default="0.1,0.25,0.5,0.75,0.9,1.0",
                   help="open-loop rates as fractions of the closed-loop peak")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "server_curves"))
    args = p.parse_args()

    work = os.path.join(args.build, "bench")
    levels = [int(c) for c in args.levels.split(",")]
    fractions = [float(f) for f in args.fractions.split(",")]
    start = time.time()
    result = {"benchmark": "server_curves", "machine": machine(), "closed_loop": [], "open_loop": [],
              "command": "bench/server_curves.py " + " ".join(sys.argv[1:])}

    configs = []  # (model, batching, repo, inputs, config_note, scale)
    for model in args.models.split(","):
        if model == "lenet5_fashion":
            config, onnx, labels = lenet_config()
            inputs = fashion_images(work)
            note_on = "models/repository/lenet5_fashion/config.pbtxt"
            scale = 1.0
        else:
            if not os.path.exists(os.path.join(args.zoo, model + ".onnx")):
                sys.exit("missing %s/%s.onnx: run `make zoo` first" % (args.zoo, model))
            config, onnx, labels = zoo_config(args.zoo, model, work)
            inputs = imagenet_like_images(work)
            note_on = "add_zoo_models.sh config"
            scale = args.alexnet_scale
        for batching in ("on", "off"):
            repo = os.path.join(work, "repos", "%s-batching-%s" % (model, batching))
            text = config if batching == "on" else without_batching(config)
            add_model(repo, model, text, onnx, labels)
            m = re.search(r"(?m)^max_batch_size:\s*(\d+)", text)
            d = re.search(r"max_queue_delay_us:\s*(\d+)", text)
            note = ("%s: max_batch_size %s, max_queue_delay_us %s" % (note_on, m.group(1), d.group(1) if d else "-")
                    if batching == "on" else "max_batch_size 0, no dynamic_batching")
            configs.append((model, batching, repo, inputs, note, scale))

    runs = {}
    for rnd in range(args.rounds):
        order = configs if rnd % 2 == 0 else list(reversed(configs))
        for model, batching, repo, inputs, note, scale in order:
            cl_args = cnnload_args(model, inputs, levels=levels, warmup=args.warmup * scale,
                                   duration=args.duration * scale)
            with Server(args.build, repo, os.path.join(work, "logs", "%s-%s.log" % (model, batching))) as server:
                doc = run_cnnload(args.build, server.address, cl_args,
                                  os.path.join(args.out, "%s-batching-%s-r%d.csv" % (model, batching, rnd + 1)))
                runs.setdefault((model, batching), {"doc": doc, "rows": [], "args": cl_args, "note": note,
                                                    "repo": repo, "inputs": inputs, "scale": scale})
                runs[(model, batching)]["rows"].append(doc["rows"])
            log("round %d: %s batching %s done (%.0f s)" % (rnd + 1, model, batching, time.time() - start))

    for (model, batching), run in runs.items():
        result["closed_loop"].append({
            "model": model, "batching": batching, "config_note": run["note"], "input": run["doc"]["input"],
            "batch": run["doc"]["batch"], "request_bytes": run["doc"]["request_bytes"],
            "command": shown_command(run["args"]), "rows": median_rows(run["rows"])})

    if not args.no_open_loop:
        for (model, batching), run in runs.items():
            if batching != "on":
                continue
            rows = next(r for r in result["closed_loop"] if r["model"] == model and r["batching"] == batching)["rows"]
            peak = max(r["requests_per_s"] for r in rows)
            rates = [max(1.0, round(f * peak, 1)) for f in fractions]
            ol_args = cnnload_args(model, run["inputs"], rates=rates, warmup=args.warmup * run["scale"],
                                   duration=args.duration * run["scale"],
                                   extra=["--drain-timeout-s", "10", "--max-outstanding", "1024"])
            with Server(args.build, run["repo"], os.path.join(work, "logs", "%s-open.log" % model)) as server:
                doc = run_cnnload(args.build, server.address, ol_args,
                                  os.path.join(args.out, "%s-open-loop.csv" % model))
            result["open_loop"].append({"model": model, "batching": batching, "fractions": fractions,
                                        "peak_requests_per_s": peak, "input": doc["input"],
                                        "command": shown_command(ol_args), "rows": doc["rows"]})
            log("open loop: %s done (%.0f s)" % (model, time.time() - start))

    result["seconds"] = round(time.time() - start, 1)
    write_results(args.out, result, curves_markdown)


if __name__ == "__main__":
    main()
