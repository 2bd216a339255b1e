# The two commands: `make run` (the whole platform on this machine) and `make test`.
# Everything else here serves them, plus `make bench`, `make lint`, `make proto`, `make lock`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# A Python 3.12+ interpreter: $(PYTHON) if given, else the first 3.12+ on PATH, else pyenv's.
PYTHON ?= $(shell for c in python3.12 python3.13 python3.14 python3 \
	$$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	"$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { command -v "$$c"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
# Debian packages the tests drive: the RTSP test camera (GStreamer's RTSP server on the system
# Python) and the browsers (Playwright drives Debian's Chromium and Firefox ESR; it downloads no
# browser of its own). Firefox decodes the live H.264 through the system's FFmpeg, libavcodec59
# (bookworm's), which firefox-esr only recommends.
TEST_DEBS := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad chromium \
	firefox-esr libavcodec59
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help run test bench lint proto bytecode lock docs venv system-test-deps clean image image-deps image-test test-oidc-provider testdata

help:
	@echo "make run     start the whole platform on this machine (embedded NATS, SQLite, local store)"
	@echo "make test    install what the tests need and run them"
	@echo "make bench   run the benchmarks; figures in bench/results/latest.json"
	@echo "make image-test  run the image's containers as the chart does (podman) and check the platform works"
	@echo "make lint    ruff, mypy"
	@echo "make proto   regenerate the gRPC/protobuf modules"
	@echo "make lock    re-pin dependencies into requirements.lock"
	@echo "make image   build the container image (Docker, else buildah): $(IMAGE):$(IMAGE_TAG)"

$(VENV)/.installed: pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "no Python 3.12+ found: install one or pass PYTHON=/path/to/python3.12"; exit 1; }
	@echo "using $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip sync --python $(PY) --quiet --compile-bytecode requirements.lock
	$(VENV)/bin/uv pip install --python $(PY) --quiet --no-deps -e .
	@touch $@

venv: $(VENV)/.installed

# Bytecode for our own modules, as uv's --compile-bytecode gives the installed ones. Where
# PYTHONDONTWRITEBYTECODE=1 is set (this machine sets it), a module without its .pyc is compiled
# from source again by every process that imports it: five services took 15.5 CPU-seconds to
# start, 8.4 with bytecode, and the suite starts some 280 services and as many tools (csuctl,
# schemathesis, the workers). Up-to-date files are skipped (0.4 s).
bytecode: proto
	$(PY) -m compileall -q -j 0 services tests bench >/dev/null

services/common/pb/.generated: $(VENV)/.installed $(wildcard proto/csu/v1/*.proto) proto/generate.py
	$(PY) proto/generate.py
	@touch $@

proto: services/common/pb/.generated

run: proto bytecode
	$(PY) -m services.launcher

system-test-deps: venv
	@if ! { $(PY) -c 'import sys; from tests.support.rtsp import rtsp_server_available as a; sys.exit(a() is not None)' \
		&& [ -x /usr/bin/chromium ] && [ -x /usr/bin/firefox-esr ] && compgen -G '/usr/lib/*/libavcodec.so.*' >/dev/null; }; then \
		echo "installing Debian packages for the tests (RTSP test camera, browsers): $(TEST_DEBS)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_DEBS) >/dev/null; \
	fi

# The footage the end-to-end tests play (../shared/testdata/vtest.avi beside the project, or
# $CSU_TESTDATA_DIR). A clone made anywhere else has neither: the same file ships in Debian's
# opencv-doc package, so it is taken from there into .testdata/ and checked against its SHA-256.
VTEST_SHA256 := 45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf

testdata:
	@if [ -n "$$CSU_TESTDATA_DIR" ] && [ -f "$$CSU_TESTDATA_DIR/vtest.avi" ]; then exit 0; fi; \
	if [ -f ../shared/testdata/vtest.avi ] || [ -f .testdata/vtest.avi ]; then exit 0; fi; \
	echo "no ../shared/testdata/vtest.avi: taking it from Debian's opencv-doc package into .testdata/"; \
	tmp=$$(mktemp -d) && cd $$tmp && \
	{ apt-get download opencv-doc >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && apt-get download opencv-doc; }; } && \
	dpkg-deb --fsys-tarfile opencv-doc_*.deb | tar -x ./usr/share/doc/opencv-doc/examples/data/vtest.avi && \
	echo "$(VTEST_SHA256)  usr/share/doc/opencv-doc/examples/data/vtest.avi" | sha256sum --check --quiet && \
	mkdir -p $(CURDIR)/.testdata && mv usr/share/doc/opencv-doc/examples/data/vtest.avi $(CURDIR)/.testdata/ && \
	cd / && rm -rf $$tmp

