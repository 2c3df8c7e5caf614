"""Checks that a weight file saved by `recurrent` loads into torch.nn.LSTM with strict=True and
reproduces PyTorch's output on a reference fixture.

    .venv-torch/bin/python scripts/check_roundtrip.py out/lstm_roundtrip.safetensors \
        tests/fixtures/lstm_bi_2l_full_f32.safetensors
"""
import sys

import torch
from safetensors.torch import load_file


def main(saved_path, fixture_path):
    state = load_file(saved_path)
    fixture = load_file(fixture_path)
    hidden = state["weight_hh_l0"].shape[1]
    input_size = state["weight_ih_l0"].shape[1]
    layers = 1 + max(int(k.split("_l")[1].split("_")[0]) for k in state)
    bidirectional = any(k.endswith("_reverse") for k in state)
    bias = "bias_ih_l0" in state
    lstm = torch.nn.LSTM(input_size, hidden, num_layers=layers, bidirectional=bidirectional, bias=bias)
    lstm = lstm.to(state["weight_hh_l0"].dtype)
    result = lstm.load_state_dict(state, strict=True)
    print(f"load_state_dict(strict=True): {result}")
    with torch.no_grad():
        out, _ = lstm(fixture["input"], (fixture["h0"], fixture["c0"]))
    diff = (out - fixture["output"]).abs().max().item()
    print(f"LSTM({input_size}, {hidden}, num_layers={layers}, bidirectional={bidirectional}, bias={bias})")
    print(f"max |PyTorch(saved by recurrent) - PyTorch(original)| = {diff:.3e}")
    if diff > 1e-6:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
