#!/usr/bin/env python3
"""Generate small PyTorch parity fixtures for the RNN library's tests.

Usage (from the repository root)::

    python tools/torch_fixtures.py [OUT_DIR]        # default OUT_DIR: tests/fixtures

Needs ``torch``, ``safetensors`` and ``numpy`` (see shared/tools/torch-cpu.md for a
CPU-only install). Tests never need PyTorch: they read the committed files.

For every mode (``rnn`` = ``nn.RNN(nonlinearity='tanh')``, ``lstm`` = ``nn.LSTM``,
``gru`` = ``nn.GRU``) and every configuration in ``CONFIGS`` one file
``{mode}_{config}.safetensors`` is written. Everything is float64, time-major
(``batch_first=False``), ``dropout=0``, with PyTorch's default (seeded) parameter
initialisation.

Per case, with ``torch.manual_seed(k)`` (k = 0, 1, ... in the order the cases are
listed below), the random draws happen in this order:

1. module construction (default init of every parameter);
2. ``input``  = randn(T, B, I);
3. ``h0``     = randn(L*D, B, H);
4. ``c0``     = randn(L*D, B, H)                      (LSTM only);
5. forward pass (packed cases: ``pack_padded_sequence(input, lengths,
   enforce_sorted=False)`` and ``pad_packed_sequence(..., total_length=T)``);
6. ``grad_output`` = randn(T, B, D*H), zeroed at t >= lengths[b] in packed cases;
7. ``grad_h_n``    = randn(L*D, B, H);
8. ``grad_c_n``    = randn(L*D, B, H)                 (LSTM only).

The scalar loss is::

    loss = sum(output * grad_output) + sum(h_n * grad_h_n) [+ sum(c_n * grad_c_n)]

so ``grad_output``/``grad_h_n``/``grad_c_n`` are exactly the upstream gradients fed to
the backward pass. ``loss.backward()`` is run with ``requires_grad`` on ``input``,
``h0``, ``c0`` and every parameter.

Tensors in each case file:

* the module's state_dict under PyTorch's own names (``weight_ih_l0``,
  ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``, ``..._l1``...);
* ``input`` [T, B, I], ``h0`` [L*D, B, H], ``c0`` (LSTM);
* ``lengths`` int64 [B] (packed cases only);
* ``output`` [T, B, D*H] (zeros past each sequence's end in packed cases),
  ``h_n`` [L*D, B, H], ``c_n`` (LSTM);
* ``grad_output``, ``grad_h_n``, ``grad_c_n`` (LSTM): the upstream gradients;
* ``grad.input``, ``grad.h0``, ``grad.c0`` (LSTM) and ``grad.<param name>`` for every
  parameter.

Metadata (all strings): ``mode`` (RNN_TANH | LSTM | GRU), ``num_layers``,
``bidirectional``, ``bias``, ``packed`` ("true"/"false"), ``input_size``,
``hidden_size``, ``torch_version``.

In addition, three weight-loading-only files hold the state_dict of the ``lstm_l2_bi``
module cast to float32 / float16 / bfloat16 with the key prefix ``encoder.rnn.``:
``lstm_l2_bi_f32.safetensors``, ``lstm_l2_bi_f16.safetensors``,
``lstm_l2_bi_bf16.safetensors`` (metadata as above plus ``prefix``).

The script is deterministic: one intra-op thread, fixed seeds, float64, and the
safetensors header is rewritten with sorted metadata keys (see ``canonicalise_header``),
so two runs with the same torch build give byte-identical files.
"""

import json
import os
import struct
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file

MODES = [
    # (file-name stem, metadata mode, constructor)
    ("rnn", "RNN_TANH", lambda **kw: nn.RNN(nonlinearity="tanh", **kw)),
    ("lstm", "LSTM", lambda **kw: nn.LSTM(**kw)),
    ("gru", "GRU", lambda **kw: nn.GRU(**kw)),
]

# (name, num_layers, bidirectional, bias, packed)
CONFIGS = [
    ("l1_uni", 1, False, True, False),
    ("l2_bi", 2, True, True, False),
    ("l2_uni_nobias", 2, False, False, False),
    ("l1_bi_nobias", 1, True, False, False),
    ("l2_bi_packed", 2, True, True, True),
    ("l1_uni_packed", 1, False, True, True),
]

INPUT_SIZE = 5
HIDDEN_SIZE = 4
T_DENSE, B_DENSE = 4, 3
T_PACKED, B_PACKED = 5, 4
# Unsorted, one equal to T_PACKED, all >= 1.
LENGTHS_PACKED = [3, 5, 1, 4]

