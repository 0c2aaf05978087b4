r"""Find the paper's layers in any CNN: every convolution and what follows it.

The model is run once on an example input under a :class:`torch.utils._python_dispatch.
TorchDispatchMode` that records every ATen operation with where each of its tensor inputs
came from. That sees through everything a real model does: modules, functional calls
written inside ``forward`` (``F.relu``, ``F.max_pool2d``, ``F.pad``), TorchScript archives
(their interpreter calls the same operations), ONNX models converted to torch modules. From
the record, :func:`discover` builds one :class:`ConvLayer` per convolution: its filters
(batch norm folded in), stride, padding, dilation, groups, the shapes it sees, and what
follows it up to the next convolution — batch norm, the activation (ReLU, leaky ReLU,
PReLU, GELU, …), pooling (max or average, kernel, stride, padding, ceil mode; a 1-d max
pool appears as a 2-d one on an unsqueezed map), padding applied before it, and whether
its output joins a residual sum. A layer is named by its weight's parameter name
(``features.0`` for ``features.0.weight``).

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
...                     nn.MaxPool2d(2), nn.Conv2d(8, 4, 3)).eval()
>>> found = discover(net, torch.randn(1, 3, 16, 16))
>>> [(l.name, l.activation, l.pool.kind if l.pool else None) for l in found.layers]
[('0', 'relu', 'max'), ('4', None, None)]
>>> found.layers[0].batch_norm is not None, found.layers[0].in_shape, found.layers[0].out_shape
(True, (3, 16, 16), (8, 16, 16))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "ConvLayer",
    "Discovery",
    "OpRecord",
    "PoolInfo",
    "discover",
    "record_ops",
]

#: ATen operations that are convolutions.
_CONVS = {"convolution", "_convolution", "conv1d", "conv2d", "cudnn_convolution"}
#: Batch normalisation in inference.
_BATCH_NORMS = {
    "native_batch_norm",
    "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit",
    "batch_norm",
    "cudnn_batch_norm",
    "miopen_batch_norm",
}
#: Element-wise activations, by ATen name (in-place variants end in ``_``).
_ACTIVATIONS = {
    "relu": "relu",
    "threshold": "relu",
    "hardtanh": "hardtanh",
    "leaky_relu": "leaky_relu",
    "_prelu_kernel": "prelu",
    "prelu": "prelu",
    "gelu": "gelu",
    "silu": "silu",
    "elu": "elu",
    "selu": "selu",
    "celu": "celu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softplus": "softplus",
    "mish": "mish",
    "hardswish": "hardswish",
    "hardsigmoid": "hardsigmoid",
    "clamp_min": "clamp_min",
    "clamp": "clamp",
}
_MAX_POOLS = {
    "max_pool1d",
    "max_pool2d",
    "max_pool1d_with_indices",
    "max_pool2d_with_indices",
    "max_pool3d_with_indices",
}
_AVG_POOLS = {"avg_pool1d", "avg_pool2d"}
_ADAPTIVE = {
    "_adaptive_avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "_adaptive_avg_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool1d",
}
#: Operations that only re-view or copy a tensor (followed through).
_PASS = {
    "view",
    "_unsafe_view",
    "reshape",
    "unsqueeze",
    "squeeze",
    "flatten",
    "clone",
    "contiguous",
    "detach",
    "alias",
    "_to_copy",
    "to",
    "dropout",
    "native_dropout",
    "feature_dropout",
    "expand",
    "permute",
    "transpose",
    "lift_fresh",
}
#: Operations that merge a tensor with another branch.
_MERGES = {"add", "sub", "mul", "cat", "stack"}
_PADS = {
    "constant_pad_nd",
    "reflection_pad1d",
    "reflection_pad2d",
    "replication_pad1d",
    "replication_pad2d",
    "pad",
}


@dataclass(frozen=True)
class TensorArg:
    """Stands for a tensor argument in :attr:`OpRecord.args`: ``tensors[index]``."""

    index: int


@dataclass
class OpRecord:
    """One ATen operation of the recorded forward pass.

    index : its position in the pass.
    name : the ATen name without overload (``"convolution"``, ``"relu_"``).
    inputs : for each tensor argument, the index of the operation that produced it, or
        ``-1`` for the model's input, ``None`` for a parameter, buffer or constant.
    slots : for each tensor argument, which output of its producer it is (0 for the
        first: max pooling's values, 1 its indices).
    args : the positional then keyword arguments, a tensor replaced by a
        :class:`TensorArg` (a list of tensors by a list of them).
    tensors : the tensor arguments themselves (kept for weights and statistics).
    out_shapes : the shapes of the tensor outputs.
    outputs : the tensor outputs (of the example pass).
    """

    index: int
    name: str
    inputs: list[int | None]
    args: list[Any]
    tensors: list[torch.Tensor]
    out_shapes: list[tuple[int, ...]]
    outputs: list[torch.Tensor] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)

    @property
    def base(self) -> str:
        """The name without the in-place underscore (``relu_`` -> ``relu``)."""
        return (
            self.name[:-1]
            if self.name.endswith("_") and not self.name.startswith("_")
            else (self.name)
        )


class _Recorder(TorchDispatchMode):
    """Records every ATen call with the producers of its tensor inputs."""

    def __init__(self, inputs: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.ops: list[OpRecord] = []
        # TensorImpl -> producing op (-1: the model input); tensors are kept alive so that
        # no TensorImpl address is reused while the record is made
        self.producer: dict[int, tuple[int, int]] = {t._cdata: (-1, 0) for t in inputs}
        self.keep: list[torch.Tensor] = list(inputs)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        flat_args = list(args) + list(kwargs.values())
        tensors, producers, slots, plain = [], [], [], []

        def tensor_arg(t: torch.Tensor) -> TensorArg:
            tensors.append(t)
            source = self.producer.get(t._cdata)
            producers.append(None if source is None else source[0])
            slots.append(0 if source is None else source[1])
            return TensorArg(len(tensors) - 1)

        for a in flat_args:
            if isinstance(a, torch.Tensor):
                plain.append(tensor_arg(a))
            elif isinstance(a, list | tuple) and any(isinstance(v, torch.Tensor) for v in a):
                plain.append([tensor_arg(v) if isinstance(v, torch.Tensor) else v for v in a])
            else:
                plain.append(a)
        outs = out if isinstance(out, list | tuple) else (out,)
        index = len(self.ops)
        shapes, results = [], []
        for pos, o in enumerate(outs):
            if isinstance(o, torch.Tensor):
                self.producer[o._cdata] = (index, pos)
                results.append(o)
                shapes.append(tuple(o.shape))
        self.keep.extend(tensors)
        self.keep.extend(results)
        self.ops.append(
            OpRecord(
                index,
                func.overloadpacket.__name__,
                producers,
                plain,
                tensors,
                shapes,
                results,
                slots,
            )
        )
        return out


def record_ops(model: nn.Module, x: torch.Tensor) -> list[OpRecord]:
    """Run ``model`` on ``x`` (under ``torch.no_grad()``) and return its ATen operations.

    Raises
    ------
    ValueError
        If the forward pass fails; the message says what the model raised (typically an
        input of the wrong shape).
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a tensor, got {type(x).__name__}")
    rec = _Recorder([x])
    try:
        with torch.no_grad(), rec:
            model(x)
    except Exception as exc:  # any error of the user's forward: report it, never crash
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"the model's forward pass failed on an input of shape {tuple(x.shape)}: "
            f"{type(exc).__name__}: {first}"
        ) from exc
    return rec.ops


