"""Evaluation tables (overall and per group) and the original-vs-masked comparison.

Reads what ``vlmscope.evaluation`` writes per model x dataset:
``metrics.json`` (flat: ``accuracy``, ``macro_accuracy``, ``n``,
``accuracy/<group>/<value>``, ``n/<group>/<value>``,
``macro_accuracy/<group>/<value>``, ``paired/<stat>``,
``paired/<group>/<value>/<stat>``, ``count/mae`` ...; the older
``masked/<stat>`` spelling is read too) and ``per_group.csv`` (``group,
value, n, n_correct, accuracy[, macro_accuracy]``), which wins over the flat
keys when present. The chance level comes from ``metrics.json``'s ``chance``
when the evaluator wrote one, else from the dataset manifest: the mean over
the scored split's rows of 1 / (number of options), where a row without
``choices`` has as many options as its group has distinct answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from vlmscope.report.context import Context
from vlmscope.report.html import Cell, note, table
from vlmscope.report.inventory import DatasetEntry, Run
from vlmscope.report.plots import grouped_bars_plot
from vlmscope.report.readers import ReportInputError, Scalar, read_csv, read_jsonl_head, read_metrics

__all__ = ["EvalMetrics", "split_eval_metrics", "chance_by_row", "render_evals", "render_masked"]

_PAIRED_PREFIXES = ("paired/", "masked/")
_PAIRED_ORDER = ("n_pairs", "accuracy_original", "accuracy_masked", "accuracy_drop", "retain_rate", "fix_rate")
_GROUP_METRICS = ("accuracy", "n", "macro_accuracy", "n_correct")
_MAIN = ("n", "accuracy", "macro_accuracy")
_CHANCE_KEYS = ("chance", "chance_accuracy", "chance_level")
_GROUP_ORDER = ("query_type", "entity_type", "count", "seen", "relation", "color", "shape", "n_shapes", "variant")


@dataclass
class EvalMetrics:
    """One ``metrics.json`` split into its overall numbers, group tables and paired stats."""

    overall: dict[str, Scalar] = field(default_factory=dict)
    groups: dict[str, dict[str, dict[str, Scalar]]] = field(default_factory=dict)
    """group column -> value -> metric -> number."""
    paired: dict[tuple[str, str], dict[str, Scalar]] = field(default_factory=dict)
    """(group, value) -> stat; ``("", "overall")`` for the whole set."""
    scored_ids: set[str] | None = None
    """``sample_id`` of every scored row (from ``predictions.jsonl``), when known."""
    split: str | None = None
    """The split the evaluator scored (``config.json``), when known."""


def split_eval_metrics(flat: dict[str, Scalar]) -> EvalMetrics:
    """Parse the flat key grammar of ``vlmscope.evaluation.metrics.flatten_metrics``."""
    out = EvalMetrics()
    for key, value in flat.items():
        prefix = next((p for p in _PAIRED_PREFIXES if key.startswith(p)), None)
        if prefix is not None:
            rest = key[len(prefix) :].split("/")
            if len(rest) == 1:
                out.paired.setdefault(("", "overall"), {})[rest[0]] = value
            elif len(rest) >= 3:
                out.paired.setdefault((rest[0], "/".join(rest[1:-1])), {})[rest[-1]] = value
            continue
        parts = key.split("/", 2)
        if len(parts) == 3 and parts[0] in _GROUP_METRICS:
            out.groups.setdefault(parts[1], {}).setdefault(parts[2], {})[parts[0]] = value
        else:
            out.overall[key] = value
    return out


def _groups_from_csv(df: pl.DataFrame) -> dict[str, dict[str, dict[str, Scalar]]]:
    groups: dict[str, dict[str, dict[str, Scalar]]] = {}
    metrics = [c for c in df.columns if c not in ("group", "value")]
    for row in df.iter_rows(named=True):
        groups.setdefault(str(row["group"]), {})[str(row["value"])] = {m: row[m] for m in metrics}
    return groups


def chance_by_row(df: pl.DataFrame) -> pl.Series:
    """Per-row probability that a uniform guess over the options is right, shape (N,).

    ``choices`` (list) gives the options; otherwise the options are the
    distinct answers of rows with the same ``query_type`` (or of all rows).
    """
    key = "query_type" if "query_type" in df.columns else None
    distinct = (
        df.group_by(key).agg(pl.col("answer").n_unique().alias("_k"))
        if key
        else pl.DataFrame({"_k": [df["answer"].n_unique()]})
    )
    frame = df.join(distinct, on=key, how="left") if key else df.with_columns(_k=pl.lit(distinct["_k"][0]))
    k = pl.col("_k").cast(pl.Float64)
    if "choices" in df.columns and df.schema["choices"] == pl.List(pl.String):
        n_opt = pl.col("choices").list.len().cast(pl.Float64)
        k = pl.when(pl.col("choices").is_not_null() & (n_opt > 0)).then(n_opt).otherwise(k)
    return frame.select((1.0 / k).alias("chance"))["chance"]


def _scored_rows(manifest: pl.DataFrame, em: EvalMetrics) -> pl.DataFrame:
    """The manifest rows the evaluation scored: by id when known, else by split, else guessed from ``n``."""
    if em.scored_ids is not None:
        return manifest.filter(pl.col("sample_id").is_in(sorted(em.scored_ids)))
    has_split = "split" in manifest.columns
    if em.split and em.split != "all" and has_split:
        return manifest.filter(pl.col("split") == em.split)
    if em.split == "all" or not has_split or em.overall.get("n") == manifest.height:
        return manifest
    test = manifest.filter(pl.col("split") == "test")
    return test if test.height else manifest


def _chances(manifest: pl.DataFrame | None, em: EvalMetrics) -> tuple[float | None, dict[str, dict[str, float]]]:
    """Overall chance and chance per (group column, value) of ``em``'s groups, from the manifest."""
    if manifest is None or "answer" not in manifest.columns or manifest.height == 0:
        return None, {}
    rows = _scored_rows(manifest, em)
    if rows.height == 0:
        return None, {}
    rows = rows.with_columns(chance_by_row(rows).alias("_chance"))
    every = manifest.with_columns(chance_by_row(manifest).alias("_chance"))
    by_group: dict[str, dict[str, float]] = {}
    for col in sorted(set(em.groups) & set(rows.columns)):
        if isinstance(rows.schema[col], pl.List):
            continue
        # a value absent from the scored rows falls back to all rows of the dataset
        for frame in (every, rows):
            g = frame.group_by(pl.col(col).cast(pl.String).fill_null("null").alias("v")).agg(pl.col("_chance").mean())
            by_group.setdefault(col, {}).update({str(v): float(c) for v, c in g.iter_rows()})
    return float(rows["_chance"].mean()), by_group  # type: ignore[arg-type]


