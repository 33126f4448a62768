"""A small byte-level BPE tokenizer built offline for the tiny checkpoints.

Real checkpoints ship their own tokenizer; tiny random checkpoints (tests and
the embedded default model) need one that (a) is built without any network,
(b) is deterministic, so the same seed gives the same checkpoint bytes, and
(c) makes every short answer vlmscope scores (colours, shapes, relation
words, digits 0-20, option letters, yes/no) a *single* token, both with and
without a leading space, so that answer-token logits, the logit lens and the
output-layer fine-tuning of the counting study are meaningful. Byte-level
BPE means ANY text still tokenizes (no unknown token).

Special tokens always take the lowest ids, in the order given (pad, bos,
eos, then the family's extras such as ``<image>`` or chat markers), so a
family's tiny checkpoint keeps the same ids whatever the corpus.

Extend the vocabulary by adding words to the tuples below (or pass
``extra_words``); answer words go in ``ANSWER_WORDS`` so a test checks they
stay single tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from vlmscope.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerFast

__all__ = [
    "COLORS",
    "SHAPES",
    "RELATIONS",
    "NUMBERS",
    "NUMBER_WORDS",
    "LETTERS",
    "ANSWER_WORDS",
    "TEMPLATE_TEXTS",
    "DEFAULT_VOCAB_SIZE",
    "build_tokenizer",
    "corpus",
    "answer_token_problems",
]

COLORS: tuple[str, ...] = (
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white",
    "gray", "grey", "cyan", "magenta", "teal", "navy", "olive", "maroon", "lime", "gold",
)  # fmt: skip
SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "pentagon", "star", "rectangle", "hexagon", "diamond", "ellipse",
    "arrow", "shape", "object", "entity",
)  # fmt: skip
RELATIONS: tuple[str, ...] = ("left", "right", "above", "below", "behind", "front", "of", "in")
NUMBERS: tuple[str, ...] = tuple(str(i) for i in range(21))
NUMBER_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
)  # fmt: skip
LETTERS: tuple[str, ...] = tuple("ABCDEFGH")
SIZES: tuple[str, ...] = ("small", "large", "big", "tiny", "medium")
YES_NO: tuple[str, ...] = ("yes", "no", "Yes", "No")
ANSWER_WORDS: tuple[str, ...] = (
    COLORS + SHAPES[:9] + ("left", "right", "above", "below") + NUMBERS + NUMBER_WORDS + LETTERS + YES_NO
)
"""Words that must each be ONE token, with and without a leading space."""

OBJECT_WORDS: tuple[str, ...] = (
    "person", "man", "woman", "car", "dog", "cat", "tree", "building", "window", "table", "chair",
    "sky", "cloud", "grass", "road", "sign", "bus", "horse", "bird", "boat", "plane", "train",
    "lung", "heart", "bone", "tissue", "lesion", "scan", "xray", "grade", "normal", "mild",
    "moderate", "severe", "box", "image", "picture", "photo", "scene",
)  # fmt: skip
"""Class names of the unseen-class (Visual Genome) and medical studies; open vocabulary anyway."""

TEMPLATE_TEXTS: tuple[str, ...] = (
    "What is the spatial relation of the {c} {s} to the {c} {s}?",
    "Where is the {c} {s} relative to the {c} {s}? Answer with one of: left of, right of, above, below.",
    "Is the {c} {s} left of, right of, above or below the {c} {s}?",
    "What color is the {s}? Answer with one word.",
    "What is the colour of the {s} in the image?",
    "Which shape is {c}?",
    "How many {c} {s}s are there? Choose from [{n}, {n}, {n}, {n}].",
    "Answer using as few words as possible. How many {c} {s}s are there?",
    "How many entities are in the image?",
    "Is there a {c} {s} in the image?",
    "Is the {c} {s} connected to the {c} {s} by an arrow?",
    "Does the arrow point from the {c} {s} to the {c} {s}?",
    "What is the direction of the arrow between the {s} and the {s}?",
    "Reply with only the correct option.",
    "Answer with the letter of the correct option.",
    "A) {c}\nB) {s}\nC) {n}\nD) {c}",
    "E) {n}\nF) {s}\nG) {c}\nH) {n}",
    "The {c} {s} is {r} of the {c} {s}.",
    "Describe the image in one word. Answer yes or no. The answer is {n}.",
    "[box] {o}",
    "What is the object in the box? It is a {o}.",
    "What is the grade of the {o} in this {o}?",
)
"""Question templates of the generators (see STUDIES.md); ``{c}`` colour, ``{s}`` shape,
``{n}`` number, ``{r}`` relation, ``{o}`` object word. Extend freely."""

DEFAULT_VOCAB_SIZE = 1024


def corpus(extra_words: Sequence[str] = ()) -> list[str]:
    """The deterministic training corpus: templates filled in, plus every word repeated.

    Each answer word appears many times both with and without a leading space
    (after a space, after a newline, after a colon), so BPE learns it as one
    token; the order is fixed so training is deterministic.
    """
    lines: list[str] = []
    words = (
        list(COLORS) + list(SHAPES) + list(RELATIONS) + list(NUMBERS) + list(NUMBER_WORDS) + list(LETTERS)
        + list(SIZES) + list(YES_NO) + list(OBJECT_WORDS) + list(extra_words)
    )  # fmt: skip
    for i, tpl in enumerate(TEMPLATE_TEXTS):
        for j in range(12):
            k = i * 12 + j
            lines.append(
                tpl.replace("{c}", COLORS[k % len(COLORS)], 1)
                .replace("{c}", COLORS[(k * 7 + 3) % len(COLORS)])
                .replace("{s}", SHAPES[k % len(SHAPES)], 1)
                .replace("{s}", SHAPES[(k * 5 + 1) % len(SHAPES)])
                .replace("{n}", NUMBERS[k % len(NUMBERS)], 1)
                .replace("{n}", NUMBERS[(k * 3 + 2) % len(NUMBERS)])
                .replace("{r}", RELATIONS[k % 4])
                .replace("{o}", OBJECT_WORDS[k % len(OBJECT_WORDS)])
            )
    # Answer words, dense enough to beat any merge inside the templates.
    reps = 40
    for w in list(ANSWER_WORDS) + list(extra_words):
        lines.extend([f" {w}", f"\n{w}", f":{w}", f"{w}"] * reps)
    lines.extend(" ".join(words[i : i + 8]) for i in range(0, len(words), 8))
    return lines


def build_tokenizer(
    extra_special_tokens: Sequence[str] = (),
    *,
    pad_token: str = "<pad>",
    bos_token: str | None = "<s>",
    eos_token: str = "</s>",
    add_bos_token: bool = True,
    add_eos_token: bool = False,
    padding_side: str = "left",
    chat_template: str | None = None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    extra_words: Sequence[str] = (),
    model_max_length: int = 4096,
) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE on :func:`corpus` and wrap it as a transformers tokenizer.

    Ids: ``pad``, ``bos`` (if any), ``eos``, then ``extra_special_tokens`` in
    order, then the 256 byte symbols, then merges. ``vocab_size`` is an upper
    bound (training stops when the corpus has no pair left to merge).
    ``add_bos_token`` prepends ``bos`` to every encoded text (LLaMA style;
    Qwen/ChatML-style families pass ``bos_token=None``); ``add_eos_token``
    appends ``eos`` (CLIP/SigLIP text towers pool at the eos). ``pad_token``
    may equal ``eos_token`` (CLIP, SigLIP); generative families pad on the
    left, contrastive ones on the right.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if bos_token is not None and bos_token in (pad_token, eos_token):
        raise ConfigError(f"bos token {bos_token!r} must differ from pad {pad_token!r} and eos {eos_token!r}")
    if padding_side not in ("left", "right"):
        raise ConfigError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    roles = list(dict.fromkeys([pad_token] + ([bos_token] if bos_token else []) + [eos_token]))
    # an extra may repeat a role (ChatML's <|im_end|> is also eos): keep its first id
    specials = list(dict.fromkeys(roles + list(extra_special_tokens)))
    minimum = len(specials) + 256
    if vocab_size < minimum + 64:
        raise ConfigError(
            f"vocab_size must be at least {minimum + 64} (specials + 256 bytes + 64 merges), got {vocab_size}"
        )

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(extra_words), trainer=trainer)
    use_bos = bool(bos_token and add_bos_token)
    if use_bos or add_eos_token:
        pre = f"{bos_token} " if use_bos else ""
        post = f" {eos_token}" if add_eos_token else ""
        used = ([bos_token] if use_bos else []) + ([eos_token] if add_eos_token else [])
        tok.post_processor = processors.TemplateProcessing(
            single=f"{pre}$A{post}",
            pair=f"{pre}$A{post} {pre}$B{post}",
            special_tokens=[(t, tok.token_to_id(t)) for t in used],
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)

    kwargs: dict[str, object] = {
        "tokenizer_object": tok,
        "pad_token": pad_token,
        "eos_token": eos_token,
        "model_max_length": model_max_length,
        "padding_side": padding_side,
        "clean_up_tokenization_spaces": False,
    }
    if bos_token:
        kwargs["bos_token"] = bos_token
    out = PreTrainedTokenizerFast(**kwargs)
    extras = [t for t in specials if t not in roles]
    if extras:
        out.add_special_tokens({"additional_special_tokens": extras})
    if chat_template is not None:
        out.chat_template = chat_template
    problems = answer_token_problems(out, list(ANSWER_WORDS) + list(extra_words))
    if problems:
        raise ConfigError(
            f"vocab_size={vocab_size} is too small: these answer words are not single tokens: "
            f"{problems[:10]}; raise vocab_size"
        )
    return out


def answer_token_problems(tokenizer: object, words: Sequence[str]) -> list[str]:
    """Words (as ``'w'`` or ``' w'``) that do not encode to exactly one token."""
    bad = []
    for w in words:
        for form in (w, " " + w):
            ids = tokenizer(form, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
            if len(ids) != 1:
                bad.append(form)
    return bad
