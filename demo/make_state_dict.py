"""Makes the PyTorch side of the demo (run from the repository root or from demo/):

    .venv-torch/bin/python demo/make_state_dict.py

Writes, next to this script:

* torch_init.safetensors   - the state_dict of `Classifier` below (f32), PyTorch's keys
                             (embed.weight, encoder.weight_ih_l0, ..., head.bias)
* torch_reference.safetensors - a fixed small input batch and PyTorch's logits for it:
    ids      (T, B) token ids, stored as f64 (recurrent::io reads float tensors only)
    lengths  (B,)   real steps per sequence, stored as f64
    logits_f32 (B, C) the module in float32, input packed with pack_padded_sequence
    logits_f64 (B, C) the same weights cast to float64, same input
"""
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

VOCAB = 21  # id 0 = padding, tokens 1..=20
EMBED = 16
HIDDEN = 32
LAYERS = 2
CLASSES = 2


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, EMBED, padding_idx=0)
        self.encoder = nn.GRU(EMBED, HIDDEN, num_layers=LAYERS, bidirectional=True)
        self.head = nn.Linear(2 * HIDDEN, CLASSES)

    def forward(self, ids, lengths):
        x = self.embed(ids)  # (T, B, E), time-major
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        _, h_n = self.encoder(packed)  # (L*D, B, H)
        features = torch.cat([h_n[-2], h_n[-1]], dim=1)  # last layer, forward then reverse
        return self.head(features)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    torch.manual_seed(1234)
    model = Classifier().eval()

    # A fixed batch of 4 sequences of lengths 7, 3, 5, 1 (unsorted), zero-padded.
    lengths = torch.tensor([7, 3, 5, 1])
    g = torch.Generator().manual_seed(99)
    ids = torch.randint(1, VOCAB, (int(lengths.max()), len(lengths)), generator=g)
    for b, n in enumerate(lengths.tolist()):
        ids[n:, b] = 0

    with torch.no_grad():
        logits_f32 = model(ids, lengths)
        logits_f64 = model.double()(ids, lengths)
        model.float()

    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(here, "torch_init.safetensors"),
              metadata={"made_by": "demo/make_state_dict.py", "torch": torch.__version__,
                        "seed": "1234"})
    save_file({"ids": ids.double(), "lengths": lengths.double(),
               "logits_f32": logits_f32.float(), "logits_f64": logits_f64.double()},
              os.path.join(here, "torch_reference.safetensors"),
              metadata={"made_by": "demo/make_state_dict.py", "torch": torch.__version__})
    print("state_dict keys:", list(model.state_dict().keys()))
    print("ids (T, B):\n", ids)
    print("lengths:", lengths.tolist())
    print("logits f32:\n", logits_f32)
    print("wrote torch_init.safetensors and torch_reference.safetensors in", here)


if __name__ == "__main__":
    main()
