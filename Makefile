# polystream — two commands on a fresh machine:
#   make run    the main job: the proxy on its embedded default, showing background mode end to
#               end (a response created, polled while its text grows, completed): no keys, no network
#   make test   every test (Rust, Python + stub check, Ruby), installing what it needs first
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SHARED_VECTORS := ../shared/fixtures/sse/vectors.json

.PHONY: run test install system-deps test-rust test-python test-ruby bench bench-proxy clean

run: install
	$(VENV)/bin/polystream showcase

# The package exactly as users get it: `pip install .` builds the Rust extension with maturin.
install:
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '.[test]'

# Debian packages the tests need (redis-server for the background store, ruby for the bindings).
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v ruby >/dev/null || missing="$$missing ruby"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

test: system-deps install test-rust test-python test-ruby

# The Responses test also writes its event streams and snapshots to RESPONSES_DUMP, which the
# openai SDK's own models then check strictly (tests/support/validate_responses.py).
RESPONSES_DUMP := target/responses-sdk-check
test-rust:
	rm -rf $(RESPONSES_DUMP)
	POLYSTREAM_RESPONSES_DUMP_DIR=$(CURDIR)/$(RESPONSES_DUMP) cargo test --workspace --exclude polystream-py
	$(PY) tests/support/validate_responses.py $(RESPONSES_DUMP)

test-python:
	$(PY) -m pytest
	$(PY) -m mypy.stubtest polystream._core
	$(PY) -m mypy python/polystream

test-ruby:
	@if [ -d bindings-ruby ]; then \
	  cargo build --release -p polystream-capi && \
	  cd bindings-ruby && ruby -Ilib -Itest -e 'Dir["test/**/*_test.rb"].sort.each { |f| require File.expand_path(f) }'; \
	fi

bench: install
	$(PY) -m pip install -q '.[bench]'
	$(PY) benches/sse_bench.py
	cargo bench -p polystream-core --bench sse
	$(PY) benches/client_bench.py

# Proxy vs LiteLLM's proxy on the same replay upstream and Redis (LiteLLM in its own venv).
bench-proxy: install system-deps
	$(PY) benches/proxy_bench.py --setup-litellm
	$(PY) benches/proxy_bench.py

clean:
	rm -rf $(VENV) target