# The OpenID Connect provider the OIDC login tests run (panva's oidc-provider, pinned by its
# package-lock.json) on the machine's Node.js.
OIDC_PROVIDER := tests/support/oidc

$(OIDC_PROVIDER)/node_modules/.installed: $(OIDC_PROVIDER)/package.json $(OIDC_PROVIDER)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: the OIDC tests need Node.js 20+ and npm"; exit 1; }
	cd $(OIDC_PROVIDER) && npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

test-oidc-provider: $(OIDC_PROVIDER)/node_modules/.installed

# promtool, Prometheus' own rule checker and rule unit-test runner, for the chart's alert rules:
# taken from Debian's prometheus package and unpacked into the venv (no Prometheus server runs).
PROMTOOL := $(VENV)/bin/promtool

$(PROMTOOL): | $(VENV)/.installed
	@tmp=$$(mktemp -d) && cd $$tmp && \
		{ apt-get download prometheus >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && apt-get download prometheus; }; } && \
		dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool && \
		mv usr/bin/promtool $(CURDIR)/$@ && cd / && rm -rf $$tmp
	@$@ --version | head -1

lint: venv proto
	$(VENV)/bin/ruff check services tests bench proto
	$(VENV)/bin/mypy services

test: proto bytecode system-test-deps testdata test-oidc-provider $(PROMTOOL) lint
	$(PY) -m pytest

bench: proto bytecode system-test-deps
	$(PY) -m bench

lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.12 --universal \
		-o requirements.lock --custom-compile-command "make lock"

# One image for every service (Dockerfile): built with Docker where an engine answers, else with
# Debian's buildah on a base made from Debian's packages (deploy/image/). Skipped when the build
# context and base are unchanged (tag ctx-<hash>). The tag defaults to pyproject's version, which is
# the Helm chart's appVersion. DOCKER=docker|podman forces that builder.
IMAGE ?= registry.csu.local/csu/platform
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
IMAGE_DEBS := buildah podman mmdebstrap runc containernetworking-plugins

image-deps:
	@if ! { command -v docker >/dev/null && docker version >/dev/null 2>&1; } \
		&& ! { command -v buildah && command -v podman && command -v mmdebstrap; } >/dev/null; then \
		echo "installing Debian packages to build and run the image: $(IMAGE_DEBS)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(IMAGE_DEBS) >/dev/null; \
	fi

image: image-deps
	@IMAGE=$(IMAGE) IMAGE_TAG=$(IMAGE_TAG) DOCKER=$(DOCKER) deploy/image/build.sh

# The image run as the chart runs it: each workload a podman container (non-root, read-only root,
# no capability, the chart's NATS users), PostgreSQL and S3 beside them (tests/image).
image-test: image proto bytecode
	CSU_IMAGE=$(IMAGE):$(IMAGE_TAG) $(PY) -m pytest -x --basetemp="$$(mktemp -d /tmp/csu-image-test.XXXXXX)" tests/image

docs: venv
	$(PY) -m services.common.settings_doc README.md

clean:
	rm -rf $(VENV) services/common/pb .pytest_cache .ruff_cache