@dataclass(frozen=True)
class PoolInfo:
    """Pooling after a convolution.

    kind : ``"max"`` or ``"avg"``; ``global_`` when it reduces the whole map.
    kernel, stride, padding : per spatial axis of the convolution's output.
    ceil_mode : partial windows at the border are pooled too.
    """

    kind: str
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] = ()
    ceil_mode: bool = False
    global_: bool = False

    @property
    def overlapping(self) -> bool:
        """Whether windows overlap (kernel larger than stride along some axis)."""
        return any(k > s for k, s in zip(self.kernel, self.stride, strict=True))

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "kernel": list(self.kernel),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "ceil_mode": self.ceil_mode,
            "global": self.global_,
            "overlapping": self.overlapping,
        }


@dataclass
class ConvLayer:
    """A convolution found in a model and what follows it up to the next convolution.

    name : the weight's parameter name without ``.weight`` (``"features.0"``), or
        ``"conv<i>"`` when the weight is not a parameter.
    op_index : position of the convolution among the recorded operations.
    weight, bias : the filters ``(K, M/groups, *kernel)`` and bias, with a following batch
        norm folded in (``batch_norm`` records it).
    ndim : 1 or 2 (a 2-d convolution whose kernel and map are one wide along an axis is a
        1-d layer written in 2-d: ``singleton_axis`` says which).
    stride, padding, dilation, groups : the convolution's own.
    pre_pad : padding applied by a separate operation just before the convolution
        (``(name, pads)``, e.g. ``("constant_pad_nd", [0, 1, 0, 1])``), else None; the
        shapes then describe the padded input.
    in_shape, out_shape : one sample's input (as the convolution sees it) and output.
    batch_norm : ``{"eps", "affine"}`` of a batch norm folded into ``weight``/``bias``.
    activation : ``"relu"``, ``"leaky_relu"``, ``"prelu"``, ``"gelu"``, … or None;
        ``activation_args`` its parameters (leaky slope, hardtanh bounds).
    pool : the pooling that follows, or None.
    residual : the output (or the activation after it) is summed with another branch.
    branches : the output feeds more than one operation.
    followers : the names of every operation between this convolution and the next one.
    input_op, activation_op, pool_op : indices of the operations whose outputs are the
        layer's input, its activation and its pooled output (None when absent).
    """

    name: str
    op_index: int
    weight: torch.Tensor
    bias: torch.Tensor | None
    ndim: int
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    transposed: bool = False
    singleton_axis: int | None = None
    pre_pad: tuple[str, list[int]] | None = None
    batch_norm: dict[str, Any] | None = None
    activation: str | None = None
    activation_args: list[Any] = field(default_factory=list)
    pool: PoolInfo | None = None
    residual: bool = False
    branches: bool = False
    followers: list[str] = field(default_factory=list)
    input_op: int | None = None
    activation_op: int | None = None
    pool_op: int | None = None

    @property
    def kind(self) -> str:
        if self.transposed:
            return f"conv_transpose{self.ndim}d"
        if self.singleton_axis is not None:
            return "conv2d (1-d, one wide)"
        return f"conv{self.ndim}d"

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[2:])

    @property
    def in_channels(self) -> int:
        return self.in_shape[0]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def operator(self, *, dtype: torch.dtype | None = None):
        r"""The layer's :math:`\mathbf W` at its input size (a
        :class:`~cnninv.operators.ConvOperator`; batch norm folded, bias left out)."""
        from cnninv.operators import ConvOperator

        w = self.weight.detach()
        if dtype is not None:
            w = w.to(dtype)
        return ConvOperator(
            w,
            self.in_shape[1:],
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
        )

    def summary(self) -> dict[str, Any]:
        """The layer's structure as plain data (for ``analysis.json``)."""
        return {
            "kind": self.kind,
            "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape),
            "kernel": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "pre_pad": None if self.pre_pad is None else list(self.pre_pad),
            "bias": self.bias is not None,
            "batch_norm": self.batch_norm,
            "activation": self.activation,
            "activation_args": list(self.activation_args),
            "pool": None if self.pool is None else self.pool.as_dict(),
            "residual": self.residual,
            "branches": self.branches,
            "followers": list(self.followers),
        }


