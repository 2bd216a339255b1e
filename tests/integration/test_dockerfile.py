"""The image's Dockerfile, checked by parsing it (no Docker engine on these machines) and against
the Helm chart that runs it; `make image` must say clearly when no engine is available."""

import os
import re
import subprocess
import tomllib
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
CHART = ROOT / "deploy" / "helm" / "csu"
# An exact release (x.y.z in the tag) or a digest: never a moving tag like 3.12-slim or latest.
PINNED = re.compile(r"^[\w./-]+(:[\w.-]*\d+\.\d+\.\d+[\w.-]*)?(@sha256:[0-9a-f]{64})?$")

Instruction = dict[str, str]


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    """Instructions grouped by stage (each list starts with its FROM); comments kept."""
    parser = DockerfileParser(path=str(DOCKERFILE), env_replace=False)
    result: list[list[Instruction]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def of(stage: list[Instruction], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


def stage_name(stage: list[Instruction]) -> str | None:
    parts = stage[0]["value"].split()
    return parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a path is left out of the context when it, or a folder above it, matches."""
    assert not [p for p in patterns if p.startswith("!")], "exceptions are not handled here: keep the list simple"
    regexes = []
    for pattern in patterns:
        body = re.escape(pattern.strip("/")).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regexes.append(re.compile(f"^{body}$"))
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(r.match(prefix) for r in regexes for prefix in prefixes)


def chart_docs() -> list[dict]:
    values = {"secrets": {"signingKey": {"existingSecret": "csu-signing-key"}}}
    manifests = helm.Chart.load(CHART).render(values, name="city", namespace="csu", is_install=True)
    return [d for p, t in manifests.items() if p.endswith(".yaml") for d in yaml.safe_load_all(t) if d]


def build_arguments() -> dict[str, str]:
    """The global ARGs (before the first FROM) with their defaults."""
    parser = DockerfileParser(path=str(DOCKERFILE), env_replace=False)
    arguments = {}
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            break
        if instruction["instruction"] == "ARG":
            name, _, default = instruction["value"].partition("=")
            arguments[name.strip()] = default.strip()
    return arguments


def test_multi_stage_build_on_a_pinned_base(stages: list[list[Instruction]]) -> None:
    assert len(stages) >= 2, "a build stage and a slim final stage"
    names = {stage_name(s) for s in stages}
    arguments = build_arguments()
    bases = set()
    for stage in stages:
        image = stage[0]["value"].split()[0]
        if image in names:
            continue  # FROM an earlier stage
        # The one base may come from a global ARG (make image passes a Debian-made base where no
        # registry image can be pulled), whose default is then the pinned image.
        argument = re.fullmatch(r"\$\{?(\w+)\}?", image)
        if argument:
            assert argument.group(1) in arguments, f"FROM {image}: declare the argument before the first FROM"
            image = arguments[argument.group(1)]
        assert "$" not in image, f"FROM {image}: the base must be written out"
        assert PINNED.match(image) and ("@sha256:" in image or re.search(r":\S*\d+\.\d+\.\d+", image)), (
            f"FROM {image}: pin the base image to an exact release or a digest"
        )
        assert "latest" not in image
        assert "slim" in image or "@sha256:" in image, f"FROM {image}: use a slim base"
        bases.add(image)
    # Build and run on the same base: the virtualenv's interpreter is the base's.
    assert len(bases) == 1, bases


def test_final_stage_runs_as_the_charts_non_root_user(stages: list[list[Instruction]]) -> None:
    final = stages[-1]
    users = of(final, "USER")
    assert users, "the final stage must drop root"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0 and (not gid or (gid.isdigit() and int(gid) != 0)), users[-1]
    assert any(f"--uid {uid}" in run for run in of(final, "RUN")), "the user exists in the image"
    # Every pod that runs this image (NATS runs its own).
    pods = [d["spec"]["template"]["spec"] for d in chart_docs() if d["kind"] in ("Deployment", "Job")]
    assert pods
    for pod in pods:
        assert pod["securityContext"]["runAsUser"] == int(uid), "the chart runs the image's own user"


def test_dependencies_come_from_the_lock_without_dev_extras(stages: list[list[Instruction]]) -> None:
    *builds, final = stages
    installs = [run for stage in builds for run in of(stage, "RUN") if re.search(r"\b(uv )?pip (install|sync)\b", run)]
    lock_installs = [run for run in installs if "requirements.lock" in run]
    assert lock_installs, "dependencies must be installed at the versions of requirements.lock"
    for run in lock_installs:
        assert "--extra" not in run and "--all-extras" not in run and "[dev]" not in run, run
        # The lock also pins the dev extra: it may only constrain an install of the runtime dependencies.
        assert re.search(r"(--constraint|-c) requirements\.lock", run) and "-r pyproject.toml" in run, run
    assert any("requirements.lock" in copy for stage in builds for copy in of(stage, "COPY"))
    # The final stage installs nothing: it receives the build stage's virtualenv, and no lock or tests.
    assert not [run for run in of(final, "RUN") if re.search(r"\bpip\b|\buv\b|apt-get install", run)]
    copies = of(final, "COPY")
    assert all(c.startswith("--from=") for c in copies), f"the final stage copies only from the build: {copies}"
    assert any("/opt/venv" in c for c in copies)
    # And pyproject's runtime dependencies name none of the dev tools.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    dev = {re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0].lower() for d in project["optional-dependencies"]["dev"]}
    assert not runtime & dev, runtime & dev


def test_grpc_code_is_generated_at_build_time(stages: list[list[Instruction]]) -> None:
    build_runs = [run for stage in stages[:-1] for run in of(stage, "RUN")]
    # The same generator as `make proto`.
    assert "proto/generate.py" in (ROOT / "Makefile").read_text()
    assert any("proto/generate.py" in run for run in build_runs)
    assert any(copy.split()[0] == "proto" for stage in stages[:-1] for copy in of(stage, "COPY"))
    assert ignored("services/common/pb/csu/v1/archive_pb2.py", dockerignore()), (
        "never copy generated code from the host"
    )


def test_no_remote_add_and_no_secret_in_the_image(stages: list[list[Instruction]]) -> None:
    for stage in stages:
        for add in of(stage, "ADD"):
            assert not re.search(r"https?://|git@", add), f"ADD {add}: no downloads outside the lock"
        for value in of(stage, "ENV") + of(stage, "ARG"):
            names = re.findall(r"([A-Z_]+)=", value)
            assert not [n for n in names if re.search(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|PRIVATE", n)], value
    patterns = dockerignore()
    for path in (".venv/bin/python", ".git/HEAD", "data/csu.db", "tests/conftest.py", "test-artifacts/x.png", "x.pem"):
        assert ignored(path, patterns), f"{path} must stay out of the build context"


def test_every_copied_path_is_in_the_context(stages: list[list[Instruction]]) -> None:
    patterns = dockerignore()
    for stage in stages:
        for copy in of(stage, "COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _destination = copy.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    # Nothing the services need at run time (migrations, templates, static pages) is left out.
    needed = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "services").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and "pb" not in p.relative_to(ROOT / "services").parts[:2]
    ]
    assert needed
    assert not [p for p in needed if ignored(p, patterns)]


def test_probes_exec_form_ports_and_entry_points_match_the_chart(stages: list[list[Instruction]]) -> None:
    final = stages[-1]
    text = DOCKERFILE.read_text()
    healthchecks = of(final, "HEALTHCHECK")
    assert healthchecks, "declare the health check, or document why the orchestrator probes instead"
    if healthchecks[-1].strip().upper() == "NONE":
        assert "/healthz" in text and "/readyz" in text, "HEALTHCHECK NONE needs the probes documented"
    for command in of(final, "CMD") + of(final, "ENTRYPOINT"):
        assert command.strip().startswith("["), f"{command}: exec form, so signals reach Python"
    docs = chart_docs()
    exposed = {int(p.split("/")[0]) for value in of(final, "EXPOSE") for p in value.split()}
    chart_ports = {
        port["containerPort"]
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
        for port in c["ports"]
    }
    assert chart_ports <= exposed, f"ports the chart uses but the image does not declare: {chart_ports - exposed}"
    for d in docs:
        if d["kind"] == "Deployment":
            (container,) = d["spec"]["template"]["spec"]["containers"]
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # csuctl is on PATH in the image; the migration Job calls the same module.
    assert "/opt/venv/bin/csuctl" in text and "services.csuctl" in text
    (job,) = [d for d in docs if d["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][-3:] == ["services.csuctl", "db", "migrate"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"DOCKER": "/nonexistent/docker"}, "make image: no '/nonexistent/docker' command"),
        # Docker asked for by name, on a socket nobody listens on: the engine check must fail however
        # the machine is set up (left unset, DOCKER falls back to buildah, which needs no engine).
        (
            {"DOCKER": "docker", "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
            "make image: no Docker engine answers",
        ),
    ],
)
def test_make_image_fails_clearly_when_the_asked_engine_is_missing(variables: dict[str, str], message: str) -> None:
    if "DOCKER_HOST" in variables and subprocess.run(["sh", "-c", "command -v docker"], capture_output=True).returncode:
        message = "make image: no 'docker' command"  # no client either: the first check speaks
    env = {**os.environ, **{k: v for k, v in variables.items() if k == "DOCKER_HOST"}}
    args = ["make", "--no-print-directory", "image", *(f"{k}={v}" for k, v in variables.items() if k == "DOCKER")]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "built in" not in result.stdout, "nothing is built without the engine asked for"
