r"""How to design :math:`\mathbf W`: Theorem 3.1 evaluated with a measured constant, and
the constants of a Gaussian layer of the asked size measured on the spot.

:func:`design_layer` answers, for a layer of :math:`K` filters of length :math:`\ell` over
:math:`M` channels, input length :math:`D`, stride :math:`t` and :math:`k` active blocks:

* what Theorem 3.1 requires for :math:`\delta_k=\delta` with probability
  :math:`1-\epsilon`: :math:`M\ell^2/D \ge (C/\delta^2)(k(\log K+\log n)-\log\epsilon)`,
  as a multiple of the unknown :math:`C`, and with a measured :math:`C` the smallest
  :math:`M\ell^2/D` and the smallest :math:`M` (the rest fixed), over the constant's
  interval; and the :math:`\delta_k` the theorem then predicts at this size,
  :math:`\sqrt{C x}`;
* :math:`\delta_k` and :math:`\delta_{2k}` of a Gaussian layer of that size, bracketed
  (:func:`cnninv.theory.delta_bracket`), and Theorem 3.3's bound at each end.

The measured :math:`C` is a computed result, never a typed-in number: the record
:func:`constant_record` makes from a ``phase_transition.json`` (the fit, the points it was
fitted on, and the run's provenance). ``cnninv`` ships one (:func:`load_constant` with no
argument), made by :func:`ship_constant` from ``cnninv reproduce phase-transition``;
any other result file can be given instead.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnninv._checks import check_number, check_positive_int
from cnninv.io import atomic_write_json
from cnninv.operators import ConvOperator
from cnninv.theory.delta import bracket_summary, delta_bracket
from cnninv.theory.phase import fit_constant, scaling_variable

__all__ = [
    "SHIPPED_CONSTANT",
    "constant_record",
    "design_layer",
    "load_constant",
    "ship_constant",
]

#: The constant shipped with cnninv, fitted by ``cnninv reproduce phase-transition``.
SHIPPED_CONSTANT = Path(__file__).with_name("fitted_constant.json")

#: Layers larger than this (entries of W^T z or of x) are not measured on the spot.
MEASURE_MAX = 2_000_000


def constant_record(result: Mapping[str, Any], source: str = "") -> dict[str, Any]:
    """The fitted constant of a ``phase-transition`` result, with the points it was fitted
    on (``x``, ``delta_lower``) and its provenance (configuration, versions, when, and the
    SHA-256 of the result's JSON). ``ValueError`` when ``result`` is not such a result."""
    if not isinstance(result, Mapping) or result.get("experiment") != "phase-transition":
        raise ValueError("not a phase-transition result (its 'experiment' must be that)")
    try:
        fit = {k: result["fit"][k] for k in ("C", "C_low", "C_high", "ci", "C_needed",
                                              "loglog_slope", "points_used", "key")}  # fmt: skip
        used = [
            {"x": p["x"], "delta_lower": p["delta_lower"]}
            for p in result["points"]
            if p["delta_lower"] < 1
        ]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"the phase-transition result lacks {exc}") from exc
    digest = hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()
    return {
        "fit": fit,
        "points": used,
        "provenance": {
            "command": "cnninv reproduce phase-transition"
            + (" --quick" if (result.get("config") or {}).get("quick") else ""),
            "source": source,
            "result_sha256": digest,
            "cnninv_version": result.get("cnninv_version"),
            "torch_version": result.get("torch_version"),
            "elapsed_s": result.get("elapsed_s"),
            "points_computed_now": result.get("computed_now"),
            "points_reused": result.get("reused"),
            "points_seconds_total": round(sum(p.get("seconds", 0) for p in result["points"]), 1),
            "config": result.get("config"),
        },
    }


def ship_constant(result_path: str | Path, out: str | Path = SHIPPED_CONSTANT) -> Path:
    """Write :func:`constant_record` of the ``phase_transition.json`` at ``result_path`` to
    ``out`` (by default the file cnninv ships)."""
    path = Path(result_path)
    record = constant_record(_read_json(path), source=path.name)
    return atomic_write_json(out, record)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path} as JSON: {exc}") from exc


def load_constant(path: str | Path | None = None) -> dict[str, Any]:
    """The measured constant: the shipped record (``path`` None), a record file, or a
    ``phase_transition.json`` (its record is made on the spot). The fit is checked against
    the points it carries (refitted here), so a hand-edited number is refused."""
    path = SHIPPED_CONSTANT if path is None else Path(path)
    data = _read_json(path)
    if isinstance(data, dict) and data.get("experiment") == "phase-transition":
        data = constant_record(data, source=path.name)
    if not isinstance(data, dict) or not {"fit", "points", "provenance"} <= set(data):
        raise ValueError(f"{path} is neither a phase_transition.json nor a constant record")
    refit = fit_constant(data["points"])
    if not math.isclose(refit["C"], float(data["fit"]["C"]), rel_tol=1e-9):
        raise ValueError(
            f"{path}: C = {data['fit']['C']} is not the fit of the points it carries "
            f"({refit['C']}); regenerate it with `cnninv reproduce phase-transition`"
        )
    return {**data, "path": str(path)}


