#!/usr/bin/env python3
"""PyTorch-made seed files for the hostile-input tests and fuzz targets.

Run from anywhere:

    .venv-torch/bin/python scripts/make_hostile_seeds.py

Writes small, deterministic files to ``tests/hostile/seeds/``; ``tests/hostile/loaders.rs`` names
which target each seeds (the mutation test and ``fuzz/seed.sh`` read them):

* ``linear_f16.safetensors``: ``nn.Linear(3, 2).state_dict()`` in float16.
* ``model_bf16.safetensors``: ``nn.Sequential(nn.LSTM(3, 4), nn.Linear(4, 2)).state_dict()`` in
  bfloat16 (keys ``0.weight_ih_l0``, ..., ``1.weight``, ``1.bias``), plus an int64 tensor
  ``num_batches`` that the loaders must skip.
* ``encoder_lstm_f32.safetensors``: a 2-layer bidirectional ``nn.LSTM(3, 2)`` under the prefix
  ``encoder.``.

It also writes the hand-made regression files of issue 13 to ``tests/hostile/regressions/<target>/``
(each crashed or silently misloaded the crate once; ``tests/it/mutation.rs`` replays them and checks
they are refused; the `ok-*` files are unharmed controls that must load): layer indices of 2^40, 2^62 and 2^64 - 1 in a key name, a ``weight_hh_l0``
shaped ``(0, 2^62)``, a 3-layer file without its middle layer, integer and boolean weights, and
checkpoints / optimizer states with ``num_params`` of 10^12 and 2^64 - 1, a negative ``exp_avg_sq``
and a NaN ``exp_avg``.
"""
import json
import struct
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent / "tests" / "hostile"
OUT = ROOT / "seeds"
REGRESSIONS = ROOT / "regressions"


def numpy_state(module: torch.nn.Module, prefix: str = "") -> dict:
    return {prefix + k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def regression(target: str, name: str, tensors: dict, metadata=None) -> None:
    d = REGRESSIONS / target
    d.mkdir(parents=True, exist_ok=True)
    save_numpy(tensors, str(d / f"{name}.safetensors"), metadata=metadata)


def adam_state(model: torch.nn.Module, prefix: str, model_prefix) -> tuple:
    """This crate's flat optimizer-state layout (`OptimizerState::flat_arrays` / `flat_metadata`)
    for Adam after one step, under `prefix`; the model's tensors under `model_prefix` if given."""
    tensors, meta = {}, {}
    names = [n for n, _ in model.named_parameters()]
    for i, (n, p) in enumerate(model.named_parameters()):
        tensors[f"{prefix}{n}.exp_avg"] = np.full(p.shape, 0.01, dtype=np.float32)
        tensors[f"{prefix}{n}.exp_avg_sq"] = np.full(p.shape, 1e-5, dtype=np.float32)
        meta[f"{prefix}{n}.step"] = "1.0"
        meta[f"{prefix}param.{i}"] = n
    meta.update({f"{prefix}optimizer": "adam", f"{prefix}steps": "1",
                 f"{prefix}num_params": str(len(names)), f"{prefix}learning_rate": "0.01"})
    if model_prefix is not None:
        tensors.update(numpy_state(model, model_prefix))
        meta.update({"format": "recurrent-checkpoint-1", "step": "1"})
    return tensors, meta


def regressions() -> None:
    torch.manual_seed(17)
    lstm = numpy_state(torch.nn.LSTM(3, 2))
    for name, index in [("layer_index_2pow40", 2**40), ("layer_index_2pow62", 2**62),
                        ("layer_index_2pow64_minus_1", 2**64 - 1)]:
        regression("lstm", name, {**lstm, f"bias_ih_l{index}": np.zeros(8, np.float32)})
    # numpy refuses a (0, 2^62) array: the file is written by hand.
    header, data, offset = {}, b"", 0
    for k, v in {**lstm, "weight_hh_l0": None}.items():
        raw = b"" if v is None else v.astype("<f4").tobytes()
        shape = [0, 2**62] if v is None else list(v.shape)
        header[k] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        data, offset = data + raw, offset + len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    (REGRESSIONS / "lstm").mkdir(parents=True, exist_ok=True)
    (REGRESSIONS / "lstm" / "weight_hh_0_by_2pow62.safetensors").write_bytes(
        struct.pack("<Q", len(text)) + text + data)
    three = numpy_state(torch.nn.LSTM(3, 2, num_layers=3))
    regression("lstm", "middle_layer_missing", {k: v for k, v in three.items() if not k.endswith("_l1")})
    regression("lstm", "int64_weight", {**lstm, "weight_ih_l0": np.ones((8, 3), np.int64)})
    regression("lstm", "bool_weights", {k: np.ones(v.shape, np.bool_) for k, v in lstm.items()})
    model = torch.nn.Sequential(torch.nn.LSTM(3, 4), torch.nn.Linear(4, 2))
    # Controls, named `ok-*`: the same layouts unharmed, which must load (so that the files above
    # are refused for what was done to them, not for a wrong layout).
    regression("lstm", "ok-plain", lstm)
    regression("checkpoint", "ok-adam", *adam_state(model, "optim.", "model."))
    regression("optim_state", "ok-adam", *adam_state(model, "", None))
    for name, count in [("num_params_1e12", "1000000000000"), ("num_params_u64_max", str(2**64 - 1))]:
        tensors, meta = adam_state(model, "optim.", "model.")
        meta["optim.num_params"] = count
        regression("checkpoint", name, tensors, meta)
        tensors, meta = adam_state(model, "", None)
        meta["num_params"] = count
        regression("optim_state", name, tensors, meta)
    tensors, meta = adam_state(model, "optim.", "model.")
    tensors["optim.1.weight.exp_avg_sq"][0, 1] = -1.0
    regression("checkpoint", "negative_exp_avg_sq", tensors, meta)
    tensors, meta = adam_state(model, "optim.", "model.")
    tensors["optim.0.weight_hh_l0.exp_avg"][3, 0] = np.nan
    regression("checkpoint", "nan_exp_avg", tensors, meta)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(13)
    linear = torch.nn.Linear(3, 2)
    save_file({k: v.to(torch.float16).contiguous() for k, v in linear.state_dict().items()},
              str(OUT / "linear_f16.safetensors"))
    model = torch.nn.Sequential(torch.nn.LSTM(3, 4), torch.nn.Linear(4, 2))
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    tensors["num_batches"] = torch.tensor([7], dtype=torch.int64)
    save_file(tensors, str(OUT / "model_bf16.safetensors"), metadata={"torch_version": torch.__version__})
    lstm = torch.nn.LSTM(3, 2, num_layers=2, bidirectional=True)
    save_file({f"encoder.{k}": v.contiguous() for k, v in lstm.state_dict().items()},
              str(OUT / "encoder_lstm_f32.safetensors"))
    regressions()


if __name__ == "__main__":
    main()
