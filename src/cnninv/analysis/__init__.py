"""Analyses of trained networks, for any PyTorch CNN (an ``nn.Module`` and layer names).

* :func:`activation_sparsity` — % of non-zero activations per layer (Tables 2, 7);
* :func:`filter_coherence` — coherence of a layer's filters beside Gaussian filters of the
  same size, without and with shifts (Tables 3, 6);
* :func:`next_layer` — the convolution after a pooling layer, its operator and the model
  sparsity ``k`` matching its measured density;
* :func:`reconstruct_activation` — :math:`\\hat f = \\mathbf W^T\\mathbb M(\\mathbf Wf, k)`
  (and more IHT iterations), rescaled to :math:`\\|f\\|` as in §4.5 (Table 4);
* :func:`analyze_model` — all of the above for every convolution of any CNN.
"""

from cnninv.analysis.measures import activation_sparsity, filter_coherence
from cnninv.analysis.model import (
    ANALYSES,
    DEFAULT_ANALYSES,
    ModelAnalysis,
    analyze_model,
    assumptions,
    blocks_of,
)
from cnninv.analysis.reconstruction import (
    FILTERS,
    NextLayer,
    k_for_fraction,
    next_layer,
    reconstruct_activation,
    reconstruct_activation_iters,
)

__all__ = [
    "ANALYSES",
    "DEFAULT_ANALYSES",
    "FILTERS",
    "ModelAnalysis",
    "NextLayer",
    "activation_sparsity",
    "analyze_model",
    "assumptions",
    "blocks_of",
    "filter_coherence",
    "k_for_fraction",
    "next_layer",
    "reconstruct_activation",
    "reconstruct_activation_iters",
]
