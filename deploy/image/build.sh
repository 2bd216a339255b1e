#!/usr/bin/env bash
# `make image`: the Dockerfile built with Docker where an engine answers, else with Debian's buildah
# (no daemon). The image is tagged IMAGE:IMAGE_TAG and IMAGE:ctx-<hash of the build context and the
# base>: when that second tag exists, nothing changed since it was built and nothing is rebuilt (CI
# re-runs, `make image-test`).
#
#   IMAGE=... IMAGE_TAG=... [DOCKER=docker|podman|/path] deploy/image/build.sh
#
# Prints the image's name and size last. Where no registry image can be pulled, the base is made
# from Debian's packages (deploy/image/debian-base.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${IMAGE:?}" "${IMAGE_TAG:?}"
PYTHON_BASE=$(sed -n 's/^ARG BASE=//p' Dockerfile)
DEBIAN_BASE=localhost/csu-debian-base:trixie
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

fail() { echo "make image: $*" >&2; exit 1; }
engine_answers() { "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# --- who builds -------------------------------------------------------------------------------
if [ -n "${DOCKER:-}" ]; then
    command -v "$DOCKER" >/dev/null 2>&1 || fail "no '$DOCKER' command: install it, or leave DOCKER unset to build with buildah"
    if [ "$(basename "$DOCKER")" = docker ] && ! engine_answers "$DOCKER"; then
        fail "no Docker engine answers ($DOCKER version cannot reach ${DOCKER_HOST:-the local daemon}): start one, or leave DOCKER unset to build with buildah"
    fi
    builder=$DOCKER images=$DOCKER
elif command -v docker >/dev/null 2>&1 && engine_answers docker; then
    builder=docker images=docker
else
    command -v buildah >/dev/null 2>&1 && command -v podman >/dev/null 2>&1 \
        || fail "no Docker engine and no buildah/podman: apt-get install buildah podman mmdebstrap (or make image-deps)"
    builder=buildah images=podman
fi

# --- the base ---------------------------------------------------------------------------------
base=$PYTHON_BASE
if ! "$images" image inspect "$base" >/dev/null 2>&1; then
    if [ "$builder" = buildah ]; then
        pulled() { timeout 60 podman pull --quiet "docker.io/library/$PYTHON_BASE" >/dev/null 2>&1; }
    else
        pulled() { timeout 120 "$images" pull --quiet "$PYTHON_BASE" >/dev/null 2>&1; }
    fi
    if ! pulled; then
        echo "no registry image $PYTHON_BASE can be pulled: base from Debian's packages ($DEBIAN_BASE)"
        base=$DEBIAN_BASE
        deploy/image/debian-base.sh "$base" "$images"
    fi
fi
base_id=$("$images" image inspect --format '{{.Id}}' "$base")

# --- unchanged? -------------------------------------------------------------------------------
# What the Dockerfile copies (the .dockerignore'd paths left out), and the base it starts from.
context_hash=$(
    {
        echo "$base $base_id"
        find Dockerfile .dockerignore pyproject.toml requirements.lock proto services -type f \
            -not -path 'services/common/pb/*' -not -path '*/__pycache__/*' -not -name '*.pyc' \
            -not -name '*.pem' -not -name '*.key' -not -name '.env' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-16
)
cached=$IMAGE:ctx-$context_hash
if "$images" image inspect "$cached" >/dev/null 2>&1; then
    echo "image unchanged since it was built ($cached)"
    "$images" tag "$cached" "$IMAGE:$IMAGE_TAG"
else
    started=$(date +%s)
    if [ "$builder" = buildah ]; then
        # The host's CA bundle over the base's for the RUN steps only (a TLS-inspecting proxy's CA
        # is in it); host networking, since a build needs nothing of a container network.
        volume=()
        [ -f "$CA_BUNDLE" ] && volume=(--volume "$CA_BUNDLE:$CA_BUNDLE:ro")
        buildah bud --layers --network host --isolation oci "${volume[@]}" \
            --build-arg "BASE=$base" --label "io.csu.base=$base" -t "$IMAGE:$IMAGE_TAG" -t "$cached" .
    else
        "$builder" build --build-arg "BASE=$base" --label "io.csu.base=$base" -t "$IMAGE:$IMAGE_TAG" -t "$cached" .
    fi
    echo "built in $(( $(date +%s) - started )) s"
fi
# Earlier builds' tags go (each ~800 MB unshared at worst); the build cache keeps what they shared.
"$images" images --format '{{.Repository}}:{{.Tag}}' | grep -F "$IMAGE:ctx-" | grep -vxF "$cached" \
    | xargs -r "$images" rmi >/dev/null 2>&1 || true
size=$("$images" image inspect --format '{{.Size}}' "$IMAGE:$IMAGE_TAG")
echo "image $IMAGE:$IMAGE_TAG ($cached) on $base: $(( size / 1000000 )) MB"