WEIGHT_PREFIX = "encoder.rnn."
WEIGHT_DTYPES = [("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16)]


def _b(x):
    return "true" if x else "false"


def _metadata(mode_meta, num_layers, bidirectional, bias, packed):
    return {
        "mode": mode_meta,
        "num_layers": str(num_layers),
        "bidirectional": _b(bidirectional),
        "bias": _b(bias),
        "input_size": str(INPUT_SIZE),
        "hidden_size": str(HIDDEN_SIZE),
        "packed": _b(packed),
        "torch_version": torch.__version__,
    }


def _own(t):
    """A contiguous tensor owning its storage (safetensors refuses shared storage)."""
    return t.detach().clone().contiguous()


def canonicalise_header(path):
    """Rewrite the safetensors header in place with the metadata keys sorted.

    ``save_file`` writes ``__metadata__`` from a hash map, so its key order (and hence the
    file's bytes) changes from run to run although the tensors are bit-identical. The
    header is re-serialised with the same entries, metadata sorted by key, padded with
    spaces to its original length (data offsets are relative to the header's end, so
    nothing else moves).
    """
    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
        meta = header.pop("__metadata__", None)
        out = {}
        if meta is not None:
            out["__metadata__"] = dict(sorted(meta.items()))
        out.update(header)
        text = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) > n:
            raise RuntimeError(f"{path}: canonical header longer than the original")
        f.seek(8)
        f.write(text + b" " * (n - len(text)))


def make_case(seed, mode_meta, ctor, num_layers, bidirectional, bias, packed):
    """Build one case; returns (tensors, metadata, module)."""
    torch.manual_seed(seed)
    is_lstm = mode_meta == "LSTM"
    d = 2 if bidirectional else 1
    T, B = (T_PACKED, B_PACKED) if packed else (T_DENSE, B_DENSE)
    I, H, L = INPUT_SIZE, HIDDEN_SIZE, num_layers

    module = ctor(
        input_size=I,
        hidden_size=H,
        num_layers=L,
        bias=bias,
        batch_first=False,
        dropout=0.0,
        bidirectional=bidirectional,
    )
    module.train()  # dropout=0 anyway; keeps autograd paths the ordinary ones

    x = torch.randn(T, B, I).requires_grad_(True)
    h0 = torch.randn(L * d, B, H).requires_grad_(True)
    c0 = torch.randn(L * d, B, H).requires_grad_(True) if is_lstm else None
    hx = (h0, c0) if is_lstm else h0

    if packed:
        lengths = torch.tensor(LENGTHS_PACKED, dtype=torch.int64)
        assert lengths.numel() == B and int(lengths.max()) == T and int(lengths.min()) >= 1
        packed_in = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        packed_out, hn = module(packed_in, hx)
        output, out_lens = nn.utils.rnn.pad_packed_sequence(packed_out, total_length=T)
        assert torch.equal(out_lens, lengths)
        # valid[t, b] = t < lengths[b]
        valid = (torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)).to(output.dtype)
        valid = valid.unsqueeze(2)  # [T, B, 1]
    else:
        lengths = None
        output, hn = module(x, hx)
        valid = None

    h_n, c_n = hn if is_lstm else (hn, None)

    grad_output = torch.randn(T, B, d * H)
    if valid is not None:
        grad_output = grad_output * valid
        assert torch.all(output.detach() * (1 - valid) == 0)
    grad_h_n = torch.randn(L * d, B, H)
    grad_c_n = torch.randn(L * d, B, H) if is_lstm else None

    loss = (output * grad_output).sum() + (h_n * grad_h_n).sum()
    if is_lstm:
        loss = loss + (c_n * grad_c_n).sum()
    loss.backward()

    tensors = {}
    state = dict(module.state_dict())
    params = dict(module.named_parameters())
    assert set(state) == set(params), (sorted(state), sorted(params))
    for name, t in state.items():
        tensors[name] = _own(t)
    tensors["input"] = _own(x)
    tensors["h0"] = _own(h0)
    if is_lstm:
        tensors["c0"] = _own(c0)
    if lengths is not None:
        tensors["lengths"] = lengths.clone()
    tensors["output"] = _own(output)
    tensors["h_n"] = _own(h_n)
    if is_lstm:
        tensors["c_n"] = _own(c_n)
    tensors["grad_output"] = _own(grad_output)
    tensors["grad_h_n"] = _own(grad_h_n)
    if is_lstm:
        tensors["grad_c_n"] = _own(grad_c_n)
    tensors["grad.input"] = _own(x.grad)
    tensors["grad.h0"] = _own(h0.grad)
    if is_lstm:
        tensors["grad.c0"] = _own(c0.grad)
    for name, p in params.items():
        assert p.grad is not None, name
        tensors["grad." + name] = _own(p.grad)

    for name, t in tensors.items():
        expect = torch.int64 if name == "lengths" else torch.float64
        assert t.dtype == expect, (name, t.dtype)

    meta = _metadata(mode_meta, num_layers, bidirectional, bias, packed)
    return tensors, meta, module


def main(argv):
    out_dir = argv[1] if len(argv) > 1 else os.path.join("tests", "fixtures")
    os.makedirs(out_dir, exist_ok=True)

    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    written = []
    seed = 0
    for stem, mode_meta, ctor in MODES:
        for cfg_name, num_layers, bidirectional, bias, packed in CONFIGS:
            name = f"{stem}_{cfg_name}"
            tensors, meta, module = make_case(
                seed, mode_meta, ctor, num_layers, bidirectional, bias, packed
            )
            path = os.path.join(out_dir, name + ".safetensors")
            save_file(tensors, path, metadata=meta)
            canonicalise_header(path)
            written.append(path)

            if name == "lstm_l2_bi":
                for suffix, dtype in WEIGHT_DTYPES:
                    w = {
                        WEIGHT_PREFIX + k: v.detach().to(dtype).contiguous().clone()
                        for k, v in module.state_dict().items()
                    }
                    wmeta = dict(meta)
                    wmeta["prefix"] = WEIGHT_PREFIX
                    wpath = os.path.join(out_dir, f"{name}_{suffix}.safetensors")
                    save_file(w, wpath, metadata=wmeta)
                    canonicalise_header(wpath)
                    written.append(wpath)
            seed += 1

    total = 0
    for path in written:
        size = os.path.getsize(path)
        total += size
        print(f"{size:8d}  {path}")
    print(f"{total:8d}  total ({len(written)} files, torch {torch.__version__})")


if __name__ == "__main__":
    main(sys.argv)
