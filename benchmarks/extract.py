"""Extraction benchmark: vlmscope vs the original studies' naive loop vs a bare forward.

Prints tables, asserts nothing. On CPU (the default) it builds a tiny and a
mid-size random LLaVA-style model and a synthetic spatial dataset, then
measures, per model:

  (a) naive: the original studies' loop: batch 1, ``output_hidden_states``,
      the last-token state of every layer kept in RAM, one ``np.savez`` at the end;
  (b) vlmscope ``extract`` at batch 16 (positions ``last``, float16 store);
  (c) a bare batched forward at batch 16 with no capture: ``c-load`` loads,
      encodes and runs like a user loop would; ``c-fwd`` only runs the forward
      over batches encoded beforehand (pure model time).

plus peak RSS of (b) for N and 4N samples (separate processes, ru_maxrss;
shards of 64 so 4N writes several), store size vs the float32 ``.npz``, the
time to read one layer for all samples vs the whole store on a
LLaVA-7B-shaped synthetic store, and store file counts.

    python benchmarks/extract.py                 # CPU, a few minutes on 2 cores
    python benchmarks/extract.py --n 256 --gpu   # LLaVA-1.5-7B config, random bf16 weights, batch 32, CUDA
    python benchmarks/extract.py --check-gpu-config   # build the 7B model on the meta device, print its size

Goals: (b) >= 5x (a); (b) within 15% of (c); RSS(4N) within 10% of RSS(N);
float16 store <= 55% of the .npz; <= 100 files per store.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


# -- models ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A LLaVA-1.5-style model: CLIP vision tower + projector + Llama LM."""

    name: str
    text: dict[str, int]
    vision: dict[str, int]
    vocab_size: int | None = None
    """LM vocabulary (None: the tokenizer's size)."""
    extra: dict[str, Any] = field(default_factory=dict)


SPECS = {
    "tiny": None,  # vlmscope's own tiny llava (build_tiny)
    "mid": ModelSpec(
        "mid",
        text=dict(
            hidden_size=384, num_hidden_layers=6, num_attention_heads=6, num_key_value_heads=6, intermediate_size=1536
        ),
        vision=dict(
            image_size=112,
            patch_size=14,
            hidden_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=1024,
        ),
    ),  # fmt: skip
    "llava-1.5-7b": ModelSpec(
        "llava-1.5-7b",
        text=dict(
            hidden_size=4096,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            intermediate_size=11008,
        ),
        vision=dict(
            image_size=336,
            patch_size=14,
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
        ),
        vocab_size=32064,
        extra=dict(rms_norm_eps=1e-5, max_position_embeddings=4096),
    ),  # fmt: skip
}