def _open_unit(value: object, name: str) -> float:
    v = check_number(value, name)
    if not 0 < v < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return v


def design_layer(
    *,
    K: int,
    M: int,
    ell: int,
    D: int,
    k: int,
    stride: int = 1,
    delta: float = 0.3,
    eps: float = 0.01,
    constant: Mapping[str, Any] | float | None = None,
    measure: bool = True,
    samples: int = 300,
    seed: int = 0,
) -> dict[str, Any]:
    r"""Theorem 3.1 for a layer, with a measured constant, and the layer's constants
    measured (see the module docstring).

    ``constant`` is a record of :func:`load_constant`, a number (the caller's own
    :math:`C`, reported as given), or None (the requirement is then given as a multiple
    of :math:`C` only). ``measure`` draws a Gaussian layer of this size (``seed``) and
    brackets its :math:`\delta_k` and :math:`\delta_{2k}` (``samples`` random supports).

    Raises
    ------
    ValueError
        A size that gives no integer :math:`n = (D-\ell)/t + 1`, ``k`` larger than the
        number of blocks ``K``, ``delta`` or ``eps`` outside (0, 1), a non-positive
        constant, a layer too large to measure on the spot.
    """
    for name, v in (("K", K), ("M", M), ("ell", ell), ("D", D), ("k", k), ("stride", stride),
                    ("samples", samples)):  # fmt: skip
        check_positive_int(v, name)
    delta = _open_unit(delta, "delta")
    eps = _open_unit(eps, "eps")
    if ell > D or (D - ell) % stride:
        raise ValueError(
            f"n = (D - ell)/t + 1 is not an integer for D={D}, ell={ell}, stride={stride}"
        )
    if k > K:
        raise ValueError(f"k={k} is larger than the number of blocks K={K} (one per filter)")
    n = (D - ell) // stride + 1
    x = scaling_variable(M=M, ell=ell, D=D, K=K, k=k, t=stride, eps=eps)
    ratio = M * ell**2 / D
    L = x * ratio
    out: dict[str, Any] = {
        "layer": {
            "K": K,
            "M": M,
            "ell": ell,
            "D": D,
            "stride": stride,
            "n": n,
            "k": k,
            "blocks": K,
            "matrix_shape": [K * n, M * D],
        },
        "delta": delta,
        "eps": eps,
        "theorem31": {
            "log_term": L,
            "ratio": ratio,
            "x": x,
            "required_ratio_over_C": L / delta**2,
            "statement": "Mℓ²/D ≥ (C/δ²)(k(log K + log n) − log ε)",
        },
    }
    if constant is not None:
        if isinstance(constant, Mapping):
            fit = constant["fit"]
            values = {"C": fit["C"], "C_low": fit["C_low"], "C_high": fit["C_high"]}
            source = {"kind": "measured", "ci": fit.get("ci"), "path": constant.get("path"),
                      "provenance": constant.get("provenance")}  # fmt: skip
        else:
            c = check_number(constant, "constant", positive=True)
            values = {"C": c, "C_low": c, "C_high": c}
            source = {"kind": "given by the caller"}
        implied = {}
        for name, c in values.items():
            required = c * L / delta**2
            implied[name] = {
                "C": c,
                "required_ratio": required,
                "min_M": max(1, math.ceil(required * D / ell**2 - 1e-9)),
                "satisfied": ratio >= required,
                "predicted_delta_k": math.sqrt(c * x),
            }
        out["measured_constant"] = {**implied, "source": source}
    if measure:
        if K * n > MEASURE_MAX or M * D > MEASURE_MAX:
            raise ValueError(
                f"a layer of {K * n} x {M * D} is too large to measure on the spot "
                f"(at most {MEASURE_MAX} per side); ask for no measurement"
            )
        W = ConvOperator.gaussian(K, M, ell, D, stride, seed=seed)
        effort = dict(samples=samples, starts=2, sweeps=20, tpm_iters=20, seed=seed)
        out["measured_delta"] = {
            **bracket_summary(
                delta_bracket(W, k, order=1, **effort),
                delta_bracket(W, k, order=2, **effort),
                W.out_shape,
            ),
            "seed": seed,
            "filters": "Gaussian N(0, 1/(Mℓ)), Theorem 3.1's",
        }
        lo = out["measured_delta"]["delta_k"]["lower_search"]
        hi = out["measured_delta"]["delta_k"]["upper_babel"]
        out["measured_delta"]["meets_delta"] = (
            True if hi is not None and hi <= delta else False if lo > delta else None
        )
    return out
