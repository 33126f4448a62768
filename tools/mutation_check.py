"""Plant one-line faults in the probe, lens, parsing, capture and store-integrity code and see which tests notice.

A test suite that passes is only worth something if it fails when the code is wrong. Each
:class:`Mutant` below is a plausible one-line bug (an off-by-one position, a dropped
renormalisation, the control task built from the real labels ...). The tool copies the working tree
(tracked and untracked-not-ignored files, like a clone) to a temporary directory once, runs the
focused tests there unmutated (they must pass), then for each mutant: replaces exactly one line,
runs that mutant's focused tests, puts the line back. It prints a table fault -> tests that failed;
a fault no test catches is marked MISSED and makes the exit status 1.

    python tools/mutation_check.py                 # every mutant
    python tools/mutation_check.py --only lens-rank --only parse-count-digits
    python tools/mutation_check.py --list

Equivalent mutants (same behaviour, nothing to catch) do not belong here: ``x[ar, -1]`` for
``x[ar, last_index]`` is one under left padding, ``argmax`` for ``amax`` over ``where(mask, arange, -1)``
another. The source tree itself is never modified. Slow by design (one pytest process per mutant, minutes in
all): run it when changing tests of these areas, not in ``make test``. tests/tools/test_mutation_check.py
keeps the table below in step with the code (every ``old`` line still exists exactly once).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE_TESTS = ("tests/probing/test_metrics.py", "tests/probing/test_backends.py", "tests/probing/test_solver.py",
               "tests/probing/test_splits_controls.py", "tests/probing/test_run.py")  # fmt: skip
LENS_TESTS = ("tests/lens/test_logit.py", "tests/lens/test_ffn.py", "tests/lens/test_weights.py")
PARSING_TESTS = ("tests/evaluation/test_parsing.py", "tests/evaluation/test_runner.py")
STORE_TESTS = ("tests/reliability/test_store_corruption.py", "tests/reliability/test_verify.py")
CAPTURE_TESTS = ("tests/activations/test_extract_values.py",
                 "tests/models/test_llava_next.py::TestLlavaNext::test_extract_stores_the_forward_pass")  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    """One planted fault: in ``path``, the line containing ``old`` (exactly once) gets ``old`` -> ``new``."""

    name: str
    area: str
    path: str
    old: str
    new: str
    why: str
    """The bug it stands for, in a few words."""
    tests: tuple[str, ...]
    """Focused tests (files or node ids) run against it."""


MUTANTS: tuple[Mutant, ...] = (
    # -- probe ------------------------------------------------------------------------------------
    Mutant("probe-balanced-classes", "probe", "src/vlmscope/probing/metrics.py",
           "classes = np.unique(truth)", "classes = np.unique(pred)",
           "balanced accuracy averages over predicted instead of true classes", PROBE_TESTS),
    Mutant("probe-binary-sign", "probe", "src/vlmscope/probing/backends.py",
           "return (scores[..., 0] > 0).astype(np.int64)", "return (scores[..., 0] < 0).astype(np.int64)",
           "binary probes read the score's sign the wrong way round", PROBE_TESTS),
    Mutant("probe-control-is-task", "probe", "src/vlmscope/probing/controls.py",
           "out[k] = perm[first]", "out[k] = y[first]",
           "control labels are the real labels (selectivity always 0)", PROBE_TESTS),
    Mutant("probe-unstandardize-intercept", "probe", "src/vlmscope/probing/backends.py",
           "b = b - w @ mean", "b = b + w @ mean",
           "standardisation folded back into the intercept with the wrong sign", PROBE_TESTS),
    Mutant("probe-bootstrap-alpha", "probe", "src/vlmscope/probing/metrics.py",
           "alpha = (1.0 - level) / 2.0", "alpha = 1.0 - level",
           "two-sided interval built from one-sided quantiles", PROBE_TESTS),
    # -- lens -------------------------------------------------------------------------------------
    Mutant("lens-rank", "lens", "src/vlmscope/lens/projection.py",
           "rank = (logits > t).sum(1) + 1", "rank = (logits >= t).sum(1) + 1",
           "the target counts itself: every rank one too high", LENS_TESTS),
    Mutant("lens-gemma-norm", "lens", "src/vlmscope/lens/projection.py",
           'w = norm.weight + 1.0 if norm.kind == "rms_plus_one" else norm.weight', "w = norm.weight",
           "Gemma's (1 + w) RMSNorm read as plain w", LENS_TESTS),
    Mutant("lens-softcap", "lens", "src/vlmscope/lens/projection.py",
           "logits = torch.tanh(logits / softcap) * softcap", "logits = torch.tanh(logits) * softcap",
           "Gemma 2's soft cap without the division", LENS_TESTS),
    Mutant("lens-topk-probs", "lens", "src/vlmscope/lens/projection.py",
           "return ids, vals.exp()", "return ids, vals",
           "top-k 'probabilities' are log-probabilities", LENS_TESTS),
    Mutant("lens-ffn-top-neurons", "lens", "src/vlmscope/lens/ffn.py",
           ".topk(n, dim=1).indices.numpy()", ".topk(n, dim=1, largest=False).indices.numpy()",
           "the FFN analysis picks the least active neurons", LENS_TESTS),
    # -- parsing ----------------------------------------------------------------------------------
    Mutant("parse-count-digits", "parsing", "src/vlmscope/evaluation/parsing.py",
           'digits = m.group(0).replace(",", "").lstrip("0") or "0"',
           'digits = (m.group(0).replace(",", "").lstrip("0") or "0")[:1]',
           "only the first digit counts ('10' read as 1, the substring bug)", PARSING_TESTS),
    Mutant("parse-count-tens", "parsing", "src/vlmscope/evaluation/parsing.py",
           "return word in _UNITS and 0 < _UNITS[word] < 10", "return word in _UNITS",
           "'twenty ten' read as one number", PARSING_TESTS),
    Mutant("parse-yes-no-both", "parsing", "src/vlmscope/evaluation/parsing.py",
           "if has_yes != has_no:", "if has_yes or has_no:",
           "an answer with both yes and no decides instead of abstaining", PARSING_TESTS),
    Mutant("parse-letter-range", "parsing", "src/vlmscope/evaluation/parsing.py",
           "return idx if idx < len(options) else _exact_option(t, options)", "return idx",
           "a lone letter beyond the options ('E' of four) is accepted", PARSING_TESTS),
    # -- capture ----------------------------------------------------------------------------------
    Mutant("capture-last-off-by-one", "capture", "src/vlmscope/activations/capture.py",
           'out[pos] = h[ar, last_index.to(h.device)]', 'out[pos] = h[ar, last_index.to(h.device) - 1]',
           "the token before the last prompt token", CAPTURE_TESTS),
    Mutant("capture-image-last", "capture", "src/vlmscope/activations/capture.py",
           'state["image_last"] = torch.where(image_mask, ar, -1).amax(1)',
           'state["image_last"] = torch.where(image_mask, ar, T).amin(1)',
           "image_last is the first image token", CAPTURE_TESTS),
    Mutant("capture-attention-max", "capture", "src/vlmscope/activations/capture.py",
           "mx = img.amax(1)", "mx = img.mean(1)",
           "max over heads stored as the mean", CAPTURE_TESTS),
    Mutant("capture-entropy-unnormalised", "capture", "src/vlmscope/activations/capture.py",
           "entropy = -torch.special.xlogy(p, p).sum(-1)", "entropy = -torch.special.xlogy(mean, mean).sum(-1)",
           "entropy of the image row without renormalising it to sum to 1", CAPTURE_TESTS),
    Mutant("capture-text-mean-padding", "capture", "src/vlmscope/activations/capture.py",
           "text = batch.text_mask.to(device).float()", "text = batch.attention_mask.to(device).float()",
           "text mean over every real token, image tokens included", CAPTURE_TESTS),
    Mutant("capture-mlp-block", "capture", "src/vlmscope/activations/capture.py",
           "proj = self.adapter.mlp_down_proj(block)",
           "proj = self.adapter.mlp_down_proj(min(block + 1, self.num_layers - 1))",
           "FFN activation of layer k read from the next block", CAPTURE_TESTS),
    # -- store integrity --------------------------------------------------------------------------
    Mutant("store-no-open-check", "store", "src/vlmscope/activations/store.py",
           "check_files(path, attrs)", "pass",
           "a complete store opens without checking its shard files (a deleted shard reads as NaN)", STORE_TESTS),
    Mutant("store-size-only-longer", "store", "src/vlmscope/activations/integrity.py",
           'if size != want["size"]:', 'if size > want["size"]:',
           "truncated and empty shards pass the size check", STORE_TESTS),
    Mutant("store-no-chunk-crc", "store", "src/vlmscope/activations/layout.py",
           'shuffle="shuffle"), Crc32cCodec()]', 'shuffle="shuffle")]',
           "chunks without a checksum: changed bytes decode to garbage", STORE_TESTS),
    Mutant("store-record-at-finalize", "store", "src/vlmscope/activations/writer.py",
           "files = describe_shard(self.store.path, cur.buffers, task.shard)", "files = {}",
           "shard checksums taken at finalize from disk, after any damage", STORE_TESTS),
)


def apply(text: str, mutant: Mutant) -> str:
    """``text`` with the mutant's one line changed; refuses when ``old`` is not there exactly once."""
    n = text.count(mutant.old)
    if n != 1:
        raise ValueError(f"{mutant.name}: {mutant.old!r} occurs {n} times in {mutant.path}; expected exactly once")
    lines = text.splitlines(keepends=True)
    hit = [i for i, line in enumerate(lines) if mutant.old in line]
    lines[hit[0]] = lines[hit[0]].replace(mutant.old, mutant.new)
    return "".join(lines)


