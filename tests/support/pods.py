"""The chart's workloads run as podman containers, as a kubelet would run their pods.

Each rendered Deployment, StatefulSet or Job becomes one container with the pod's environment
(values, ConfigMaps, Secrets, the pod name), its volumes (emptyDir as tmpfs, claims as podman
volumes, Secrets and ConfigMaps as read-only files laid out as the kubelet lays them), its user, a
read-only root filesystem and dropped capabilities as the securityContext says, its resource
limits, and the Services that select it as network aliases (short and cluster names). Nothing is
added that the chart does not say: what runs here is what a cluster would run.

runc, not crun, with cgroupfs: crun cannot set rlimits on these machines (no CAP_SYS_RESOURCE), and
runc only when they stay at or below the limits the caller already has.
"""

import json
import os
import resource
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

COMPONENT = "app.kubernetes.io/component"


def podman(*args: str, check: bool = True, timeout: float = 300, input: str | None = None) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, input=input, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def ulimits() -> list[str]:
    """Open files and processes at (or under) the caller's hard limits: raising them is refused here."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # Processes count per uid across every container of the platform (all uid 10001): 8192 is far
    # above what five services use (~300 threads) and under the hard limit runc inherits here.
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 8192)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def quantity_bytes(value: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(value)


def quantity_cpus(value: str | int | float) -> float:
    text = str(value)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


@dataclass
class Cluster:
    """The rendered release's objects, the Secrets' contents, and where their files go on this host."""

    docs: list[dict]
    secrets: dict[str, dict[str, bytes]]
    network: str
    workdir: Path
    namespace: str = "csu"
    cluster_domain: str = "cluster.local"
    # Image substitutions (the chart's NATS image is not pullable here) and command substitutions.
    images: dict[str, str] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)

    def kind(self, kind: str) -> dict[str, dict]:
        return {d["metadata"]["name"]: d for d in self.docs if d["kind"] == kind}

    def configmaps(self) -> dict[str, dict[str, str]]:
        return {name: d.get("data", {}) for name, d in self.kind("ConfigMap").items()}

    def aliases(self, labels: dict[str, str]) -> list[str]:
        """The names of the Services selecting these pod labels, as cluster DNS answers them."""
        names = []
        for name, service in self.kind("Service").items():
            selector = service["spec"].get("selector") or {}
            if selector and selector.items() <= labels.items():
                names += [name, f"{name}.{self.namespace}", f"{name}.{self.namespace}.svc.{self.cluster_domain}"]
        return names


@dataclass
class Container:
    name: str
    args: list[str]

    def start(self) -> None:
        podman("run", "--detach", "--name", self.name, *self.args)

    def running(self) -> bool:
        state = podman("inspect", "--format", "{{.State.Status}}", self.name, check=False).strip()
        return state == "running"

    def logs(self) -> str:
        done = subprocess.run(["podman", "logs", self.name], capture_output=True, text=True, timeout=60, check=False)
        return done.stdout + done.stderr

    def inspect(self) -> dict:
        return json.loads(podman("inspect", self.name))[0]

    def exec(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", "exec", self.name, *command], capture_output=True, text=True, timeout=timeout, check=False
        )

    def stop(self, grace: int) -> int:
        """SIGTERM, then SIGKILL after the pod's grace period; the exit code (137: it had to be killed)."""
        podman("stop", "--time", str(grace), self.name, check=False, timeout=grace + 60)
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name, check=False).strip() or -1)

    def remove(self) -> None:
        podman("rm", "--force", "--volumes", self.name, check=False)


def pod_container(cluster: Cluster, workload: dict, pod_name: str, publish: Sequence[str] = ()) -> Container:
    """The podman container of one workload's pod (its only container)."""
    template = workload["spec"]["template"]
    pod, labels = template["spec"], template["metadata"]["labels"]
    (spec,) = pod["containers"]
    args: list[str] = ["--network", cluster.network, "--hostname", pod_name]
    for alias in cluster.aliases(labels):
        args += ["--network-alias", alias]
    for port in publish:
        args += ["--publish", port]

    # securityContext: the pod's user, then the container's restrictions.
    context = pod.get("securityContext", {}) | spec.get("securityContext", {})
    if "runAsUser" in context:
        args += ["--user", f"{context['runAsUser']}:{context.get('runAsGroup', context['runAsUser'])}"]
    if "fsGroup" in pod.get("securityContext", {}):
        args += ["--group-add", str(pod["securityContext"]["fsGroup"])]
    if context.get("readOnlyRootFilesystem"):
        args.append("--read-only")
        args.append("--read-only-tmpfs=false")  # only the volumes the pod declares are writable
    for capability in context.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", capability]
    if context.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if context.get("privileged"):
        raise AssertionError(f"{workload['metadata']['name']}: privileged")
    args += ulimits()

    limits = spec.get("resources", {}).get("limits", {})
    if "memory" in limits:
        args += ["--memory", str(quantity_bytes(limits["memory"]))]
    if "cpu" in limits:
        args += ["--cpus", f"{quantity_cpus(limits['cpu']):g}"]

    args += [arg for key, value in environment(cluster, spec, pod_name).items() for arg in ("--env", f"{key}={value}")]
    claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
    args += volumes(cluster, pod, spec, pod_name, claims, fs_group=pod.get("securityContext", {}).get("fsGroup"))

    image = cluster.images.get(spec["image"], spec["image"])
    command = list(spec.get("command", [])) + list(spec.get("args", []))
    if command and command[0] in cluster.commands:
        command[0] = cluster.commands[command[0]]
    if command:
        args += ["--entrypoint", json.dumps(command[:1]), image, *command[1:]]
    else:
        args.append(image)
    return Container(pod_name, args)


