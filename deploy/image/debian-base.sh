#!/usr/bin/env bash
# The Dockerfile's base made from Debian's own packages, for machines where no registry image can
# be pulled (no Docker Hub): Debian trixie, minbase, plus Python (python3 and its venv module), the
# CA certificates and the time zones (Europe/Paris on documents). `make image` calls it and passes
# the result to the Dockerfile as BASE; it does nothing when the tag already exists.
#
#   deploy/image/debian-base.sh TAG [podman|docker]
#
# Reproducible up to Debian's archive: the suite is fixed, file dates are SOURCE_DATE_EPOCH, and the
# image's label lists every package version, so two bases can be compared with `podman inspect`.
set -euo pipefail

tag=${1:?usage: debian-base.sh TAG [podman|docker]}
engine=${2:-podman}
suite=trixie
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if "$engine" image inspect "$tag" >/dev/null 2>&1; then
    echo "base $tag already built"
    exit 0
fi
command -v mmdebstrap >/dev/null || { echo "debian-base.sh: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Documentation, manual pages and translations are dead weight in a service image (~40 MB).
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date -d "$(date -u +%Y-%m-01)" +%s)} mmdebstrap \
    --quiet --variant=minbase --format=tar \
    --include=python3,python3-venv,ca-certificates,tzdata \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" dpkg-query -W -f "\${Package}=\${Version}\n" > "$1/tmp/packages"' \
    --customize-hook='copy-out /tmp/packages '"$work" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/tmp/* "$1"/var/log/*' \
    "$suite" "$work/rootfs.tar" "$mirror"

python=$(sed -n 's/^python3\.[0-9]*=\(.*\)$/\1/p' "$work/packages" | head -n1)
"$engine" import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change "LABEL org.opencontainers.image.title=csu-debian-base org.opencontainers.image.base.name=debian:$suite io.csu.python=$python io.csu.packages=\"$(tr '\n' ' ' < "$work/packages")\"" \
    "$work/rootfs.tar" "$tag" >/dev/null
echo "base $tag built from Debian $suite (python $python, $(wc -l < "$work/packages") packages)"
