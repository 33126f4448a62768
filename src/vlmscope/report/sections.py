"""One HTML section per study, assembled from the parts that exist.

A part a study expects but that is missing says "Not run" with where it would
have come from; a part the study does not expect shows only when present. The
page therefore has the same outline whatever ran, and never breaks on a
missing artifact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vlmscope.report.comparison import ComparisonRow
from vlmscope.report.context import Context
from vlmscope.report.html import Cell, esc, not_run, table
from vlmscope.report.inventory import Inventory
from vlmscope.report.parts.attention import render_attention
from vlmscope.report.parts.evaluation import render_evals, render_masked
from vlmscope.report.parts.lens import render_ffn, render_logit_lens
from vlmscope.report.parts.output_layer import render_output_layer
from vlmscope.report.parts.probes import render_probes
from vlmscope.report.parts.published import TITLE as PUBLISHED_TITLE
from vlmscope.report.parts.published import render_published
from vlmscope.report.parts.training import render_training
from vlmscope.report.studies import StudyContent, model_study

__all__ = ["Part", "PARTS", "render_study", "render_datasets", "render_other_models", "study_anchor"]


@dataclass(frozen=True)
class Part:
    kind: str
    title: str
    missing: str
    """Why it says "not run": the artifact path it would have been read from."""
    render: Callable[[Context, StudyContent, Inventory], str]


PARTS: tuple[Part, ...] = (
    Part(
        "eval",
        "Evaluation",
        "no evaluation found under evals/<model>/<dataset>/ for this study's datasets.",
        lambda ctx, c, inv: render_evals(ctx, c.evals, inv.datasets),
    ),
    Part(
        "masked",
        "Original vs masked",
        "no original/masked comparison (paired/* keys in evals/<model>/<dataset>/"
        "metrics.json) for this study's datasets.",
        lambda ctx, c, inv: render_masked(ctx, c.evals),
    ),
    Part(
        "probe",
        "Per-layer probes",
        "no probe found under probes/<model>/<dataset>/ (per_layer.csv) for this study's datasets.",
        lambda ctx, c, inv: render_probes(ctx, c.probes),
    ),
    Part(
        "logit",
        "Logit lens",
        "no logit-lens summary under lens/<model>/<dataset>/logit/ for this study's datasets.",
        lambda ctx, c, inv: render_logit_lens(ctx, c.logit_lens),
    ),
    Part(
        "ffn",
        "FFN neurons vs random neurons",
        "no FFN analysis under lens/<model>/<dataset>/ffn/.",
        lambda ctx, c, inv: render_ffn(ctx, c.ffn),
    ),
    Part(
        "attention",
        "Attention over the image",
        "no activation store with an 'attention' variable under "
        "activations/<model>/<dataset>.zarr for this study's datasets.",
        lambda ctx, c, inv: render_attention(ctx, c.stores, inv.datasets),
    ),
    Part(
        "output_layer",
        "Output-layer fine-tuning",
        "no output-layer fine-tuning under output_layer/<model>/<dataset>/ for this study's datasets.",
        lambda ctx, c, inv: render_output_layer(ctx, c.output_layer),
    ),
    Part(
        "training",
        "Training",
        "no trained checkpoint with metrics.json under models/ for this study.",
        lambda ctx, c, inv: render_training(ctx, c.models),
    ),
)


def study_anchor(c: StudyContent) -> str:
    return f"study-{c.study.key}"


def _datasets_line(c: StudyContent, inv: Inventory) -> str:
    if not c.datasets:
        gens = ", ".join(sorted(c.study.generators))
        if not gens:
            return (
                "<p>This study reads trained checkpoints under models/.</p>" if "training" in c.study.expected else ""
            )
        return f"<p>No dataset of generator {esc(gens)} under datasets/.</p>"
    items = []
    for name in c.datasets:
        d = inv.datasets[name]
        bits = [d.generator or "generator unknown"]
        if d.n_samples is not None:
            bits.append(f"{d.n_samples} samples")
        items.append(f"<code>{esc(name)}</code> ({esc(', '.join(bits))})")
    return f"<p>Datasets: {', '.join(items)}.</p>"


def render_study(
    ctx: Context, c: StudyContent, inv: Inventory, *, published: Sequence[ComparisonRow] = ()
) -> tuple[str, dict[str, int]]:
    """The study's ``<section>`` and its counters for ``report.json``.

    ``published`` (rows of every study; this one's are picked) ends the
    section with the published figures next to this run's; it is shown even
    when nothing ran and never counts as a part that ran.
    """
    n_figs = len(ctx.images)
    body = [
        f'<section id="{study_anchor(c)}">',
        f"<h2>{esc(c.study.title)}</h2>",
        f'<p class="lead">{esc(c.study.blurb)}</p>',
        _datasets_line(c, inv),
    ]
    shown = 0
    if c.empty:
        body.append(not_run("no results for this study under the artifacts root."))
    for part in PARTS:
        expected = part.kind in c.study.expected
        if c.empty and expected:
            continue
        html = part.render(ctx, c, inv)
        if html:
            shown += 1
            body += [f"<h3>{esc(part.title)}</h3>", html]
        elif expected:
            body += [f"<h3>{esc(part.title)}</h3>", not_run(part.missing)]
    comparison = render_published(c.study.key, published)
    if comparison:
        body += [f"<h3>{esc(PUBLISHED_TITLE)}</h3>", comparison]
    body.append("</section>")
    counts = {
        "run": int(shown > 0),
        "n_parts": shown,
        "n_figures": len(ctx.images) - n_figs,
        "n_datasets": len(c.datasets),
    }
    return "\n".join(body), counts


def render_datasets(inv: Inventory, studies: list[StudyContent]) -> str:
    """Overview table: every dataset the artifacts mention, its generator and study."""
    if not inv.datasets:
        return not_run("no dataset under datasets/.")
    study_of = {}
    for c in studies:
        for name in c.datasets:
            study_of.setdefault(name, []).append(c.study.title)
    rows: list[list[Cell]] = [
        [
            name,
            d.generator or "unknown",
            ", ".join(study_of.get(name, [])),
            d.n_samples,
            (d.fingerprint or "")[:12] or None,
            "yes" if d.path is not None else "no (only results refer to it)",
        ]
        for name, d in inv.datasets.items()
    ]
    return table(
        ["dataset", "generator", "study", "samples", "fingerprint", "directory present"], rows, caption="Datasets"
    )


def render_other_models(ctx: Context, inv: Inventory) -> str:
    """Trained checkpoints no study claims (e.g. the embedded default model), or "" when none."""
    others = [m for m in inv.models if model_study(m) is None]
    if not others:
        return ""
    return '<h2 id="trained-models">Trained models</h2>' + render_training(ctx, others)
