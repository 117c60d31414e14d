# deltadesk: `make run` opens the TUI on the simulated market; `make test` runs lint, import contracts and tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
LOCK   := requirements/lock.txt

.PHONY: run test bench lint contracts kernels install install-test install-bench lock clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Each stamp is rebuilt only when the lock or pyproject changes, so a second `make` is fast.
$(VENV)/.installed: $(VENV)/bin/python pyproject.toml $(LOCK)
	$(PIP) install -r $(LOCK)
	$(PIP) install --no-deps -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements/test.txt
	$(PIP) install -r requirements/test.txt
	$(PIP) install --no-deps -e .
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed requirements/bench.txt
	$(PIP) install -r requirements/bench.txt
	touch $@

# Peer libraries that cannot share the project's environment, each in a venv of its own (best effort: a peer
# that cannot be installed is skipped by its benchmark with a printed reason).
PEERS := .venv-bench
$(PEERS)/.done:
	mkdir -p $(PEERS)
	-$(PYTHON) -m venv $(PEERS)/pvv && $(PEERS)/pvv/bin/pip install -q numpy py_vollib_vectorized==0.1.1 py_vollib==1.0.1 py_lets_be_rational==1.0.1
	-$(PYTHON) -m venv $(PEERS)/vollib && $(PEERS)/vollib/bin/pip install -q numpy vollib
	-PY313=$$(ls -d $$HOME/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | head -1); [ -n "$$PY313" ] || PY313=$$(command -v python3.13); \
	  if [ -n "$$PY313" ]; then $$PY313 -m venv $(PEERS)/py313 && $(PEERS)/py313/bin/pip install -q numpy matching-engine limit-order-book orderly-chaos; fi
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-bench: $(VENV)/.installed-bench

# numba's compiled pricing kernels into its disk cache (about 10 s the first time, 1 s after): the desk only
# loads them from there, so nothing compiles while a front starts (without the cache it prices on numpy).
kernels: install
	$(PY) -c "from app.pricing.black import warm_compiled; warm_compiled(background=False, compile=True)"

run: install kernels
	$(VENV)/bin/desk tui

lint: install-test
	$(VENV)/bin/ruff check app connectors strategies storage ui tests benchmarks

contracts: install-test
	$(VENV)/bin/lint-imports

test: install-test lint contracts kernels
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install-bench kernels $(PEERS)/.done
	DESK_BENCH_PVV_PYTHON=$(PEERS)/pvv/bin/python DESK_BENCH_VOLLIB_PYTHON=$(PEERS)/vollib/bin/python \
	DESK_BENCH_PEER_PYTHON=$$( [ -x $(PEERS)/py313/bin/python ] && echo $(PEERS)/py313/bin/python ) \
	$(PY) -m benchmarks all

# Regenerate the locks from a fresh resolution (needs the registries).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q -e . && .venv-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > $(LOCK)
	.venv-lock/bin/pip install -q -e '.[test]' && .venv-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements/test.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
