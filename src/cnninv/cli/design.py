"""The ``design`` command: how to design W — Theorem 3.1 with the measured constant, and
the constants of a Gaussian layer of that size measured on the spot.

``cnninv design --K 96 --M 32 --ell 5 --D 32 --k 10 [--stride 1] [--delta 0.3]
[--eps 0.01] [--C fitted|VALUE|FILE] [--samples N] [--seed S] [--no-measure] [--json]``
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from cnninv.cli._args import int_arg, seed_arg

__all__ = ["COMMANDS", "add_parsers"]

_SIZE = 10**7  # the largest size any option takes (the layer is checked again below)


def _unit(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be in (0, 1)")
    return value


_unit.__name__ = "number in (0, 1)"


def add_parsers(sub) -> None:
    d = sub.add_parser(
        "design",
        help="how to design W: Theorem 3.1 with the measured C, and δ_k of a Gaussian layer "
        "of that size bracketed on the spot",
        description="K filters of length ℓ over M channels, input length D, stride t, k "
        "active blocks (one per filter). --C: 'fitted' (the constant cnninv ships, fitted by "
        "`cnninv reproduce phase-transition`), a phase_transition.json or constant record, "
        "or your own number.",
    )
    for name, what in (("--K", "filters"), ("--M", "channels"), ("--ell", "filter length"),
                       ("--D", "input length"), ("--k", "active blocks")):  # fmt: skip
        d.add_argument(name, type=int_arg(1, _SIZE, name), required=True, help=what)
    d.add_argument("--stride", type=int_arg(1, _SIZE, "--stride"), default=1, help="t")
    d.add_argument("--delta", type=_unit, default=0.3, help="the δ_k asked for (default 0.3)")
    d.add_argument("--eps", type=_unit, default=0.01, help="failure probability (default 0.01)")
    d.add_argument("--C", dest="constant", default="fitted", metavar="fitted|VALUE|FILE",
                   help="Theorem 3.1's constant (default: fitted, the measured one)")  # fmt: skip
    d.add_argument("--samples", type=int_arg(1, 100_000, "--samples"), default=300,
                   help="random supports for the measured δ (default 300)")  # fmt: skip
    d.add_argument("--seed", type=seed_arg, default=0, help="the Gaussian layer's seed")
    d.add_argument("--no-measure", action="store_true", help="skip the on-the-spot δ")
    d.add_argument("--json", action="store_true", help="print JSON instead of text")


def _constant(text: str):
    from cnninv.theory.design import load_constant

    if text == "fitted":
        return load_constant()
    try:
        value = float(text)
    except ValueError:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError(
                f"--C {text!r} is not 'fitted', a number or a result file that exists"
            ) from None
        return load_constant(path)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"--C must be 'fitted', a finite number > 0 or a file, got {text!r}")
    return value


def _f(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}g}"


def _text(r: dict) -> str:
    lay, t31 = r["layer"], r["theorem31"]
    lines = [
        f"Layer: K={lay['K']} filters of length ℓ={lay['ell']} over M={lay['M']} channels, "
        f"D={lay['D']}, stride {lay['stride']}: n={lay['n']} shifts, W is "
        f"{lay['matrix_shape'][0]}×{lay['matrix_shape'][1]}; k={lay['k']} of {lay['blocks']} "
        "blocks.",
        f"Theorem 3.1 (δ_k={r['delta']}, ε={r['eps']}): needs Mℓ²/D ≥ C × "
        f"{_f(t31['required_ratio_over_C'], 4)} (k(log K + log n) − log ε = "
        f"{_f(t31['log_term'], 4)}); this layer has Mℓ²/D = {_f(t31['ratio'], 4)}.",
    ]
    mc = r.get("measured_constant")
    if mc is not None:
        src = mc["source"]
        if src["kind"] == "measured":
            prov = src.get("provenance") or {}
            cfg = prov.get("config") or {}
            lines.append(
                f"Measured C = {_f(mc['C']['C'])} ({src.get('ci')} interval "
                f"[{_f(mc['C_low']['C'])}, {_f(mc['C_high']['C'])}]), fitted by "
                f"`{prov.get('command')}` (cnninv {prov.get('cnninv_version')}, seed "
                f"{cfg.get('seed')}; {src.get('path')}). It implies:"
            )
        else:
            lines.append(f"C = {_f(mc['C']['C'])} (given). It implies:")
        c, lo, hi = mc["C"], mc["C_low"], mc["C_high"]
        lines.append(
            f"  smallest Mℓ²/D = {_f(c['required_ratio'], 4)} [{_f(lo['required_ratio'], 4)}, "
            f"{_f(hi['required_ratio'], 4)}]; smallest M with ℓ, D fixed = {c['min_M']} "
            f"[{lo['min_M']}, {hi['min_M']}]; this layer "
            + ("satisfies it." if c["satisfied"] else "does not.")
        )
        lines.append(
            f"  δ_k the theorem predicts at this size, √(C x): {_f(c['predicted_delta_k'])} "
            f"[{_f(lo['predicted_delta_k'])}, {_f(hi['predicted_delta_k'])}]"
        )
    md = r.get("measured_delta")
    if md is not None:
        dk, d2k, t33 = md["delta_k"], md["delta_2k"], md["theorem33_bound"]
        verdict = {True: "meets", False: "does not meet", None: "may or may not meet"}
        lines += [
            f"Measured on the spot (Gaussian W, seed {md['seed']}): δ_k ∈ "
            f"[{_f(dk['lower_search'])}, {_f(dk['upper_babel'])}] (random codes suggest "
            f"{_f(dk['lower_random_codes'])}), δ_2k ∈ [{_f(d2k['lower_search'])}, "
            f"{_f(d2k['upper_babel'])}]: it {verdict[md['meets_delta']]} δ_k = {r['delta']}.",
            f"Theorem 3.3's bound on ‖x̂ − x‖/‖x‖: at the lower ends {_f(t33['at_lower'])}, at "
            f"the upper ends {_f(t33['at_upper'])} ({t33['note']}).",
        ]
    return "\n".join(lines)


def _design(args: argparse.Namespace) -> None:
    from cnninv.theory.design import design_layer

    result = design_layer(
        K=args.K, M=args.M, ell=args.ell, D=args.D, k=args.k, stride=args.stride,
        delta=args.delta, eps=args.eps, constant=_constant(args.constant),
        measure=not args.no_measure, samples=args.samples, seed=args.seed,
    )  # fmt: skip
    print(json.dumps(result, indent=1, ensure_ascii=False) if args.json else _text(result))


COMMANDS = {"design": _design}
