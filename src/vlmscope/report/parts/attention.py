"""Attention heatmaps over example images, from an activation store.

The store's ``attention`` variable, dims ``(sample, layer, stat, patch)``,
holds the last prompt token's attention to each image patch reduced over
heads (``stat`` = mean / max), patches in row-major grid order; it is NaN at
layer 0 (the embedding output), which is therefore not drawn. A patch vector
becomes a (rows, cols) map by the grid the extractor records (attrs
``patch_grid``, or the ``patch_row`` / ``patch_col`` coordinates); failing
that, by the factorisation of the patch count closest to the image's aspect
ratio (a square grid for a square image). Only the example samples are read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from vlmscope.errors import VlmscopeError
from vlmscope.report.context import Context
from vlmscope.report.html import note
from vlmscope.report.inventory import DatasetEntry, Run
from vlmscope.report.parts.lens import pick_layers
from vlmscope.report.plots import attention_overlay_plot, layer_lines_plot

__all__ = ["infer_grid", "patch_map", "render_attention"]

_THUMB = 160


def infer_grid(n_patches: int, aspect: float = 1.0) -> tuple[int, int]:
    """(rows, cols) with rows * cols == n_patches and cols / rows closest to ``aspect`` (W / H)."""
    if n_patches <= 0:
        raise ValueError(f"a patch grid needs at least one patch, got {n_patches}")
    best = (1, n_patches)
    for rows in range(1, int(math.isqrt(n_patches)) + 1):
        if n_patches % rows:
            continue
        for r, c in ((rows, n_patches // rows), (n_patches // rows, rows)):
            if abs(math.log((c / r) / aspect)) < abs(math.log((best[1] / best[0]) / aspect)):
                best = (r, c)
    return best


def _recorded_grid(ds: Any) -> tuple[int, int] | None:
    """The (rows, cols) the extractor recorded: attrs ``patch_grid``, else the ``patch_row``/``patch_col`` coords."""
    g = ds.attrs.get("patch_grid")
    if isinstance(g, (list, tuple)) and len(g) == 2 and all(isinstance(x, (int, np.integer)) and x > 0 for x in g):
        return int(g[0]), int(g[1])
    if "patch_row" in ds.coords and "patch_col" in ds.coords and ds.sizes.get("patch", 0):
        return int(np.max(ds["patch_row"].values)) + 1, int(np.max(ds["patch_col"].values)) + 1
    return None


def patch_map(values: np.ndarray, grid: tuple[int, int] | None, aspect: float) -> np.ndarray:
    """A patch vector (P,) -> (rows, cols) map; trailing NaN (padding patches) are dropped first."""
    finite = np.flatnonzero(np.isfinite(values))
    n = int(finite[-1]) + 1 if finite.size else values.size
    if grid is not None and grid[0] * grid[1] <= values.size:
        n = grid[0] * grid[1]
    else:
        grid = infer_grid(n, aspect)
    return values[:n].reshape(grid)


def _images(ctx: Context, entry: DatasetEntry | None, ids: list[str]) -> dict[str, np.ndarray]:
    """Thumbnails (H, W, 3) uint8 of the samples ``ids`` whose images exist."""
    from PIL import Image

    if entry is None or entry.path is None:
        return {}
    mpath = entry.path / "manifest.parquet"
    if not mpath.is_file():
        return {}
    try:
        manifest = pl.read_parquet(ctx.used(mpath), columns=["sample_id", "image"])
    except Exception as e:  # polars raises several kinds
        ctx.problem(f"{mpath}: unreadable ({e})")
        return {}
    out = {}
    for sid, rel in manifest.filter(pl.col("sample_id").is_in(ids)).iter_rows():
        p = entry.path / rel
        if ".." in Path(rel).parts or not p.is_file():
            continue
        with Image.open(ctx.used(p)) as im:
            im = im.convert("RGB")
            im.thumbnail((_THUMB, _THUMB))
            out[sid] = np.asarray(im)
    return out


def _select_samples(ds: Any, k: int) -> list[int]:
    """Indices of ``k`` test-split samples (all splits when none is test), one per image when possible.

    Datasets ask several questions about one image; showing the same picture
    ``k`` times would hide how attention differs between images.
    """
    idx = list(range(ds.sizes["sample"]))
    if "split" in ds.coords:
        test = [i for i, s in enumerate(ds["split"].values.tolist()) if s == "test"]
        idx = test or idx
    if "image" not in ds.coords:
        return idx[:k]
    images = ds["image"].values.tolist()
    seen: set[str] = set()
    first = []
    for i in idx:
        if images[i] not in seen:
            seen.add(images[i])
            first.append(i)
    rest = [i for i in idx if i not in set(first)]
    return sorted((first + rest)[:k])


def _overlays(ctx: Context, run: Run, ds: Any, entry: DatasetEntry | None) -> str:
    """One figure: a row per example sample, its image then its maps at the chosen layers."""
    att = ds["attention"]
    stat = ctx.cfg.attention_stat
    samples = _select_samples(ds, ctx.cfg.attention_examples)
    if not samples:
        return ""
    sub = att.isel(sample=samples)
    if "stat" in sub.dims:
        sub = sub.sel(stat=stat)
    full = np.asarray(sub.transpose("sample", "layer", "patch").values, dtype=np.float64)  # (S, L, P)
    # layers without any attention (e.g. layer 0 = embedding output, stored as NaN) are not drawn
    have = [i for i in range(full.shape[1]) if np.isfinite(full[:, i]).any()]
    if not have:
        return note(f"{run.model}/{run.dataset}: the example samples have no finite attention value.")
    keep = pick_layers(have, ctx.cfg.attention_layers)
    all_layers = att["layer"].values.tolist()
    col_titles = [f"layer {all_layers[i]}" for i in keep]
    values = full[:, keep]  # (S, K, P)
    ids = [str(s) for s in ds["sample"].values[samples].tolist()]
    thumbs = _images(ctx, entry, ids)
    maps, imgs = [], []
    for j, sid in enumerate(ids):
        img = thumbs.get(sid)
        aspect = img.shape[1] / img.shape[0] if img is not None else 1.0
        grid = _recorded_grid(ds)
        per_layer = [patch_map(values[j, k], grid, aspect) for k in range(len(keep))]
        shape = max(m.shape for m in per_layer)
        maps.append(np.stack([m if m.shape == shape else np.full(shape, np.nan) for m in per_layer]))
        imgs.append(img if img is not None else np.full((shape[0] * 16, shape[1] * 16, 3), 235, np.uint8))
    html = []
    title = f"{run.model} on {run.dataset}: last-token attention to image patches ({stat} over heads)"
    caption = (
        f"Attention of the last prompt token to the image patches ({stat} over heads), "
        "each map min-max scaled; brighter = more attention."
    )
    # (images, maps, row titles, picture-name suffix, alt) per figure
    if len({m.shape[1:] for m in maps}) > 1:  # samples with different grids: one figure each
        figures = [
            ([imgs[j]], maps[j][None], [ids[j]], (ids[j],), f"attention overlay of {ids[j]}") for j in range(len(maps))
        ]
    else:
        figures = [(imgs, np.stack(maps), ids, (), f"attention overlays, {run.model} on {run.dataset}")]
    for fig_imgs, fig_maps, rows, suffix, alt in figures:
        png = attention_overlay_plot(
            fig_imgs, fig_maps, row_titles=rows, col_titles=col_titles, title=title, dpi=ctx.cfg.dpi
        )
        html.append(ctx.picture(png, "attention", run.model, run.dataset, *suffix, alt=alt, caption=caption))
    if len(thumbs) < len(ids):
        html.append(
            note(
                f"{len(ids) - len(thumbs)} image(s) not found under the dataset directory: "
                "their maps are drawn on a grey canvas."
            )
        )
    return "".join(html)


def _entropy(ctx: Context, run: Run, ds: Any) -> str:
    """Mean (and +- std) over samples of the attention entropy per layer."""
    if "attention_entropy" not in ds.data_vars:
        return ""
    var = ds["attention_entropy"]
    ent = np.asarray(var.transpose("sample", "layer").values, dtype=np.float64)  # (N, L)
    lay = np.asarray(var["layer"].values, dtype=np.float64)
    have = np.isfinite(ent).any(axis=0)  # layers with attention (not the embedding layer)
    ent, lay = ent[:, have], lay[have]
    if ent.size == 0:
        return ""
    mean, std = np.nanmean(ent, axis=0), np.nanstd(ent, axis=0)
    png = layer_lines_plot(
        lay,
        [
            (
                "entropy (nats)",
                [("mean", mean, "-"), ("mean + std", mean + std, ":"), ("mean − std", mean - std, ":")],
                False,
            )
        ],
        title=f"{run.model} on {run.dataset}: entropy of attention over image patches",
        dpi=ctx.cfg.dpi,
    )
    return ctx.picture(
        png,
        "attention-entropy",
        run.model,
        run.dataset,
        alt=f"attention entropy per layer, {run.model} on {run.dataset}",
        caption="Entropy of the last token's attention over the image patches per layer, "
        f"over {ent.shape[0]} samples: low = focused.",
    )


def _one_store(ctx: Context, run: Run, entry: DatasetEntry | None) -> str:
    from vlmscope import open_activations

    if (run.path / "zarr.json").is_file():
        ctx.used(run.path / "zarr.json")
    try:
        ds = open_activations(run.path)
    except (VlmscopeError, OSError, ValueError, KeyError) as e:
        return ctx.problem(f"{run.path}: cannot open the activation store ({e})")
    if "attention" not in ds.data_vars:
        return ""
    att = ds["attention"]
    missing = [d for d in ("sample", "layer", "patch") if d not in att.dims]
    if missing:
        return ctx.problem(f"{run.path}: 'attention' has dims {att.dims}, lacks {missing}")
    stat = ctx.cfg.attention_stat
    if "stat" in att.dims and stat not in att["stat"].values.tolist():
        return ctx.problem(
            f"{run.path}: attention has stats {att['stat'].values.tolist()}, not {stat!r} (set --attention-stat)"
        )
    return _overlays(ctx, run, ds, entry) + _entropy(ctx, run, ds)


def render_attention(ctx: Context, runs: list[Run], datasets: dict[str, DatasetEntry]) -> str:
    """Overlays for every store of the study that captured attention; "" when none did."""
    html = [_one_store(ctx, r, datasets.get(r.dataset)) for r in runs]
    if not any(html):
        return ""
    return "".join(html)