def bare_pod(pod: dict) -> dict:
    """A bare Pod (a helm test hook) in the shape of a workload, for pod_container."""
    return {"metadata": pod["metadata"], "spec": {"template": {"metadata": pod["metadata"], "spec": pod["spec"]}}}


def environment(cluster: Cluster, spec: dict, pod_name: str) -> dict[str, str]:
    configmaps = cluster.configmaps()
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        env |= configmaps[source["configMapRef"]["name"]]
    for variable in spec.get("env", []):
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
            continue
        ref = variable["valueFrom"]
        if "secretKeyRef" in ref:
            secret = cluster.secrets.get(ref["secretKeyRef"]["name"], {})
            if ref["secretKeyRef"]["key"] not in secret:
                if ref["secretKeyRef"].get("optional"):
                    continue
                raise AssertionError(f"{pod_name}: Secret {ref['secretKeyRef']} does not exist")
            env[variable["name"]] = secret[ref["secretKeyRef"]["key"]].decode()
        elif "configMapKeyRef" in ref:
            env[variable["name"]] = configmaps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
        elif ref.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[variable["name"]] = pod_name
        elif ref.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[variable["name"]] = cluster.namespace
        else:
            raise AssertionError(f"{pod_name}: {variable['name']} comes from {ref}, which this runner does not know")
    return env


def volumes(
    cluster: Cluster, pod: dict, spec: dict, pod_name: str, claims: set[str], fs_group: int | None
) -> list[str]:
    declared = {v["name"]: v for v in pod.get("volumes", [])}
    args: list[str] = []
    for mount in spec.get("volumeMounts", []):
        target, name = mount["mountPath"], mount["name"]
        volume = declared.get(name)
        if name in claims or (volume is not None and "persistentVolumeClaim" in volume):
            # A claim (a StatefulSet's from its template, named as Kubernetes names it): a folder that
            # outlives the container, group-owned by fsGroup with the setgid bit, as the kubelet
            # prepares a volume for a pod with an fsGroup.
            claim = volume["persistentVolumeClaim"]["claimName"] if volume else f"{name}-{pod_name}"
            folder = cluster.workdir / "claims" / claim
            folder.mkdir(parents=True, exist_ok=True)
            if fs_group is not None:
                os.chown(folder, 0, fs_group)
                os.chmod(folder, 0o2770)
            args += ["--volume", f"{folder}:{target}"]
        elif volume is None:
            raise AssertionError(f"{pod_name}: mount {name} names no volume")
        elif "emptyDir" in volume:
            # A folder on the node's disk, mode 0777, group fsGroup with the setgid bit, as the
            # kubelet makes one (podman's tmpfs would take the image folder's mode, 0750 root).
            folder = cluster.workdir / "empty" / pod_name / name
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o2777 if fs_group is not None else 0o777)
            if fs_group is not None:
                os.chown(folder, 0, fs_group)
            args += ["--volume", f"{folder}:{target}"]
        else:
            folder = cluster.workdir / "volumes" / pod_name / name
            lay_out(cluster, volume, folder, fs_group)
            args += ["--volume", f"{folder}:{target}:ro"]
    return args


def lay_out(cluster: Cluster, volume: dict, folder: Path, fs_group: int | None) -> None:
    """Write a Secret, ConfigMap or projected volume's files as the kubelet does (mode, group)."""
    folder.mkdir(parents=True, exist_ok=True)
    configmaps = cluster.configmaps()
    if "projected" in volume:
        sources, mode = volume["projected"]["sources"], volume["projected"].get("defaultMode", 0o644)
    else:
        sources, mode = [volume], volume.get("secret", volume.get("configMap", {})).get("defaultMode", 0o644)
    for source in sources:
        if "secret" in source:
            ref = source["secret"]
            data = cluster.secrets[ref.get("secretName") or ref["name"]]
        elif "configMap" in source:
            ref = source["configMap"]
            data = {k: v.encode() for k, v in configmaps[ref["name"]].items()}
        else:
            raise AssertionError(f"volume {volume['name']}: {source} is not handled here")
        items = {i["key"]: i["path"] for i in ref.get("items", [])} or {key: key for key in data}
        for key, path in items.items():
            file = folder / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data[key])
            os.chmod(file, mode)
            if fs_group is not None:
                os.chown(file, 0, fs_group)
    for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        os.chmod(path, 0o755)
