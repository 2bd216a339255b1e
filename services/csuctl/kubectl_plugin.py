"""kubectl-csu: `kubectl csu <csuctl command>` runs csuctl inside the release's gateway pod.

kubectl runs any executable named kubectl-<name> on PATH as `kubectl <name>`; installing this package
(pip, or `make venv`) puts this one there. The gateway pod has csuctl and every setting it needs
(the database, NATS, the services' addresses), so ops never copy a credential to their machine:

    kubectl csu health                        # each service's readiness
    kubectl csu -n csu audit verify --json
    kubectl csu --release city --context prod segments verify

Options before the csuctl command: -n/--namespace, --context (as kubectl's), --release (the Helm
release; by default the one CSU gateway Deployment found in the namespace). KUBECTL names another
kubectl binary.
"""

import argparse
import os
import subprocess
import sys

GATEWAY_SELECTOR = "app.kubernetes.io/name=csu,app.kubernetes.io/component=gateway"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubectl csu", description="Run csuctl in the CSU platform's gateway pod.", allow_abbrev=False
    )
    p.add_argument("-n", "--namespace", help="namespace of the release (default: kubectl's current one)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--release", help="Helm release name (default: the one CSU gateway in the namespace)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the csuctl command and its arguments")
    return p


def gateway(kubectl: list[str], release: str | None) -> str:
    """deploy/<release>-csu-gateway, or the only CSU gateway Deployment of the namespace."""
    if release:
        return f"deploy/{release}-csu-gateway"
    found = subprocess.run(
        [*kubectl, "get", "deployments", "-l", GATEWAY_SELECTOR, "-o", "name"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise SystemExit(f"kubectl csu: cannot list the gateways: {found.stderr.strip()}")
    names = [line.replace("deployment.apps/", "deploy/") for line in found.stdout.split()]
    if len(names) != 1:
        what = "no CSU gateway" if not names else f"{len(names)} CSU gateways ({', '.join(names)})"
        raise SystemExit(f"kubectl csu: {what} in this namespace: name one with --release or -n")
    return names[0]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    kubectl = [os.environ.get("KUBECTL", "kubectl")]
    if args.context:
        kubectl += ["--context", args.context]
    if args.namespace:
        kubectl += ["--namespace", args.namespace]
    target = gateway(kubectl, args.release)
    interactive = ["-i", "-t"] if sys.stdin.isatty() and sys.stdout.isatty() else ["-i"]
    return subprocess.call(
        [*kubectl, "exec", *interactive, target, "-c", "gateway", "--", "csuctl", *(command or ["--help"])]
    )


if __name__ == "__main__":
    sys.exit(main())
