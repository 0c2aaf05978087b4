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
* :func:`delta_bracket` — :math:`\delta_k` of :math:`\mathbf W^T` from both sides: lower
  bounds attained by explicit supports (sampling, adversarial search), upper bounds from
  coherence and Babel sums; :func:`exact_delta` by enumeration (tiny layers).
* :func:`phase_point`, :func:`fit_constant`, :func:`scaling_variable` — Theorem 3.1's
  phase transition measured and its constant fitted; :func:`design_layer` — how to design
  W: the theorem with the measured constant (:func:`load_constant`) and the constants of
  a Gaussian layer of that size.

Modules: :mod:`cnninv.theory.theorems` (Theorems 3.1 and 3.3), :mod:`cnninv.theory.rip`
(sampling and the model-RIP ratios), :mod:`cnninv.theory.coherence`,
:mod:`cnninv.theory.delta` (the bracketed constants), :mod:`cnninv.theory.phase`
(Theorem 3.1 measured), :mod:`cnninv.theory.design`.
"""

from cnninv.theory.coherence import coherence
from cnninv.theory.delta import (
    DeltaBracket,
    bracket_summary,
    delta_bracket,
    exact_delta,
    support_delta,
)
from cnninv.theory.design import design_layer, load_constant
from cnninv.theory.phase import fit_constant, phase_point, scaling_variable
from cnninv.theory.rip import (
    empirical_delta,
    gram_ratios,
    model_rip_ratios,
    reconstruction_errors,
    sample_model_sparse,
)
from cnninv.theory.theorems import Theorem31, theorem31_condition, theorem33_bound

__all__ = [
    "DeltaBracket",
    "Theorem31",
    "bracket_summary",
    "coherence",
    "delta_bracket",
    "design_layer",
    "empirical_delta",
    "exact_delta",
    "fit_constant",
    "gram_ratios",
    "load_constant",
    "model_rip_ratios",
    "phase_point",
    "reconstruction_errors",
    "sample_model_sparse",
    "scaling_variable",
    "support_delta",
    "theorem31_condition",
    "theorem33_bound",
]
