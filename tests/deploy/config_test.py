#!/usr/bin/python3
"""Static checks of everything under deploy/ and docker/ (issue #7).

  * promtool check config / check rules / test rules on the shipped Prometheus files;
  * every Kubernetes overlay renders (kubectl kustomize) and the rendered objects have what a
    production deployment needs: gRPC health probes, resources, a non-root read-only security
    context, named ports, volume claims, selectors that match, an HPA that targets the inference
    Deployment. Without kubectl (not a Debian 12 package) the same checks run on the raw YAML
    of base and overlays, patches not applied, and the test says so;
  * bertd knows every flag the ConfigMaps and the image pass it (bertd --helpfull);
  * Dockerfiles: multi-stage, non-root, HEALTHCHECK; compose.yaml and Grafana provisioning parse
    and point at files that exist (no Docker daemon here: `docker compose config` cannot run);
  * scripts/runtime-packages.sh names the Debian runtime packages of the built bertd.

Environment: BERTD_BINARY (optional: flag and runtime-package checks), PROMTOOL_BINARY, KUBECTL.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEPLOY = os.path.join(REPO, "deploy")
K8S = os.path.join(DEPLOY, "kubernetes")
OVERLAYS = ["cpu", "gpu", "inference"]

PROMTOOL = os.environ.get("PROMTOOL_BINARY") or shutil.which("promtool")
KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl")
BERTD = os.environ.get("BERTD_BINARY")


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)


# --- Prometheus ----------------------------------------------------------------------------------

@unittest.skipUnless(PROMTOOL, "promtool not installed (Debian package prometheus)")
class PromtoolAcceptsTheShippedFiles(unittest.TestCase):
    def test_check_config(self):
        result = run([PROMTOOL, "check", "config", os.path.join(DEPLOY, "prometheus", "prometheus.yml")])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_check_rules(self):
        result = run([PROMTOOL, "check", "rules", os.path.join(DEPLOY, "prometheus", "alerts.yml")])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("6 rules found", result.stdout)

    def test_alert_unit_tests(self):
        result = run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=HERE)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_every_alert_has_a_unit_test(self):
        with open(os.path.join(DEPLOY, "prometheus", "alerts.yml")) as f:
            alerts = {r["alert"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]}
        with open(os.path.join(HERE, "alerts_test.yml")) as f:
            tested = {case["alertname"] for test in yaml.safe_load(f)["tests"]
                      for case in test["alert_rule_test"] if case["exp_alerts"]}
        self.assertEqual(alerts - tested, set(), "alerts never shown to fire")


# --- Kubernetes ----------------------------------------------------------------------------------

def load_raw(directory):
    """Raw objects of a kustomization and of the bases it lists, patches not applied; the
    fallback when kubectl is missing."""
    with open(os.path.join(directory, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    objects = []
    for resource in kustomization.get("resources", []):
        path = os.path.join(directory, resource)
        if os.path.isdir(path):
            objects += load_raw(path)
        else:
            with open(path) as f:
                objects += [doc for doc in yaml.safe_load_all(f) if doc]
    # kustomize's `labels` transformer, for the kinds used here.
    for entry in kustomization.get("labels", []):
        pairs = entry["pairs"]
        for o in objects:
            o.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            if not entry.get("includeSelectors"):
                continue
            spec = o.get("spec", {})
            if o["kind"] == "Service":
                spec.setdefault("selector", {}).update(pairs)
            elif o["kind"] in ("StatefulSet", "Deployment"):
                spec["selector"]["matchLabels"].update(pairs)
                spec["template"]["metadata"].setdefault("labels", {}).update(pairs)
            elif o["kind"] == "PodDisruptionBudget":
                spec["selector"]["matchLabels"].update(pairs)
    for generator in kustomization.get("configMapGenerator", []):
        data = {}
        for file in generator.get("files", []):
            with open(os.path.join(directory, file)) as f:
                data[os.path.basename(file)] = f.read()
        objects = [o for o in objects if not (o["kind"] == "ConfigMap"
                                              and o["metadata"]["name"] == generator["name"])]
        objects.append({"kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    return objects


def render(overlay):
    """(objects, how): kubectl kustomize when available, else the raw YAML."""
    directory = os.path.join(K8S, "overlays", overlay)
    if KUBECTL:
        result = run([KUBECTL, "kustomize", directory])
        if result.returncode != 0:
            raise AssertionError(f"kubectl kustomize {overlay}: {result.stderr}")
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc], "kubectl kustomize"
    return load_raw(directory), "raw YAML (kubectl not installed; patches not applied)"


def selector_matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def workloads(objects):
    return [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]


def check_workload(test, objects, workload, how):
    name = f"{workload['kind']}/{workload['metadata']['name']} ({how})"
    spec = workload["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    test.assertTrue(selector_matches(spec["selector"]["matchLabels"], labels), name)
    pod_security = pod.get("securityContext", {})
    test.assertIs(pod_security.get("runAsNonRoot"), True, name)
    test.assertNotEqual(pod_security.get("runAsUser", 0), 0, name)
    test.assertFalse(pod.get("automountServiceAccountToken", True), name)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    configmaps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    for container in pod["containers"]:
        where = f"{name} container {container['name']}"
        security = container.get("securityContext", {})
        test.assertIs(security.get("allowPrivilegeEscalation"), False, where)
        test.assertIs(security.get("readOnlyRootFilesystem"), True, where)
        test.assertIn("ALL", security.get("capabilities", {}).get("drop", []), where)
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                test.assertIn(resource, resources.get(kind, {}), f"{where}: resources.{kind}.{resource}")
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        test.assertNotIn(None, ports, f"{where}: every port needs a name")
        test.assertEqual(set(ports), {"grpc", "metrics"}, where)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            grpc = container.get(probe, {}).get("grpc")
            test.assertIsNotNone(grpc, f"{where}: {probe} must be a native gRPC probe")
            test.assertEqual(grpc["port"], ports["grpc"], f"{where}: {probe} port")
        test.assertEqual(container["readinessProbe"]["grpc"].get("service"),
                         "bertd.v1.InferenceService", where)
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        for path, volume in mounts.items():
            test.assertTrue(volume in volumes or volume in claims, f"{where}: volume {volume}")
        test.assertIn("/var/lib/bertd", mounts, f"{where}: --data_dir needs a volume")
        test.assertIn("/tmp", mounts, f"{where}: a read-only root needs a writable /tmp")
        flags_volume = volumes[mounts["/etc/bertd"]]
        test.assertIn(flags_volume["configMap"]["name"], configmaps, where)
        test.assertIn("--flagfile=/etc/bertd/bertd.flags", container.get("args", []), where)
    return labels


class KustomizeOverlays(unittest.TestCase):
    def test_every_overlay_renders_and_has_the_required_fields(self):
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay):
                objects, how = render(overlay)
                print(f"{overlay}: {len(objects)} objects checked from {how}")
                kinds = [o["kind"] for o in objects]
                self.assertEqual(len(workloads(objects)), 1, kinds)
                workload = workloads(objects)[0]
                labels = check_workload(self, objects, workload, how)
                for kind in ("Service", "PodDisruptionBudget", "ServiceMonitor", "ConfigMap"):
                    self.assertIn(kind, kinds, overlay)
                services = [o for o in objects if o["kind"] == "Service"]
                for service in services:
                    self.assertTrue(selector_matches(service["spec"]["selector"], labels),
                                    service["metadata"]["name"])
                    for port in service["spec"]["ports"]:
                        self.assertIn("name", port, service["metadata"]["name"])
                        self.assertIn(port["targetPort"], ("grpc", "metrics"))
                for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
                    self.assertTrue(selector_matches(pdb["spec"]["selector"]["matchLabels"], labels))
                for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
                    matched = [s for s in services
                               if selector_matches(monitor["spec"]["selector"]["matchLabels"],
                                                   s["metadata"].get("labels", {}))]
                    self.assertEqual(len(matched), 1, "ServiceMonitor must select one Service")
                    self.assertIn("metrics", [p["name"] for p in matched[0]["spec"]["ports"]])

    def test_the_server_is_a_statefulset_with_a_data_claim(self):
        for overlay in ("cpu", "gpu"):
            objects, how = render(overlay)
            workload = workloads(objects)[0]
            self.assertEqual(workload["kind"], "StatefulSet", overlay)
            self.assertEqual(workload["spec"]["replicas"], 1, overlay)
            claims = workload["spec"]["volumeClaimTemplates"]
            self.assertEqual([c["metadata"]["name"] for c in claims], ["data"])
            self.assertIn("storage", claims[0]["spec"]["resources"]["requests"])

    def test_gpu_overlay_asks_for_one_gpu_and_tolerates_gpu_nodes(self):
        objects, how = render("gpu")
        if not KUBECTL:
            self.skipTest("the GPU settings are a patch; kubectl kustomize is needed to apply it")
        pod = workloads(objects)[0]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        self.assertEqual(container["resources"]["limits"]["nvidia.com/gpu"], 1)
        self.assertTrue(any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"]))
        self.assertIn("nvidia.com/gpu.present", pod["nodeSelector"])
        flags = flags_of(objects)
        self.assertIn("--device=cuda", flags)
        self.assertIn("--training_devices=auto", flags)  # one training slot per GPU of the pod

    def test_inference_overlay_scales_a_deployment_on_queue_depth(self):
        objects, _ = render("inference")
        deployment = workloads(objects)[0]
        self.assertEqual(deployment["kind"], "Deployment")
        hpa = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
        self.assertEqual(len(hpa), 1)
        target = hpa[0]["spec"]["scaleTargetRef"]
        self.assertEqual((target["kind"], target["name"]),
                         ("Deployment", deployment["metadata"]["name"]))
        pod_metrics = [m["pods"]["metric"]["name"] for m in hpa[0]["spec"]["metrics"]
                       if m["type"] == "Pods"]
        self.assertEqual(pod_metrics, ["bertd_queue_depth"])
        with open(os.path.join(K8S, "overlays", "inference", "prometheus-adapter-values.yaml")) as f:
            adapter = yaml.safe_load(f)
        served = [rule["name"]["as"] for rule in adapter["rules"]["custom"]]
        self.assertIn("bertd_queue_depth", served)
        pod = deployment["spec"]["template"]["spec"]
        models = [v for v in pod["volumes"] if v["name"] == "models"][0]
        self.assertTrue(models["persistentVolumeClaim"]["readOnly"])
        mount = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "models"][0]
        self.assertTrue(mount["readOnly"])
        flags = flags_of(objects)
        self.assertIn("--training_devices=none", flags)
        self.assertIn(f"--model_repository={mount['mountPath']}", flags)


def render_dir(relative):
    """Objects of a kustomization under deploy/kubernetes (kubectl kustomize only)."""
    result = run([KUBECTL, "kustomize", os.path.join(K8S, relative)])
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {relative}: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def check_training_job(test, job, world_size, plan):
    """An Indexed Job of one bertd worker per rank, rendezvousing through the headless Service."""
    spec = job["spec"]
    test.assertEqual(spec["completionMode"], "Indexed")
    test.assertEqual(spec["completions"], world_size)
    test.assertEqual(spec["parallelism"], world_size)
    test.assertEqual(spec["backoffLimit"], 0)  # retries are the server's (restart_policy)
    pod = spec["template"]["spec"]
    test.assertEqual(pod["restartPolicy"], "Never")
    test.assertEqual(pod["subdomain"], "bertd-training")
    test.assertIs(pod["securityContext"]["runAsNonRoot"], True)
    test.assertFalse(pod.get("automountServiceAccountToken", True))
    container = pod["containers"][0]
    test.assertEqual(container["args"], [f"--worker_plan={plan}"])
    env = {e["name"]: e for e in container["env"]}
    test.assertEqual(env["WORLD_SIZE"]["value"], str(world_size))
    test.assertEqual(env["RANK"]["valueFrom"]["fieldRef"]["fieldPath"],
                     "metadata.annotations['batch.kubernetes.io/job-completion-index']")
    test.assertEqual(env["MASTER_ADDR"]["value"], "$(JOB_NAME)-0.bertd-training")
    test.assertLess(list(env).index("JOB_NAME"), list(env).index("MASTER_ADDR"),
                    "$(JOB_NAME) expands only after JOB_NAME is defined")
    test.assertEqual(env["MASTER_PORT"]["value"], "29500")
    security = container["securityContext"]
    test.assertIs(security["allowPrivilegeEscalation"], False)
    test.assertIs(security["readOnlyRootFilesystem"], True)
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            test.assertIn(resource, container["resources"][kind])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # The plan's paths are the server's: the same claim at the same path.
    test.assertEqual(volumes[mounts["/var/lib/bertd"]]["persistentVolumeClaim"]["claimName"],
                     "bertd-shared")
    test.assertTrue(plan.startswith("/var/lib/bertd/"))
    return container


@unittest.skipUnless(KUBECTL, "kubectl is needed to render the training manifests")
class MultiNodeTraining(unittest.TestCase):
    def test_training_example_renders_an_indexed_job_and_its_headless_service(self):
        objects = render_dir("training")
        kinds = sorted(o["kind"] for o in objects)
        self.assertEqual(kinds, ["Job", "Service"])
        job = [o for o in objects if o["kind"] == "Job"][0]
        check_training_job(self, job, 2, "/var/lib/bertd/jobs/JOB_ID/plan.json")
        service = [o for o in objects if o["kind"] == "Service"][0]
        self.assertEqual(service["metadata"]["name"], "bertd-training")
        self.assertEqual(service["spec"]["clusterIP"], "None")
        labels = job["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selector_matches(service["spec"]["selector"], labels))
        self.assertEqual(service["spec"]["ports"][0]["targetPort"], "rendezvous")

    def test_gpu_variant_asks_for_one_gpu_per_rank(self):
        job = render_dir("training/gpu")[0]
        container = check_training_job(self, job, 2, "/var/lib/bertd/jobs/JOB_ID/plan.json")
        self.assertEqual(container["resources"]["limits"]["nvidia.com/gpu"], 1)
        pod = job["spec"]["template"]["spec"]
        self.assertTrue(any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"]))
        self.assertTrue(container["image"].endswith("-cuda"))

    def test_launch_script_renders_one_job_per_attempt(self):
        plan = "/var/lib/bertd/jobs/job-0123456789ab/plan.json"
        for variant in ("cpu", "gpu"):
            env = dict(os.environ, BERTD_JOB_ID="job-0123456789ab", BERTD_WORLD_SIZE="4",
                       BERTD_PLAN=plan, BERTD_ATTEMPT="2", BERTD_LAUNCH_DRY_RUN="1",
                       BERTD_TRAINING_VARIANT=variant, PATH=os.path.dirname(KUBECTL) + ":/usr/bin:/bin")
            result = run([os.path.join(K8S, "training", "launch.sh")], env=env)
            self.assertEqual(result.returncode, 0, result.stderr)
            objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
            self.assertEqual([o["kind"] for o in objects], ["Job"], variant)
            job = objects[0]
            self.assertEqual(job["metadata"]["name"], "bertd-train-0123456789ab-2")
            self.assertEqual(job["metadata"]["labels"]["bertd/job-id"], "job-0123456789ab")
            check_training_job(self, job, 4, plan)
        env["BERTD_TRAINING_VARIANT"] = "tpu"
        result = run([os.path.join(K8S, "training", "launch.sh")], env=env)
        self.assertEqual(result.returncode, 2)
        self.assertIn("expected cpu or gpu", result.stderr)

    def test_multinode_overlay_shares_the_data_volume_and_may_create_jobs(self):
        objects = render_dir("overlays/multinode")
        server = workloads(objects)[0]
        self.assertNotIn("volumeClaimTemplates", server["spec"])
        pod = server["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.assertEqual(volumes["data"]["persistentVolumeClaim"]["claimName"], "bertd-shared")
        claim = [o for o in objects if o["kind"] == "PersistentVolumeClaim"][0]
        self.assertEqual(claim["metadata"]["name"], "bertd-shared")
        self.assertEqual(claim["spec"]["accessModes"], ["ReadWriteMany"])
        self.assertEqual(pod["serviceAccountName"], "bertd")
        role = [o for o in objects if o["kind"] == "Role"][0]
        self.assertTrue(any("jobs" in r["resources"] and "create" in r["verbs"] for r in role["rules"]))
        binding = [o for o in objects if o["kind"] == "RoleBinding"][0]
        self.assertEqual(binding["subjects"][0]["name"], "bertd")
        self.assertIn("--external_launch_command=/usr/local/share/bertd/training/launch.sh",
                      flags_of(objects))
        for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
            with open(os.path.join(REPO, "docker", dockerfile)) as f:
                self.assertIn("COPY deploy/kubernetes/training/ /usr/local/share/bertd/training/",
                              f.read(), dockerfile)
        self.assertIn("bertd-training", [o["metadata"]["name"] for o in objects if o["kind"] == "Service"])


def flags_of(objects):
    maps = [o for o in objects if o["kind"] == "ConfigMap" and "bertd.flags" in o.get("data", {})]
    assert len(maps) == 1, [o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"]
    return maps[0]["data"]["bertd.flags"].split()


# --- bertd flags ----------------------------------------------------------------------------------

@unittest.skipUnless(BERTD, "BERTD_BINARY not set")
class BertdKnowsEveryShippedFlag(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        result = run([BERTD, "--helpfull"])
        cls.known = set(re.findall(r"^\s+--(\w+)", result.stdout + result.stderr, re.M))
        assert "data_dir" in cls.known, result.stdout[:2000]

    def check(self, where, flags):
        for flag in flags:
            name = re.match(r"--(\w+)", flag)
            self.assertIsNotNone(name, f"{where}: {flag}")
            self.assertIn(name.group(1), self.known | {"flagfile"}, f"{where}: {flag}")

    def test_flag_files(self):
        files = glob.glob(os.path.join(K8S, "**", "bertd.flags"), recursive=True)
        self.assertEqual(len(files), 5)
        for path in files:
            with open(path) as f:
                self.check(os.path.relpath(path, REPO), f.read().split())

    def test_bertd_starts_with_each_flag_file(self):
        """The files as bertd reads them (--flagfile), with loopback ports and a scratch data
        directory given after them (later flags win)."""
        import tempfile
        import time
        for path in sorted(glob.glob(os.path.join(K8S, "**", "bertd.flags"), recursive=True)):
            with self.subTest(flags=os.path.relpath(path, REPO)), \
                    tempfile.TemporaryDirectory() as data:
                log_path = os.path.join(data, "log")
                with open(log_path, "w") as log:
                    proc = subprocess.Popen(
                        [BERTD, f"--flagfile={path}", "--listen=127.0.0.1:0",
                         "--metrics_listen=127.0.0.1:0", f"--data_dir={data}",
                         f"--model_repository={data}/models", "--intra_op_threads=1"],
                        stdout=log, stderr=subprocess.STDOUT)
                try:
                    deadline = time.time() + 120
                    while time.time() < deadline and proc.poll() is None:
                        with open(log_path) as f:
                            if "bertd: ready" in f.read():
                                break
                        time.sleep(0.5)
                    with open(log_path) as f:
                        self.assertIn("bertd: ready", f.read())
                finally:
                    if proc.poll() is None:
                        proc.terminate()
                    self.assertEqual(proc.wait(timeout=60), 0, open(log_path).read())

    def test_image_and_compose_commands(self):
        for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
            cmd = dockerfile_instruction(dockerfile, "CMD")
            self.check(dockerfile, json.loads(cmd))
        with open(os.path.join(REPO, "docker", "compose.yaml")) as f:
            compose = yaml.safe_load(f)
        self.check("compose.yaml", compose["services"]["bertd"]["command"])

    def test_runtime_packages_of_the_built_binary(self):
        result = run([os.path.join(REPO, "scripts", "runtime-packages.sh"), BERTD])
        self.assertEqual(result.returncode, 0, result.stderr)
        packages = result.stdout.split()
        for expected in ("libtorch1.13", "libgrpc++1.51", "libprotobuf32", "libsqlite3-0"):
            self.assertIn(expected, packages)
        self.assertEqual([p for p in packages if p.endswith("-dev")], [])


# --- Docker and Grafana ---------------------------------------------------------------------------

def dockerfile_text(name):
    with open(os.path.join(REPO, "docker", name)) as f:
        return f.read()


def dockerfile_instruction(name, instruction):
    """The last `instruction` of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", dockerfile_text(name))
    lines = [l for l in text.splitlines() if l.startswith(instruction + " ")]
    return lines[-1][len(instruction) + 1:].strip()


