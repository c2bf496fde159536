# ManualQA: `make run` sets everything up and serves the app; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BENCHES := ingest chunking generation review training chat followups quality answers abuse local_runtime pdf_ingest retriever reranker raft

.PHONY: install install-llamacpp run test lint format services $(addprefix bench-,$(BENCHES))

## llama.cpp for GGUF models (manualqa/lib/llamacpp.py) is built from source for this CPU:
## about 4-7 minutes the first time. A native build crashes on its first token in VMs whose
## CPUs report AMX (ggml's AMX kernels), so the build is not native: AMX is off, and AVX2,
## FMA, F16C and the AVX-512 kernels are on where /proc/cpuinfo lists them (forcing AVX-512
## on made the build die with "Illegal instruction" on CPUs without it, such as AMD EPYC VMs
## before Zen 4; without /proc/cpuinfo the build is native). After the build, a subprocess
## loads the bundled GGUF model and generates two tokens; a build that fails there is
## uninstalled, so GGUF endpoints say it is missing instead of killing their process. OpenMP
## is off too: ggml then runs its own thread pool. With OpenMP, torch's libgomp
## (loaded globally when torch is imported, as the chat's embedding model does) served
## llama.cpp's parallel regions, and a generation in a worker thread decoded at less than half
## speed (28 against 66 tokens/s, the default model as q8_0, here; bench/local_runtime.py).
## The wheel is kept in a folder named after the version and these options, so a rebuild with
## other options never picks up a wheel pip cached for the old ones, and a new checkout on the
## same machine installs it in seconds. A build that fails does not fail the install: GGUF
## endpoints then say how to retry (make install-llamacpp) and their tests skip.
LLAMACPP_VERSION := 0.3.36
CPU_FLAGS := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
ggml_isa = -DGGML_$(1)=$(if $(filter $(2),$(CPU_FLAGS)),ON,OFF)
LLAMACPP_ISA := $(if $(CPU_FLAGS),-DGGML_NATIVE=OFF $(call ggml_isa,AVX,avx) \
	$(call ggml_isa,AVX2,avx2) $(call ggml_isa,FMA,fma) $(call ggml_isa,F16C,f16c) \
	$(call ggml_isa,AVX512,avx512f) $(call ggml_isa,AVX512_VNNI,avx512_vnni) \
	$(call ggml_isa,AVX512_BF16,avx512_bf16),-DGGML_NATIVE=ON)
LLAMACPP_CMAKE := $(LLAMACPP_ISA) -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
	-DGGML_OPENMP=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
LLAMACPP_BUILD := $(LLAMACPP_VERSION)-$(shell printf '%s' '$(LLAMACPP_CMAKE)' | sha1sum | cut -c1-10)
LLAMACPP_WHEELS := $(HOME)/.cache/manualqa/llama-cpp-python-$(LLAMACPP_BUILD)
LLAMACPP_STAMP := $(VENV)/.llamacpp-$(LLAMACPP_BUILD)
LLAMACPP_INSTALL = { ls $(LLAMACPP_WHEELS)/*.whl >/dev/null 2>&1 \
	|| CMAKE_ARGS="$(LLAMACPP_CMAKE)" $(PY) -m pip wheel --quiet --no-deps --no-cache-dir \
		--no-binary llama-cpp-python -w $(LLAMACPP_WHEELS) llama-cpp-python==$(LLAMACPP_VERSION); } \
	&& $(PY) -m pip install --quiet --no-deps --force-reinstall $(LLAMACPP_WHEELS)/*.whl \
	&& $(PY) -m pip install --quiet --no-deps diskcache==5.6.3 \
	&& { $(PY) -c "$$LLAMACPP_SMOKE" >/dev/null 2>&1 \
		|| { $(PY) -m pip uninstall --quiet -y llama-cpp-python; \
			echo "[install] the llama.cpp build failed to generate a token on this CPU;" \
				"uninstalled it (options: $(LLAMACPP_CMAKE))"; false; }; }
export LLAMACPP_SMOKE := from manualqa.lib.llamacpp import load_gguf; \
	from manualqa.lib.local_models import default_gguf_path; \
	load_gguf(default_gguf_path(), threads=1).llama("Hello", max_tokens=2)

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

$(LLAMACPP_STAMP): $(STAMP)
	rm -f $(VENV)/.llamacpp-*
	$(LLAMACPP_INSTALL) \
		|| echo "[install] llama-cpp-python did not build: GGUF models will not run here" \
		"(make install-llamacpp tries again, printing the build's errors)."
	touch $@

install: $(STAMP) $(LLAMACPP_STAMP)

install-llamacpp: install
	$(LLAMACPP_INSTALL)

## Start PostgreSQL+pgvector and Redis where needed, migrate, ingest the sample manual, create
## the demo superuser, then serve on 127.0.0.1:8000 with a Celery worker. Ctrl-C stops it all.
run: install
	$(PY) -m manualqa.stack run

## The whole test suite against real services (started here if missing).
test: install
	$(PY) -m manualqa.stack test $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

services: install
	$(PY) -m manualqa.stack services

# A static pattern rule: make skips implicit rules for .PHONY targets, which left every
# `make bench-...` doing nothing.
$(addprefix bench-,$(BENCHES)): bench-%: install
	$(PY) -m manualqa.stack services >/dev/null
	$(PY) bench/$*.py