@dataclass
class Discovery:
    """What :func:`discover` found: the convolutions in forward order, the recorded
    operations, the input shape, and notes on what could not be described."""

    layers: list[ConvLayer]
    ops: list[OpRecord]
    input_shape: tuple[int, ...]
    notes: list[str] = field(default_factory=list)

    def layer(self, name: str) -> ConvLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"layer {name!r} is not a convolution of this model; its convolutions: "
            f"{', '.join(l.name for l in self.layers)}"
        )

    def signature(self) -> list[str]:
        """The sequence of operation names (to check that another pass is the same)."""
        return [op.name for op in self.ops]


# --------------------------------------------------------------------------- helpers
def _ints(v: Any, n: int) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * n
    out = tuple(int(a) for a in v)
    return out * n if len(out) == 1 and n > 1 else out


def _consumers(ops: list[OpRecord]) -> dict[int, list[int]]:
    """Operation -> the operations that use its first output (a pool's values, not its
    indices)."""
    out: dict[int, list[int]] = {}
    for op in ops:
        for p, slot in zip(op.inputs, op.slots, strict=True):
            if p is not None and slot == 0 and op.index not in out.get(p, []):
                out.setdefault(p, []).append(op.index)
    return out


def _param_names(model: nn.Module) -> dict[int, str]:
    names = {}
    try:
        named = list(model.named_parameters()) + list(model.named_buffers())
    except Exception:  # some scripted modules cannot list their tensors: no names then
        named = []
    for n, t in named:
        if isinstance(t, torch.Tensor) and t.numel():
            names.setdefault(t.data_ptr(), n)
    return names


def _arg(op: OpRecord, i: int, default: Any = None) -> Any:
    return op.args[i] if i < len(op.args) else default


def _tensor(op: OpRecord, i: int) -> torch.Tensor | None:
    """The tensor passed as argument ``i``, or None."""
    a = _arg(op, i)
    return op.tensors[a.index] if isinstance(a, TensorArg) else None


