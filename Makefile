# The two commands that matter: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-evasion bench-integrity bench-privacy clean

$(STAMP): pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mlwarden demo --out demo-models --report report.html

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/scan/run.py
	$(BIN)/python benchmarks/evasion/run.py
	$(BIN)/python benchmarks/evasion/pooling.py
	$(BIN)/python benchmarks/privacy/run.py
	$(BIN)/python benchmarks/integrity/run.py

# Installs torch, mlwarden, ART, foolbox and torchattacks into .venv-bench/evasion on first use;
# then mlwarden's max pooling against torch's (stdout), to tell it apart from the attacks' own speed.
bench-evasion: $(STAMP)
	$(BIN)/python benchmarks/evasion/run.py
	$(BIN)/python benchmarks/evasion/pooling.py

# Installs torch, mlwarden[sklearn,dp] (Opacus) and ART into .venv-bench/privacy on first use.
bench-privacy: $(STAMP)
	$(BIN)/python benchmarks/privacy/run.py

# Signs and verifies a 2 GB folder with mlwarden, model-signing and the openssl floor.
bench-integrity: $(STAMP)
	$(BIN)/python benchmarks/integrity/run.py

clean:
	rm -rf $(VENV) .venv-bench demo-models report.html
