#!/usr/bin/python3
"""The real bertd scraped by a real Prometheus with the shipped configuration (issue #7).

One bertd (the built binary) and one Prometheus (Debian's package) on loopback ports. The
shipped deploy/prometheus/prometheus.yml is used with only its target, its intervals and the
rule file path changed for the test. Traffic comes from the real bertctl: classifications on the
tiny fixture model, a few refused calls, and a short fine-tuning job on 24 SST-2 rows. Then:

  * Prometheus reports the target up and holds the series the dashboards and rules use;
  * every metric name in every dashboard, alert rule and adapter rule is one bertd exports
    (GET /metrics of the running server), and every expression is valid PromQL for Prometheus;
  * the alert rules load into the running Prometheus;
  * the dashboards render to PNG from the collected data (scripts/render-dashboards.py); with
    BERTD_DASHBOARD_PNG_DIR set the PNGs are written there (docs/images for the docs).

Environment: BERTD_BINARY, BERTCTL_BINARY, PROMETHEUS_BINARY, BERTD_SHARED_DIR (else
BERTD_DEFAULT_SHARED_DIR).
Exits 77 (ctest: skipped) when Prometheus or shared/ is missing, saying which.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import promql_names  # noqa: E402

REPO = promql_names.REPO
SKIP = 77


def shared_dir():
    return os.environ.get("BERTD_SHARED_DIR") or os.environ.get("BERTD_DEFAULT_SHARED_DIR", "")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def wait_for(what, predicate, timeout, interval=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, urllib.error.URLError, ValueError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Env:
    """Processes and data shared by every test: started once in setUpModule."""
    tmp = None
    bertd = None
    prometheus = None
    grpc_port = metrics_port = prom_port = 0
    start_time = end_time = 0.0
    exposition = ""
    prom_url = ""


def bertctl(*args, timeout=300):
    result = subprocess.run(
        [os.environ["BERTCTL_BINARY"], f"--server=127.0.0.1:{Env.grpc_port}", *args],
        capture_output=True, text=True, timeout=timeout)
    return result


def prom_query(expr, **params):
    url = f"{Env.prom_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr, **params})
    try:
        body = json.loads(http_get(url))
    except urllib.error.HTTPError as e:
        body = json.loads(e.read().decode())
    return body


def install_fixture_model(shared, repository):
    source = os.path.join(shared, "fixtures", "tiny-bert", "classifier")
    target = os.path.join(repository, "classifier", "1")
    os.makedirs(target)
    for name in ("config.json", "vocab.txt", "model.safetensors"):
        shutil.copy(os.path.join(source, name), target)


def shipped_config_for_test(config_dir):
    """deploy/prometheus/prometheus.yml with the test's target, 1 s intervals and the rules
    next to it; everything else as shipped."""
    with open(os.path.join(REPO, "deploy", "prometheus", "prometheus.yml")) as f:
        config = yaml.safe_load(f)
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == "bertd"]
    assert len(jobs) == 1, "prometheus.yml: expected one scrape job named bertd"
    jobs[0]["static_configs"][0]["targets"] = [f"127.0.0.1:{Env.metrics_port}"]
    shutil.copy(os.path.join(REPO, "deploy", "prometheus", "alerts.yml"), config_dir)
    path = os.path.join(config_dir, "prometheus.yml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    return path


TEXTS = ["a gripping, beautifully made film", "dull and far too long", "it was fine",
         "one of the best performances of the year", "i want my two hours back"]


class Traffic:
    """Classifications from 3 concurrent bertctl processes (so batches merge requests), and a
    refused call now and then, until stopped; counts what it sent."""

    def __init__(self, model):
        self.model = model
        self.ok = 0
        self.refused = 0
        self.failures = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(3)]

    def run(self, worker):
        i = 0
        while not self.stop.is_set():
            i += 1
            if worker == 0 and i % 10 == 0:
                result = bertctl("classify", "text", "--model", "no-such-model")
                with self.lock:
                    self.refused += result.returncode != 0
                continue
            result = bertctl("classify", TEXTS[(i + worker) % len(TEXTS)], "--model", self.model)
            with self.lock:
                if result.returncode == 0:
                    self.ok += 1
                else:
                    self.failures.append(result.stderr)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()


def generate_traffic(shared):
    """Inference traffic before, during and after a fine-tuning job of 150 steps on 24 SST-2
    rows (evaluation and a checkpoint every 50 steps), run by two data-parallel worker processes
    so that the data-parallel series exist too; returns the counts sent."""
    with open(os.path.join(shared, "data", "glue", "SST-2", "dev.tsv")) as f:
        lines = f.read().split("\n")
    train = os.path.join(Env.tmp, "sst2-slice.tsv")
    with open(train, "w") as f:
        f.write("\n".join(lines[:33]) + "\n")
    with Traffic("classifier") as before:
        time.sleep(5)
        job = bertctl("submit-job", "--task", "sequence_classification", "--train", train,
                      "--eval-split", "0.25", "--base-model", "classifier", "--output", "sst2",
                      "--set", f"max_steps={JOB_STEPS}", "--set", "per_device_train_batch_size=8",
                      "--set", "learning_rate=5e-4", "--set", "warmup_steps=20",
                      "--set", "save_steps=50", "--set", "eval_strategy=steps",
                      "--set", "eval_steps=50", "--set", "distributed.world_size=2",
                      "--follow", timeout=600)
        assert job.returncode == 0, job.stdout + job.stderr
    with Traffic("sst2") as after:
        time.sleep(5)
    for traffic in (before, after):
        assert not traffic.failures, traffic.failures[:3]
    return {"ok": before.ok + after.ok, "refused": before.refused + after.refused}


JOB_STEPS = 150


def setUpModule():
    prometheus = os.environ.get("PROMETHEUS_BINARY") or shutil.which("prometheus")
    shared = shared_dir()

    Env.tmp = tempfile.mkdtemp(prefix="bertd-deploy-")
    data_dir = os.path.join(Env.tmp, "data")
    install_fixture_model(shared, os.path.join(data_dir, "models"))
    Env.grpc_port, Env.metrics_port, Env.prom_port = free_port(), free_port(), free_port()
    Env.bertd_log = open(os.path.join(Env.tmp, "bertd.log"), "w")
    Env.bertd = subprocess.Popen(
        [os.environ["BERTD_BINARY"], f"--listen=127.0.0.1:{Env.grpc_port}",
         f"--metrics_listen=127.0.0.1:{Env.metrics_port}", f"--data_dir={data_dir}",
         "--intra_op_threads=1", "--training_threads=1", "--training_devices=cpu:2"],
        stdout=Env.bertd_log, stderr=subprocess.STDOUT)

    config_dir = os.path.join(Env.tmp, "prometheus")
    os.makedirs(config_dir)
    config = shipped_config_for_test(config_dir)
    Env.prom_url = f"http://127.0.0.1:{Env.prom_port}"
    Env.prometheus_log = open(os.path.join(Env.tmp, "prometheus.log"), "w")
    Env.prometheus = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={config_dir}/data",
         f"--web.listen-address=127.0.0.1:{Env.prom_port}", "--log.level=warn"],
        stdout=Env.prometheus_log, stderr=subprocess.STDOUT)
    Env.start_time = time.time()

    try:
        wait_for("bertd to serve",
                 lambda: bertctl("health", timeout=10).returncode == 0, timeout=120, interval=1)
        wait_for("Prometheus to be ready",
                 lambda: http_get(f"{Env.prom_url}/-/ready") is not None, timeout=60)
        Env.sent = generate_traffic(shared)
        # Let a few more scrapes and rule evaluations see the final values.
        time.sleep(5)
        Env.exposition = http_get(f"http://127.0.0.1:{Env.metrics_port}/metrics")
        Env.end_time = time.time()
    except Exception:
        tearDownModule()
        raise


def tearDownModule():
    for proc in (Env.prometheus, Env.bertd):
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    for log in (getattr(Env, "bertd_log", None), getattr(Env, "prometheus_log", None)):
        if log is not None:
            log.close()
    if os.environ.get("BERTD_DEPLOY_KEEP_TMP"):
        print(f"kept {Env.tmp}")
    elif Env.tmp:
        shutil.rmtree(Env.tmp, ignore_errors=True)


def logs():
    out = []
    for name in ("bertd.log", "prometheus.log"):
        path = os.path.join(Env.tmp, name)
        if os.path.exists(path):
            out.append(f"--- {name}\n" + open(path).read()[-4000:])
    return "\n".join(out)


class PrometheusScrapesBertd(unittest.TestCase):
    def test_target_is_up_with_the_shipped_job_name(self):
        targets = json.loads(http_get(f"{Env.prom_url}/api/v1/targets"))["data"]["activeTargets"]
        bertd = [t for t in targets if t["labels"].get("job") == "bertd"]
        self.assertEqual(len(bertd), 1, targets)
        self.assertEqual(bertd[0]["health"], "up", bertd[0].get("lastError"))
        self.assertEqual(bertd[0]["labels"]["instance"], f"127.0.0.1:{Env.metrics_port}")
        result = prom_query('up{job="bertd"}')["data"]["result"]
        self.assertEqual([r["value"][1] for r in result], ["1"])

    def test_serving_series_reflect_the_traffic(self):
        # Exactly the calls bertctl made: answered OK, or refused with NOT_FOUND.
        ok = prom_query('sum(bertd_requests_total{job="bertd",method="Classify",code="OK"})')
        self.assertEqual(float(ok["data"]["result"][0]["value"][1]), Env.sent["ok"], ok)
        refused = prom_query('sum(bertd_requests_total{job="bertd",method="Classify",code="NOT_FOUND"})')
        self.assertEqual(float(refused["data"]["result"][0]["value"][1]), Env.sent["refused"])
        self.assertGreater(Env.sent["refused"], 0)
        ready = prom_query('bertd_model_state{job="bertd",state="READY"} == 1')["data"]["result"]
        self.assertEqual(sorted(r["metric"]["model"] for r in ready), ["classifier@1", "sst2@1"])
        # Every classification was one sequence in some batch.
        batched = prom_query('sum(bertd_batch_size_sum{job="bertd"})')
        self.assertEqual(float(batched["data"]["result"][0]["value"][1]), Env.sent["ok"])
        capacity = prom_query('bertd_queue_capacity{job="bertd"}')["data"]["result"]
        self.assertEqual(float(capacity[0]["value"][1]), 1024)  # --max_queue_size default

    def test_training_series_of_the_finished_job(self):
        jobs = {r["metric"]["state"]: float(r["value"][1])
                for r in prom_query('bertd_jobs{job="bertd"}')["data"]["result"]}
        self.assertEqual(jobs, {"QUEUED": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 0,
                                "CANCELLED": 0})
        # Over the test's window the job was seen running, with the values its events carried.
        window = f"[{int(time.time() - Env.start_time) + 5}s]"
        loss = prom_query(f'max_over_time(bertd_job_loss{{job="bertd"}}{window})')["data"]["result"]
        self.assertEqual(len(loss), 1, loss)
        self.assertTrue(loss[0]["metric"]["job_id"].startswith("job-"))
        self.assertGreater(float(loss[0]["value"][1]), 0)
        step = prom_query(f'max_over_time(bertd_job_step{{job="bertd"}}{window})')["data"]["result"]
        self.assertEqual(float(step[0]["value"][1]), JOB_STEPS)
        total = prom_query(f'last_over_time(bertd_job_total_steps{{job="bertd"}}{window})')["data"]["result"]
        self.assertEqual(float(total[0]["value"][1]), JOB_STEPS)
        # The loss was sampled more than once while the job ran (progress at most every second).
        samples = prom_query(f'count_over_time(bertd_job_loss{{job="bertd"}}{window})')["data"]["result"]
        self.assertGreater(float(samples[0]["value"][1]), 3)
        for name in ("bertd_job_learning_rate", "bertd_job_samples_per_second",
                     "bertd_job_allreduce_seconds_per_step"):
            result = prom_query(f'last_over_time({name}{{job="bertd"}}{window})')["data"]["result"]
            self.assertEqual(len(result), 1, name)
        world = prom_query(f'last_over_time(bertd_job_world_size{{job="bertd"}}{window})')["data"]["result"]
        self.assertEqual(float(world[0]["value"][1]), 2)
        ranks = prom_query(f'last_over_time(bertd_job_rank_samples_per_second{{job="bertd"}}{window})')
        self.assertEqual(sorted(r["metric"]["rank"] for r in ranks["data"]["result"]), ["0", "1"])
        accuracy = prom_query(
            f'last_over_time(bertd_job_eval_metric{{job="bertd",metric="accuracy"}}{window})')["data"]["result"]
        self.assertEqual(len(accuracy), 1, accuracy)
        self.assertTrue(0 <= float(accuracy[0]["value"][1]) <= 1)
        checkpoints = prom_query('bertd_checkpoints_total{job="bertd"}')["data"]["result"]
        self.assertEqual(float(checkpoints[0]["value"][1]), JOB_STEPS // 50)  # every 50 steps
        finished = prom_query('bertd_jobs_finished_total{job="bertd",state="SUCCEEDED"}')
        self.assertEqual(float(finished["data"]["result"][0]["value"][1]), 1)

    def test_alert_rules_are_loaded_and_none_fires(self):
        groups = json.loads(http_get(f"{Env.prom_url}/api/v1/rules"))["data"]["groups"]
        rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
        self.assertEqual(set(rules), {"BertdDown", "BertdHighErrorRate", "BertdHighLatencyP99",
                                      "BertdQueueSaturated", "BertdTrainingJobFailed",
                                      "BertdModelLoadFailed"})
        for name, rule in rules.items():
            self.assertEqual(rule["health"], "ok", f"{name}: {rule.get('lastError')}")
            # "pending" is possible on a loaded machine (a slow first request), "firing" is not:
            # every rule with a chance to trigger here has a `for` longer than the test.
            self.assertNotEqual(rule["state"], "firing", name)


# The image's HEALTHCHECK talks TLS to a server with tokens: config_test.py runs it against bertd
# started with the image's own command, certificates and token file (ShippedCommandsRunWithTlsAndTokens).


class ShippedQueriesUseExportedMetrics(unittest.TestCase):
    def test_every_metric_name_is_exported_by_the_running_server(self):
        exported = promql_names.exported_names(Env.exposition)
        self.assertIn("bertd_job_loss", exported)  # sanity: the scrape is the full one
        unknown = []
        used = set()
        for where, expr in promql_names.shipped_expressions():
            for name in promql_names.metric_names(expr):
                used.add(name)
                if name not in exported and name not in promql_names.PROMETHEUS_SYNTHETIC:
                    unknown.append(f"{where}: {name}")
        self.assertEqual(unknown, [], "metric names bertd does not export")
        self.assertGreater(len(used), 20)

    def test_every_metric_name_has_series_in_prometheus(self):
        names = set(json.loads(http_get(f"{Env.prom_url}/api/v1/label/__name__/values"))["data"])
        missing = sorted({f"{where}: {name}" for where, expr in promql_names.shipped_expressions()
                          for name in promql_names.metric_names(expr) if name not in names})
        self.assertEqual(missing, [])

    def test_every_expression_is_valid_promql(self):
        for where, expr in promql_names.shipped_expressions():
            body = prom_query(promql_names.substitute_grafana_variables(expr))
            self.assertEqual(body.get("status"), "success", f"{where}: {expr}\n{body}")

    def test_the_lexer_finds_names_inside_every_construct(self):
        self.assertEqual(promql_names.metric_names(
            'sum by (method, le) (rate(a_bucket{x="b(c)",le!="1"}[5m] offset 1h))'
            ' / on (instance) group_left (model) max(b:c) > bool 3'), {"a_bucket", "b:c"})
        self.assertEqual(promql_names.metric_names('{__name__="d"} or time() - e'), {"d", "e"})
        self.assertEqual(promql_names.metric_names(
            'topk(3, f) unless count without (g) (h[$__rate_interval])'), {"f", "h"})


class DashboardsRender(unittest.TestCase):
    def test_every_panel_renders_from_prometheus_data(self):
        out = os.environ.get("BERTD_DASHBOARD_PNG_DIR") or os.path.join(Env.tmp, "png")
        dashboards = sorted(
            os.path.join(REPO, "deploy", "grafana", "dashboards", name)
            for name in os.listdir(os.path.join(REPO, "deploy", "grafana", "dashboards")))
        result = subprocess.run(
            [sys.executable, os.path.join(REPO, "scripts", "render-dashboards.py"),
             "--prometheus", Env.prom_url, "--start", str(Env.start_time),
             "--end", str(Env.end_time + 2), "--step", "1s", "--rate-interval", "10s",
             "--out", out, *dashboards],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        print(result.stdout)
        for path in dashboards:
            name = os.path.splitext(os.path.basename(path))[0]
            png = os.path.join(out, f"dashboard-{name}.png")
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        # Every panel has data (the checkpoint events carry their write time).
        empty = [line.split("series", 1)[1].strip() for line in result.stdout.splitlines()
                 if line.strip().startswith("0 series")]
        self.assertEqual(empty, [], result.stdout)


def missing_prerequisite():
    """Why the test cannot run here, or None."""
    missing = [name for name in ("BERTD_BINARY", "BERTCTL_BINARY") if not os.environ.get(name)]
    if missing:
        return f"set {', '.join(missing)}"
    if not (os.environ.get("PROMETHEUS_BINARY") or shutil.which("prometheus")):
        return "prometheus is not installed (scripts/install-deps.sh installs Debian's package)"
    shared = shared_dir()
    if not os.path.exists(os.path.join(shared, "fixtures", "tiny-bert", "classifier", "config.json")):
        return f"shared/ fixtures not found (BERTD_SHARED_DIR={shared!r})"
    return None


if __name__ == "__main__":
    reason = missing_prerequisite()
    if reason:
        # .ci/run sets BERTD_REQUIRE_SHARED_DATA=1: there a missing prerequisite is a failure.
        if os.environ.get("BERTD_REQUIRE_SHARED_DATA") == "1":
            print(f"FAILED: {reason} (BERTD_REQUIRE_SHARED_DATA=1)")
            sys.exit(1)
        print(f"SKIPPED: {reason}")
        sys.exit(SKIP)
    unittest.main(verbosity=2)
