"""deploy/k8s/: every manifest against Kubernetes' own schemas (PyPI's
kubernetes-validate, strict: an unknown or misspelt field fails), and what
axond needs of them: the node's network, IPC and PID namespaces, the socket
directory shared with the trainer's pod, and a config that axond accepts.
Run by scripts/python-test.sh (the README's test command)."""

import os
import pathlib
import subprocess
import tempfile

import kubernetes_validate
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"


def documents():
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path.name, doc


def find(kind, name=None):
    for _, doc in documents():
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name):
            return doc
    raise LookupError(f"no {kind} {name or ''} in deploy/k8s")


@pytest.mark.parametrize("path,doc", list(documents()),
                         ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_each_manifest_matches_the_kubernetes_schema(path, doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_daemon_shares_the_nodes_namespaces_and_socket_directory():
    spec = find("DaemonSet", "axond")["spec"]["template"]["spec"]
    assert spec["hostNetwork"] and spec["hostIPC"] and spec["hostPID"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (axond,) = spec["containers"]
    mounts = {m["name"]: m["mountPath"] for m in axond["volumeMounts"]}
    assert volumes["run-axon"]["hostPath"]["path"] == "/run/axon"
    assert mounts["run-axon"] == "/run/axon"
    # The node's name and address come from the downward API.
    env = {e["name"]: e for e in axond["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert "node.name=$(NODE_NAME)" in axond["args"]


def test_the_trainer_reaches_the_socket_the_daemon_serves():
    config = yaml.safe_load(find("ConfigMap", "axond-config")["data"]["axond.yaml"])
    socket = config["control"]["socket"]
    pod = find("Pod")["spec"]
    assert pod["hostIPC"] and pod["hostPID"]
    (trainer,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in trainer["env"]}
    assert env["AXON_SOCKET"] == socket
    mounts = {m["name"]: m["mountPath"] for m in trainer["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["run-axon"]["hostPath"]["path"] == "/run/axon"
    assert socket.startswith(mounts["run-axon"] + "/")


def test_axond_accepts_the_config():
    axond = os.environ.get("AXON_AXOND") or str(REPO / "build" / "daemon" / "axond")
    if not os.access(axond, os.X_OK):
        pytest.fail(f"no axond at {axond}: build it (scripts/build.sh) or set AXON_AXOND")
    with tempfile.TemporaryDirectory() as tmp:
        config = pathlib.Path(tmp) / "axond.yaml"
        config.write_text(find("ConfigMap", "axond-config")["data"]["axond.yaml"])
        token = pathlib.Path(tmp) / "token"  # the Secret's file, mode 0400 there
        token.write_text("x" * 32)
        token.chmod(0o600)
        result = subprocess.run(
            [axond, "--set", f"peers.token_file={token}", "--check-config", str(config)],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