class DockerFiles(unittest.TestCase):
    def test_multi_stage_non_root_with_healthcheck(self):
        for name in ("Dockerfile", "Dockerfile.cuda"):
            text = dockerfile_text(name)
            stages = re.findall(r"^FROM \S+ AS (\w+)", text, re.M)
            self.assertEqual(stages, ["build", "runtime"], name)
            runtime = text.split("AS runtime", 1)[1]
            self.assertNotRegex(runtime, r"install-deps\.sh|-dev\b", f"{name}: runtime stage")
            user = dockerfile_instruction(name, "USER")
            self.assertNotIn(user.split(":")[0], ("0", "root"), name)
            health = dockerfile_instruction(name, "HEALTHCHECK")
            self.assertIn('CMD ["bertctl"', health, name)
            self.assertIn('"health"', health, name)
            self.assertEqual(json.loads(dockerfile_instruction(name, "ENTRYPOINT")), ["bertd"])
        self.assertIn("scripts/install-deps.sh", dockerfile_text("Dockerfile"))

    def test_compose_file(self):
        with open(os.path.join(REPO, "docker", "compose.yaml")) as f:
            compose = yaml.safe_load(f)
        self.assertEqual(set(compose["services"]), {"bertd", "prometheus", "grafana"})
        build = compose["services"]["bertd"]["build"]
        context = os.path.normpath(os.path.join(REPO, "docker", build["context"]))
        self.assertTrue(os.path.isfile(os.path.join(context, build["dockerfile"])))
        for service in compose["services"].values():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("."):
                    self.assertTrue(os.path.exists(os.path.join(REPO, "docker", source)), volume)
        # Prometheus scrapes the compose service by name on the metrics port bertd listens on.
        with open(os.path.join(DEPLOY, "prometheus", "prometheus.yml")) as f:
            targets = yaml.safe_load(f)["scrape_configs"][0]["static_configs"][0]["targets"]
        self.assertEqual(targets, ["bertd:9464"])
        self.assertIn("--metrics_listen=0.0.0.0:9464", compose["services"]["bertd"]["command"])
        if shutil.which("docker") and run(["docker", "compose", "version"]).returncode == 0:
            result = run(["docker", "compose", "-f", os.path.join(REPO, "docker", "compose.yaml"),
                          "config", "--quiet"])
            self.assertEqual(result.returncode, 0, result.stderr)
        else:
            print("docker compose is not available: compose.yaml checked as YAML only")

    def test_grafana_provisioning_and_dashboards(self):
        with open(os.path.join(DEPLOY, "grafana", "provisioning", "datasources", "prometheus.yaml")) as f:
            datasource = yaml.safe_load(f)["datasources"][0]
        uids = set()
        for path in sorted(glob.glob(os.path.join(DEPLOY, "grafana", "dashboards", "*.json"))):
            with open(path) as f:
                dashboard = json.load(f)
            self.assertNotIn(dashboard["uid"], uids)
            uids.add(dashboard["uid"])
            ids = [p["id"] for p in dashboard["panels"]]
            self.assertEqual(len(ids), len(set(ids)), path)
            for panel in dashboard["panels"]:
                g = panel["gridPos"]
                self.assertLessEqual(g["x"] + g["w"], 24, panel["title"])
                self.assertEqual(panel["datasource"]["uid"], datasource["uid"], panel["title"])
                self.assertTrue(panel["targets"], panel["title"])
        self.assertEqual(uids, {"bertd-serving", "bertd-training"})
        with open(os.path.join(DEPLOY, "grafana", "provisioning", "dashboards", "bertd.yaml")) as f:
            provider = yaml.safe_load(f)["providers"][0]
        with open(os.path.join(REPO, "docker", "compose.yaml")) as f:
            grafana = yaml.safe_load(f)["services"]["grafana"]
        self.assertIn(f"../deploy/grafana/dashboards:{provider['options']['path']}:ro",
                      grafana["volumes"])


if __name__ == "__main__":
    print(f"promtool: {PROMTOOL or 'missing'}; kubectl: {KUBECTL or 'missing (raw YAML checks)'}; "
          f"bertd: {BERTD or 'not given'}")
    unittest.main(verbosity=2)
