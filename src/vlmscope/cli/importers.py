"""`vlmscope import FORMAT SRC... --images DIR --out DATASET`: real data -> a dataset directory.

Each command builds its format's config from the options and calls the
library importer; the import report (kept vs dropped rows, by reason) is
printed and also saved as ``DATASET/import_report.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from vlmscope.cli.options import ConfigCommand, bind, bound_config, field_default
from vlmscope.cli.outdir import refuse_cwd_out
from vlmscope.cli.signature import config_options, with_options

__all__ = ["app"]

app = typer.Typer(
    help="Import real datasets (VRD, LLaVA JSON, Pixmo-Count, CountBenchQA, counting-study QA, "
    "relational-study queries.json, class folders) "
    "into the standard dataset directory.",
    no_args_is_help=True,
)

Sources = Annotated[list[Path], typer.Argument(help="Source annotation file(s) or folder(s).", show_default=False)]
Images = Annotated[Path, typer.Option("--images", help="Folder the source image paths are relative to.")]
Out = Annotated[Path, typer.Option("--out", callback=refuse_cwd_out, help="Dataset directory to write (written atomically; an existing one is replaced only if it is an earlier output of this kind).")]
Split = Annotated[str | None, typer.Option("--split", help="train|valid|test for all rows.")]
Copy = Annotated[
    bool | None, typer.Option("--copy/--link", help="Copy images instead of hard-linking them (links fall back to copies).")
]
Template = Annotated[str | None, typer.Option("--prompt-template")]


def _files(sources: Sources, images: Images, out: Out) -> None:
    """Sources, image folder and output of the importers whose sources name image files."""


def _placement(copy: Copy = None) -> None:
    """How the importers whose sources name image files place them in the dataset."""


def _mode(copy: bool | None) -> Literal["link", "copy"] | None:
    return None if copy is None else ("copy" if copy else "link")


def _run_import(
    fn: Callable[..., Any],
    importer: Callable[..., Any],
    args: Mapping[str, Any],
    *,
    flips: Mapping[str, Any] | None = None,
    **converted: Any,
) -> None:
    """The body every import verb shares: its config from ``args``, the import, the report printed.

    ``args`` are the verb's arguments; ``--copy/--link`` and an empty
    ``--prompt-template`` are converted here, ``converted`` covers the rest.
    ``flips`` sets config fields that have no option of their own (``vrd``'s
    ``--keep-*`` flags turn them off).
    """
    if "copy" in args:
        converted.setdefault("copy", _mode(args["copy"]))
    if "prompt_template" in args:
        converted.setdefault("prompt_template", args["prompt_template"] or None)
    cfg = bound_config(fn, args, **converted)
    if flips:
        cfg = cfg.model_copy(update=flips)
    images = (args["images"],) if "images" in args else ()
    report = importer(args["sources"], *images, args["out"], cfg)
    typer.echo(report.summary())
    typer.echo(f"wrote {args['out']}")


@app.command("vrd", cls=ConfigCommand)
@bind(
    "vlmscope.data.importers.vrd:VrdImportConfig",
    "balance", "max_per_class", "seed", "split", "prompt_template", relation="relations", copy="image_mode",
)  # fmt: skip
@with_options(_files, None, _placement, config_options)
def vrd(
    relation: Annotated[list[str] | None, typer.Option("--relation", help="Relation to keep (repeat).")] = None,
    with_depth: Annotated[bool, typer.Option("--with-depth", help="Also keep 'in front of' and 'behind'.")] = False,
    keep_same_family: Annotated[
        bool, typer.Option("--keep-same-family", help="Keep pairs like 'truck' / 'truck 2' (sets drop_same_family).")
    ] = False,
    keep_duplicates: Annotated[
        bool, typer.Option("--keep-duplicates", help="Keep exact duplicate rows (sets deduplicate).")
    ] = False,
    balance: Annotated[
        bool | None, typer.Option("--balance/--no-balance", help="Downsample each relation to the rarest one's count.")
    ] = None,
    max_per_class: Annotated[int | None, typer.Option("--max-per-class", help="Cap per relation with --balance.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of --balance.")] = None,
    split: Split = None,
    prompt_template: Template = None,
    **options: Any,
) -> None:
    """VRD scene graphs (sg_*_annotations.json) -> spatial relation rows + relationships.csv."""
    from vlmscope.data.importers.vrd import DEPTH_RELATIONS, VrdImportConfig, import_vrd

    relations = list(relation) if relation else None
    if with_depth:
        base = relations or list(field_default(VrdImportConfig, "relations"))
        relations = base + [r for r in DEPTH_RELATIONS if r not in base]
    flips = {"drop_same_family": False} if keep_same_family else {}
    if keep_duplicates:
        flips["deduplicate"] = False
    _run_import(vrd, import_vrd, locals() | options, flips=flips, relation=relations)


@app.command("llava", cls=ConfigCommand)
@bind(
    "vlmscope.data.importers.llava:LlavaImportConfig",
    "num_options", "seed", "split", "box_in_prompt", copy="image_mode",
)  # fmt: skip
@with_options(_files, None, _placement, config_options)
def llava(
    num_options: Annotated[
        int | None, typer.Option("--num-options", help="Options per MCQA row (correct + distractors); 0 = open answers.")
    ] = None,
    seen_classes: Annotated[
        Path | None,
        typer.Option("--seen-classes", help="Seen classes: .txt (one per line), JSON list, or a LLaVA JSON."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the distractor draw.")] = None,
    split: Split = None,
    box_in_prompt: Annotated[
        bool | None, typer.Option("--box-in-prompt/--no-box-in-prompt", help="Move the answer's [box] into the prompt.")
    ] = None,
    **options: Any,
) -> None:
    """LLaVA conversation JSON (VG train_seen.json, LLaVA-Med) -> MCQA rows with seen/unseen classes."""
    from vlmscope.data.importers.llava import import_llava

    _run_import(llava, partial(import_llava, seen_classes=seen_classes), locals() | options)


@app.command("pixmo-count", cls=ConfigCommand)
@bind(
    "vlmscope.data.importers.pixmo_count:PixmoCountImportConfig",
    "split", "prompt_template", "verify_sha256", copy="image_mode",
)  # fmt: skip
@with_options(_files, None, _placement, config_options)
def pixmo_count(
    split: Split = None,
    prompt_template: Template = None,
    verify_sha256: Annotated[
        bool | None,
        typer.Option("--verify-sha256/--no-verify-sha256", help="Drop images whose bytes do not match image_sha256."),
    ] = None,
    **options: Any,
) -> None:
    """Balanced Pixmo-Count (train/valid/test folders of samples.json) -> counting rows."""
    from vlmscope.data.importers.pixmo_count import import_pixmo_count

    _run_import(pixmo_count, import_pixmo_count, locals() | options)


@app.command("countbench", cls=ConfigCommand)
@bind("vlmscope.data.importers.countbench:CountBenchImportConfig", "split", "prompt_template")
@with_options(None, config_options)
def countbench(sources: Sources, out: Out, split: Split = None, prompt_template: Template = None, **options: Any) -> None:
    """CountBenchQA parquet (image bytes, text, question, number) -> counting rows, images written out."""
    from vlmscope.data.importers.countbench import import_countbench

    _run_import(countbench, import_countbench, locals() | options)


@app.command("counting-qa", cls=ConfigCommand)
@bind(
    "vlmscope.data.importers.counting_qa:CountingQaImportConfig",
    "split", "prompt_prefix", question_kind="question_kinds", copy="image_mode",
)  # fmt: skip
@with_options(_files, None, _placement, config_options)
def counting_qa(
    split: Annotated[str | None, typer.Option("--split", help="Split of images not listed in a *_ids.json file.")] = None,
    question_kind: Annotated[
        list[str] | None, typer.Option("--question-kind", help="Question kind to keep (repeat); unset: all.")
    ] = None,
    prompt_prefix: Annotated[str | None, typer.Option("--prompt-prefix", help="Text put before every question.")] = None,
    **options: Any,
) -> None:
    """The counting study's questions.json + answers.json folders -> counting rows."""
    from vlmscope.data.importers.counting_qa import import_counting_qa

    kinds = list(question_kind) if question_kind else None
    _run_import(counting_qa, import_counting_qa, locals() | options, question_kind=kinds)