def _manifest(ctx: Context, entry: DatasetEntry | None) -> pl.DataFrame | None:
    if entry is None or entry.path is None or not (entry.path / "manifest.parquet").is_file():
        return None
    try:
        return pl.read_parquet(ctx.used(entry.path / "manifest.parquet"))
    except Exception as e:  # polars raises several kinds
        ctx.problem(f"{entry.path / 'manifest.parquet'}: unreadable ({e})")
        return None


def _load(ctx: Context, run: Run) -> EvalMetrics | str:
    """The run's metrics (and which rows it scored), or the problem HTML when its files are unusable."""
    key = ("eval", run.path)
    if key not in ctx.loaded:
        ctx.loaded[key] = _read_eval(ctx, run)
    return ctx.loaded[key]


def _read_eval(ctx: Context, run: Run) -> EvalMetrics | str:
    metrics = run.path / "metrics.json"
    per_group = run.path / "per_group.csv"
    try:
        em = split_eval_metrics(read_metrics(ctx.used(metrics))) if metrics.is_file() else EvalMetrics()
        if per_group.is_file():
            em.groups = _groups_from_csv(read_csv(ctx.used(per_group), required=("group", "value", "accuracy")))
        preds = run.path / "predictions.jsonl"
        if preds.is_file():
            em.scored_ids = {str(r["sample_id"]) for r in read_jsonl_head(ctx.used(preds), -1) if "sample_id" in r}
        config = run.path / "config.json"
        if config.is_file():
            split = read_metrics(ctx.used(config)).get("config/split")
            em.split = str(split) if split else None
    except ReportInputError as e:
        return ctx.problem(str(e))
    return em


def _group_order(names: set[str]) -> list[str]:
    return [g for g in _GROUP_ORDER if g in names] + sorted(names - set(_GROUP_ORDER))


