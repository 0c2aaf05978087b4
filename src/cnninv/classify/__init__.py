"""Classification with random and learned filters (§4.1, Table 1, Appendix C.1).

- :mod:`~cnninv.classify.models`: the paper's small CNNs (conv → BN → ReLU → max pool,
  1–3 times, then average pooling to 4×4, dropout, a linear soft-max classifier), with
  frozen Gaussian filters (``"random"``) or trained ones (``"learned"``).
- :mod:`~cnninv.classify.data`: Fashion-MNIST from IDX files, CIFAR-10 from a local
  ``cifar-10-batches-py`` folder (with a restricted unpickler), seeded validation splits.
- :mod:`~cnninv.classify.train`: training and evaluation of one configuration, with
  per-epoch checkpoints that resume.
- :mod:`~cnninv.classify.sweep`: the hyper-parameter grid on Dask (optional dependency).
"""

from cnninv.classify.data import ImageData, load_dataset, read_idx, split_indices, write_idx
from cnninv.classify.models import VARIANTS, ConvClassifier, arch_name, trainable_parameters
from cnninv.classify.train import config_key, evaluate_test, make_spec, train_config

__all__ = [
    "VARIANTS",
    "ConvClassifier",
    "ImageData",
    "arch_name",
    "config_key",
    "evaluate_test",
    "load_dataset",
    "make_spec",
    "read_idx",
    "split_indices",
    "train_config",
    "trainable_parameters",
    "write_idx",
]
