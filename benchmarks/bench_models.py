"""Time the tiny checkpoints of the model families (prints numbers; asserts nothing).

Per tiny build: a 4-sample batched forward (hidden states on) and greedy
generation of 5 tokens; contrastive families: scoring 4 images x 4 texts.
For the embedded default (``composite``): forward + backward + AdamW step on
a batch of 16 synthetic 448 px images with answers, as the trainer runs it.

    .venv/bin/python benchmarks/bench_models.py [--threads 2] [--families llava composite]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vlmscope.models import ContrastiveAdapter, load_model
from vlmscope.models.tiny import build_tiny

PART_A = ["llava", "llava-mistral", "llava-interleave", "llava-next", "llava-onevision", "composite", "clip", "siglip"]
QUESTION = "What is the spatial relation of the red circle to the blue square? Answer with one of: left of, right of, above, below."


def images(n: int, size: int = 448) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--families", nargs="*", default=PART_A)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ims = images(4)
    with tempfile.TemporaryDirectory() as tmp:
        for fam in args.families:
            t = time.perf_counter()
            path = build_tiny(fam, Path(tmp) / fam)
            build_s = time.perf_counter() - t
            adapter = load_model(path)
            params = sum(p.numel() for p in adapter.model.parameters())
            if isinstance(adapter, ContrastiveAdapter):
                texts = [["one", "two", "three", "four"]] * 4
                s = best_of(lambda: adapter.score(ims, texts))
                print(f"{fam:18s} params {params:>9,d}  build {build_s:5.1f}s  score 4x4 {s * 1e3:7.1f} ms")
                continue
            batch = adapter.encode(ims, [QUESTION] * 4)

            def fwd() -> None:
                with torch.inference_mode():
                    adapter.model(**batch.inputs, output_hidden_states=True)

            f = best_of(fwd)
            g = best_of(lambda: adapter.generate(batch, max_new_tokens=5))
            T = batch.inputs["input_ids"].shape[1]
            print(f"{fam:18s} params {params:>9,d}  build {build_s:5.1f}s  T={T:4d}  forward(4) {f * 1e3:7.1f} ms  "
                  f"generate(4, 5 tok) {g * 1e3:7.1f} ms")
            if fam == "composite":
                train = adapter.encode(images(16), [QUESTION] * 16, answers=["left of"] * 16)
                adapter.model.train()
                opt = torch.optim.AdamW(adapter.model.parameters(), lr=1e-3)

                def step() -> None:
                    out = adapter.model(**train.inputs, labels=train.labels)
                    out.loss.backward()
                    opt.step()
                    opt.zero_grad()

                step()
                s = best_of(step, repeats=5)
                print(f"{'':18s} forward+backward+AdamW, batch 16, T={train.inputs['input_ids'].shape[1]}: {s * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
