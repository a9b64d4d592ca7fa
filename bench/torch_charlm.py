"""PyTorch CPU training throughput of the character-level language model that the library's
example trains, for a side-by-side comparison with wgpu-rnn.

What it measures: one training step of Embedding(V, embed) -> nn.LSTM or nn.GRU (embed ->
hidden, `layers` layers, time-major) -> Linear(hidden, V) on a [seq, batch] window of the
corpus, with mean cross-entropy, backward, clip_grad_norm_(clip), Adam(lr) step and
zero_grad; the hidden state (h, and c for the LSTM) is carried across steps, detached
(truncated BPTT). The corpus (examples/data/names.txt by default) has its "# " header lines
dropped and the remaining lines joined with '\n' plus a final '\n'; the vocabulary is the
sorted set of its characters. The token stream is cut into `batch` contiguous streams of
equal length L = len // batch; each step takes the next `seq` positions of every stream
(inputs x[t, b] = stream_b[pos + t], targets y[t, b] = stream_b[pos + t + 1]); pos advances
by seq and wraps to 0, with the state reset to zeros, when fewer than seq + 1 remain.

After `warmup` steps it times `steps` steps, `repeats` times, and prints per cell the median
time per step and training tokens/s = seq * batch / median step time.

Set OMP_NUM_THREADS to the same value as --threads, e.g.:

    OMP_NUM_THREADS=2 python3 bench/torch_charlm.py --cell both --threads 2

With --train N it instead trains for N steps (fresh model, same seed), printing the loss
every 100 steps and the final loss in bits per character (nats / ln 2), then samples 5 names
(temperature 1, zero state, start token '\n', stopping at '\n' or 20 characters):

    OMP_NUM_THREADS=2 python3 bench/torch_charlm.py --train 2000 --cell lstm
"""
import argparse
import math
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "examples" / "data" / "names.txt"


def load_corpus(path):
    lines = Path(path).read_text().splitlines()
    text = "\n".join(l for l in lines if not l.startswith("# ")) + "\n"
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    tokens = torch.tensor([index[c] for c in text], dtype=torch.long)
    return text, vocab, tokens


class CharLM(nn.Module):
    def __init__(self, cell, vocab, embed, hidden, layers):
        super().__init__()
        self.cell = cell
        self.layers = layers
        self.hidden = hidden
        self.embed = nn.Embedding(vocab, embed)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(embed, hidden, layers, batch_first=False)
        self.out = nn.Linear(hidden, vocab)

    def zero_state(self, batch):
        h = torch.zeros(self.layers, batch, self.hidden)
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else h

    def forward(self, x, state):
        y, state = self.rnn(self.embed(x), state)
        return self.out(y), state


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class Trainer:
    def __init__(self, cell, tokens, vocab_size, a):
        torch.manual_seed(a.seed)
        self.a = a
        self.v = vocab_size
        self.model = CharLM(cell, vocab_size, a.embed, a.hidden, a.layers)
        self.params = list(self.model.parameters())
        self.opt = torch.optim.Adam(self.params, lr=a.lr)
        length = len(tokens) // a.batch
        if length < a.seq + 1:
            raise SystemExit(f"corpus too short: {len(tokens)} tokens for batch {a.batch} x seq {a.seq}+1")
        # streams[:, b] = tokens[b*L:(b+1)*L], time-major [L, batch]
        self.streams = tokens[: a.batch * length].view(a.batch, length).t().contiguous()
        self.length = length
        self.pos = 0
        self.state = self.model.zero_state(a.batch)

    def step(self):
        a = self.a
        if self.pos + a.seq + 1 > self.length:
            self.pos = 0
            self.state = self.model.zero_state(a.batch)
        x = self.streams[self.pos : self.pos + a.seq]
        y = self.streams[self.pos + 1 : self.pos + a.seq + 1]
        self.pos += a.seq
        logits, state = self.model(x, self.state)
        self.state = detach(state)
        loss = F.cross_entropy(logits.reshape(-1, self.v), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, a.clip)
        self.opt.step()
        self.opt.zero_grad()
        return loss.item()


@torch.no_grad()
def sample(model, vocab, gen, max_len=20):
    nl = vocab.index("\n")
    state = model.zero_state(1)
    tok = torch.tensor([[nl]])
    out = []
    for _ in range(max_len):
        logits, state = model(tok, state)
        probs = torch.softmax(logits[0, 0], dim=-1)  # temperature 1
        nxt = torch.multinomial(probs, 1, generator=gen).item()
        if nxt == nl:
            break
        out.append(vocab[nxt])
        tok = torch.tensor([[nxt]])
    return "".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--cell", choices=["lstm", "gru", "both"], default="both")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--embed", type=int, default=32)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch.set_num_threads; also set OMP_NUM_THREADS to the same value")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=None, metavar="N",
                    help="instead of timing, train N steps and report loss and samples")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    omp = os.environ.get("OMP_NUM_THREADS")
    if omp != str(a.threads):
        print(f"# note: OMP_NUM_THREADS={omp}; set OMP_NUM_THREADS={a.threads} to match --threads")
    text, vocab, tokens = load_corpus(a.corpus)
    cells = ["lstm", "gru"] if a.cell == "both" else [a.cell]
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()} "
          f"(OMP_NUM_THREADS={omp}), cpu")
    print(f"# corpus {a.corpus}: {len(tokens)} tokens, vocab {len(vocab)}; "
          f"embed {a.embed}, hidden {a.hidden}, layers {a.layers}, seq {a.seq}, batch {a.batch}, "
          f"lr {a.lr}, clip {a.clip}, seed {a.seed}")

    if a.train is not None:
        for cell in cells:
            tr = Trainer(cell, tokens, len(vocab), a)
            print(f"# training {cell} for {a.train} steps "
                  f"({a.seq * a.batch} tokens/step, {tr.length // a.seq} steps per epoch)")
            print("step,loss_nats,loss_bits,mean100_nats,mean100_bits")
            recent = []
            t0 = time.perf_counter()
            for i in range(1, a.train + 1):
                loss = tr.step()
                recent.append(loss)
                recent = recent[-100:]
                if i % 100 == 0 or i == a.train:
                    m = sum(recent) / len(recent)
                    print(f"{i},{loss:.4f},{loss / math.log(2):.4f},{m:.4f},{m / math.log(2):.4f}",
                          flush=True)
            dt = time.perf_counter() - t0
            m = sum(recent) / len(recent)
            print(f"# {cell}: final loss {loss:.4f} nats = {loss / math.log(2):.4f} bits/char "
                  f"(mean of last {len(recent)} steps: {m / math.log(2):.4f} bits/char); "
                  f"{dt:.1f} s, {1e3 * dt / a.train:.2f} ms/step")
            gen = torch.Generator().manual_seed(a.seed)
            tr.model.eval()
            for k in range(5):
                print(f"# sample {k + 1}: {sample(tr.model, vocab, gen)!r}")
        return

    rows = []
    for cell in cells:
        tr = Trainer(cell, tokens, len(vocab), a)
        for _ in range(a.warmup):
            tr.step()
        per_step = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            for _ in range(a.steps):
                tr.step()
            per_step.append((time.perf_counter() - t0) / a.steps)
        med = statistics.median(per_step)
        rows.append((cell, med * 1e3, min(per_step) * 1e3, a.seq * a.batch / med))
    print(f"{'cell':<6} {'median ms/step':>15} {'min ms/step':>12} {'tokens/s':>10}")
    for cell, med, mn, tps in rows:
        print(f"{cell:<6} {med:>15.2f} {mn:>12.2f} {tps:>10.0f}")


if __name__ == "__main__":
    main()