def _fold_batch_norm(
    op: OpRecord, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]] | None:
    """Fold an inference batch norm into the convolution: returns (W', b', info), or None
    when it cannot be folded (training statistics, missing running statistics)."""
    name = op.name
    if name == "_native_batch_norm_legit_no_training":
        training, eps = False, float(_arg(op, 6, 1e-5))
    elif name in ("native_batch_norm", "batch_norm", "cudnn_batch_norm", "miopen_batch_norm"):
        training = bool(_arg(op, 5, False))
        eps = float(_arg(op, 7, 1e-5))
    else:
        return None
    if training:
        return None
    # (input, weight, bias, running_mean, running_var, …): weight and bias may be None
    slots = {
        key: _tensor(op, i) for i, key in enumerate(("weight", "bias", "mean", "var"), start=1)
    }
    mean, var = slots["mean"], slots["var"]
    if mean is None or var is None:
        return None
    w64 = weight.detach().double()
    gamma = slots["weight"].detach().double() if slots.get("weight") is not None else None
    beta = slots["bias"].detach().double() if slots.get("bias") is not None else None
    scale = torch.rsqrt(var.detach().double() + eps)
    if gamma is not None:
        scale = scale * gamma
    b = bias.detach().double() if bias is not None else torch.zeros_like(scale)
    new_b = (b - mean.detach().double()) * scale
    if beta is not None:
        new_b = new_b + beta
    new_w = w64 * scale.view(-1, *([1] * (w64.dim() - 1)))
    info = {"eps": eps, "affine": gamma is not None}
    return new_w.to(weight.dtype), new_b.to(weight.dtype), info


def _pool_info(op: OpRecord, ndim: int, in_shape: tuple[int, ...]) -> PoolInfo | None:
    """The pooling of ``op`` (on maps of shape ``in_shape``, channels first) described along
    the convolution's ``ndim`` spatial axes."""
    name = op.base
    if name in _MAX_POOLS or name in _AVG_POOLS:
        kind = "max" if name in _MAX_POOLS else "avg"
        k = list(_ints(_arg(op, 1), 1))
        s = _arg(op, 2)
        s = list(_ints(s, 1)) if s not in (None, [], ()) else list(k)
        p = list(_ints(_arg(op, 3, 0), 1))
        n_axes = max(len(k), len(s))
        k, s = list(_ints(k, n_axes)), list(_ints(s, n_axes))
        p = list(_ints(p, n_axes)) if len(p) in (1, n_axes) else p
        ceil_i = 5 if kind == "max" else 4
        ceil = bool(_arg(op, ceil_i, False))
        if len(k) > ndim:  # a 1-d pool run as a 2-d one over an unsqueezed axis
            drop = [i for i in range(len(k)) if k[i] == 1 and s[i] == 1][: len(k) - ndim]
            keep = [i for i in range(len(k)) if i not in drop]
            k, s, p = [k[i] for i in keep], [s[i] for i in keep], [p[i] for i in keep]
        return PoolInfo(kind, tuple(k), tuple(s), tuple(p), ceil)
    if name in _ADAPTIVE or name == "mean":
        kind = "max" if "max" in name else "avg"
        spatial = tuple(in_shape[1:])[-ndim:]
        if name == "mean":
            dims = _arg(op, 1)
            if not dims:
                return None
        return PoolInfo(kind, spatial, spatial, tuple(0 for _ in spatial), False, True)
    return None


def _activation_args(op: OpRecord) -> list[Any]:
    name = op.base
    if name == "leaky_relu":
        return [float(_arg(op, 1, 0.01))]
    if name in ("hardtanh", "clamp"):
        return [_arg(op, 1), _arg(op, 2)]
    if name == "clamp_min":
        return [_arg(op, 1)]
    if name == "threshold":
        return [_arg(op, 1), _arg(op, 2)]
    return []


def _activation_kind(op: OpRecord) -> str | None:
    name = op.base
    kind = _ACTIVATIONS.get(name)
    if kind is None:
        return None
    if kind == "relu" and name == "threshold":
        return "relu" if _arg(op, 1) == 0 and _arg(op, 2) == 0 else "threshold"
    if kind == "hardtanh":
        lo = _arg(op, 1, -1.0)
        return "relu6" if lo == 0 else "hardtanh"
    if kind == "clamp_min":
        return "relu" if _arg(op, 1) == 0 else "clamp_min"
    return kind


