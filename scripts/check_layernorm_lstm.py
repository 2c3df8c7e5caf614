#!/usr/bin/env python3
"""Checks the layer-normalised LSTM reference of `make_fixtures.py` (section I) and its
`lnlstm_*` fixtures.  Run from the repository root:

    .venv-torch/bin/python scripts/check_layernorm_lstm.py [--fixtures DIR]
        [--all-differences] [--full-jacobians]

1. An independent float64 numpy implementation (each sequence run alone at its true length,
   the reverse direction starting at its own last step, no masks, no torch) recomputes every
   fixture's output, h_n and c_n from the stored inputs and parameters; central differences of
   that numpy forward recompute every stored gradient of the f64 files in `FD_FILES` (all ten
   with `--all-differences`; grad.h0 of the zero-state file excepted, see 2).  For the f32
   files the numpy result (float64 arithmetic on the stored float32 values) measures the float32
   forward error, and the reference in float64 with autograd on those values that of every
   tensor, relative to each tensor's largest value (the f32 metric of tests/it/layernorm.rs):
   at most half the tests' f32 tolerance.
2. `torch.autograd.gradcheck` in float64 on tiny cases: every parameter, the input, h0 and c0
   (uni/bi, 1/2 layers, lengths, without bias, zero initial state), in `fast_mode` (random
   projections of the Jacobians) unless `--full-jacobians` is given.
3. The stacking / direction / length machinery of `lnlstm_forward`, with the cell swapped for a
   plain LSTM cell, against `nn.LSTM` on packed sequences (outputs, states, every gradient).
4. The reference itself with gains 1, biases 0 is not an LSTM (a sanity check that the norms act).
5. One step by hand (B = I = H = 1) in Python scalars, with the gradients of the cell-state norm.

Exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as np_load_file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402

FAILURES: List[str] = []
# The f64 files whose every gradient is also recomputed by central differences of the numpy
# forward by default (pure-Python loops: minutes for all ten on two busy cores).
FD_FILES = ("lnlstm_uni_1l_packed_f64", "lnlstm_bi_2l_packed_f64",
            "lnlstm_bi_2l_packed_nobias_f64", "lnlstm_bi_2l_packed_zeroinit_f64")


def report(label: str, err: float, tol: float) -> None:
    ok = err <= tol
    print(f"  {'ok  ' if ok else 'FAIL'} {label:60s} {err:.2e} (tol {tol:.0e})")
    if not ok:
        FAILURES.append(label)


def rel_to_max(a: np.ndarray, e: np.ndarray) -> float:
    """max |a − e| / max |e| (the error relative to the array's largest value)."""
    scale = float(np.abs(e).max())
    return float(np.abs(a - e).max()) / (scale if scale > 0 else 1.0)


# --------------------------------------------------------------------------- #
# 1) independent numpy float64 implementation
# --------------------------------------------------------------------------- #
def np_layer_norm(v: np.ndarray, gain: np.ndarray, bias) -> np.ndarray:
    mu = v.sum() / v.size
    var = ((v - mu) ** 2).sum() / v.size  # biased
    y = (v - mu) / np.sqrt(var + 1e-5) * gain
    return y if bias is None else y + bias


def np_sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def np_step(x, h, c, P, s, H):
    a = P[f"weight_ih{s}"] @ x
    r = P[f"weight_hh{s}"] @ h
    z = np_layer_norm(a, P[f"ln_ih_weight{s}"], P.get(f"ln_ih_bias{s}")) + np_layer_norm(
        r, P[f"ln_hh_weight{s}"], P.get(f"ln_hh_bias{s}")
    )
    i, f, g, o = np_sigmoid(z[:H]), np_sigmoid(z[H : 2 * H]), np.tanh(z[2 * H : 3 * H]), np_sigmoid(z[3 * H :])
    c2 = f * c + i * g
    h2 = o * np.tanh(np_layer_norm(c2, P[f"ln_c_weight{s}"], P.get(f"ln_c_bias{s}")))
    return h2, c2


def np_sequence(P, xs, h0, c0, L, D, H):
    """One sequence alone: xs (n, I), h0/c0 (L*D, H)."""
    inp = xs
    hn, cn = [], []
    for layer in range(L):
        outs = []
        for d in range(D):
            s = f"_l{layer}" + ("_reverse" if d else "")
            h, c = h0[layer * D + d], c0[layer * D + d]
            out = np.zeros((len(inp), H))
            for t in range(len(inp)) if d == 0 else range(len(inp) - 1, -1, -1):
                h, c = np_step(inp[t], h, c, P, s, H)
                out[t] = h
            outs.append(out)
            hn.append(h)
            cn.append(c)
        inp = np.concatenate(outs, axis=1)
    return inp, np.stack(hn), np.stack(cn)


def np_forward(P, x, h0, c0, lengths, L, D, H):
    T, B, _ = x.shape
    out = np.zeros((T, B, D * H))
    hn = np.zeros((L * D, B, H))
    cn = np.zeros((L * D, B, H))
    for b in range(B):
        n = int(lengths[b])
        o, hb, cb = np_sequence(P, x[:n, b], h0[:, b], c0[:, b], L, D, H)
        out[:n, b], hn[:, b], cn[:, b] = o, hb, cb
    return out, hn, cn


def check_fixture_numpy(path: Path, differences: bool) -> None:
    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    t = {k: v.astype(np.float64) for k, v in np_load_file(str(path)).items()}
    L, H = int(meta["num_layers"]), int(meta["H"])
    D = 2 if meta["bidirectional"] == "true" else 1
    names = meta["param_names"].split(",")
    assert set(t) == set(names) | {f"grad.{n}" for n in names} | {
        "input", "lengths", "h0", "c0", "d_output", "d_h_n", "d_c_n", "output", "h_n", "c_n",
        "grad.input", "grad.h0", "grad.c0"}, path.name
    lengths = t["lengths"].astype(np.int64)
    P = {n: t[n] for n in names}
    out, hn, cn = np_forward(P, t["input"], t["h0"], t["c0"], lengths, L, D, H)
    f64 = meta["dtype"] == "f64"
    tol = 1e-13 if f64 else 2e-6
    fwd = max(rel_to_max(out, t["output"]), rel_to_max(hn, t["h_n"]), rel_to_max(cn, t["c_n"]))
    report(f"{path.stem}: forward vs numpy", fwd, tol)
    sys.stdout.flush()
    if not f64:
        # The float32 file's own rounding, in the f32 metric of tests/it/layernorm.rs (the error
        # relative to each tensor's largest value): the reference in float64 (autograd) on the
        # stored float32 values.  It must leave room under the tests' tolerance, 2e-5, for the
        # crate's own float32 rounding, of the same size.  (Per element, relative to
        # max(|value|, 0.1) as the other f32 parity tests measure, it reaches 1e-4: the gradients
        # of the norms are differences of terms up to 50 times larger.)
        report(f"{path.stem}: every tensor vs float64 autograd (of largest)",
               f32_error(t, names, lengths, L, D == 2), 1e-5)
        return

    # Central differences of the numpy forward for every stored gradient.
    def loss(P, x, h0, c0):
        o, a, b = np_forward(P, x, h0, c0, lengths, L, D, H)
        return (o * t["d_output"]).sum() + (a * t["d_h_n"]).sum() + (b * t["d_c_n"]).sum()

    if not differences:
        return
    eps = 1e-6
    worst = 0.0
    targets: List[Tuple[str, np.ndarray]] = [(n, P[n]) for n in names]
    targets += [("input", t["input"]), ("c0", t["c0"])]
    # From h0 = 0 the differences in h0 are dominated by truncation (see gradcheck_case); that
    # file's grad.h0 is checked by the zero-state gradcheck of the reference instead.
    if meta["zero_init"] != "true":
        targets.append(("h0", t["h0"]))
    for key, arr in targets:
        num = np.zeros_like(arr)
        flat, nflat = arr.reshape(-1), num.reshape(-1)
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            plus = loss(P, t["input"], t["h0"], t["c0"])
            flat[k] = orig - eps
            minus = loss(P, t["input"], t["h0"], t["c0"])
            flat[k] = orig
            nflat[k] = (plus - minus) / (2 * eps)
        worst = max(worst, rel_to_max(num, t[f"grad.{key}"]))
    report(f"{path.stem}: every grad.* vs numpy central differences", worst, 1e-7)
    sys.stdout.flush()


def f32_error(t: Dict[str, np.ndarray], names: List[str], lengths, L: int, bi: bool) -> float:
    P = {n: torch.tensor(t[n], requires_grad=True) for n in names}
    x, h0, c0 = (torch.tensor(t[k], requires_grad=True) for k in ("input", "h0", "c0"))
    out, (hn, cn) = mf.lnlstm_forward(P, x, h0, c0, torch.tensor(lengths), L, bi)
    loss = ((out * torch.tensor(t["d_output"])).sum() + (hn * torch.tensor(t["d_h_n"])).sum()
            + (cn * torch.tensor(t["d_c_n"])).sum())
    loss.backward()
    ref = {"output": out, "h_n": hn, "c_n": cn, "grad.input": x.grad, "grad.h0": h0.grad,
           "grad.c0": c0.grad}
    ref.update({f"grad.{n}": p.grad for n, p in P.items()})
    return max(rel_to_max(t[k], v.detach().numpy()) for k, v in ref.items())


# --------------------------------------------------------------------------- #
# 2) gradcheck
# --------------------------------------------------------------------------- #
def gradcheck_case(L: int, bi: bool, bias: bool, lengths, zero_init: bool, seed: int,
                   fast: bool) -> None:
    """``torch.autograd.gradcheck`` of ``lnlstm_forward`` (output, h_n and c_n) with respect to
    every parameter, the input, h0 and c0.  ``fast``: gradcheck's ``fast_mode`` (a random
    projection of each Jacobian; minutes less on two busy cores), else the full Jacobians.

    From ``h0 = 0`` the first step normalises ``W_hh·0 = 0``: there ``LN(r) ≈ r·γ/√eps`` and its
    third derivative is of order ``γ/eps^1.5 ≈ 3e7``, so the default step 1e-6 has a truncation
    error of about 3e-5, which fails ``atol = 1e-8`` through no fault of the gradient.  That case
    uses step 1e-8 (truncation ≈ 3e-9, rounding ≈ 1e-16·|out|/1e-8) and tolerances 1e-5."""
    torch.manual_seed(seed)
    T, B, I, H = 3, len(lengths), 2, 3
    D = 2 if bi else 1
    m = mf.LayerNormLSTM(I, H, L, bi, bias, dtype=torch.float64)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.startswith("ln_"):
                r = torch.randn(p.shape, dtype=torch.float64) * 0.3
                p.copy_(1 + r if "_weight_" in n else r)
    names = [n for n, _ in m.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in m.named_parameters()]
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    scale = 0.0 if zero_init else 0.5
    h0 = (torch.randn(L * D, B, H, dtype=torch.float64) * scale).requires_grad_(True)
    c0 = (torch.randn(L * D, B, H, dtype=torch.float64) * scale).requires_grad_(True)
    lens = torch.tensor(lengths)

    def fn(*args):
        P = dict(zip(names, args[: len(names)]))
        xx, hh, cc = args[len(names) :]
        out, (hn, cn) = mf.lnlstm_forward(P, xx, hh, cc, lens, L, bi)
        return out, hn, cn

    tol = dict(eps=1e-8, atol=1e-5, rtol=1e-5) if zero_init else dict(eps=1e-6, atol=1e-8, rtol=1e-6)
    label = (f"gradcheck L={L} {'bi' if bi else 'uni'} bias={bias} lengths={list(lengths)}"
             f"{' h0=c0=0' if zero_init else ''} ({len(names)} params, x, h0, c0"
             f"{', fast mode' if fast else ''})")
    try:
        ok = torch.autograd.gradcheck(fn, (*params, x, h0, c0), fast_mode=fast, **tol)
    except torch.autograd.gradcheck.GradcheckError as e:
        print(str(e)[:2000])
        ok = False
    print(f"  {'ok  ' if ok else 'FAIL'} {label}", flush=True)
    if not ok:
        FAILURES.append(label)


# --------------------------------------------------------------------------- #
# 3) the layer machinery against nn.LSTM
# --------------------------------------------------------------------------- #
def plain_lstm_cell(x, h, c, p, sfx):
    gates = x @ p[f"weight_ih{sfx}"].T + p[f"bias_ih{sfx}"] + h @ p[f"weight_hh{sfx}"].T + p[f"bias_hh{sfx}"]
    i, f, g, o = gates.chunk(4, dim=1)
    c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c2), c2


