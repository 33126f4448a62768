"""`vlmscope import FORMAT SRC... --images DIR --out DATASET`: real data -> a dataset directory.

Each command builds its format's config from the options and calls the
library importer; the import report (kept vs dropped rows, by reason) is
printed and also saved as ``DATASET/import_report.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

__all__ = ["app"]

app = typer.Typer(
    help="Import real datasets (VRD, LLaVA JSON, Pixmo-Count, CountBenchQA, counting-study QA) "
    "into the standard dataset directory.",
    no_args_is_help=True,
)

Sources = Annotated[list[Path], typer.Argument(help="Source annotation file(s) or folder(s).", show_default=False)]
Images = Annotated[Path, typer.Option("--images", help="Folder the source image paths are relative to.")]
Out = Annotated[Path, typer.Option("--out", help="Dataset directory to write (replaced atomically).")]
Split = Annotated[
    str | None, typer.Option("--split", help="train|valid|test for all rows (default: from the file/folder name).")
]
Copy = Annotated[
    bool, typer.Option("--copy/--link", help="Copy images instead of hard-linking them (links fall back to copies).")
]


def _mode(copy: bool) -> Literal["link", "copy"]:
    return "copy" if copy else "link"


def _done(report: object, out: Path) -> None:
    typer.echo(report.summary())  # type: ignore[attr-defined]
    typer.echo(f"wrote {out}")


@app.command("vrd")
def vrd(
    sources: Sources,
    images: Images,
    out: Out,
    relation: Annotated[
        list[str] | None,
        typer.Option("--relation", help="Relation to keep (repeat); default: left of, right of, above, below."),
    ] = None,
    with_depth: Annotated[bool, typer.Option("--with-depth", help="Also keep 'in front of' and 'behind'.")] = False,
    keep_same_family: Annotated[
        bool, typer.Option("--keep-same-family", help="Keep pairs like 'truck' / 'truck 2' (dropped by default).")
    ] = False,
    keep_duplicates: Annotated[bool, typer.Option("--keep-duplicates", help="Keep exact duplicate rows.")] = False,
    balance: Annotated[
        bool, typer.Option("--balance", help="Downsample each relation to the rarest one's count.")
    ] = False,
    max_per_class: Annotated[
        int | None, typer.Option("--max-per-class", help="Cap per relation with --balance.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --balance.")] = 42,
    split: Split = None,
    prompt_template: Annotated[
        str | None, typer.Option("--prompt-template", help="Question with {subj}, {obj}, {choices}.")
    ] = None,
    copy: Copy = False,
) -> None:
    """VRD scene graphs (sg_*_annotations.json) -> spatial relation rows + relationships.csv."""
    from vlmscope.data.importers.vrd import DEPTH_RELATIONS, SPATIAL_RELATIONS, VrdImportConfig, import_vrd

    relations = list(relation) if relation else list(SPATIAL_RELATIONS)
    if with_depth:
        relations += [r for r in DEPTH_RELATIONS if r not in relations]
    extra = {"prompt_template": prompt_template} if prompt_template else {}
    cfg = VrdImportConfig(
        relations=relations,
        drop_same_family=not keep_same_family,
        deduplicate=not keep_duplicates,
        balance=balance,
        max_per_class=max_per_class,
        seed=seed,
        split=split,
        image_mode=_mode(copy),
        **extra,
    )
    _done(import_vrd(sources, images, out, cfg), out)


@app.command("llava")
def llava(
    sources: Sources,
    images: Images,
    out: Out,
    num_options: Annotated[
        int, typer.Option("--num-options", help="Options per MCQA row (correct + distractors); 0 = open answers.")
    ] = 4,
    seen_classes: Annotated[
        Path | None,
        typer.Option("--seen-classes", help="Seen classes: .txt (one per line), JSON list, or a LLaVA JSON."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the distractor draw.")] = 0,
    split: Split = None,
    box_in_prompt: Annotated[
        bool, typer.Option("--box-in-prompt/--no-box-in-prompt", help="Move the answer's [box] into the prompt.")
    ] = True,
    copy: Copy = False,
) -> None:
    """LLaVA conversation JSON (VG train_seen.json, LLaVA-Med) -> MCQA rows with seen/unseen classes."""
    from vlmscope.data.importers.llava import LlavaImportConfig, import_llava

    cfg = LlavaImportConfig(
        num_options=num_options, seed=seed, split=split, box_in_prompt=box_in_prompt, image_mode=_mode(copy)
    )
    _done(import_llava(sources, images, out, cfg, seen_classes=seen_classes), out)


@app.command("pixmo-count")
def pixmo_count(
    sources: Sources,
    images: Images,
    out: Out,
    split: Split = None,
    prompt_template: Annotated[str | None, typer.Option("--prompt-template", help="Question with {label}.")] = None,
    verify_sha256: Annotated[
        bool, typer.Option("--verify-sha256", help="Drop images whose bytes do not match image_sha256.")
    ] = False,
    copy: Copy = False,
) -> None:
    """Balanced Pixmo-Count (train/valid/test folders of samples.json) -> counting rows."""
    from vlmscope.data.importers.pixmo_count import PixmoCountImportConfig, import_pixmo_count

    extra = {"prompt_template": prompt_template} if prompt_template else {}
    cfg = PixmoCountImportConfig(split=split, verify_sha256=verify_sha256, image_mode=_mode(copy), **extra)
    _done(import_pixmo_count(sources, images, out, cfg), out)


@app.command("countbench")
def countbench(
    sources: Sources,
    out: Out,
    split: Annotated[str, typer.Option("--split", help="Split of every row.")] = "test",
    prompt_template: Annotated[str | None, typer.Option("--prompt-template", help="Question with {question}.")] = None,
) -> None:
    """CountBenchQA parquet (image bytes, text, question, number) -> counting rows, images written out."""
    from vlmscope.data.importers.countbench import CountBenchImportConfig, import_countbench

    extra = {"prompt_template": prompt_template} if prompt_template else {}
    cfg = CountBenchImportConfig(split=split, **extra)
    _done(import_countbench(sources, out, cfg), out)


@app.command("counting-qa")
def counting_qa(
    sources: Sources,
    images: Images,
    out: Out,
    split: Annotated[str, typer.Option("--split", help="Split of images not listed in a *_ids.json file.")] = "test",
    question_kind: Annotated[
        list[str] | None, typer.Option("--question-kind", help="Question kind to keep (repeat); default all.")
    ] = None,
    prompt_prefix: Annotated[str, typer.Option("--prompt-prefix", help="Text put before every question.")] = "",
    copy: Copy = False,
) -> None:
    """The counting study's questions.json + answers.json folders -> counting rows."""
    from vlmscope.data.importers.counting_qa import CountingQaImportConfig, import_counting_qa

    cfg = CountingQaImportConfig(
        split=split,
        question_kinds=list(question_kind) if question_kind else None,
        prompt_prefix=prompt_prefix,
        image_mode=_mode(copy),
    )
    _done(import_counting_qa(sources, images, out, cfg), out)
