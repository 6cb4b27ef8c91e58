# Every target creates the virtual environment it needs (.venv) on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: demo test bench clean browser fuzz

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,viz,dask]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m transconv demo --out demo-output --force

test: $(VENV)/.installed browser
	$(PY) -m pytest

# The explorer page is tested in Debian's chromium (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the explorer page tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: chromium is not installed; the browser tests will be skipped (apt-get install chromium)"; \
	  fi; }

# The long fuzz campaign (not in CI): FUZZ_EXAMPLES per test, fresh random examples each run.
FUZZ_EXAMPLES ?= 3000
fuzz: $(VENV)/.installed
	TRANSCONV_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) TRANSCONV_FUZZ_RANDOM=1 $(PY) -m pytest -p no:cacheprovider tests/test_fuzz.py

bench: $(VENV)/.installed
	$(PY) -m transconv bench

clean:
	rm -rf $(VENV) demo-output .pytest_cache .hypothesis