def machinery_case(L: int, bi: bool, seed: int) -> None:
    torch.manual_seed(seed)
    T, B, I, H = 5, 3, 3, 4
    D = 2 if bi else 1
    lstm = nn.LSTM(I, H, num_layers=L, bidirectional=bi, dtype=torch.float64)
    lengths = torch.tensor(mf.PACKED_LENGTHS)
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = torch.randn(L * D, B, H, dtype=torch.float64)
    c0 = torch.randn(L * D, B, H, dtype=torch.float64)
    d_out = torch.randn(T, B, D * H, dtype=torch.float64)
    d_h = torch.randn(L * D, B, H, dtype=torch.float64)
    d_c = torch.randn(L * D, B, H, dtype=torch.float64)

    def run(forward):
        xs, hs, cs = (v.clone().requires_grad_(True) for v in (x, h0, c0))
        ps = {n: p.detach().clone().requires_grad_(True) for n, p in lstm.named_parameters()}
        out, (hn, cn) = forward(ps, xs, hs, cs)
        ((out * d_out).sum() + (hn * d_h).sum() + (cn * d_c).sum()).backward()
        res = {"output": out, "h_n": hn, "c_n": cn, "grad.input": xs.grad, "grad.h0": hs.grad,
               "grad.c0": cs.grad}
        res.update({f"grad.{n}": p.grad for n, p in ps.items()})
        return res

    def torch_lstm(ps, xs, hs, cs):
        out, state = torch.func.functional_call(
            lstm, ps, (pack_padded_sequence(xs, lengths, enforce_sorted=False), (hs, cs)))
        return pad_packed_sequence(out, total_length=T)[0], state

    ours = run(lambda ps, xs, hs, cs: mf.lnlstm_forward(ps, xs, hs, cs, lengths, L, bi, plain_lstm_cell))
    theirs = run(torch_lstm)
    err = max(rel_to_max(ours[k].detach().numpy(), theirs[k].detach().numpy()) for k in theirs)
    report(f"lnlstm_forward(plain LSTM cell) vs nn.LSTM packed, L={L} {'bi' if bi else 'uni'}",
           err, 1e-14)


