# Two commands matter: `make demo` (set up, run the default study) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
CORES ?= 2
# torch: the registry's regular wheel (its CUDA libraries run on CPU too). Some machines point pip at
# a local CPU-only torch build that torchvision cannot load, so pip's local wheel folder is switched off.
PIP := env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $(BIN)/pip
RUN := env PATH=$(BIN):$$PATH

.PHONY: setup demo test lint dryrun rulegraph clean

# The library's ranges (pyproject.toml) within the exact versions the README's numbers come from.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(RUN) snakemake --profile profiles/default --cores $(CORES)
	$(RUN) snakemake --profile profiles/default --report results/report.html
	$(RUN) robustxai tidy-report results/report.html
	@echo "Results: results/report.html, results/findings.md, results/tables/, results/correlations/, results/plots/"

test: setup
	$(RUN) pytest -q tests

lint: setup
	$(RUN) snakemake --lint
	$(RUN) snakefmt --check Snakefile workflow

dryrun: setup
	$(RUN) snakemake -n --quiet rules

rulegraph: setup
	$(RUN) snakemake --rulegraph --configfile tests/configs/smoke.yaml | dot -Tsvg > docs/rulegraph.svg

clean:
	rm -rf results .snakemake
