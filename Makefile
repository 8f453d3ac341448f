# Two commands do all set-up: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 9090

.PHONY: run test lint typecheck unit integration bench chaos fuzz clean \
	wheels docker-image docker-up docker-down

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@# An editable install leaves pairns uncompiled; with PYTHONDONTWRITEBYTECODE set
	@# every start would compile it again (~0.3 s of each node and pairns-ctl start).
	$(BIN)/python -m compileall -q pairns
	touch $(STAMP)

# A local pair on loopback (ports 9090 and 9091), persistent in .pairns-run/; both nodes
# run in the foreground of this one command and Ctrl-C stops both.
RUN_DIR := .pairns-run
PORT2 ?= 9091
run: $(STAMP)
	@mkdir -p $(RUN_DIR)/ns1 $(RUN_DIR)/ns2
	@echo "starting a pairns pair: -1 on $(HOST):$(PORT), -2 on $(HOST):$(PORT2) (data in $(RUN_DIR)/)"
	@echo "talk to it:  $(BIN)/pairns-ctl -h $(HOST) -p $(PORT) status   (or -p $(PORT2))"
	@echo "             $(BIN)/pairns-ctl -h $(HOST) -p $(PORT) register :Default.x PYRO://$(HOST):7766/x"
	@echo "             $(BIN)/pairns-ctl -h $(HOST) -p $(PORT2) resolve :Default.x"
	@echo "Ctrl-C stops both nodes."
	@trap 'kill $$p1 $$p2 2>/dev/null; wait $$p1 $$p2' INT TERM; \
	PYRO_STORAGE=$(RUN_DIR)/ns1 $(BIN)/pairns -n $(HOST) -p $(PORT) -1 $(HOST):$(PORT2) \
		-d $(RUN_DIR)/ns1/db -v & p1=$$!; \
	PYRO_STORAGE=$(RUN_DIR)/ns2 $(BIN)/pairns -n $(HOST) -p $(PORT2) -2 $(HOST):$(PORT) \
		-d $(RUN_DIR)/ns2/db -v & p2=$$!; \
	wait $$p1 $$p2

lint: $(STAMP)
	$(BIN)/ruff check pairns tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider tests

# One chaos campaign (docs/chaos.md): make chaos SEED=7 ROUNDS=20 FAULTS=kill,partition,wipe
# (DURATION=300 instead of ROUNDS; CHAOS_ARGS passes more flags, e.g. --topology netns).
SEED ?= 1
ROUNDS ?= 10
DURATION ?=
FAULTS ?=
chaos: $(STAMP)
	$(BIN)/python -m pairns.chaos --seed $(SEED) \
		$(if $(DURATION),--duration $(DURATION),--rounds $(ROUNDS)) \
		$(if $(FAULTS),--faults $(FAULTS)) $(CHAOS_ARGS)

# A longer, coverage-guided fuzz campaign of the wire codec (atheris; docs/security.md):
# make fuzz FUZZ_SECONDS=600. Skipped, with a message, when atheris is not installed
# (pip install -e '.[fuzz]'). The live fuzz test in `make test` runs on every CI run.
FUZZ_SECONDS ?= 120
FUZZ_RUNS ?= -1
fuzz: $(STAMP)
	@if $(BIN)/python -c "import atheris" 2>/dev/null; then \
		$(BIN)/python tests/fuzz/atheris_codec.py -max_total_time=$(FUZZ_SECONDS) \
			-runs=$(FUZZ_RUNS) -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix=.fuzz-corpus/crash- ; \
	else \
		echo "make fuzz: atheris is not installed; pip install -e '.[fuzz]' (skipped)"; \
	fi

bench: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	$(BIN)/python benchmarks/ns_throughput.py

# -- docker-compose (README "Deploy"): the pair of docker-compose.yml on 127.0.0.1:9090/9091.
# The image is built with no network: pairns and its runtime dependencies are wheels made
# here (reproducible: dated by the last commit), its base comes from deploy/base-image.sh
# (the official python image, else a local Debian one built from the Debian mirror).
WHEELS := dist/wheels
PAIRNS_IMAGE ?= pairns:local
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
export PAIRNS_IMAGE

wheels: $(STAMP)
	rm -rf $(WHEELS) build
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 315532800) \
		$(BIN)/pip wheel --quiet --disable-pip-version-check --wheel-dir $(WHEELS) .

# A rebuild that changes the image removes the one it replaces (unless a container uses it).
docker-image: wheels
	@base=$$(deploy/base-image.sh) && old=$$(docker image inspect -f '{{.Id}}' $(PAIRNS_IMAGE) 2>/dev/null); \
	echo "building $(PAIRNS_IMAGE) on $$base"; \
	docker build --quiet --build-arg BASE=$$base -f deploy/Dockerfile -t $(PAIRNS_IMAGE) . >/dev/null && \
	new=$$(docker image inspect -f '{{.Id}}' $(PAIRNS_IMAGE)) && \
	if [ -n "$$old" ] && [ "$$old" != "$$new" ]; then docker rmi "$$old" >/dev/null 2>&1 || true; fi

# The identification comes from PAIRNS_IDENTIFICATION or .env; without either, one is made
# and kept in .env (mode 600, not in git). Waits (at most 60 s) until both nodes are healthy.
docker-up: docker-image
	@if [ -z "$${PAIRNS_IDENTIFICATION:-}" ] && ! grep -qs '^PAIRNS_IDENTIFICATION=.' .env; then \
		(umask 077; echo "PAIRNS_IDENTIFICATION=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(24))')" >> .env); \
		echo "made an identification for the pair: PAIRNS_IDENTIFICATION in .env"; fi
	$(COMPOSE) up -d --no-build ns1 ns2
	@for i in $$(seq 60); do \
		h=$$(for s in ns1 ns2; do docker inspect -f '{{.State.Health.Status}}' $$($(COMPOSE) ps -q $$s); done | sort -u); \
		[ "$$h" = healthy ] && break; sleep 1; done; \
	$(COMPOSE) ps; [ "$$h" = healthy ] || { echo "the pair is not healthy after 60 s: $$h"; exit 1; }
	@echo "pair up: ns1 on 127.0.0.1:$${NS1_PORT:-9090}, ns2 on 127.0.0.1:$${NS2_PORT:-9091}"

# Stops and removes the containers and networks; the databases stay in their volumes
# (`$(COMPOSE) down -v` removes those too).
docker-down:
	$(COMPOSE) down

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .fuzz-corpus
