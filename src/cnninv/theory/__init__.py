r"""The paper's theory, and the empirical quantities that check it.

* :func:`theorem31_condition` — Theorem 3.1: Gaussian filters give :math:`\mathbf W^T`
  the model-RIP with constant :math:`\delta_k` with probability :math:`1-\epsilon` if
  :math:`M\ell^2/D \ge C\,\delta_k^{-2}\,(k(\log K + \log n) - \log\epsilon)`.
* :func:`theorem33_bound` — Theorem 3.3:
  :math:`\|\hat x - x\|/\|x\| \le \frac{5\delta_{2k}}{1-\delta_k}
  \sqrt{\frac{1+\delta_{2k}}{1-\delta_{2k}}}`.
* :func:`sample_model_sparse` — random model-k-sparse codes (§4.2).
* :func:`model_rip_ratios`, :func:`gram_ratios`, :func:`reconstruction_errors`,
  :func:`empirical_delta` — Figure 2's histograms and the constants they imply.
* :func:`coherence` — mutual coherence of a filter bank (Tables 3 and 6).

Modules: :mod:`cnninv.theory.theorems` (Theorems 3.1 and 3.3), :mod:`cnninv.theory.rip`
(sampling and the model-RIP ratios), :mod:`cnninv.theory.coherence`.
"""

from cnninv.theory.coherence import coherence
from cnninv.theory.rip import (
    empirical_delta,
    gram_ratios,
    model_rip_ratios,
    reconstruction_errors,
    sample_model_sparse,
)
from cnninv.theory.theorems import Theorem31, theorem31_condition, theorem33_bound

__all__ = [
    "Theorem31",
    "coherence",
    "empirical_delta",
    "gram_ratios",
    "model_rip_ratios",
    "reconstruction_errors",
    "sample_model_sparse",
    "theorem31_condition",
    "theorem33_bound",
]