def _llava_parts(spec: ModelSpec) -> tuple[Any, Any]:
    """(LlavaConfig, LlavaProcessor) of ``spec`` with vlmscope's offline tokenizer."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaProcessor

    from vlmscope.models.families.llava import CHAT_WORDS, LLAVA_CHAT_TEMPLATE, tiny_clip_image_processor
    from vlmscope.models.tokenizer import build_tokenizer

    tok = build_tokenizer(["<image>"], chat_template=LLAVA_CHAT_TEMPLATE, extra_words=CHAT_WORDS)
    v = dict(spec.vision)
    image_size, patch = v.pop("image_size"), v.pop("patch_size")
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(image_size=image_size, patch_size=patch, projection_dim=v["hidden_size"], **v),
        text_config=LlamaConfig(
            vocab_size=spec.vocab_size or len(tok),
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            tie_word_embeddings=False,
            **spec.text,
            **spec.extra,
        ),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    processor = LlavaProcessor(
        image_processor=tiny_clip_image_processor(image_size),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    return config, processor


def build_checkpoint(name: str, out: Path) -> Path:
    """A random checkpoint of ``name`` on disk (CPU sizes), loadable with ``load_model``."""
    import torch
    from transformers import LlavaForConditionalGeneration

    from vlmscope.models.tiny import build_tiny, write_sidecar

    if SPECS[name] is None:
        return build_tiny("llava", out, seed=0)
    config, processor = _llava_parts(SPECS[name])
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    write_sidecar(out, "llava")
    return out


def build_gpu_adapter(name: str, device: str = "cuda") -> Any:
    """``name`` with random bf16 weights created directly on ``device`` (no 13 GB checkpoint on disk)."""
    import torch
    from transformers import LlavaForConditionalGeneration

    from vlmscope.models import ADAPTERS, list_families

    list_families()  # registers the families
    config, processor = _llava_parts(SPECS[name])
    processor.tokenizer.padding_side = "left"
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.eval()
    return ADAPTERS.get("llava")(model, processor, source=f"random:{name}")


def check_gpu_config() -> None:
    """Build the 7B model on the meta device: proves the config is LLaVA-1.5-7B-sized without a GPU."""
    import torch
    from transformers import LlavaForConditionalGeneration

    config, _ = _llava_parts(SPECS["llava-1.5-7b"])
    with torch.device("meta"):
        model = LlavaForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    print(f"llava-1.5-7b config: {n / 1e9:.2f} B parameters, {config.text_config.num_hidden_layers} LM layers, "
          f"hidden {config.text_config.hidden_size}, {config.image_seq_length} image tokens")  # fmt: skip


# -- the three ways to get activations ------------------------------------------------------


def _table(dataset: Path) -> Any:
    from vlmscope.activations.loader import SampleTable
    from vlmscope.data.manifest import read_manifest

    df = read_manifest(dataset)
    return SampleTable(dataset, df["sample_id"].to_list(), df["image"].to_list(), df["prompt"].to_list())


def _sync(adapter: Any) -> None:
    import torch

    if adapter.device.type == "cuda":
        torch.cuda.synchronize()


def naive_loop(adapter: Any, dataset: Path, out_npz: Path) -> float:
    """(a): one sample at a time, every hidden state returned, last token kept, one savez at the end."""
    import torch

    table = _table(dataset)
    t0 = time.perf_counter()
    states = []
    for row in range(len(table.sample_ids)):
        enc = adapter.encode([table.image(row)], [table.prompts[row]]).to(adapter.device)
        with torch.no_grad():
            out = adapter.model(**enc.inputs, output_hidden_states=True)
        states.append(np.stack([h[0, -1].float().cpu().numpy() for h in out.hidden_states]))
    np.savez(out_npz, hidden=np.stack(states))
    _sync(adapter)
    return time.perf_counter() - t0


def bare_forward(adapter: Any, dataset: Path, batch: int, *, preencoded: bool) -> float:
    """(c): batched forward, no capture; with ``preencoded`` only the forward is timed."""
    import torch

    from vlmscope.activations.capture import forward_kwargs

    table = _table(dataset)
    n = len(table.sample_ids)
    kw = forward_kwargs(adapter.model)

    def encode(lo: int) -> Any:
        rows = range(lo, min(lo + batch, n))
        return adapter.encode([table.image(r) for r in rows], [table.prompts[r] for r in rows])

    batches = [encode(lo) for lo in range(0, n, batch)] if preencoded else None
    _sync(adapter)
    t0 = time.perf_counter()
    for i, lo in enumerate(range(0, n, batch)):
        enc = (batches[i] if batches is not None else encode(lo)).to(adapter.device)
        with torch.inference_mode():
            adapter.model(**enc.inputs, **kw)
    _sync(adapter)
    return time.perf_counter() - t0


def vlmscope_run(adapter: Any, model: str, dataset: Path, out: Path, batch: int, *, shard: int = 1024,
                 dtype: str = "float16") -> float:  # fmt: skip
    """(b): ``vlmscope.activations.extract`` with an already-loaded adapter."""
    from vlmscope.activations.extract import ExtractConfig, extract

    cfg = ExtractConfig(batch_size=batch, dtype=dtype, shard_samples=shard, device=str(adapter.device.type))
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    extract(cfg, model, dataset, out, adapter=adapter)
    _sync(adapter)
    return time.perf_counter() - t0


def _warmup(adapter: Any, dataset: Path, batch: int) -> None:
    """First forwards and first imports (zarr, xarray) are slow once; keep them out of the timings."""
    import torch
    import xarray  # noqa: F401
    import zarr  # noqa: F401


    table = _table(dataset)
    for b in (1, batch):
        rows = range(min(b, len(table.sample_ids)))
        enc = adapter.encode([table.image(r) for r in rows], [table.prompts[r] for r in rows]).to(adapter.device)
        with torch.inference_mode():
            adapter.model(**enc.inputs, output_hidden_states=True)


# -- measurements --------------------------------------------------------------------------


def _du(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _rss_child(args: argparse.Namespace) -> None:
    """Subprocess entry: one run of (b) or (a); prints peak RSS (MiB) as JSON.

    ``peak_rss_mib`` is the process's ru_maxrss; ``run_growth_mib`` the peak
    of RSS sampled every 2 ms during the run minus RSS just before it (what
    the extraction itself adds on top of the loaded model).
    """
    import threading

    from vlmscope.models import load_model

    adapter = load_model(args.model)
    dataset = Path(args.dataset)
    _warmup(adapter, dataset, args.batch)
    base = _current_rss_mib()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.002):
            peak[0] = max(peak[0], _current_rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if args.rss_child == "vlmscope":
        secs = vlmscope_run(adapter, args.model, dataset, Path(args.out), args.batch, shard=args.shard)
    else:
        secs = naive_loop(adapter, dataset, Path(args.out))
    stop.set()
    sampler.join()
    peak[0] = max(peak[0], _current_rss_mib())
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mib": maxrss, "run_growth_mib": peak[0] - base, "seconds": secs}))


def _rss(kind: str, model: Path, dataset: Path, out: Path, batch: int, shard: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--rss-child", kind, "--model", str(model), "--dataset", str(dataset),
           "--out", str(out), "--batch", str(batch), "--shard", str(shard)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def _dataset(root: Path, n: int) -> Path:
    from vlmscope.data.generators import generate_dataset

    out = root / f"spatial-{n}"
    if not out.exists():
        generate_dataset("spatial", out, n=n, seed=0)
    return out


def _print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, r in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))


def throughput(
    name: str, adapter: Any, model: str, dataset: Path, work: Path, batch: int, repeat: int = 2,
    dtype: str = "float16",
) -> dict[str, Any]:  # fmt: skip
    n = len(_table(dataset).sample_ids)
    _warmup(adapter, dataset, batch)
    vlmscope_run(adapter, model, _dataset(work, batch), work / "warmup.zarr", batch)
    npz = work / f"{name}-naive.npz"
    store = work / f"{name}.zarr"
    # best of `repeat` runs each, interleaved, so a busy neighbour on a shared machine hurts all alike
    t_a = t_b = t_c_load = t_c_fwd = float("inf")
    for _ in range(repeat):
        t_a = min(t_a, naive_loop(adapter, dataset, npz))
        t_b = min(t_b, vlmscope_run(adapter, model, dataset, store, batch, dtype=dtype))
        t_c_load = min(t_c_load, bare_forward(adapter, dataset, batch, preencoded=False))
        t_c_fwd = min(t_c_fwd, bare_forward(adapter, dataset, batch, preencoded=True))
    from vlmscope import open_activations

    ref = np.load(npz)["hidden"]
    got = open_activations(store).hidden.values.astype(np.float32)
    return {
        "model": name, "dtype": dtype, "n": n, "a": n / t_a, "b": n / t_b, "c_load": n / t_c_load, "c_fwd": n / t_c_fwd,
        "store_bytes": _du(store), "npz_bytes": _du(npz), "files": _files(store),
        # transformers' last hidden state is after the final norm, vlmscope's before it: compare the others
        "max_abs_diff_vs_naive": float(np.abs(got[:, :-1] - ref[:, :-1]).max()),
    }  # fmt: skip


def read_timing(work: Path, n: int = 2048, layers: int = 33, dim: int = 1024) -> dict[str, float]:
    """A LLaVA-7B-shaped (33 layers) synthetic float16 store: one layer vs everything."""
    import xarray as xr

    from vlmscope import open_activations
    from vlmscope.activations.store import write_activations

    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {
            "hidden": (
                ("sample", "layer", "dim"),
                rng.standard_normal((n, layers, dim), dtype=np.float32).astype(np.float16),
            )
        },
        coords={"sample": np.array([f"s{i}" for i in range(n)], dtype=object), "layer": np.arange(layers)},
    )
    path = work / "read.zarr"
    t0 = time.perf_counter()
    write_activations(path, ds, shard_samples=1024)
    t_write = time.perf_counter() - t0
    del ds
    t0 = time.perf_counter()
    one = open_activations(path).hidden.sel(layer=layers // 2).values
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = open_activations(path).hidden.values
    t_all = time.perf_counter() - t0
    assert one.shape == (n, dim) and full.shape == (n, layers, dim)
    return {"n": n, "layers": layers, "dim": dim, "write_s": t_write, "one_layer_s": t_one, "all_s": t_all,
            "bytes": _du(path), "files": _files(path)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=None, help="samples per throughput run (CPU: tiny 512, mid 64; GPU 256)")
    p.add_argument("--rss-n", type=int, default=256, help="N of the RSS runs (4N also runs)")
    p.add_argument("--repeat", type=int, default=2, help="runs per throughput measurement (best is kept)")
    p.add_argument("--gpu", action="store_true", help="LLaVA-1.5-7B config, random bf16 weights, batch 32 on CUDA")
    p.add_argument("--check-gpu-config", action="store_true")
    p.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temp dir)")
    p.add_argument("--rss-child", choices=["vlmscope", "naive"], help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=16, help=argparse.SUPPRESS)
    p.add_argument("--shard", type=int, default=64, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_child:
        _rss_child(args)
        return
    if args.check_gpu_config:
        check_gpu_config()
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="vlmscope-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run_gpu(args, work) if args.gpu else run_cpu(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _throughput_table(results: list[dict[str, Any]], batch: int) -> None:
    rows = []
    for r in results:
        rows.append([
            r["model"], r["n"], f"{r['a']:.1f}", f"{r['b']:.1f}", f"{r['c_load']:.1f}", f"{r['c_fwd']:.1f}",
            f"{r['b'] / r['a']:.1f}x", f"{r['b'] / r['c_load']:.2f}", f"{r['b'] / r['c_fwd']:.2f}",
            f"{r['store_bytes'] / r['npz_bytes']:.0%}", r["files"], f"{r['max_abs_diff_vs_naive']:.2g}",
        ])  # fmt: skip
    _print_table(
        f"throughput, samples/s ((b) and (c) at batch {batch}; "
        f"store {results[0]['dtype']}, positions last, all layers)",
        ["model", "N", "(a) naive", "(b) vlmscope", "(c) load+fwd", "(c) fwd only", "b/a", "b/c-load", "b/c-fwd",
         "store/npz", "files", "max|b-a|"],
        rows,
    )  # fmt: skip


def run_cpu(args: argparse.Namespace, work: Path) -> None:
    from vlmscope.models import load_model

    sizes = {"tiny": args.n or 512, "mid": args.n or 64}
    print(f"CPU benchmark: torch threads {__import__('torch').get_num_threads()}, work dir {work}")
    results = []
    for name, n in sizes.items():
        dataset = _dataset(work, n)
        ckpt = build_checkpoint(name, work / f"model-{name}")
        adapter = load_model(ckpt)
        results.append(throughput(name, adapter, str(ckpt), dataset, work, 16, args.repeat))
        del adapter
    _throughput_table(results, 16)

    rss_rows = []
    for model, kind in (("tiny", "vlmscope"), ("tiny", "naive"), ("mid", "vlmscope")):
        n_rss = args.rss_n if model == "tiny" else args.rss_n // 4
        vals = []
        for n_i in (n_rss, 4 * n_rss):
            ds = _dataset(work, n_i)
            out = work / (f"rss-{model}-{kind}-{n_i}" + ("" if kind == "vlmscope" else ".npz"))
            vals.append(_rss(kind, work / f"model-{model}", ds, out, 16, 64))
        a, b = vals
        rss_rows.append([
            model, kind, f"{n_rss} / {4 * n_rss}", f"{a['peak_rss_mib']:.0f}", f"{b['peak_rss_mib']:.0f}",
            f"{b['peak_rss_mib'] / a['peak_rss_mib'] - 1:+.1%}",
            f"{a['run_growth_mib']:.1f}", f"{b['run_growth_mib']:.1f}",
        ])  # fmt: skip
    _print_table(
        "peak RSS (MiB), separate processes (vlmscope: shards of 64 samples)",
        ["model", "run", "N / 4N", "maxrss N", "maxrss 4N", "4N vs N", "run growth N", "run growth 4N"],
        rss_rows,
    )
    rt = read_timing(work)
    _print_table(
        f"reading a float16 store of {rt['n']} samples x {rt['layers']} layers x {rt['dim']} dims "
        f"({rt['bytes'] / 2**20:.0f} MiB, {rt['files']} files, written in {rt['write_s']:.1f} s)",
        ["read", "seconds"],
        [["one layer, all samples", f"{rt['one_layer_s']:.3f}"], ["whole store", f"{rt['all_s']:.3f}"],
         ["ratio", f"{rt['all_s'] / rt['one_layer_s']:.1f}x"]],
    )  # fmt: skip


def run_gpu(args: argparse.Namespace, work: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device")
    n = args.n or 256
    batch = 32
    print(f"GPU benchmark on {torch.cuda.get_device_name()}: llava-1.5-7b config, random bf16 weights, batch {batch}")
    dataset = _dataset(work, n)
    adapter = build_gpu_adapter("llava-1.5-7b")
    torch.cuda.reset_peak_memory_stats()
    # bfloat16 store: random 7B activations are not checked against float16's range here
    result = throughput("llava-1.5-7b", adapter, "random:llava-1.5-7b", dataset, work, batch, args.repeat, "bfloat16")
    _throughput_table([result], batch)
    print(f"\npeak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