def _walk(layer: ConvLayer, ops: list[OpRecord], consumers: dict[int, list[int]]) -> None:
    """Follow the convolution's output up to the next convolution, filling in what
    follows it."""
    current = layer.op_index
    while True:
        users = consumers.get(current, [])
        if not users:
            return
        if len(users) > 1:
            layer.branches = True
            if any(ops[u].base in _MERGES for u in users):
                layer.residual = True
            return
        op = ops[users[0]]
        base = op.base
        layer.followers.append(op.name)
        if base in _CONVS:
            layer.followers.pop()
            return
        if base in _BATCH_NORMS:
            if layer.batch_norm is None and layer.activation is None and layer.pool is None:
                folded = _fold_batch_norm(op, layer.weight, layer.bias)
                if folded is not None:
                    layer.weight, layer.bias, layer.batch_norm = folded
        elif _activation_kind(op) is not None:
            if layer.activation is None:
                layer.activation = _activation_kind(op)
                layer.activation_args = _activation_args(op)
                layer.activation_op = op.index
        elif base in _MAX_POOLS or base in _AVG_POOLS or base in _ADAPTIVE or base == "mean":
            if layer.pool is None:
                source = _tensor(op, 0)
                shape = tuple(source.shape[1:]) if source is not None else layer.out_shape
                layer.pool, layer.pool_op = _pool_info(op, layer.ndim, shape), op.index
            if base == "mean":
                return
        elif base in _MERGES:
            others = [p for p in op.inputs if p != current]
            if any(p is not None for p in others):
                layer.residual = True
        elif base in ("addmm", "mm", "linear", "matmul", "bmm"):
            return
        elif base not in _PASS and base not in _PADS:
            pass  # another operation (recorded in followers)
        current = op.index


def discover(model: nn.Module, x: torch.Tensor) -> Discovery:
    """Record ``model`` on the example input ``x`` (one sample is enough: ``(1, ...)``)
    and describe its convolutions.

    Raises
    ------
    ValueError
        If the forward pass fails on ``x``, or the model has no convolution.
    """
    if isinstance(model, nn.Module):
        model.eval()
    ops = record_ops(model, x)
    consumers = _consumers(ops)
    names = _param_names(model)
    layers: list[ConvLayer] = []
    notes: list[str] = []
    taken: set[str] = set()
    for op in ops:
        if op.base not in _CONVS:
            continue
        x_in, weight, bias = _tensor(op, 0), _tensor(op, 1), _tensor(op, 2)
        if x_in is None or weight is None:
            notes.append(f"operation {op.index} ({op.name}) has no tensor weight: skipped")
            continue
        # aten.convolution(input, weight, bias, stride, padding, dilation, transposed,
        # output_padding, groups); aten._convolution has the same first nine
        n = weight.dim() - 2
        transposed = bool(_arg(op, 6, False))
        name = names.get(weight.data_ptr())
        name = name[: -len(".weight")] if name and name.endswith(".weight") else name
        if not name:
            name = f"conv{len(layers) + 1}"
        elif name in taken:  # a convolution applied twice: the second call by position
            name = f"{name}@{op.index}"
        taken.add(name)
        in_shape = tuple(x_in.shape[1:])
        out_shape = op.out_shapes[0][1:]
        singleton = None
        if n == 2:
            for axis in (0, 1):
                if weight.shape[2 + axis] == 1 and in_shape[1 + axis] == 1:
                    singleton = axis
        layer = ConvLayer(
            name=name,
            op_index=op.index,
            weight=weight.detach(),
            bias=None if bias is None else bias.detach(),
            ndim=n,
            stride=_ints(_arg(op, 3, 1), n),
            padding=_ints(_arg(op, 4, 0), n),
            dilation=_ints(_arg(op, 5, 1), n),
            groups=int(_arg(op, 8, 1)),
            in_shape=in_shape,
            out_shape=tuple(out_shape),
            transposed=transposed,
            singleton_axis=singleton,
            input_op=op.inputs[0],
        )
        src = op.inputs[0]
        if src is not None and src >= 0 and ops[src].base in _PADS:
            pad = ops[src]
            layer.pre_pad = (pad.name, [int(v) for v in (_arg(pad, 1) or [])])
        _walk(layer, ops, consumers)
        layers.append(layer)
    if not layers:
        kinds = sorted({op.base for op in ops})
        raise ValueError(
            "the model has no convolution (its forward pass ran "
            f"{', '.join(kinds[:12])}{'…' if len(kinds) > 12 else ''}): nothing to analyse"
        )
    for layer in layers:
        if layer.transposed:
            notes.append(f"{layer.name} is a transposed convolution (a decoder layer)")
    return Discovery(layers, ops, tuple(x.shape), notes)
