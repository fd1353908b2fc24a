#!/usr/bin/python3
"""Static checks of everything under deploy/ and docker/ (issues #7 and #18).

  * promtool check config / check rules / test rules on the shipped Prometheus files;
  * every Kubernetes overlay renders (kubectl kustomize) and the rendered objects have what a
    production deployment needs: health probes (bertctl exec probes over TLS), resources, a
    non-root read-only security context, named ports, volume claims, selectors that match, an HPA
    that targets the inference Deployment. Without kubectl (not a Debian 12 package) the same
    checks run on the raw YAML of base and overlays, patches not applied, and the test says so;
  * secure by default (issue #18): in every overlay bertd gets --tls_cert, --tls_key and
    --auth_tokens_file from Secrets mounted read-only with a mode nobody may write, a NetworkPolicy
    admits only gRPC from labelled client namespaces and /metrics from the monitoring namespace
    (training workers only from each other), /metrics listens on the pod network explicitly, the
    cert-manager Certificate makes the Secret the pods mount with the names the probes verify, and
    no file under deploy/ or docker/ passes --allow_insecure; the image's default command and
    compose.yaml run with TLS and tokens;
  * bertd knows every flag the ConfigMaps and the image pass it (bertd --helpfull), and starts with
    the rendered arguments of every overlay, the image's command and compose's command, with
    certificates made by openssl and a token file made by `bertctl token create` in place of the
    Secrets; the probes and the image's HEALTHCHECK then pass over TLS, a call without a token is
    refused and one with the token is served;
  * Dockerfiles: multi-stage, non-root, HEALTHCHECK; compose.yaml and Grafana provisioning parse
    and point at files that exist (no Docker daemon here: `docker compose config` cannot run);
  * scripts/runtime-packages.sh names the Debian runtime packages of the built bertd.

Environment: BERTD_BINARY (optional: flag, start and runtime-package checks), BERTCTL_BINARY
(default: client/bertctl of BERTD_BINARY's build tree), PROMTOOL_BINARY, KUBECTL (KUBECTL=none:
the raw YAML checks even where kubectl is installed).
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
OVERLAYS = ["cpu", "gpu", "inference", "multinode"]

PROMTOOL = os.environ.get("PROMTOOL_BINARY") or shutil.which("promtool")
KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl")
if KUBECTL == "none":
    KUBECTL = None
BERTD = os.environ.get("BERTD_BINARY")
BERTCTL = os.environ.get("BERTCTL_BINARY") or (
    BERTD and os.path.join(os.path.dirname(os.path.abspath(BERTD)), "..", "client", "bertctl"))
if BERTCTL and not os.access(BERTCTL, os.X_OK):
    BERTCTL = None
OPENSSL = shutil.which("openssl")

# Issue #18: the labels the NetworkPolicies admit (documented in docs/operations.md).
CLIENT_NAMESPACES = {"bertd.io/client": "true"}
PROMETHEUS_NAMESPACE = {"kubernetes.io/metadata.name": "monitoring"}
# The Secrets the workloads mount; bertd's files and the keys of the TLS Secret.
TLS_SECRET = "bertd-tls"
TOKENS_SECRET = "bertd-auth-tokens"
SECURITY_FLAGS = ("tls_cert", "tls_key", "auth_tokens_file")


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
            elif o["kind"] == "NetworkPolicy":
                # kustomize: spec/podSelector and spec/ingress/from/podSelector, where present.
                if "matchLabels" in spec.get("podSelector", {}):
                    spec["podSelector"]["matchLabels"].update(pairs)
                for rule in spec.get("ingress", []):
                    for peer in rule.get("from", []):
                        if "matchLabels" in peer.get("podSelector", {}):
                            peer["podSelector"]["matchLabels"].update(pairs)
    for generator in kustomization.get("configMapGenerator", []):
        data = {}
        for file in generator.get("files", []):
            with open(os.path.join(directory, file)) as f:
                data[os.path.basename(file)] = f.read()
        objects = [o for o in objects if not (o["kind"] == "ConfigMap"
                                              and o["metadata"]["name"] == generator["name"])]
        objects.append({"kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    return objects


def render(overlay, parent="overlays"):
    """(objects, how): kubectl kustomize when available, else the raw YAML."""
    directory = os.path.join(K8S, parent, overlay)
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


def command_options(command):
    """{"--name": value} of the `--name=value` arguments of a command line."""
    return dict(arg.split("=", 1) for arg in command if arg.startswith("--") and "=" in arg)


def check_workload(test, objects, workload, how, service_account_token=False):
    """The fields every bertd workload needs; its pod labels. service_account_token: the
    multinode server mounts its token (kubectl in launch.sh creates the training Jobs)."""
    name = f"{workload['kind']}/{workload['metadata']['name']} ({how})"
    spec = workload["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    test.assertTrue(selector_matches(spec["selector"]["matchLabels"], labels), name)
    pod_security = pod.get("securityContext", {})
    test.assertIs(pod_security.get("runAsNonRoot"), True, name)
    test.assertNotEqual(pod_security.get("runAsUser", 0), 0, name)
    if service_account_token and KUBECTL:  # the raw YAML has not the overlay's patch
        test.assertIs(pod.get("automountServiceAccountToken"), True, name)
    elif not service_account_token:
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
        # The gRPC port is TLS, which kubelet's native gRPC probe cannot speak: the probes run
        # `bertctl health` in the container, over TLS to the pod's own port (no token needed).
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = container.get(probe, {}).get("exec", {}).get("command")
            test.assertIsNotNone(command, f"{where}: {probe} must be a bertctl exec probe")
            test.assertNotIn("grpc", container[probe], f"{where}: {probe}")
            test.assertEqual(command[0], "bertctl", f"{where}: {probe}")
            test.assertIn("health", command, f"{where}: {probe}")
            options = command_options(command)
            test.assertEqual(options.get("--server"), f"127.0.0.1:{ports['grpc']}", f"{where}: {probe}")
            test.assertIn("--tls-ca", options, f"{where}: {probe} must verify the server")
            test.assertIn("--tls-server-name", options, f"{where}: {probe}")
            # bertctl gives up before kubelet does, so a slow server reads as a failed check.
            test.assertLess(float(options["--timeout"]), container[probe].get("timeoutSeconds", 1),
                            f"{where}: {probe}")
            test.assertEqual(options.get("--model"),
                             "bertd.v1.InferenceService" if probe == "readinessProbe" else None,
                             f"{where}: {probe} health service")
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        for path, volume in mounts.items():
            test.assertTrue(volume in volumes or volume in claims, f"{where}: volume {volume}")
        test.assertIn("/var/lib/bertd", mounts, f"{where}: --data_dir needs a volume")
        test.assertIn("/tmp", mounts, f"{where}: a read-only root needs a writable /tmp")
        flags_volume = volumes[mounts["/etc/bertd"]]
        test.assertIn(flags_volume["configMap"]["name"], configmaps, where)
        test.assertIn("--flagfile=/etc/bertd/bertd.flags", container.get("args", []), where)
    return labels


def bertd_container(workload):
    return [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == "bertd"][0]


def container_ports(container):
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def secret_file(test, workload, path):
    """(Secret name, key) of the file at `path` in the bertd container, which must come from a
    Secret volume mounted read-only whose files nobody may write and others may not read."""
    pod = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = [m for m in bertd_container(workload).get("volumeMounts", [])
              if path.startswith(m["mountPath"].rstrip("/") + "/")]
    test.assertEqual(len(mounts), 1, f"{path}: one volume mount holds it")
    mount = mounts[0]
    test.assertIs(mount.get("readOnly"), True, f"{path}: mount {mount['name']} must be readOnly")
    # A subPath mount would never see a renewed Secret.
    test.assertNotIn("subPath", mount, path)
    secret = volumes[mount["name"]].get("secret")
    test.assertIsNotNone(secret, f"{path}: volume {mount['name']} must be a Secret")
    name = os.path.relpath(path, mount["mountPath"])
    items = {i["path"]: i for i in secret.get("items", [])}
    if items:
        test.assertIn(name, items, f"{path}: not among the Secret's items")
    key = items[name]["key"] if items else name
    mode = items.get(name, {}).get("mode", secret.get("defaultMode", 0o644))
    test.assertEqual(mode & 0o222, 0, f"{path}: mode {mode:o} lets someone write it")
    test.assertEqual(mode & 0o007, 0, f"{path}: mode {mode:o} lets every user read it")
    return secret["secretName"], key


def check_tls_and_tokens(test, objects, workload):
    """bertd gets TLS and tokens as container arguments after the flag file (no flag file can
    drop them), the files from the two Secrets; the probes verify with the TLS Secret's ca.crt."""
    container = bertd_container(workload)
    args = container.get("args", [])
    test.assertEqual(args[0], "--flagfile=/etc/bertd/bertd.flags")
    options = command_options(args)
    for flag in SECURITY_FLAGS:
        test.assertIn(f"--{flag}", options, f"container args: --{flag}")
        test.assertEqual([a for a in args if a.startswith(f"--{flag}=")], [f"--{flag}={options[f'--{flag}']}"])
    test.assertEqual(secret_file(test, workload, options["--tls_cert"]), (TLS_SECRET, "tls.crt"))
    test.assertEqual(secret_file(test, workload, options["--tls_key"]), (TLS_SECRET, "tls.key"))
    test.assertEqual(secret_file(test, workload, options["--auth_tokens_file"]), (TOKENS_SECRET, "tokens"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        ca = command_options(container[probe]["exec"]["command"])["--tls-ca"]
        test.assertEqual(secret_file(test, workload, ca), (TLS_SECRET, "ca.crt"), probe)
    # The flag file opens the port to the pod network: only with the arguments above.
    flags = command_options(flags_of(objects))
    ports = container_ports(container)
    test.assertEqual(flags["--listen"], f"0.0.0.0:{ports['grpc']}")
    for flag in SECURITY_FLAGS + ("tls_client_ca",):
        test.assertNotIn(f"--{flag}", flags, "security flags belong in the container args")


def check_policy_shape(test, policy):
    """No NetworkPolicy admits everyone: every rule names its peers by labels."""
    name = policy["metadata"]["name"]
    spec = policy["spec"]
    test.assertIn("Ingress", spec.get("policyTypes", []), name)
    test.assertTrue(spec["podSelector"].get("matchLabels"), f"{name}: selects every pod")
    test.assertTrue(spec.get("ingress"), f"{name}: no ingress rule")
    for rule in spec["ingress"]:
        test.assertTrue(rule.get("from"), f"{name}: a rule without `from` admits every source")
        for peer in rule["from"]:
            test.assertNotIn("ipBlock", peer, name)
            test.assertTrue(peer, f"{name}: an empty peer")
            for selector in peer.values():
                test.assertTrue(selector.get("matchLabels") or selector.get("matchExpressions"),
                                f"{name}: an empty selector matches everything")


def check_network_policy(test, objects, workload):
    """One NetworkPolicy selects the bertd pods: gRPC from client namespaces, /metrics from the
    Prometheus namespace, nothing else."""
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    for policy in policies:
        check_policy_shape(test, policy)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    selecting = [p for p in policies if selector_matches(p["spec"]["podSelector"]["matchLabels"], labels)]
    test.assertEqual(len(selecting), 1, "one NetworkPolicy selects the bertd pods")
    ports = container_ports(bertd_container(workload))
    admitted = {}
    for rule in selecting[0]["spec"]["ingress"]:
        test.assertTrue(rule.get("ports"), "every rule of the bertd pods names its ports")
        for port in rule["ports"]:
            test.assertEqual(port.get("protocol", "TCP"), "TCP")
            number = ports.get(port["port"], port["port"])  # a named port or a number
            for peer in rule["from"]:
                test.assertEqual(set(peer), {"namespaceSelector"}, peer)
                admitted.setdefault(number, []).append(peer["namespaceSelector"]["matchLabels"])
    test.assertEqual(admitted, {ports["grpc"]: [CLIENT_NAMESPACES],
                                ports["metrics"]: [PROMETHEUS_NAMESPACE]})


def check_training_policy(test, objects, worker_labels, rendezvous_port):
    """Training workers: ingress only from training workers of the namespace, on every port
    (Gloo's pair connections) or at least the rendezvous."""
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"
                and selector_matches(o["spec"]["podSelector"]["matchLabels"], worker_labels)]
    test.assertEqual(len(policies), 1, "one NetworkPolicy selects the training workers")
    check_policy_shape(test, policies[0])
    for rule in policies[0]["spec"]["ingress"]:
        for peer in rule["from"]:
            test.assertEqual(set(peer), {"podSelector"}, "only pods of the namespace")
            test.assertTrue(selector_matches(peer["podSelector"]["matchLabels"], worker_labels))
        if rule.get("ports"):
            test.assertIn(rendezvous_port, [p["port"] for p in rule["ports"]])


def is_training_service(service):
    return service["spec"]["selector"].get("app.kubernetes.io/component") == "training-worker"


class KustomizeOverlays(unittest.TestCase):
    def test_every_overlay_renders_and_has_the_required_fields(self):
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay):
                objects, how = render(overlay)
                print(f"{overlay}: {len(objects)} objects checked from {how}")
                kinds = [o["kind"] for o in objects]
                self.assertEqual(len(workloads(objects)), 1, kinds)
                workload = workloads(objects)[0]
                labels = check_workload(self, objects, workload, how,
                                        service_account_token=overlay == "multinode")
                for kind in ("Service", "PodDisruptionBudget", "ServiceMonitor", "ConfigMap",
                             "NetworkPolicy"):
                    self.assertIn(kind, kinds, overlay)
                services = [o for o in objects if o["kind"] == "Service"
                            and not is_training_service(o)]
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

    def test_every_overlay_runs_bertd_with_tls_and_tokens_from_secrets(self):
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay):
                objects, how = render(overlay)
                check_tls_and_tokens(self, objects, workloads(objects)[0])

    def test_every_overlay_admits_only_clients_and_prometheus(self):
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay):
                objects, how = render(overlay)
                check_network_policy(self, objects, workloads(objects)[0])
                # multinode: the training workers' Service and policy come with the server.
                training = [o for o in objects if o["kind"] == "Service" and is_training_service(o)]
                self.assertEqual(len(training), 1 if overlay == "multinode" else 0)
                if training:
                    check_training_policy(self, objects, training[0]["spec"]["selector"],
                                          training[0]["spec"]["ports"][0]["port"])

    def test_metrics_listen_on_the_pod_network_where_prometheus_scrapes(self):
        """bertd's --metrics_listen default is loopback: overlays scraped by a ServiceMonitor
        set the pod network address explicitly, on the container's metrics port."""
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay):
                objects, how = render(overlay)
                self.assertIn("ServiceMonitor", [o["kind"] for o in objects])
                port = container_ports(bertd_container(workloads(objects)[0]))["metrics"]
                self.assertIn(f"--metrics_listen=0.0.0.0:{port}", flags_of(objects))

    def test_no_shipped_file_passes_allow_insecure(self):
        found = []
        for root in (DEPLOY, os.path.join(REPO, "docker")):
            for path in glob.glob(os.path.join(root, "**", "*"), recursive=True):
                if os.path.isfile(path):
                    with open(path, errors="replace") as f:
                        if "allow_insecure" in f.read():
                            found.append(os.path.relpath(path, REPO))
        self.assertEqual(found, [])

    def test_cert_manager_certificate_makes_the_secret_the_pods_mount(self):
        objects, how = render("cert-manager", parent=".")
        by_secret = {o["spec"]["secretName"]: o for o in objects if o["kind"] == "Certificate"}
        issuers = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Issuer"}
        self.assertIn(TLS_SECRET, by_secret, "a Certificate writes the Secret the pods mount")
        spec = by_secret[TLS_SECRET]["spec"]
        self.assertFalse(spec.get("isCA", False))
        self.assertIn("server auth", spec["usages"])
        # Signed by a CA Issuer, so cert-manager also writes ca.crt (the probes' --tls-ca).
        issuer = issuers[spec["issuerRef"]["name"]]["spec"]
        self.assertIn("ca", issuer)
        self.assertIs(by_secret[issuer["ca"]["secretName"]]["spec"].get("isCA"), True)
        names = set(spec["dnsNames"])
        for overlay in ("cpu", "inference"):
            rendered, _ = render(overlay)
            with open(os.path.join(K8S, "overlays", overlay, "kustomization.yaml")) as f:
                namespace = yaml.safe_load(f)["namespace"]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                command = bertd_container(workloads(rendered)[0])[probe]["exec"]["command"]
                self.assertIn(command_options(command)["--tls-server-name"], names, overlay)
            for service in (o for o in rendered if o["kind"] == "Service"):
                if service["spec"].get("clusterIP") == "None":
                    continue
                name = service["metadata"]["name"]
                for dns in (name, f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"):
                    self.assertIn(dns, names, overlay)

    def test_training_workers_admit_only_each_other(self):
        """The ranks of a data-parallel job connect to rank 0's TCPStore (29500) and to each
        other (Gloo); the NetworkPolicy of training/ keeps that open and nothing else."""
        objects, how = render("training", parent=".")
        job = [o for o in objects if o["kind"] == "Job"][0]
        labels = job["spec"]["template"]["metadata"]["labels"]
        ports = {p["name"]: p["containerPort"]
                 for p in job["spec"]["template"]["spec"]["containers"][0]["ports"]}
        check_training_policy(self, objects, labels, ports["rendezvous"])

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
        self.assertEqual(kinds, ["Job", "NetworkPolicy", "Service"])
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


# --- bertd started as shipped, with TLS and tokens -------------------------------------------------

def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_certificates(directory, dns_names):
    """A CA and a server certificate it signs for `dns_names`, as the TLS Secret holds them:
    tls.crt, tls.key, ca.crt (the CA's key stays outside)."""
    os.makedirs(directory)
    work = os.path.dirname(directory)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    with open(os.path.join(work, "server.ext"), "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in dns_names)
                + "\nextendedKeyUsage=serverAuth\n")
    for command in (
            ["req", "-x509", *ec, "-keyout", f"{work}/ca.key", "-out", f"{directory}/ca.crt",
             "-days", "2", "-subj", "/CN=bertd-test-ca"],
            ["req", *ec, "-keyout", f"{directory}/tls.key", "-out", f"{work}/server.csr",
             "-subj", "/CN=bertd"],
            ["x509", "-req", "-in", f"{work}/server.csr", "-CA", f"{directory}/ca.crt",
             "-CAkey", f"{work}/ca.key", "-set_serial", "0x" + os.urandom(16).hex(),
             "-out", f"{directory}/tls.crt", "-days", "2", "-extfile", f"{work}/server.ext"]):
        result = run([OPENSSL, *command])
        assert result.returncode == 0, result.stderr


@unittest.skipUnless(BERTD and BERTCTL and OPENSSL,
                     "needs BERTD_BINARY, bertctl (BERTCTL_BINARY or beside bertd's build) and openssl")
class ShippedCommandsRunWithTlsAndTokens(unittest.TestCase):
    """bertd started with the rendered container arguments of each overlay, the images' default
    commands and compose's command, the Secrets' files in temporary directories (certificates for
    the names of cert-manager/certificate.yaml, a token file from `bertctl token create`) and only
    the addresses and data directory changed: it starts, every probe and HEALTHCHECK passes over
    TLS, plaintext fails, and calls need the token."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.tmp = tempfile.mkdtemp(prefix="bertd-secure-deploy-")
        with open(os.path.join(K8S, "cert-manager", "certificate.yaml")) as f:
            names = yaml.safe_load(f)["spec"]["dnsNames"]
        cls.tls = os.path.join(cls.tmp, "tls")
        make_certificates(cls.tls, names)
        result = run([BERTCTL, "-o", "json", "token", "create", "--role", "admin", "--name", "deploy-test"])
        assert result.returncode == 0, result.stderr
        created = json.loads(result.stdout)
        cls.auth = os.path.join(cls.tmp, "auth")
        os.makedirs(cls.auth)
        with open(os.path.join(cls.auth, "tokens"), "w") as f:
            f.write(created["tokenFileLine"] + "\n")
        cls.token_file = os.path.join(cls.tmp, "token")
        with open(cls.token_file, "w") as f:
            f.write(created["token"] + "\n")
        cls.secrets = {TLS_SECRET: cls.tls, TOKENS_SECRET: cls.auth}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def mounted_files(self, objects, workload, scratch):
        """{mount path in the container: local directory with the same files}."""
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        configmaps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
        paths = {}
        for mount in bertd_container(workload)["volumeMounts"]:
            volume = volumes.get(mount["name"], {})
            local = os.path.join(scratch, mount["name"])
            if "configMap" in volume:
                os.makedirs(local)
                for key, text in configmaps[volume["configMap"]["name"]]["data"].items():
                    with open(os.path.join(local, key), "w") as f:
                        f.write(text)
            elif "secret" in volume:
                os.makedirs(local)
                source = self.secrets[volume["secret"]["secretName"]]
                items = volume["secret"].get("items") or [{"key": k, "path": k} for k in os.listdir(source)]
                for item in items:
                    shutil.copy(os.path.join(source, item["key"]), os.path.join(local, item["path"]))
            else:
                continue
            paths[mount["mountPath"]] = local
        return paths

    def run_as_shipped(self, where, command, probes, paths):
        """Starts bertd with `command` (paths under `paths` made local, addresses and data
        directory replaced), then checks the probe commands and the credentials it wants."""
        import tempfile
        import time

        def local(arg):
            for inside, outside in paths.items():
                arg = arg.replace(inside.rstrip("/") + "/", outside + "/")
            return arg.replace("127.0.0.1:50051", f"127.0.0.1:{port}")

        port = free_port()
        with tempfile.TemporaryDirectory(dir=self.tmp) as data:
            log_path = os.path.join(data, "log")
            with open(log_path, "w") as log:
                proc = subprocess.Popen(
                    [BERTD, *map(local, command), f"--listen=127.0.0.1:{port}",
                     "--metrics_listen=127.0.0.1:0", f"--data_dir={data}",
                     f"--model_repository={data}/models", "--intra_op_threads=1"],
                    stdout=log, stderr=subprocess.STDOUT)

            def log_text():
                with open(log_path) as f:
                    return f.read()
            try:
                deadline = time.time() + 120
                while time.time() < deadline and proc.poll() is None and "bertd: ready" not in log_text():
                    time.sleep(0.5)
                self.assertIn("bertd: ready", log_text(), where)
                self.assertIn("bearer tokens required", log_text(), where)
                for name, probe in probes.items():
                    result = run([BERTCTL, *map(local, probe[1:])])
                    self.assertEqual(result.returncode, 0, f"{where} {name}: {result.stdout}{result.stderr}")
                    self.assertIn("SERVING", result.stdout, f"{where} {name}")
                tls = [f"--server=127.0.0.1:{port}", f"--tls-ca={self.tls}/ca.crt",
                       "--tls-server-name=localhost", "--timeout=10"]
                plaintext = run([BERTCTL, f"--server=127.0.0.1:{port}", "--timeout=5", "health"])
                self.assertNotEqual(plaintext.returncode, 0, f"{where}: plaintext health check passed")
                anonymous = run([BERTCTL, *tls, "models", "list"])
                self.assertNotEqual(anonymous.returncode, 0, f"{where}: a call without a token passed")
                # bertd's UNAUTHENTICATED message (docs/security.md), as bertctl reports it.
                self.assertIn("missing credentials", anonymous.stdout + anonymous.stderr, where)
                known = run([BERTCTL, *tls, f"--token-file={self.token_file}", "models", "list"])
                self.assertEqual(known.returncode, 0, f"{where}: {known.stdout}{known.stderr}")
            finally:
                if proc.poll() is None:
                    proc.terminate()
                self.assertEqual(proc.wait(timeout=60), 0, log_text())

    def test_every_overlay_as_rendered(self):
        import tempfile
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay), tempfile.TemporaryDirectory(dir=self.tmp) as scratch:
                objects, how = render(overlay)
                workload = workloads(objects)[0]
                container = bertd_container(workload)
                probes = {probe: container[probe]["exec"]["command"]
                          for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
                self.run_as_shipped(f"{overlay} ({how})", container["args"], probes,
                                    self.mounted_files(objects, workload, scratch))

    def test_image_default_commands_and_healthchecks(self):
        for name in ("Dockerfile", "Dockerfile.cuda"):
            with self.subTest(dockerfile=name):
                command = json.loads(dockerfile_instruction(name, "CMD"))
                health = json.loads(dockerfile_instruction(name, "HEALTHCHECK").split("CMD", 1)[1])
                options = command_options(command)
                paths = {os.path.dirname(options["--tls_cert"]): self.tls,
                         os.path.dirname(options["--auth_tokens_file"]): self.auth}
                self.run_as_shipped(name, command, {"HEALTHCHECK": health}, paths)

    def test_compose_command(self):
        bertd = compose_service("bertd")
        command = bertd["command"]
        options = command_options(command)
        paths = {os.path.dirname(options["--tls_cert"]): self.tls,
                 os.path.dirname(options["--auth_tokens_file"]): self.auth}
        health = json.loads(dockerfile_instruction("Dockerfile", "HEALTHCHECK").split("CMD", 1)[1])
        self.run_as_shipped("compose.yaml", command, {"HEALTHCHECK": health}, paths)


# --- Docker and Grafana ---------------------------------------------------------------------------

def dockerfile_text(name):
    with open(os.path.join(REPO, "docker", name)) as f:
        return f.read()


def dockerfile_instruction(name, instruction):
    """The last `instruction` of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", dockerfile_text(name))
    lines = [l for l in text.splitlines() if l.startswith(instruction + " ")]
    return lines[-1][len(instruction) + 1:].strip()


def compose_volumes(service):
    """(source, target, read-only) of each volume of a compose service, short or long syntax."""
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            yield parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")
        else:
            yield volume.get("source"), volume["target"], bool(volume.get("read_only"))


def is_loopback(listen):
    return listen.startswith(("127.", "localhost:", "[::1]:", "unix:"))


def check_secure_command(test, where, command):
    """A shipped bertd command line that listens beyond loopback has TLS and tokens; the TLS
    files share one directory (where ca.crt is, for the health check). Its options."""
    options = command_options(command)
    listen = options.get("--listen", "127.0.0.1:50051")
    if not is_loopback(listen):
        for flag in SECURITY_FLAGS:
            test.assertIn(f"--{flag}", options, f"{where}: --listen={listen} needs --{flag}")
        test.assertEqual(os.path.dirname(options["--tls_cert"]), os.path.dirname(options["--tls_key"]),
                         where)
    return options


def compose_service(name):
    with open(os.path.join(REPO, "docker", "compose.yaml")) as f:
        return yaml.safe_load(f)["services"][name]


class DockerFiles(unittest.TestCase):
    def test_image_runs_with_tls_and_tokens_by_default(self):
        """The default command serves the container's network with TLS and tokens from mounted
        files, and the HEALTHCHECK verifies the server with the ca.crt beside them."""
        for name in ("Dockerfile", "Dockerfile.cuda"):
            options = check_secure_command(self, name, json.loads(dockerfile_instruction(name, "CMD")))
            self.assertIn("--tls_cert", options, f"{name}: the default command must use TLS")
            health = json.loads(dockerfile_instruction(name, "HEALTHCHECK").split("CMD", 1)[1])
            health_options = command_options(health)
            self.assertEqual(health_options["--tls-ca"],
                             os.path.join(os.path.dirname(options["--tls_cert"]), "ca.crt"), name)
            self.assertEqual(health_options["--tls-server-name"], "localhost", name)
            self.assertEqual(health_options["--server"],
                             "127.0.0.1:" + options["--listen"].rsplit(":", 1)[1], name)
            self.assertEqual(options["--metrics_listen"], "0.0.0.0:9464", name)

    def test_compose_runs_bertd_with_tls_and_tokens_from_docker_secrets(self):
        bertd = compose_service("bertd")
        options = check_secure_command(self, "compose.yaml", bertd["command"])
        self.assertIn("--tls_cert", options, "compose.yaml must use TLS")
        mounts = {target: (source, read_only) for source, target, read_only in compose_volumes(bertd)}
        for flag in SECURITY_FLAGS:
            directory = os.path.dirname(options[f"--{flag}"])
            self.assertIn(directory, mounts, f"--{flag}: nothing is mounted at {directory}")
            source, read_only = mounts[directory]
            self.assertTrue(read_only, f"{directory} must be mounted read-only")
            self.assertTrue(source.startswith("./secrets/"), source)
        # The health check is the image's (TLS), unless compose replaces it with another TLS one.
        if "healthcheck" in bertd:
            self.assertIn("--tls-ca", " ".join(bertd["healthcheck"]["test"]))
        # docker/secrets holds keys and token hashes: never part of the repository.
        if shutil.which("git"):
            tracked = run(["git", "-C", REPO, "ls-files", "docker/secrets"])
            if tracked.returncode == 0:
                self.assertEqual(tracked.stdout.split(), [], "files under docker/secrets are committed")

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
            for source, target, _ in compose_volumes(service):
                # ./secrets is made by the operator (docs/operations.md), never committed.
                if source.startswith(".") and not source.startswith("./secrets/"):
                    self.assertTrue(os.path.exists(os.path.join(REPO, "docker", source)), source)
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