def copy_tree(dst: Path) -> None:
    """Tracked and untracked-not-ignored files of this checkout (artifacts and caches stay behind)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = ROOT / rel
        if rel.startswith(("artifacts/", "dvc.lock")) or not src.is_file():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel)


_FAILED = re.compile(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", re.M)
"""A failing test's id in pytest's short summary (parametrized ids may hold spaces)."""


def run_tests(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, list[str], float]:
    """(pytest exit status, failing test ids, seconds) of ``tests`` in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=--import-mode=importlib",
           "-rfE", "--timeout", str(int(timeout)), *tests]  # fmt: skip
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        return 124, ["<timeout>"], time.monotonic() - start
    failed = sorted(set(_FAILED.findall(proc.stdout)))
    if proc.returncode not in (0, 1) and not failed:
        failed = [f"<pytest exit {proc.returncode}: {proc.stdout.strip().splitlines()[-1:] or proc.stderr[-200:]}>"]
    return proc.returncode, failed, time.monotonic() - start


def _caught_by(failed: list[str]) -> str:
    """``file (n)`` per test file among the failures."""
    files: dict[str, int] = {}
    for f in failed:
        files[f.split("::")[0]] = files.get(f.split("::")[0], 0) + 1
    return ", ".join(f"{k} ({v})" for k, v in files.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], help="mutant name (repeatable); default: all")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per pytest run")
    args = ap.parse_args(argv)
    known = {m.name for m in MUTANTS}
    unknown = sorted(set(args.only) - known)
    if unknown:
        ap.error(f"unknown mutant(s) {unknown}; known: {sorted(known)}")
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:32} {m.area:8} {m.path}: {m.why}")
        return 0
    with tempfile.TemporaryDirectory(prefix="vlmscope-mutants-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        for m in chosen:  # refuse stale entries before spending minutes
            apply((tree / m.path).read_text(), m)
        baseline = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        code, failed, secs = run_tests(tree, baseline, args.timeout)
        print(f"baseline: {len(baseline)} test target(s), exit {code}, {secs:.0f} s", flush=True)
        if code != 0:
            print("the focused tests fail without any mutant; fix them first:\n  " + "\n  ".join(failed))
            return 2
        rows = []
        for m in chosen:
            path = tree / m.path
            original = path.read_text()
            path.write_text(apply(original, m))
            try:
                code, failed, secs = run_tests(tree, m.tests, args.timeout)
            finally:
                path.write_text(original)
            verdict = "caught" if code != 0 else "MISSED"
            rows.append((m, verdict, failed))
            print(f"{m.name}: {verdict} in {secs:.0f} s; {_caught_by(failed) or '-'}", flush=True)
    print("\n| fault | area | planted bug | verdict | failing tests (per file) |")
    print("|---|---|---|---|---|")
    for m, verdict, failed in rows:
        print(f"| {m.name} | {m.area} | {m.why} | {verdict} | {_caught_by(failed) or '-'} |")
    return 1 if any(v == "MISSED" for _, v, _ in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
