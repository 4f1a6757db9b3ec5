# The newcomer's commands: `make run` serves the gateway, `make test` runs the suite.
# Both create .venv and install the project first. `make test` also needs a few Debian
# packages (Chromium for the web SDK's browser tests, nginx with nchan for the bench's peer);
# as root it installs the missing ones, otherwise it says which to install. It also needs
# Node.js 20+ with npm, for the SDK's linter and unit tests (node_modules, from package-lock.json).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
SYSTEM_PACKAGES = chromium nginx-light libnginx-mod-nchan
NODE_BIN = node_modules/.bin
# `make run PORT=8081` when 8080 is taken; MAILSLOT_PORT from the environment works too.
PORT   ?= $(or $(MAILSLOT_PORT),8080)

.PHONY: run test faults faults-deps failover failover-deps lint lint-js test-js system-deps clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "mailslot needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@touch $@

run: $(BIN)/.installed
	$(BIN)/mailslot serve --port $(PORT)

system-deps:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -e /usr/lib/nginx/modules/ngx_nchan_module.so || missing="$$missing nginx-light libnginx-mod-nchan"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing (sudo apt-get install$$missing)" >&2; exit 1; \
	  fi; \
	fi

# npm ci reinstalls node_modules from the lock file whenever package.json or the lock changes.
node_modules/.installed: package.json package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  echo "missing Node.js 20+ and npm, for the web SDK's lint and unit tests (https://nodejs.org, or sudo apt-get install nodejs npm)" >&2; exit 1; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || { \
	  echo "Node.js $$(node --version) is too old: the web SDK's tests need Node.js 20 or newer" >&2; exit 1; }
	npm ci --no-audit --no-fund
	@touch $@

lint-js: node_modules/.installed
	$(NODE_BIN)/eslint .

test-js: node_modules/.installed
	node --test tests/js/*.test.mjs

test: $(BIN)/.installed system-deps lint-js test-js
	$(BIN)/pytest

# The fault suite (tests/faults, docs/operations.md "Faults"): real `serve` processes, their own
# PostgreSQL and HAProxy, under load. Left out of `make test`; about 5 minutes, 15 at most.
faults-deps:
	@if ! command -v haproxy >/dev/null && ! test -x /usr/sbin/haproxy; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing: haproxy"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null; \
	  else \
	    echo "missing Debian package: haproxy (sudo apt-get install haproxy), for the fault suite's load-balancer case" >&2; exit 1; \
	  fi; \
	fi

faults: $(BIN)/.installed faults-deps
	$(BIN)/pytest -m faults tests/faults --session-timeout 900

# The failover drill (tests/failover, docs/operations.md "Failover"): a two-node Patroni cluster
# from deploy/local-cluster (etcd, PostgreSQL, HAProxy), two gateways under load, three failovers.
# Left out of `make test`; about 3 minutes.
failover-deps:
	@missing=""; \
	command -v etcd >/dev/null || missing="$$missing etcd-server"; \
	command -v patroni >/dev/null || missing="$$missing patroni"; \
	command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || missing="$$missing haproxy"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing (sudo apt-get install$$missing), for the failover drill" >&2; exit 1; \
	  fi; \
	fi

failover: $(BIN)/.installed failover-deps
	$(BIN)/pytest -m failover tests/failover --session-timeout 600

lint: $(BIN)/.installed lint-js
	$(BIN)/ruff check gateway storage bench tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache .mypy_cache
