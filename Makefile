# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= $(if $(LIT_TRANSFORMER_DATA),$(LIT_TRANSFORMER_DATA),../shared/data)
MINUTES ?= 10
OUT ?= runs/demo

export LIT_TRANSFORMER_DATA := $(abspath $(DATA))

.PHONY: setup demo test test-unit test-all bench-quality lint clean

$(BIN)/lit-transformer: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The exact pin takes the CPU wheel on this machine (the CUDA build elsewhere) and never
	# lets a dependency pull another torch.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,postgres]"
	touch $@

setup: $(BIN)/lit-transformer

# A CPU-scale base model on Multi30k EN->DE; ends by printing dev perplexity and test BLEU.
# A budget of minutes buys ~1,000-2,700 steps, so the schedule is the short-budget one: warm-up
# 400 steps at lr_scale 0.5 (peak 1.6e-3; the ablation file's 1,000 at 0.7 is sized for its
# 3,000 steps), checkpoints every 100 steps so the last 5 averaged are the last 500 steps
# (BENCHMARKS.md, "Session 10").
demo: setup
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/lit-transformer fit \
	  --ablation ablations/table3-cpu.yaml --row base --seed 1 \
	  --optim.warmup_steps 400 --optim.lr_scale 0.5 --trainer.checkpoint_every_n_steps 100 \
	  --trainer.max_minutes $(MINUTES) --trainer.max_steps -1 --trainer.average_last 5 --out $(OUT)

# The quality benchmark of the README: 30 minutes of training, beam 4 on test_2016_flickr.
bench-quality:
	$(MAKE) demo MINUTES=30 OUT=runs/bench-quality

test: setup
	WANDB_MODE=offline $(BIN)/python -m pytest -m "not slow" -q

# The fast unit tests of each module (tests/unit/, under a minute).
test-unit: setup
	WANDB_MODE=offline $(BIN)/python -m pytest -q tests/unit

test-all: setup
	WANDB_MODE=offline $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check lit_transformer tests

clean:
	rm -rf runs .pytest_cache