# --------------------------------------------------------------------------- #
# 5) one step by hand
# --------------------------------------------------------------------------- #
def hand_step() -> None:
    """One step of ``lnlstm_cell`` for one row with I = H = 1, written out in scalars with
    ``math``.  With H = 1 the cell-state norm sees one value, whose variance is 0: it returns
    ``β_c`` whatever ``c'`` is, so ``h' = o·tanh(β_c)``, ``∂h'/∂γ_c = 0`` and ``∂h'/∂c' = 0``."""
    import math

    x, h, c = 0.7, -0.4, 0.3
    w_ih, w_hh = [0.5, -0.3, 0.8, 0.1], [-0.2, 0.6, 0.4, -0.7]
    g_ih, b_ih = [1.1, 0.9, 1.2, 0.8], [0.1, -0.2, 0.05, 0.3]
    g_hh, b_hh = [0.95, 1.05, 0.7, 1.3], [-0.1, 0.15, 0.2, -0.05]
    g_c, b_c = 1.4, 0.25

    def ln4(v, g, b):
        mu = sum(v) / 4
        var = sum((e - mu) ** 2 for e in v) / 4
        return [(e - mu) / math.sqrt(var + 1e-5) * gk + bk for e, gk, bk in zip(v, g, b)]

    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    a = ln4([w * x for w in w_ih], g_ih, b_ih)
    r = ln4([w * h for w in w_hh], g_hh, b_hh)
    zi, zf, zg, zo = (a[k] + r[k] for k in range(4))
    c_new = sig(zf) * c + sig(zi) * math.tanh(zg)
    mu_c = c_new  # the mean of one value
    var_c = (c_new - mu_c) ** 2  # = 0
    h_new = sig(zo) * math.tanh((c_new - mu_c) / math.sqrt(var_c + 1e-5) * g_c + b_c)

    d = lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True)  # noqa: E731
    p = {"weight_ih_l0": d([[w] for w in w_ih]), "weight_hh_l0": d([[w] for w in w_hh]),
         "ln_ih_weight_l0": d(g_ih), "ln_ih_bias_l0": d(b_ih),
         "ln_hh_weight_l0": d(g_hh), "ln_hh_bias_l0": d(b_hh),
         "ln_c_weight_l0": d([g_c]), "ln_c_bias_l0": d([b_c])}
    ht, ct = mf.lnlstm_cell(d([[x]]), d([[h]]), d([[c]]), p, "_l0")
    err = max(abs(ht.item() - h_new), abs(ct.item() - c_new))
    report(f"hand step: h' = {h_new:.6f}, c' = {c_new:.6f}", err, 1e-15)
    ht.sum().backward()
    o = sig(zo)
    grads = (abs(p["ln_c_weight_l0"].grad.item()),
             abs(p["ln_c_bias_l0"].grad.item() - o * (1 - math.tanh(b_c) ** 2)))
    report("hand step: dh'/dγ_c = 0, dh'/dβ_c = o·(1 − tanh²β_c)", max(grads), 1e-15)


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", type=Path, default=mf.DEFAULT_OUT_DIR)
    ap.add_argument("--all-differences", action="store_true",
                    help="central differences for every f64 file, not only " + ", ".join(FD_FILES))
    ap.add_argument("--full-jacobians", action="store_true",
                    help="gradcheck with full Jacobians instead of fast_mode (slow)")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)

    files = sorted(args.fixtures.glob("lnlstm_*.safetensors"))
    expected = sorted(f"{c.name}_{d}.safetensors" for c in mf.LNLSTM_CASES for d in mf.DTYPES)
    print(f"1) {len(files)} fixtures in {args.fixtures} against an independent numpy float64 implementation")
    if [p.name for p in files] != expected:
        FAILURES.append("fixture list")
        print(f"  FAIL fixture list: {[p.name for p in files]} != {expected}")
    for path in files:
        check_fixture_numpy(path, args.all_differences or path.stem in FD_FILES)

    fast = not args.full_jacobians
    print("2) torch.autograd.gradcheck (float64)")
    gradcheck_case(1, False, True, (3, 3), False, 1, fast)
    gradcheck_case(2, True, True, (3, 1), False, 2, fast)
    gradcheck_case(2, True, False, (2, 3), False, 3, fast)
    gradcheck_case(2, True, True, (1, 3), True, 4, fast)

    print("3) layers, directions and lengths against nn.LSTM")
    for L in (1, 2):
        for bi in (False, True):
            machinery_case(L, bi, 10 + 2 * L + bi)

    print("4) gains 1, biases 0: not an LSTM")
    torch.manual_seed(5)
    m = mf.LayerNormLSTM(3, 4, dtype=torch.float64)
    lstm = nn.LSTM(3, 4, bias=False, dtype=torch.float64)
    lstm.load_state_dict({k: v for k, v in m.state_dict().items() if k.startswith("weight_")})
    xx = torch.randn(5, 2, 3, dtype=torch.float64)
    with torch.no_grad():
        diff = (m(xx)[0] - lstm(xx)[0]).abs().max().item()
    print(f"  {'ok  ' if diff > 1e-2 else 'FAIL'} max |LayerNormLSTM − nn.LSTM(bias=False)| = {diff:.3f}")
    if diff <= 1e-2:
        FAILURES.append("not an LSTM")

    print("5) one step by hand, B = I = H = 1")
    hand_step()

    print("FAILED: " + ", ".join(FAILURES) if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
