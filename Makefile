# llm-content-filter — every target sets up what it needs; `make test` works on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LISTEN ?= 127.0.0.1:9001
CONFIG ?=

.PHONY: install test lint run serve bench clean quality yardstick e2e-agent soak

install: $(STAMP)
	@command -v redis-server >/dev/null || { echo "redis-server missing (the Redis store's tests): installing it"; \
	  apt-get update -qq && apt-get install -y -qq redis-server; }
	@command -v prometheus >/dev/null || { echo "prometheus missing (the dashboard and alert queries' test): installing it"; \
	  apt-get update -qq && apt-get install -y -qq prometheus; }

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { \
	  echo "python venv module missing: installing python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv && $(PY) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check filter tests envoy
	$(BIN)/mypy

serve: install
	$(BIN)/llm-content-filter serve --listen $(LISTEN) $(if $(CONFIG),--config $(CONFIG))

# Filter + Envoy in the foreground; Ctrl-C stops both (envoy/run_stack.py). UPSTREAM=http://HOST:PORT sends every
# provider to one plain-HTTP address (the fake provider); FILTER_CONFIG=FILE is the filter's --config. Also honoured:
# FILTER_PORT, USAGE_PORT, REWRITER_PORT, METRICS_PORT, LISTEN_ADDRESS, LISTEN_PORT, ADMIN_PORT, RUN_DIR (default var/), ENVOY_ARGS.
run: install
	$(BIN)/python envoy/run_stack.py

# Scan throughput, Check latency, then end-to-end through Envoy with wrk (~5 min; tests/bench/). Not run in CI.
# wrk comes from Debian; installed here when missing. BENCH_ARGS: e.g. --only e2e, --quick, --rounds 5.
bench: install
	@command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk"; \
	  apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

# Labelled corpus through the real pipeline: precision, recall per category/kind/placement/evasion, FP rate on
# ordinary coding sessions (tests/quality/). Exits 1 when a target (recall/precision >= 99 %, 0 FP on code) is missed.
quality: install
	$(BIN)/python -m tests.quality

# Independent yard-stick (tests/yardstick/): credential shapes from public scanners' test suites and secret-free
# open-source files, placed in many syntaxes and tool-output formats. A measurement, not a gate: always exits 0;
# writes var/yardstick/summary.json (docs/quality.md). Do not tune the packs against it.
yardstick: install
	$(BIN)/python -m tests.yardstick

# Claude Code (the real CLI, from npm into var/claude-code) through real Envoy + filter against a scripted fake
# Anthropic API: reads a source file, is blocked on a .env secret, goes on after the block (tests/agent/). Not in
# `make test` because it downloads from npm (once; delete var/claude-code for a newer CLI).
e2e-agent: install
	@command -v npm >/dev/null || { echo "npm missing: installing it"; apt-get update -qq && apt-get install -y -qq npm; }
	@test -x var/claude-code/node_modules/.bin/claude || \
	  npm install --no-audit --no-fund --prefix var/claude-code @anthropic-ai/claude-code
	var/claude-code/node_modules/.bin/claude --version
	CLAUDE_CODE_BIN=$(CURDIR)/var/claude-code/node_modules/.bin/claude $(BIN)/python -m pytest -q tests/agent/e2e_claude_code.py

# Envoy's memory bound at production size: 50 concurrent 15 MiB prompts against a stalled filter, the 640 MiB
# heap bound, two workers; Envoy must stay inside its container limit in k8s/deployment.yaml (~15 s).
soak: install
	LLM_GATEWAY_SOAK=1 $(BIN)/python -m pytest -q tests/e2e/test_envoy_memory.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
