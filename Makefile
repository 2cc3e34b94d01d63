# Two commands set up and check the whole course:
#   make run    execute every notebook headlessly (mini profile), write build/
#   make test   unit tests, lint and nbval over every notebook
# Both create .venv on first use. Nothing here contacts the Hugging Face Hub.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Every target below runs offline. `make run` and `make test` always use the
# mini profile; `make lab` honours COURSE_PROFILE (mini unless set to full).
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONHASHSEED := 0

.PHONY: venv run test lint lab bench models lock clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
	@touch $@

run: $(STAMP)
	COURSE_PROFILE=mini $(BIN)/python scripts/run_notebooks.py notebooks --out build

lint: $(STAMP)
	$(BIN)/ruff check course_utils scripts tests notebooks

test: lint
	COURSE_PROFILE=mini $(BIN)/python -m pytest tests
	COURSE_PROFILE=mini $(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

lab: $(STAMP)
	COURSE_PROFILE=$${COURSE_PROFILE:-mini} $(BIN)/jupyter lab notebooks

bench: $(STAMP)
	COURSE_PROFILE=mini $(BIN)/python scripts/bench.py

TRAIN_SCRIPTS := $(wildcard $(addprefix scripts/train_mini_,clip.py vit.py wav2vec2.py blip.py sd.py sd_inpainting.py))

models: $(STAMP)
	@for script in $(TRAIN_SCRIPTS); do \
		echo "== $$script"; COURSE_PROFILE=mini $(BIN)/python $$script || exit 1; \
	done

# Rewrites constraints.txt from what .venv has now.
lock: $(STAMP)
	@{ echo "# Exact versions that CI tests (pip freeze of a clean .venv on Python 3.11, CPU torch)."; \
	   echo "# Used as pip constraints by the Makefile; regenerate with 'make lock'."; \
	   $(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.txt

clean:
	rm -rf build .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