def _value_key(v: str) -> tuple[int, float, str]:
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def render_evals(ctx: Context, runs: list[Run], datasets: dict[str, DatasetEntry]) -> str:
    """The overall table (model x dataset) and one per-group table per dataset x group column."""
    if not runs:
        return ""
    html: list[str] = []
    loaded: list[tuple[Run, EvalMetrics]] = []
    for r in runs:
        em = _load(ctx, r)
        if isinstance(em, str):
            html.append(em)
        else:
            loaded.append((r, em))
    manifests = {ds: _manifest(ctx, datasets.get(ds)) for ds in sorted({r.dataset for r, _ in loaded})}
    chances = [_chances(manifests[r.dataset], em) for r, em in loaded]
    extra = sorted(
        {
            k
            for _, em in loaded
            for k, v in em.overall.items()
            if k not in _MAIN and k not in _CHANCE_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    )
    rows: list[list[Cell]] = []
    for (r, em), (manifest_chance, _) in zip(loaded, chances, strict=True):
        chance = next((em.overall[k] for k in _CHANCE_KEYS if k in em.overall), manifest_chance)
        rows.append(
            [r.model, r.dataset, *(em.overall.get(k) for k in _MAIN), chance, *(em.overall.get(k) for k in extra)]
        )
    if rows:
        header = ["model", "dataset", "n", "accuracy", "macro accuracy", "chance", *extra]
        html.append(table(header, rows, caption="Overall accuracy per model x dataset"))
        html.append(
            note(
                "chance: expected accuracy of a uniform guess over each question's options "
                "(1 / number of choices; open questions: 1 / distinct answers of their query type)."
            )
        )
    for ds in sorted({r.dataset for r, _ in loaded}):
        these = [(r, em) for r, em in loaded if r.dataset == ds]
        group_chance = next(c[1] for (r, _), c in zip(loaded, chances, strict=True) if r.dataset == ds)
        for g in _group_order({g for _, em in these for g in em.groups}):
            values = sorted({v for _, em in these for v in em.groups.get(g, {})}, key=_value_key)
            header = ["value", "chance"]
            for r, _ in these:
                header += [f"{r.model}: accuracy", f"{r.model}: n"]
            grows: list[list[Cell]] = []
            for v in values:
                row: list[Cell] = [v, group_chance.get(g, {}).get(v)]
                for _, em in these:
                    m = em.groups.get(g, {}).get(v, {})
                    row += [m.get("accuracy"), m.get("n")]
                grows.append(row)
            html.append(table(header, grows, caption=f"{ds}: accuracy by {g}", max_rows=ctx.cfg.max_table_rows))
    return "".join(html)


def render_masked(ctx: Context, runs: list[Run]) -> str:
    """Original vs masked accuracy per query type, with drop, retain and fix rates."""
    html: list[str] = []
    for r in runs:
        em = _load(ctx, r)
        if isinstance(em, str) or not em.paired:  # an unreadable eval is reported by the evaluation part
            continue
        stats = sorted(
            {s for v in em.paired.values() for s in v},
            key=lambda s: (s not in _PAIRED_ORDER, _PAIRED_ORDER.index(s) if s in _PAIRED_ORDER else 0, s),
        )
        keys = sorted(em.paired, key=lambda k: (k != ("", "overall"), k[0], _value_key(k[1])))
        rows: list[list[Cell]] = [
            ["all" if g == "" else g, v, *(em.paired[(g, v)].get(s) for s in stats)] for g, v in keys
        ]
        html.append(
            table(
                ["group", "value", *stats],
                rows,
                caption=f"{r.model} on {r.dataset}: original vs masked (paired)",
                max_rows=ctx.cfg.max_table_rows,
            )
        )
        by_group = [k for k in keys if k[0] == "query_type"] or [k for k in keys if k[0]] or keys
        labels = [k[1] for k in by_group]
        orig = [_num(em.paired[k].get("accuracy_original")) for k in by_group]
        masked = [_num(em.paired[k].get("accuracy_masked")) for k in by_group]
        png = grouped_bars_plot(
            labels,
            [("original", orig), ("masked", masked)],
            title=f"{r.model} on {r.dataset}: accuracy original vs masked",
            ylabel="accuracy",
            dpi=ctx.cfg.dpi,
        )
        html.append(
            ctx.picture(
                png,
                "masked",
                r.model,
                r.dataset,
                alt=f"original vs masked accuracy, {r.dataset}",
                caption="Accuracy on the original images and on their masked copies, per query type.",
            )
        )
    if not html:
        return ""
    html.append(
        note(
            "drop = original − masked accuracy; retain rate = P(correct on masked | correct on original); "
            "fix rate = P(correct on masked | wrong on original); over pairs present in both variants."
        )
    )
    return "".join(html)


def _num(v: Scalar) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")
