#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for the `recurrent` crate's tests.

Run from the repository root:

    .venv-torch/bin/python scripts/make_fixtures.py

Every fixture is written to ``tests/fixtures/*.safetensors`` (relative to the
repository root, independent of the current working directory) with
``safetensors.torch.save_file``.  The key / metadata layout of each fixture
family is the contract consumed by the Rust tests; it is documented in
``scripts/README.md`` -- keep the two in sync.

The script is fully deterministic on CPU: each fixture file re-seeds torch with
a seed derived from its own name (``zlib.crc32``), so adding, removing or
reordering fixtures never changes the contents of the others.

Adding configurations
---------------------
* Recurrent layers: append a ``LayerCase`` to ``LAYER_CASES`` (the original
  single-layer files) or extend the grid in ``stacked_layer_cases()`` (the
  multi-layer / bidirectional / GRU / variable-length files).  The generic
  code handles ``kind="gru"``, ``num_layers > 1``, ``bidirectional=True``,
  ``batch_first=True`` and packed sequences (weights are taken from the
  module's ``named_parameters()``, so names such as ``weight_hh_l1_reverse``
  appear automatically, and h0/c0 get shape ``(num_layers*num_dirs, B, H)``).
  A case with ``lengths`` set also stores a ``lengths`` tensor and a
  ``packed`` metadata entry; with ``packed=True`` it runs the module through
  ``pack_padded_sequence(..., enforce_sorted=False)`` /
  ``pad_packed_sequence(..., total_length=T)``.
  ``proj_size > 0`` (LSTM only) builds ``nn.LSTM(..., proj_size=P)``: h0/h_n
  become ``(num_layers*num_dirs, B, P)``, the output ``D*P`` wide, and each
  layer/direction gets a ``weight_hr_l{k}[_reverse]`` parameter; see
  ``proj_layer_cases()``.
* Optimizers: append an ``OptimCase`` to ``OPTIM_CASES`` (SGD, Adam, AdamW,
  RMSprop, Adagrad).
* Learning-rate schedules: append a ``ScheduleCase`` to ``SCHEDULE_CASES``.
* Clipping: extend ``CLIP_MAX_NORMS`` / ``CLIP_VALUES``.
* Losses: see section F (cross-entropy on (N, C) and on a padded sequence
  batch, masked MSE).
* Embedding and softmax/log_softmax/argmax: see section G.
* Layer-normalised LSTM (issue 21): section I holds the reference module
  ``LayerNormLSTM`` (F.layer_norm, a Python time loop, masks for lengths) and
  the ``lnlstm_*`` fixtures; extend ``lnlstm_cases()``.  Checked by
  ``scripts/check_layernorm_lstm.py``.

``--only PREFIX`` writes only the files whose stem starts with PREFIX, e.g.
``--only lnlstm_`` (on another machine a full run also changes other files in
their last bits; see scripts/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from safetensors import safe_open
from safetensors.torch import load_file, save_file

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "tests" / "fixtures"

DTYPES = {"f64": torch.float64, "f32": torch.float32}


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def seed_for(name: str) -> int:
    """Stable per-fixture seed (Python's hash() is randomized per process)."""
    return zlib.crc32(name.encode("utf-8"))


def fmt_float(x: float) -> str:
    """Shortest decimal string that round-trips to the same f64."""
    return repr(float(x))


def fmt_bool(b: bool) -> str:
    return "true" if b else "false"


def export(t: torch.Tensor) -> torch.Tensor:
    """Detached, contiguous, non-aliased copy suitable for save_file."""
    return t.detach().clone().contiguous()


def canonicalize_header(path: Path) -> None:
    """Rewrite the safetensors JSON header with sorted ``__metadata__`` keys.

    safetensors serialises the metadata map in hash order, which differs from
    run to run; sorting it makes regenerated files byte-identical.  The header
    keeps exactly the same length, so tensor data offsets are untouched.
    """
    raw = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert len(text) <= n, (path, len(text), n)
    raw[8 : 8 + n] = text + b" " * (n - len(text))
    path.write_bytes(bytes(raw))


def write_fixture(
    out_dir: Path,
    name: str,
    tensors: Dict[str, torch.Tensor],
    metadata: Dict[str, str],
) -> Path:
    path = out_dir / f"{name}.safetensors"
    tensors = {k: export(v) for k, v in tensors.items()}
    for k, v in metadata.items():
        assert isinstance(k, str) and isinstance(v, str), (name, k, v)
    save_file(tensors, str(path), metadata=metadata)
    canonicalize_header(path)

    # Self-check: the file must load back bit-identically, metadata included.
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == metadata, name
    loaded = load_file(str(path))
    assert set(loaded) == set(tensors), (name, set(loaded) ^ set(tensors))
    for k, v in tensors.items():
        w = loaded[k]
        assert w.dtype == v.dtype and w.shape == v.shape, (name, k)
        # (A NaN metric in a schedule fixture must compare equal to itself.)
        same = torch.equal(w, v) or (
            v.is_floating_point() and torch.allclose(w, v, rtol=0.0, atol=0.0, equal_nan=True)
        )
        assert same, (name, k)
    return path


# --------------------------------------------------------------------------- #
# A) recurrent layer forward/backward fixtures
# --------------------------------------------------------------------------- #
@dataclasses.dataclass(frozen=True)
class LayerCase:
    name: str  # file stem, without the dtype suffix
    kind: str  # "rnn_tanh" | "rnn_relu" | "lstm" | "gru"
    bias: bool = True
    num_layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    T: int = 5
    B: int = 3
    I: int = 4
    H: int = 6
    # Per-sequence lengths (one per batch entry).  None = legacy layout: no
    # ``lengths`` tensor and no ``packed`` / ``param_names`` metadata (keeps
    # the original single-layer files byte-identical).
    lengths: Optional[Tuple[int, ...]] = None
    # Run through pack_padded_sequence / pad_packed_sequence (needs lengths).
    packed: bool = False
    # LSTM projection size (nn.LSTM(proj_size=P)); 0 = none, PyTorch's default.
    # Only a case with proj_size > 0 writes the ``proj_size`` metadata entry
    # (keeps the other files byte-identical).
    proj_size: int = 0

    @property
    def has_cell(self) -> bool:
        return self.kind == "lstm"

    @property
    def out_H(self) -> int:
        """Width of h (and of each direction's output): P with a projection, else H."""
        return self.proj_size if self.proj_size > 0 else self.H

    def __post_init__(self) -> None:
        assert self.kind in ("rnn_tanh", "rnn_relu", "lstm", "gru"), self.kind
        if self.packed:
            assert self.lengths is not None, self.name
        if self.lengths is not None:
            assert len(self.lengths) == self.B, self.name
            assert all(1 <= n <= self.T for n in self.lengths), self.name
            if not self.packed:
                assert all(n == self.T for n in self.lengths), self.name
        if self.proj_size:
            # PyTorch's rules: LSTM only, proj_size < hidden_size.
            assert self.kind == "lstm", self.name
            assert 0 < self.proj_size < self.H, self.name
            assert self.lengths is not None, self.name


LAYER_CASES: List[LayerCase] = [
    LayerCase("rnn_tanh", "rnn_tanh"),
    LayerCase("rnn_relu", "rnn_relu"),
    LayerCase("lstm", "lstm"),
    LayerCase("lstm_nobias", "lstm", bias=False),
    # Multi-layer / bidirectional / GRU / variable-length files: see
    # stacked_layer_cases() below.
]

# Sizes and lengths of the stacked / bidirectional / variable-length grid.
STACKED_SIZES = dict(T=5, B=3, I=4, H=3)
# Deliberately unsorted, with one full-length sequence (exercises
# enforce_sorted=False and the batch permutation of h0 / h_n).
PACKED_LENGTHS = (4, 5, 2)
STACKED_KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
STACKED_NUM_LAYERS = (1, 2, 3)


def stacked_layer_cases() -> List[LayerCase]:
    """``{kind}_{uni|bi}_{L}l_{full|packed}[_nobias]`` (dtype suffix added later)."""
    T, B = STACKED_SIZES["T"], STACKED_SIZES["B"]
    cases: List[LayerCase] = []
    for kind in STACKED_KINDS:
        for bidirectional in (False, True):
            dirs = "bi" if bidirectional else "uni"
            for num_layers in STACKED_NUM_LAYERS:
                for packed in (False, True):
                    mode = "packed" if packed else "full"
                    cases.append(
                        LayerCase(
                            f"{kind}_{dirs}_{num_layers}l_{mode}",
                            kind,
                            num_layers=num_layers,
                            bidirectional=bidirectional,
                            lengths=PACKED_LENGTHS if packed else (T,) * B,
                            packed=packed,
                            **STACKED_SIZES,
                        )
                    )
        # bias=False variant: 2-layer, bidirectional, packed.
        cases.append(
            LayerCase(
                f"{kind}_bi_2l_packed_nobias",
                kind,
                bias=False,
                num_layers=2,
                bidirectional=True,
                lengths=PACKED_LENGTHS,
                packed=True,
                **STACKED_SIZES,
            )
        )
    return cases


STACKED_LAYER_CASES: List[LayerCase] = stacked_layer_cases()

# LSTM with projection (nn.LSTM(proj_size=P)).  I = 4, H = 5, P = 3 and
# D*P = 3 or 6: I, H and P differ, and so do I, H and D*P, so mixing up two of
# them is a shape error.  Same T, B and lengths as the grid above.
PROJ_SIZES = dict(T=5, B=3, I=4, H=5, proj_size=3)
PROJ_NUM_LAYERS = (1, 2)


def proj_layer_cases() -> List[LayerCase]:
    """``lstmp_{uni|bi}_{L}l_{full|packed}`` and ``lstmp_bi_2l_packed_nobias``.

    The stem starts with ``lstmp_``, not ``lstm_``: tests/it/stack.rs picks its
    fixtures by the ``lstm_`` prefix and counts them.
    """
    T, B = PROJ_SIZES["T"], PROJ_SIZES["B"]
    cases: List[LayerCase] = []
    for bidirectional in (False, True):
        dirs = "bi" if bidirectional else "uni"
        for num_layers in PROJ_NUM_LAYERS:
            for packed in (False, True):
                mode = "packed" if packed else "full"
                cases.append(
                    LayerCase(
                        f"lstmp_{dirs}_{num_layers}l_{mode}",
                        "lstm",
                        num_layers=num_layers,
                        bidirectional=bidirectional,
                        lengths=PACKED_LENGTHS if packed else (T,) * B,
                        packed=packed,
                        **PROJ_SIZES,
                    )
                )
    cases.append(
        LayerCase(
            "lstmp_bi_2l_packed_nobias",
            "lstm",
            bias=False,
            num_layers=2,
            bidirectional=True,
            lengths=PACKED_LENGTHS,
            packed=True,
            **PROJ_SIZES,
        )
    )
    return cases


PROJ_LAYER_CASES: List[LayerCase] = proj_layer_cases()


def build_module(case: LayerCase, dtype: torch.dtype) -> nn.Module:
    common = dict(
        input_size=case.I,
        hidden_size=case.H,
        num_layers=case.num_layers,
        bias=case.bias,
        batch_first=case.batch_first,
        bidirectional=case.bidirectional,
        dtype=dtype,  # parameters are initialised directly in the target dtype
    )
    if case.kind == "rnn_tanh":
        return nn.RNN(nonlinearity="tanh", **common)
    if case.kind == "rnn_relu":
        return nn.RNN(nonlinearity="relu", **common)
    if case.kind == "lstm":
        if case.proj_size:
            return nn.LSTM(proj_size=case.proj_size, **common)
        return nn.LSTM(**common)
    if case.kind == "gru":
        return nn.GRU(**common)
    raise ValueError(f"unknown layer kind {case.kind!r}")


def make_layer_fixture(case: LayerCase, dtype_name: str, out_dir: Path) -> Path:
    dtype = DTYPES[dtype_name]
    name = f"{case.name}_{dtype_name}"
    seed = seed_for(name)
    torch.manual_seed(seed)

    module = build_module(case, dtype)  # torch default init, kept as is
    module = module.double() if dtype == torch.float64 else module.float()

    T, B, I, H = case.T, case.B, case.I, case.H
    Hout = case.out_H  # P with a projection, else H
    D = 2 if case.bidirectional else 1
    L = case.num_layers
    x_shape = (B, T, I) if case.batch_first else (T, B, I)
    out_shape = (B, T, D * Hout) if case.batch_first else (T, B, D * Hout)
    state_shape = (L * D, B, Hout)  # h0, h_n
    cell_shape = (L * D, B, H)  # c0, c_n

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, dtype=dtype) * scale).detach()

    x = randn(*x_shape).requires_grad_(True)
    h0 = randn(*state_shape, scale=0.5).requires_grad_(True)
    c0 = randn(*cell_shape, scale=0.5).requires_grad_(True) if case.has_cell else None
    d_output = randn(*out_shape)
    d_h_n = randn(*state_shape)
    d_c_n = randn(*cell_shape) if case.has_cell else None

    hx = (h0, c0) if case.has_cell else h0
    if case.packed:
        lengths = torch.tensor(case.lengths, dtype=torch.int64)
        packed_x = pack_padded_sequence(
            x, lengths, batch_first=case.batch_first, enforce_sorted=False
        )
        out_packed, state = module(packed_x, hx)
        output, out_lengths = pad_packed_sequence(
            out_packed, batch_first=case.batch_first, total_length=T
        )
        assert torch.equal(out_lengths, lengths), name
    else:
        output, state = module(x, hx)
    if case.has_cell:
        h_n, c_n = state
    else:
        h_n, c_n = state, None
    assert tuple(output.shape) == out_shape and tuple(h_n.shape) == state_shape, name
    if case.has_cell:
        assert tuple(c_n.shape) == cell_shape, name

    loss = (output * d_output).sum() + (h_n * d_h_n).sum()
    if case.has_cell:
        loss = loss + (c_n * d_c_n).sum()
    loss.backward()

    tensors: Dict[str, torch.Tensor] = {}
    params = list(module.named_parameters())
    for pname, p in params:
        tensors[pname] = p
    tensors["input"] = x
    tensors["h0"] = h0
    tensors["d_output"] = d_output
    tensors["d_h_n"] = d_h_n
    tensors["output"] = output
    tensors["h_n"] = h_n
    if case.has_cell:
        tensors["c0"] = c0
        tensors["d_c_n"] = d_c_n
        tensors["c_n"] = c_n
    for pname, p in params:
        tensors[f"grad.{pname}"] = p.grad
    tensors["grad.input"] = x.grad
    tensors["grad.h0"] = h0.grad
    if case.has_cell:
        tensors["grad.c0"] = c0.grad
    if case.lengths is not None:
        tensors["lengths"] = torch.tensor(case.lengths, dtype=torch.int64)

    for k, v in tensors.items():
        want = torch.int64 if k == "lengths" else dtype
        assert v is not None and v.dtype == want, (name, k)

    if case.packed:
        # Padded time steps: zero output, zero input gradient.
        for b, n in enumerate(case.lengths):
            pad_out = output[b, n:] if case.batch_first else output[n:, b]
            pad_gx = x.grad[b, n:] if case.batch_first else x.grad[n:, b]
            assert not pad_out.any() and not pad_gx.any(), (name, b)

    metadata = {
        # contract keys
        "kind": case.kind,
        "bias": fmt_bool(case.bias),
        "torch_version": torch.__version__,
        "T": str(T),
        "B": str(B),
        "I": str(I),
        "H": str(H),
        # informational / forward-compatible extras
        "dtype": dtype_name,
        "num_layers": str(L),
        "bidirectional": fmt_bool(case.bidirectional),
        "batch_first": fmt_bool(case.batch_first),
        "seed": str(seed),
    }
    if case.lengths is not None:
        metadata["packed"] = fmt_bool(case.packed)
        # safetensors stores tensors sorted by name, so record PyTorch's
        # parameter registration order (== state_dict order) explicitly.
        metadata["param_names"] = ",".join(pname for pname, _ in params)
        assert [pname for pname, _ in params] == list(module.state_dict().keys()), name
    if case.proj_size:
        metadata["proj_size"] = str(case.proj_size)
        assert all(
            tuple(tensors[f"weight_hr_l{l}{sfx}"].shape) == (case.proj_size, H)
            for l in range(L)
            for sfx in ("", "_reverse")[:D]
        ), name
    return write_fixture(out_dir, name, tensors, metadata)


# --------------------------------------------------------------------------- #
# B) optimizer trajectories (f64)
# --------------------------------------------------------------------------- #
OPTIM_SHAPE = (3, 4)
OPTIM_STEPS = 6

# Per-element gradient scale used by cases with scaled_grads=True, chosen to
# span many orders of magnitude so Adam's eps matters for some elements
# (sqrt(v) ~ 1e-6 ~ eps) and not at all for others.
GRAD_SCALES = (1e-6, 1e-3, 1.0, 1e2)


def grad_scale_mask() -> torch.Tensor:
    rows, cols = OPTIM_SHAPE
    m = torch.empty(OPTIM_SHAPE, dtype=torch.float64)
    for i in range(rows):
        for j in range(cols):
            m[i, j] = GRAD_SCALES[(i + j) % len(GRAD_SCALES)]
    return m


@dataclasses.dataclass(frozen=True)
class OptimCase:
    name: str
    optimizer: str  # "sgd" | "adam" | "adamw" | "rmsprop" | "adagrad"
    kwargs: Dict[str, object]
    scaled_grads: bool = False


OPTIM_CASES: List[OptimCase] = [
    OptimCase("optim_sgd_plain", "sgd", dict(lr=0.1)),
    OptimCase("optim_sgd_momentum", "sgd", dict(lr=0.1, momentum=0.9)),
    OptimCase("optim_sgd_dampening", "sgd", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    OptimCase("optim_sgd_nesterov", "sgd", dict(lr=0.1, momentum=0.9, nesterov=True)),
    OptimCase("optim_sgd_wd", "sgd", dict(lr=0.1, momentum=0.5, weight_decay=0.01)),
    OptimCase("optim_adam_default", "adam", dict(lr=1e-3)),
    OptimCase(
        "optim_adam_lr", "adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6), scaled_grads=True
    ),
    OptimCase("optim_adam_wd", "adam", dict(lr=0.01, weight_decay=0.1)),
    OptimCase("optim_adam_amsgrad", "adam", dict(lr=0.01, amsgrad=True)),
    # AdamW (decoupled weight decay; default weight_decay=0.01).  The _wd case
    # uses beta1 < 0.5 so torch's lerp takes its other branch.
    OptimCase("optim_adamw_default", "adamw", dict(lr=1e-3)),
    OptimCase("optim_adamw_wd", "adamw", dict(lr=0.01, betas=(0.3, 0.99), weight_decay=0.1)),
    OptimCase("optim_adamw_amsgrad", "adamw", dict(lr=0.01, amsgrad=True)),
    # RMSprop.  centered_momentum uses alpha < 0.5 (lerp's other branch).
    OptimCase("optim_rmsprop_plain", "rmsprop", dict(lr=0.01)),
    OptimCase("optim_rmsprop_momentum", "rmsprop", dict(lr=0.01, momentum=0.9)),
    OptimCase("optim_rmsprop_centered", "rmsprop", dict(lr=0.01, centered=True)),
    OptimCase(
        "optim_rmsprop_centered_momentum",
        "rmsprop",
        dict(lr=0.01, alpha=0.3, centered=True, momentum=0.5),
    ),
    OptimCase("optim_rmsprop_wd", "rmsprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    # Adagrad.
    OptimCase("optim_adagrad_plain", "adagrad", dict(lr=0.1)),
    OptimCase(
        "optim_adagrad_decay",
        "adagrad",
        dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5),
    ),
]


def optim_base_tensors():
    """p0 and the gradient sequence shared by all optimizer cases."""
    torch.manual_seed(seed_for("optim"))
    p0 = torch.randn(*OPTIM_SHAPE, dtype=torch.float64)
    grads = torch.randn(OPTIM_STEPS, *OPTIM_SHAPE, dtype=torch.float64)
    return p0, grads


def build_optimizer(case: OptimCase, params) -> torch.optim.Optimizer:
    # foreach=False selects torch's plain single-tensor reference loop.
    if case.optimizer == "sgd":
        return torch.optim.SGD(params, foreach=False, **case.kwargs)
    if case.optimizer == "adam":
        return torch.optim.Adam(params, foreach=False, **case.kwargs)
    if case.optimizer == "adamw":
        return torch.optim.AdamW(params, foreach=False, **case.kwargs)
    if case.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, foreach=False, **case.kwargs)
    if case.optimizer == "adagrad":
        return torch.optim.Adagrad(params, foreach=False, **case.kwargs)
    raise ValueError(f"unknown optimizer {case.optimizer!r}")


def optimizer_metadata(case: OptimCase, opt: torch.optim.Optimizer) -> Dict[str, str]:
    # Read the values actually in effect (so defaults are recorded too).
    g = opt.param_groups[0]
    md = {"optimizer": case.optimizer}
    if case.optimizer == "sgd":
        md.update(
            lr=fmt_float(g["lr"]),
            momentum=fmt_float(g["momentum"]),
            dampening=fmt_float(g["dampening"]),
            nesterov=fmt_bool(g["nesterov"]),
            weight_decay=fmt_float(g["weight_decay"]),
        )
    elif case.optimizer in ("adam", "adamw"):
        beta1, beta2 = g["betas"]
        md.update(
            lr=fmt_float(g["lr"]),
            beta1=fmt_float(beta1),
            beta2=fmt_float(beta2),
            eps=fmt_float(g["eps"]),
            weight_decay=fmt_float(g["weight_decay"]),
            amsgrad=fmt_bool(g["amsgrad"]),
        )
    elif case.optimizer == "rmsprop":
        md.update(
            lr=fmt_float(g["lr"]),
            alpha=fmt_float(g["alpha"]),
            eps=fmt_float(g["eps"]),
            weight_decay=fmt_float(g["weight_decay"]),
            momentum=fmt_float(g["momentum"]),
            centered=fmt_bool(g["centered"]),
        )
    elif case.optimizer == "adagrad":
        md.update(
            lr=fmt_float(g["lr"]),
            lr_decay=fmt_float(g["lr_decay"]),
            weight_decay=fmt_float(g["weight_decay"]),
            initial_accumulator_value=fmt_float(g["initial_accumulator_value"]),
            eps=fmt_float(g["eps"]),
        )
    if case.optimizer == "adamw":
        assert g["decoupled_weight_decay"], case.name
    assert not g.get("maximize", False)
    return md


def make_optim_fixture(case: OptimCase, out_dir: Path) -> Path:
    p0, grads = optim_base_tensors()
    if case.scaled_grads:
        grads = grads * grad_scale_mask()

    p = nn.Parameter(p0.clone())
    opt = build_optimizer(case, [p])
    trajectory = []
    for k in range(OPTIM_STEPS):
        p.grad = grads[k].clone()
        opt.step()
        trajectory.append(p.detach().clone())

    tensors = {"p0": p0, "grads": grads, "params": torch.stack(trajectory)}
    metadata = optimizer_metadata(case, opt)
    metadata.update(
        torch_version=torch.__version__,
        steps=str(OPTIM_STEPS),
        scaled_grads=fmt_bool(case.scaled_grads),
    )
    return write_fixture(out_dir, case.name, tensors, metadata)


# --------------------------------------------------------------------------- #
# C) gradient-norm clipping (f64)
# --------------------------------------------------------------------------- #
CLIP_MAX_NORMS = (0.5, 100.0)


def make_clip_fixture(out_dir: Path) -> Path:
    name = "clip_grad_norm"
    torch.manual_seed(seed_for(name))
    a = torch.randn(3, 4, dtype=torch.float64) * 2
    b = torch.randn(5, dtype=torch.float64) * 2

    tensors = {"a": a, "b": b}
    for max_norm in CLIP_MAX_NORMS:
        pa = nn.Parameter(torch.zeros_like(a))
        pb = nn.Parameter(torch.zeros_like(b))
        pa.grad = a.clone()
        pb.grad = b.clone()
        total = torch.nn.utils.clip_grad_norm_([pa, pb], max_norm=max_norm, norm_type=2.0)
        prefix = f"clip_{fmt_float(max_norm)}"
        tensors[f"{prefix}.a"] = pa.grad
        tensors[f"{prefix}.b"] = pb.grad
        tensors[f"{prefix}.total_norm"] = total.reshape(1).to(torch.float64)

    metadata = {
        "max_norms": ",".join(fmt_float(m) for m in CLIP_MAX_NORMS),
        "norm_type": "2.0",
        "torch_version": torch.__version__,
    }
    return write_fixture(out_dir, name, tensors, metadata)


# --------------------------------------------------------------------------- #
# D) learning-rate schedules (f64 scalars)
# --------------------------------------------------------------------------- #
@dataclasses.dataclass(frozen=True)
class ScheduleCase:
    name: str
    scheduler: str  # "step" | "exponential" | "cosine" | "linear" | "plateau"
    kwargs: Dict[str, object]
    base_lr: float = 0.1
    steps: int = 20
    # ReduceLROnPlateau only: the metric passed to step() at each epoch.
    metrics: Optional[Tuple[float, ...]] = None


# Default ReduceLROnPlateau (patience 10, rel threshold 1e-4): four real
# improvements, then a plateau whose values only improve by less than the
# relative threshold (0.7 * (1 - 1e-4) = 0.69993), so the lr drops after 11
# bad epochs, twice.
PLATEAU_METRICS = (1.0, 0.8, 0.75, 0.7) + tuple(
    0.7 - 1e-5 * (k % 3) for k in range(26)
)
# mode="max", abs threshold 0.05, patience 2, cooldown 2, min_lr 0.02: an
# improving accuracy that stalls, a NaN (counted as a bad epoch), small gains
# below the threshold, and one real improvement after a drop.
PLATEAU_MAX_METRICS = (
    0.50, 0.60, 0.62, 0.64, 0.66, 0.70, float("nan"), 0.71, 0.72, 0.73,
    0.80, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87, 0.90, 0.91,
    0.92, 0.93, 0.94, 0.95, 0.96,
)

SCHEDULE_CASES: List[ScheduleCase] = [
    ScheduleCase("optim_sched_step", "step", dict(step_size=3, gamma=0.5)),
    ScheduleCase("optim_sched_exponential", "exponential", dict(gamma=0.9)),
    ScheduleCase("optim_sched_cosine", "cosine", dict(T_max=10, eta_min=0.0)),
    ScheduleCase("optim_sched_cosine_eta_min", "cosine", dict(T_max=7, eta_min=0.01)),
    ScheduleCase("optim_sched_linear", "linear", dict()),  # LinearLR defaults
    ScheduleCase(
        "optim_sched_linear_end", "linear", dict(start_factor=0.5, end_factor=0.1, total_iters=8)
    ),
    # SequentialLR: LinearLR warm-up for 4 epochs, then CosineAnnealingLR from its epoch 0.
    ScheduleCase(
        "optim_sched_sequential",
        "sequential",
        dict(warmup=dict(start_factor=0.1, end_factor=1.0, total_iters=4),
             cosine=dict(T_max=8, eta_min=0.001), milestones=[4]),
        steps=14,
    ),
    ScheduleCase(
        "optim_sched_plateau",
        "plateau",
        dict(),  # ReduceLROnPlateau defaults
        steps=len(PLATEAU_METRICS),
        metrics=PLATEAU_METRICS,
    ),
    ScheduleCase(
        "optim_sched_plateau_max",
        "plateau",
        dict(mode="max", factor=0.5, patience=2, threshold=0.05, threshold_mode="abs",
             cooldown=2, min_lr=0.02),
        steps=len(PLATEAU_MAX_METRICS),
        metrics=PLATEAU_MAX_METRICS,
    ),
]


def build_scheduler(case: ScheduleCase, opt: torch.optim.Optimizer):
    sched = torch.optim.lr_scheduler
    if case.scheduler == "step":
        return sched.StepLR(opt, **case.kwargs)
    if case.scheduler == "exponential":
        return sched.ExponentialLR(opt, **case.kwargs)
    if case.scheduler == "cosine":
        return sched.CosineAnnealingLR(opt, **case.kwargs)
    if case.scheduler == "linear":
        return sched.LinearLR(opt, **case.kwargs)
    if case.scheduler == "plateau":
        return sched.ReduceLROnPlateau(opt, **case.kwargs)
    if case.scheduler == "sequential":
        warmup = sched.LinearLR(opt, **case.kwargs["warmup"])
        cosine = sched.CosineAnnealingLR(opt, **case.kwargs["cosine"])
        return sched.SequentialLR(opt, [warmup, cosine], milestones=case.kwargs["milestones"])
    raise ValueError(f"unknown scheduler {case.scheduler!r}")


def scheduler_metadata(case: ScheduleCase, s) -> Dict[str, str]:
    # Read the values actually in effect (so defaults are recorded too).
    md = {"scheduler": case.scheduler}
    if case.scheduler == "step":
        md.update(step_size=str(s.step_size), gamma=fmt_float(s.gamma))
    elif case.scheduler == "exponential":
        md.update(gamma=fmt_float(s.gamma))
    elif case.scheduler == "cosine":
        md.update(T_max=str(s.T_max), eta_min=fmt_float(s.eta_min))
    elif case.scheduler == "linear":
        md.update(
            start_factor=fmt_float(s.start_factor),
            end_factor=fmt_float(s.end_factor),
            total_iters=str(s.total_iters),
        )
    elif case.scheduler == "sequential":
        warmup, cosine = s._schedulers
        md.update(
            start_factor=fmt_float(warmup.start_factor),
            end_factor=fmt_float(warmup.end_factor),
            total_iters=str(warmup.total_iters),
            T_max=str(cosine.T_max),
            eta_min=fmt_float(cosine.eta_min),
            milestones=",".join(str(m) for m in s._milestones),
        )
    elif case.scheduler == "plateau":
        md.update(
            mode=s.mode,
            factor=fmt_float(s.factor),
            patience=str(s.patience),
            threshold=fmt_float(s.threshold),
            threshold_mode=s.threshold_mode,
            cooldown=str(s.cooldown),
            min_lr=fmt_float(s.min_lrs[0]),
            eps=fmt_float(s.eps),
        )
    return md


def make_schedule_fixture(case: ScheduleCase, out_dir: Path) -> Path:
    p = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=case.base_lr)
    s = build_scheduler(case, opt)
    closed = hasattr(s, "_get_closed_form_lr")
    lrs = [s.get_last_lr()[0]]
    closed_lrs = [s._get_closed_form_lr()[0]] if closed else []
    for k in range(case.steps):
        opt.step()  # no gradient: a no-op, but keeps torch's call-order check quiet
        if case.metrics is not None:
            s.step(case.metrics[k])
        else:
            s.step()
        lrs.append(float(s.get_last_lr()[0]))
        if closed:
            closed_lrs.append(float(s._get_closed_form_lr()[0]))

    tensors = {"lrs": torch.tensor(lrs, dtype=torch.float64)}
    if closed:
        tensors["closed_form_lrs"] = torch.tensor(closed_lrs, dtype=torch.float64)
    if case.metrics is not None:
        tensors["metrics"] = torch.tensor(case.metrics, dtype=torch.float64)
    metadata = scheduler_metadata(case, s)
    metadata.update(
        base_lr=fmt_float(case.base_lr),
        steps=str(case.steps),
        torch_version=torch.__version__,
    )
    return write_fixture(out_dir, case.name, tensors, metadata)


# --------------------------------------------------------------------------- #
# E) gradient-value clipping (f64)
# --------------------------------------------------------------------------- #
CLIP_VALUES = (0.5, 1.5)


def make_clip_value_fixture(out_dir: Path) -> Path:
    name = "optim_clip_grad_value"
    torch.manual_seed(seed_for(name))
    a = torch.randn(3, 4, dtype=torch.float64) * 2
    b = torch.randn(5, dtype=torch.float64) * 2

    tensors = {"a": a, "b": b}
    for clip_value in CLIP_VALUES:
        pa = nn.Parameter(torch.zeros_like(a))
        pb = nn.Parameter(torch.zeros_like(b))
        pa.grad = a.clone()
        pb.grad = b.clone()
        torch.nn.utils.clip_grad_value_([pa, pb], clip_value=clip_value)
        prefix = f"clip_{fmt_float(clip_value)}"
        tensors[f"{prefix}.a"] = pa.grad
        tensors[f"{prefix}.b"] = pb.grad

    metadata = {
        "clip_values": ",".join(fmt_float(c) for c in CLIP_VALUES),
        "torch_version": torch.__version__,
    }
    return write_fixture(out_dir, name, tensors, metadata)


# --------------------------------------------------------------------------- #
# F) losses (f64)
# --------------------------------------------------------------------------- #
LOSS_N, LOSS_C = 6, 5  # cross-entropy on (N, C)
LOSS_T, LOSS_B, LOSS_F = 5, 3, 2  # sequence losses on (T, B, C) / (T, B, F)
LOSS_LENGTHS = PACKED_LENGTHS  # (4, 5, 2), unsorted
IGNORE_INDEX = -100


def make_cross_entropy_fixture(out_dir: Path) -> Path:
    name = "loss_cross_entropy"
    torch.manual_seed(seed_for(name))
    logits = torch.randn(LOSS_N, LOSS_C, dtype=torch.float64) * 3
    logits[1] *= 100  # large logits: needs the max-subtracted log-sum-exp
    targets = torch.randint(0, LOSS_C, (LOSS_N,), dtype=torch.int64)
    x = logits.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(x, targets, reduction="mean")
    loss.backward()
    tensors = {
        "logits": logits,
        "targets": targets,
        "loss": loss.detach().reshape(1),
        "grad": x.grad,
    }
    metadata = {
        "reduction": "mean",
        "N": str(LOSS_N),
        "C": str(LOSS_C),
        "torch_version": torch.__version__,
    }
    return write_fixture(out_dir, name, tensors, metadata)


def make_cross_entropy_seq_fixture(out_dir: Path) -> Path:
    name = "loss_cross_entropy_seq"
    torch.manual_seed(seed_for(name))
    T, B, C = LOSS_T, LOSS_B, LOSS_C
    logits = torch.randn(T, B, C, dtype=torch.float64) * 2
    targets = torch.randint(0, C, (T, B), dtype=torch.int64)
    lengths = torch.tensor(LOSS_LENGTHS, dtype=torch.int64)
    real = torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)
    targets = torch.where(real, targets, torch.full_like(targets, IGNORE_INDEX))
    x = logits.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(
        x.reshape(T * B, C), targets.reshape(T * B), ignore_index=IGNORE_INDEX, reduction="mean"
    )
    loss.backward()
    assert not x.grad[~real].any(), name
    tensors = {
        "logits": logits,
        "targets": targets,
        "lengths": lengths,
        "loss": loss.detach().reshape(1),
        "grad": x.grad,
    }
    metadata = {
        "reduction": "mean",
        "ignore_index": str(IGNORE_INDEX),
        "T": str(T),
        "B": str(B),
        "C": str(C),
        "torch_version": torch.__version__,
    }
    return write_fixture(out_dir, name, tensors, metadata)


def make_mse_masked_fixture(out_dir: Path) -> Path:
    name = "loss_mse_masked"
    torch.manual_seed(seed_for(name))
    T, B, Fdim = LOSS_T, LOSS_B, LOSS_F
    prediction = torch.randn(T, B, Fdim, dtype=torch.float64)
    target = torch.randn(T, B, Fdim, dtype=torch.float64)
    lengths = torch.tensor(LOSS_LENGTHS, dtype=torch.int64)
    real = torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)
    x = prediction.clone().requires_grad_(True)
    loss = torch.nn.functional.mse_loss(x[real], target[real], reduction="mean")
    loss.backward()
    tensors = {
        "prediction": prediction,
        "target": target,
        "lengths": lengths,
        "loss": loss.detach().reshape(1),
        "grad": x.grad,
    }
    metadata = {
        "reduction": "mean",
        "T": str(T),
        "B": str(B),
        "F": str(Fdim),
        "torch_version": torch.__version__,
    }
    return write_fixture(out_dir, name, tensors, metadata)


class DeriveModel(torch.nn.Module):
    """The module the Rust test mirrors with `#[derive(Params)]`: an LSTM encoder, a list of
    blocks and a head, whose `state_dict()` keys are `encoder.weight_ih_l0`, ...,
    `blocks.0.weight`, `blocks.1.bias`, `head.weight`, `head.bias`."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)])
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.encoder(x)
        for block in self.blocks:
            h = torch.tanh(block(h))
        return self.head(h)


def make_derive_model_fixture(out_dir: Path) -> List[Path]:
    """`derive_model.safetensors`: the module's `state_dict()` exactly (float64), as a user saves
    it; `derive_model_io.safetensors`: an input (T=5, B=2, 3) and the module's output."""
    name = "derive_model"
    torch.manual_seed(seed_for(name))
    model = DeriveModel().double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    with torch.no_grad():
        y = model(x)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"torch_version": torch.__version__}
    return [
        write_fixture(out_dir, name, state, meta),
        write_fixture(out_dir, "derive_model_io", {"input": x, "output": y}, meta),
    ]


# --------------------------------------------------------------------------- #
# G) sequence-model pieces: embedding, softmax (f64)
# --------------------------------------------------------------------------- #
EMB_NUM, EMB_DIM, EMB_PADDING = 10, 4, 2  # nn.Embedding(10, 4, padding_idx=2)
EMB_T, EMB_B = 5, 3
SOFTMAX_SHAPE = (3, 4, 5)


def make_embedding_fixture(out_dir: Path) -> Path:
    name = "embedding_f64"
    torch.manual_seed(seed_for(name))
    emb = nn.Embedding(EMB_NUM, EMB_DIM, padding_idx=EMB_PADDING, dtype=torch.float64)
    ids = torch.randint(0, EMB_NUM, (EMB_T, EMB_B), dtype=torch.int64)
    ids[1, 0] = EMB_PADDING  # the padding id, twice
    ids[3, 2] = EMB_PADDING
    ids[4, 1] = ids[0, 2]  # a repeat across steps and sequences (15 ids of 10 repeat anyway)
    weight = emb.weight.detach().clone()
    output = emb(ids)
    d_output = torch.randn(EMB_T, EMB_B, EMB_DIM, dtype=torch.float64)
    (output * d_output).sum().backward()
    grad = emb.weight.grad
    assert not weight[EMB_PADDING].any() and not grad[EMB_PADDING].any(), name
    assert ids.unique().numel() < ids.numel(), name
    tensors = {
        "weight": weight,
        "ids": ids,
        "output": output,
        "d_output": d_output,
        "grad.weight": grad,
    }
    metadata = {
        "num_embeddings": str(EMB_NUM),
        "embedding_dim": str(EMB_DIM),
        "padding_idx": str(EMB_PADDING),
        "T": str(EMB_T),
        "B": str(EMB_B),
        "torch_version": torch.__version__,
    }
    return write_fixture(out_dir, name, tensors, metadata)


def make_softmax_fixture(out_dir: Path) -> Path:
    name = "softmax_f64"
    torch.manual_seed(seed_for(name))
    logits = torch.randn(*SOFTMAX_SHAPE, dtype=torch.float64) * 2
    logits[1, 2] *= 100  # large magnitude: needs the max subtracted
    row = logits[2, 0]
    row[3] = row[1] = row.max() + 1  # a tie for the maximum: argmax is the first index
    argmax = torch.argmax(logits, dim=-1)
    assert argmax[2, 0] == 1, name
    tensors = {
        "logits": logits,
        "softmax": torch.softmax(logits, dim=-1),
        "log_softmax": torch.log_softmax(logits, dim=-1),
        "argmax": argmax,
    }
    metadata = {
        "shape": ",".join(str(d) for d in SOFTMAX_SHAPE),
        "dim": "-1",
        "torch_version": torch.__version__,
    }
    return write_fixture(out_dir, name, tensors, metadata)


# --------------------------------------------------------------------------- #
# I) layer-normalised LSTM (issue 21): a reference module and its fixtures
# --------------------------------------------------------------------------- #
# PyTorch has no layer-normalised LSTM, so the reference is written out here with
# F.layer_norm and plain tensor ops; autograd gives every gradient.  Checked by
# scripts/check_layernorm_lstm.py (an independent float64 numpy implementation,
# torch.autograd.gradcheck, and the layer/direction/length machinery against
# nn.LSTM with the cell swapped for a plain LSTM cell).
LN_EPS = 1e-5


def lnlstm_param_names(num_layers: int, bidirectional: bool, bias: bool) -> List[str]:
    """Registration (= ``state_dict``) order: layer by layer, forward before ``_reverse``;
    per direction ``weight_ih, weight_hh, ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias,
    ln_c_weight, ln_c_bias`` (the three ``*_bias`` only with ``bias=True``)."""
    names: List[str] = []
    for layer in range(num_layers):
        for sfx in ("", "_reverse")[: 2 if bidirectional else 1]:
            s = f"_l{layer}{sfx}"
            names += [f"weight_ih{s}", f"weight_hh{s}"]
            for norm in ("ln_ih", "ln_hh", "ln_c"):
                names.append(f"{norm}_weight{s}")
                if bias:
                    names.append(f"{norm}_bias{s}")
    return names


def lnlstm_cell(
    x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, p: Dict[str, torch.Tensor], sfx: str
) -> Tuple[torch.Tensor, torch.Tensor]:
    """One step of the layer-normalised LSTM cell for a batch of rows; ``sfx`` is ``_l{k}`` or
    ``_l{k}_reverse``.  Gate order i, f, g, o (PyTorch's).  No ``bias_ih``/``bias_hh``: the
    norms' biases are the gate biases, added after normalisation."""
    H = h.shape[1]
    ln = torch.nn.functional.layer_norm
    z = ln(x @ p[f"weight_ih{sfx}"].T, (4 * H,), p[f"ln_ih_weight{sfx}"],
           p.get(f"ln_ih_bias{sfx}"), LN_EPS)
    z = z + ln(h @ p[f"weight_hh{sfx}"].T, (4 * H,), p[f"ln_hh_weight{sfx}"],
               p.get(f"ln_hh_bias{sfx}"), LN_EPS)
    i = torch.sigmoid(z[:, 0:H])
    f = torch.sigmoid(z[:, H : 2 * H])
    g = torch.tanh(z[:, 2 * H : 3 * H])
    o = torch.sigmoid(z[:, 3 * H : 4 * H])
    c_new = f * c + i * g
    h_new = o * torch.tanh(ln(c_new, (H,), p[f"ln_c_weight{sfx}"], p.get(f"ln_c_bias{sfx}"), LN_EPS))
    return h_new, c_new


def lnlstm_forward(
    params: Dict[str, torch.Tensor],
    x: torch.Tensor,
    h0: Optional[torch.Tensor],
    c0: Optional[torch.Tensor],
    lengths: Optional[torch.Tensor],
    num_layers: int,
    bidirectional: bool,
    cell: Callable = lnlstm_cell,
) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """``nn.LSTM``'s stacking, directions and packed-sequence semantics around ``cell``.

    ``x`` is time-major ``(T, B, I)``; ``h0``/``c0`` ``(L*D, B, H)`` (zeros if None), index
    ``layer*D + direction``.  ``lengths`` (B,) gives each sequence's length (None = all T):
    sequence b steps only while ``t < lengths[b]`` (a mask, no packing); its state is frozen
    after its last real step, so the forward final state is that of ``t = len-1``, the reverse
    direction starts from h0/c0 at ``t = len-1``, and padded outputs are exactly zero (their
    gradients are exactly zero too: ``torch.where`` passes no gradient to the unused branch).
    Returns ``output (T, B, D*H)`` and ``(h_n, c_n)``, as ``nn.LSTM`` after
    ``pad_packed_sequence(..., total_length=T)``."""
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    H = params["weight_hh_l0"].shape[1]
    if h0 is None:
        h0 = x.new_zeros(num_layers * D, B, H)
    if c0 is None:
        c0 = x.new_zeros(num_layers * D, B, H)
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.int64)
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    real = (torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(2)  # (T, B, 1)
    layer_in = x
    h_n: List[torch.Tensor] = []
    c_n: List[torch.Tensor] = []
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
            h, c = h0[layer * D + d], c0[layer * D + d]
            out: List[Optional[torch.Tensor]] = [None] * T
            for t in range(T) if d == 0 else reversed(range(T)):
                h_new, c_new = cell(layer_in[t], h, c, params, sfx)
                m = real[t]
                h = torch.where(m, h_new, h)
                c = torch.where(m, c_new, c)
                out[t] = torch.where(m, h_new, torch.zeros_like(h_new))
            outs.append(torch.stack(out))
            h_n.append(h)
            c_n.append(c)
        layer_in = torch.cat(outs, dim=2)  # the next layer's input: [fwd, rev], D*H wide
    return layer_in, (torch.stack(h_n), torch.stack(c_n))


class LayerNormLSTM(nn.Module):
    """Layer-normalised LSTM (Ba, Kiros & Hinton 2016; TensorFlow Addons' LayerNormLSTMCell),
    with ``nn.LSTM``'s layers, directions, state layout and packed semantics (no dropout).
    Per layer ``k`` and direction (``_l{k}`` / ``_l{k}_reverse``)::

        z  = LN(x W_ihᵀ; γ_ih, β_ih) + LN(h W_hhᵀ; γ_hh, β_hh)      (over all 4H)
        i, f, g, o = σ(z[0:H]), σ(z[H:2H]), tanh(z[2H:3H]), σ(z[3H:4H])
        c' = f ∘ c + i ∘ g
        h' = o ∘ tanh(LN(c'; γ_c, β_c))                            (over H)

    ``LN(v; γ, β) = (v − mean v) / sqrt(var v + 1e-5) ∘ γ + β`` (biased variance), i.e.
    ``F.layer_norm``.  Parameters: ``weight_ih`` (4H, in), ``weight_hh`` (4H, H),
    ``ln_ih_weight``/``ln_ih_bias``/``ln_hh_weight``/``ln_hh_bias`` (4H),
    ``ln_c_weight``/``ln_c_bias`` (H); ``bias=False`` drops the three ``*_bias``.
    Initialisation: weights U(−1/√H, 1/√H) as ``nn.LSTM``, gains 1, biases 0."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        bias: bool = True,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bidirectional, self.bias = num_layers, bidirectional, bias
        D = 2 if bidirectional else 1
        H = hidden_size
        for name in lnlstm_param_names(num_layers, bidirectional, bias):
            layer = int(name.split("_l")[-1].split("_")[0])
            if name.startswith("weight_ih"):
                shape: Tuple[int, ...] = (4 * H, input_size if layer == 0 else D * H)
            elif name.startswith("weight_hh"):
                shape = (4 * H, H)
            elif name.startswith("ln_c_"):
                shape = (H,)
            else:
                shape = (4 * H,)
            self.register_parameter(name, nn.Parameter(torch.empty(shape, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / self.hidden_size**0.5
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("weight_"):
                    p.uniform_(-stdv, stdv)
                elif "_weight_" in name:
                    p.fill_(1.0)
                else:
                    p.zero_()

    def forward(
        self,
        x: torch.Tensor,
        hx: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
        lengths: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        h0, c0 = hx if hx is not None else (None, None)
        return lnlstm_forward(
            dict(self.named_parameters()), x, h0, c0, lengths, self.num_layers, self.bidirectional
        )


@dataclasses.dataclass(frozen=True)
class LnLstmCase:
    name: str  # file stem without the dtype suffix
    num_layers: int
    bidirectional: bool
    packed: bool
    bias: bool = True
    # h0 = c0 = 0 (stored as zero tensors): the first step's LN(h W_hhᵀ) normalises a zero
    # vector, whose variance is 0, so only eps keeps 1/sqrt(var + eps) finite.
    zero_init: bool = False


LNLSTM_SIZES = dict(T=5, B=3, I=3, H=4)  # I, H, D*H (4 or 8) and 4H = 16 all differ
LNLSTM_NUM_LAYERS = (1, 2)
LNLSTM_GAIN_STD = 0.3  # gains 1 + 0.3·randn, biases 0.3·randn


def lnlstm_cases() -> List[LnLstmCase]:
    """``lnlstm_{uni|bi}_{L}l_{full|packed}``, ``lnlstm_bi_2l_packed_nobias`` and
    ``lnlstm_bi_2l_packed_zeroinit`` (dtype suffix added later).  The stems start with
    ``lnlstm_``, not ``lstm_``: tests/it/stack.rs collects its fixtures by the ``lstm_`` prefix."""
    cases = [
        LnLstmCase(f"lnlstm_{'bi' if bi else 'uni'}_{L}l_{'packed' if packed else 'full'}", L, bi, packed)
        for bi in (False, True)
        for L in LNLSTM_NUM_LAYERS
        for packed in (False, True)
    ]
    cases.append(LnLstmCase("lnlstm_bi_2l_packed_nobias", 2, True, True, bias=False))
    cases.append(LnLstmCase("lnlstm_bi_2l_packed_zeroinit", 2, True, True, zero_init=True))
    return cases


LNLSTM_CASES: List[LnLstmCase] = lnlstm_cases()


def build_lnlstm(case: LnLstmCase, dtype: torch.dtype) -> LayerNormLSTM:
    """The module with default weights (U(−1/√H, 1/√H), drawn in registration order), then
    random gains ``1 + 0.3·randn`` and biases ``0.3·randn``, drawn in registration order, so
    that a mistaken gain or bias cannot hide behind 1 or 0."""
    s = LNLSTM_SIZES
    module = LayerNormLSTM(s["I"], s["H"], case.num_layers, case.bidirectional, case.bias, dtype=dtype)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith("ln_"):
                r = torch.randn(p.shape, dtype=dtype) * LNLSTM_GAIN_STD
                p.copy_(1.0 + r if "_weight_" in name else r)
    return module


def make_lnlstm_fixture(case: LnLstmCase, dtype_name: str, out_dir: Path) -> Path:
    dtype = DTYPES[dtype_name]
    name = f"{case.name}_{dtype_name}"
    seed = seed_for(name)
    torch.manual_seed(seed)
    T, B, I, H = (LNLSTM_SIZES[k] for k in ("T", "B", "I", "H"))
    L = case.num_layers
    D = 2 if case.bidirectional else 1

    module = build_lnlstm(case, dtype)
    params = list(module.named_parameters())
    assert [n for n, _ in params] == list(module.state_dict().keys()), name
    assert [n for n, _ in params] == lnlstm_param_names(L, case.bidirectional, case.bias), name

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, dtype=dtype) * scale).detach()

    x = randn(T, B, I).requires_grad_(True)
    if case.zero_init:
        h0 = torch.zeros(L * D, B, H, dtype=dtype).requires_grad_(True)
        c0 = torch.zeros(L * D, B, H, dtype=dtype).requires_grad_(True)
    else:
        h0 = randn(L * D, B, H, scale=0.5).requires_grad_(True)
        c0 = randn(L * D, B, H, scale=0.5).requires_grad_(True)
    d_output = randn(T, B, D * H)  # random on padded positions too
    d_h_n = randn(L * D, B, H)
    d_c_n = randn(L * D, B, H)
    lengths = torch.tensor(PACKED_LENGTHS if case.packed else (T,) * B, dtype=torch.int64)

    output, (h_n, c_n) = module(x, (h0, c0), lengths if case.packed else None)
    assert tuple(output.shape) == (T, B, D * H), name
    assert tuple(h_n.shape) == tuple(c_n.shape) == (L * D, B, H), name
    loss = (output * d_output).sum() + (h_n * d_h_n).sum() + (c_n * d_c_n).sum()
    loss.backward()

    tensors: Dict[str, torch.Tensor] = {}
    for pname, p in params:
        tensors[pname] = p
    tensors.update(
        input=x, lengths=lengths, h0=h0, c0=c0, d_output=d_output, d_h_n=d_h_n, d_c_n=d_c_n,
        output=output, h_n=h_n, c_n=c_n,
    )
    for pname, p in params:
        tensors[f"grad.{pname}"] = p.grad
    tensors["grad.input"] = x.grad
    tensors["grad.h0"] = h0.grad
    tensors["grad.c0"] = c0.grad
    for k, v in tensors.items():
        want = torch.int64 if k == "lengths" else dtype
        assert v is not None and v.dtype == want, (name, k)
        if k.startswith("grad."):
            assert v.abs().max() > 0, (name, k)  # no gradient is identically zero
    for b, n in enumerate(lengths.tolist()):
        # Padded time steps: zero output, zero input gradient.
        assert not output[n:, b].any() and not x.grad[n:, b].any(), (name, b)

    metadata = {
        "kind": "lnlstm",
        "bias": fmt_bool(case.bias),
        "torch_version": torch.__version__,
        "T": str(T),
        "B": str(B),
        "I": str(I),
        "H": str(H),
        "dtype": dtype_name,
        "num_layers": str(L),
        "bidirectional": fmt_bool(case.bidirectional),
        "batch_first": "false",
        "packed": fmt_bool(case.packed),
        "seed": str(seed),
        "param_names": ",".join(pname for pname, _ in params),
        "ln_eps": fmt_float(LN_EPS),
        "zero_init": fmt_bool(case.zero_init),
    }
    return write_fixture(out_dir, name, tensors, metadata)


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #
def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help=f"output directory (default: {DEFAULT_OUT_DIR})",
    )
    ap.add_argument(
        "--only",
        metavar="PREFIX",
        default="",
        help="write only the files whose stem starts with PREFIX (e.g. lnlstm_)",
    )
    args = ap.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    # (file stems, job): the stems let --only skip a job without running it.
    jobs: List[Tuple[List[str], Callable[[], List[Path]]]] = []

    def add(stem: str, job: Callable[[], Path]) -> None:
        jobs.append(([stem], lambda: [job()]))

    for case in LAYER_CASES + STACKED_LAYER_CASES + PROJ_LAYER_CASES:
        for dtype_name in DTYPES:
            add(f"{case.name}_{dtype_name}",
                lambda c=case, d=dtype_name: make_layer_fixture(c, d, out_dir))
    for ocase in OPTIM_CASES:
        add(ocase.name, lambda c=ocase: make_optim_fixture(c, out_dir))
    add("clip_grad_norm", lambda: make_clip_fixture(out_dir))
    for scase in SCHEDULE_CASES:
        add(scase.name, lambda c=scase: make_schedule_fixture(c, out_dir))
    add("optim_clip_grad_value", lambda: make_clip_value_fixture(out_dir))
    add("loss_cross_entropy", lambda: make_cross_entropy_fixture(out_dir))
    add("loss_cross_entropy_seq", lambda: make_cross_entropy_seq_fixture(out_dir))
    add("loss_mse_masked", lambda: make_mse_masked_fixture(out_dir))
    add("embedding_f64", lambda: make_embedding_fixture(out_dir))
    add("softmax_f64", lambda: make_softmax_fixture(out_dir))
    jobs.append((["derive_model", "derive_model_io"], lambda: make_derive_model_fixture(out_dir)))
    for lcase in LNLSTM_CASES:
        for dtype_name in DTYPES:
            add(f"{lcase.name}_{dtype_name}",
                lambda c=lcase, d=dtype_name: make_lnlstm_fixture(c, d, out_dir))

    print(f"torch {torch.__version__}; writing to {out_dir}")
    total = 0
    names = set()
    selected = [(stems, job) for stems, job in jobs if any(s.startswith(args.only) for s in stems)]
    for stems, job in selected:
        paths = job()
        assert [p.stem for p in paths] == stems, (stems, paths)
        for path in paths:
            assert path.name not in names, path.name
            names.add(path.name)
            size = path.stat().st_size
            total += size
            print(f"  {path.name:40s} {size:7d} bytes")
    print(f"{len(names)} files, {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