@app.command("relations-queries", cls=ConfigCommand)
@bind("vlmscope.data.importers.relations_queries:RelationsQueriesImportConfig", "split", copy="image_mode")
@with_options(_files, None, _placement, config_options)
def relations_queries(
    masked_images: Annotated[
        Path,
        typer.Option("--masked-images", help="Folder of the masked copies, under the same file names as --images."),
    ],
    split: Split = None,
    **options: Any,
) -> None:
    """The relational study's prompts/queries.json -> original and masked choice rows, paired by source_id."""
    from vlmscope.data.importers.relations_queries import import_relations_queries

    _run_import(relations_queries, partial(import_relations_queries, masked_images=masked_images), locals() | options)


def _root_out(
    sources: Annotated[list[Path], typer.Argument(metavar="ROOT", help="Root folder holding <split>/<class>/<image>.", show_default=False)],
    out: Out,
) -> None:
    """Source root and output of the class-folders importer (its images live inside the root)."""


@app.command("class-folders", cls=ConfigCommand)
@bind(
    "vlmscope.data.importers.class_folders:ClassFoldersImportConfig",
    "prompt", "answer_template", copy="image_mode",
)  # fmt: skip
@with_options(_root_out, None, _placement, config_options)
def class_folders(
    prompt: Annotated[str | None, typer.Option("--prompt", help="Question asked of every image.")] = None,
    answer_template: Annotated[str | None, typer.Option("--answer-template")] = None,
    **options: Any,
) -> None:
    """Image-class folders (ROOT/<split>/<class>/<image>, e.g. KL grades 0-4) -> grading or class rows.

    Folders named by a grade (2, grade_2, KL 2) give ordinal rows scored by grade (accuracy, MAE); for folders named
    otherwise, map them with --set 'grade_names={Normal: 0, Doubtful: 1}'.
    """
    from vlmscope.data.importers.class_folders import import_class_folders

    _run_import(class_folders, import_class_folders, locals() | options)
