"""`focus-eval`: FOCUS on your own images from the command line.

    focus-eval answer  --model M --image street.jpg --question "What colour is the umbrella?"
    focus-eval explain --model M --image street.jpg --question "..." --out maps/
    focus-eval answer  --model M --questions questions.jsonl --json > answers.jsonl
    focus-eval compare runs/focus runs/vanilla --published --out compare/   (focus_eval/present/compare/command.py)
    focus-eval lmms-eval --model llava_ov_focus --tasks vstar ...   (lmms-eval's own flags)
    focus-eval vlmeval --model llava_ov_focus --data VStarBench ...   (focus_eval.model_wrappers.vlmeval_run)

`answer` prints the answer and the forward-pass counters; `explain` also writes, per question,
`<id>.png` (relevance map, ROIs, model input; focus_eval.present.visualize) and `<id>.json` (the
trace) into --out. FOCUS options: `--set KEY=VALUE` (repeatable; names of FocusConfig, e.g.
--set n_steps=4 --set method=vanilla).

Questions file (--questions): JSON Lines, one object per line, blank lines skipped:
    {"image": "photos/street.jpg", "question": "What colour is the umbrella?", "id": "q1"}
"image" (a path, relative to the file's folder unless absolute) and "question" are required;
"id" (default: the line number) names the output files and must be unique; other keys are
errors. A bad line, an unreadable image or a failing question is reported in that question's
output and the run goes on.

Output on stdout: text, or with --json one JSON object per question per line (JSON Lines)
with the keys id, image, question, answer, error, question_type, targets, final_layout,
final_boxes, counters (Counters.to_dict()), picture and trace (file paths, explain only);
a key without a value is null. Progress bars (model loading, questions files) go to stderr.
Exit status: 0 all questions answered (and, for explain, their files written); 1 some question
failed, or its picture or trace could not be written (a warning line each; the run goes on);
2 bad usage or input found before any work (unknown flag or FOCUS option, a blank --question,
--max-new-tokens below 1, an unknown --family, a CUDA --device without CUDA, missing or
unreadable image or questions file, an --out that is not a writable folder, a model that
cannot be loaded), reported as one line on stderr.

`focus-eval lmms-eval ARGS` runs lmms-eval's command line with ARGS as they are and an exit
status that tells whether it worked (focus_eval.lmms, focus_eval.model_wrappers.lmms_launcher).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from focus_eval.present.compare import command as compare
from focus_eval.config import DATASETS, coerce_overrides, known_families

PROG = "focus-eval"
_QUESTION_KEYS = {"id", "image", "question"}
# One output record per question; keys without a value (a failed question, `answer`) are null.
_RECORD_KEYS = ("id", "image", "question", "answer", "error", "question_type", "targets", "final_layout",
                "final_boxes", "counters", "picture", "trace")


class UserError(Exception):
    """Bad input from the user: one line on stderr, exit status 2."""


@dataclass
class Question:
    id: str
    image: Path | None
    question: str | None
    error: str | None = None  # why this line of a questions file cannot be asked
    loaded: Any = None  # the decoded image, when it was loaded early to check it


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lmms-eval"]:  # every further argument is lmms-eval's
        from focus_eval.lmms import main as lmms_eval_main

        return lmms_eval_main(argv[1:])
    if argv[:1] == ["vlmeval"]:  # its options pass through to VLMEvalKit's run.py: a parser of its own
        from focus_eval.model_wrappers.vlmeval_run import main as vlmeval_main

        return vlmeval_main(argv[1:])
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already printed
        return done.code
    try:
        if args.command == "compare":
            return _compare(args)
        if args.questions is not None and (args.image or args.question or args.id):
            raise UserError("--questions cannot be combined with --image, --question or --id")
        if args.questions is None and (args.image is None or args.question is None):
            raise UserError("give --image and --question, or --questions FILE")
        return _run(args)
    except UserError as error:
        print(f"{PROG}: error: {_one_line(str(error))}", file=sys.stderr)
        return 2


def read_questions(path: Path) -> list[Question]:
    """Parse a questions file (format: module docstring); bad lines come back with `error` set."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"no such questions file: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read questions file {path}: {error}") from None
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        question = _parse_question_line(line, str(number), path.parent)
        if question.id in seen and question.error is None:
            question.error = f"duplicate id {question.id!r}"
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise UserError(f"no questions in {path}")
    return questions


def _parse_question_line(line: str, number: str, folder: Path) -> Question:
    def bad(message: str) -> Question:
        return Question(id=number, image=None, question=None, error=f"line {number}: {message}")

    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return bad(f"not valid JSON: {error}")
    if not isinstance(record, dict):
        return bad(f"expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - _QUESTION_KEYS)
    if unknown:
        return bad(f"unknown key(s) {unknown}; allowed: {sorted(_QUESTION_KEYS)}")
    for key in ("image", "question"):
        if _blank(record.get(key)):
            return bad(f"{key!r} must be a non-empty string")
    identifier = record.get("id", number)
    if not isinstance(identifier, (str, int)) or isinstance(identifier, bool):
        return bad("'id' must be a string or an integer")
    return Question(id=str(identifier), image=folder / record["image"], question=record["question"])


def _blank(value: Any) -> bool:
    """The rule for an image path or a question, on the command line and in a questions file."""
    return not isinstance(value, str) or not value.strip()


def _claim_file_names(questions: list[Question]) -> None:
    """Mark a question whose id gives the same file names as an earlier one's (`a/b` and `a_b`)."""
    from focus_eval.outputs import safe_stem

    owners: dict[str, str] = {}
    for question in questions:
        if question.error is not None:
            continue
        stem = safe_stem(question.id)
        if stem in owners:
            question.error = f"id {question.id!r} gives the same file names ({stem}.png) as id {owners[stem]!r}"
        else:
            owners[stem] = question.id


# commands -------------------------------------------------------------------------------


def _compare(args: argparse.Namespace) -> int:
    try:
        return compare.run(args)
    except compare.CompareError as error:
        raise UserError(str(error)) from None


def _run(args: argparse.Namespace) -> int:
    # Everything the user can get wrong is checked before the model loads.
    overrides = _parse_overrides(args.set)
    out_dir = _output_folder(args.out) if args.command == "explain" else None
    if args.questions is not None:
        questions = read_questions(Path(args.questions))
    else:
        for flag, value in (("--image", args.image), ("--question", args.question)):
            if _blank(value):
                raise UserError(f"{flag} must be a non-empty string")
        image = Path(args.image)
        questions = [Question(id=args.id or image.stem, image=image, question=args.question, loaded=_load(image))]
    if out_dir is not None:
        _claim_file_names(questions)
    focus = _load_focus(args, overrides)

    from tqdm import tqdm

    failed = unsaved = 0
    single = args.questions is None
    for question in tqdm(questions, desc="questions", unit="q", disable=args.quiet or single or None,
                         file=sys.stderr):
        record, unwritten = _ask(focus, question, out_dir, args.max_new_tokens)
        failed += record["error"] is not None
        output = json.dumps(record) if args.json else _as_text(record, with_id=not single)
        tqdm.write(output, file=sys.stdout)
        if single and record["error"] is not None and not args.json:
            print(f"{PROG}: error: {_one_line(record['error'])}", file=sys.stderr)
        if unwritten is not None:
            unsaved += 1
            tqdm.write(f"{PROG}: warning: [{question.id}] picture and trace not written: {_one_line(unwritten)}",
                       file=sys.stderr)
    if not single and not args.quiet:
        unsaved_note = f"; {unsaved} without picture and trace" if unsaved else ""
        print(f"{PROG}: {len(questions) - failed} of {len(questions)} questions answered{unsaved_note}",
              file=sys.stderr)
    return 1 if failed or unsaved else 0


def _ask(focus, question: Question, out_dir: Path | None, max_new_tokens: int) -> tuple[dict[str, Any], str | None]:
    """One question -> (its output record, why its picture and trace were not written or None);
    failures are recorded, never raised."""
    from focus_eval.pipeline import PipelineError
    from focus_eval.present.visualize import save_explanation

    record: dict[str, Any] = dict.fromkeys(_RECORD_KEYS)
    record.update(id=question.id, image=None if question.image is None else str(question.image),
                  question=question.question, error=question.error)
    if question.error is not None:
        return record, None
    try:
        image = question.loaded if question.loaded is not None else _load(question.image)
    except UserError as error:
        record["error"] = str(error)
        return record, None
    try:
        result = focus.answer(image, question.question, max_new_tokens=max_new_tokens)
        trace, final_images = result.trace, result.final_images
    except PipelineError as error:
        trace, final_images = error.trace, []
        record["error"] = str(error)
    record.update(answer=trace.answer, question_type=trace.question_type,
                  targets=[t.name for t in trace.targets], final_layout=trace.final_layout,
                  final_boxes=trace.final_boxes, counters=trace.counters.to_dict())
    if out_dir is not None:
        try:
            picture, trace_path = save_explanation(trace, image, final_images, out_dir, question.id)
        except OSError as error:  # checked writable at start-up; a full disk, say
            return record, str(error)
        record.update(picture=str(picture), trace=str(trace_path))
    return record, None


def _load(path: Path):
    from focus_eval.images import ImageLoadError, load_image

    try:
        return load_image(path)
    except ImageLoadError as error:
        raise UserError(str(error)) from None


def _load_focus(args: argparse.Namespace, overrides: dict[str, str]):
    if args.quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    elif sys.stderr.isatty():  # transformers' "Loading weights" bar follows
        print(f"{PROG}: loading {args.model}", file=sys.stderr)
    from focus_eval.api import Focus

    try:
        return Focus.from_pretrained(args.model, family=args.family, dataset=args.dataset, dtype=args.dtype,
                                     device=args.device, device_map=args.device_map,
                                     attn_implementation=args.attn_implementation,
                                     processor_kwargs={"image_aspect": args.image_aspect} if args.image_aspect else None,
                                     **overrides)
    except OSError as error:
        raise UserError(f"cannot load model {args.model!r}: {error}") from None
    except ValueError as error:
        raise UserError(str(error)) from None


def _output_folder(path: str) -> Path:
    from focus_eval.outputs import check_writable_dir

    try:
        return check_writable_dir(path)
    except ValueError as error:
        raise UserError(f"--out: {error}") from None


def _parse_overrides(pairs: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        overrides[name.strip()] = value
    try:
        coerce_overrides(overrides)
    except ValueError as error:
        raise UserError(str(error)) from None
    return overrides


# output ---------------------------------------------------------------------------------


def _as_text(record: dict[str, Any], with_id: bool) -> str:
    from focus_eval.present.visualize import printable

    lines = [f"[{record['id']}] {_one_line(record['question'] or '')}"] if with_id else []
    if record["answer"] is not None:
        lines.append(f"answer: {printable(record['answer'])}")  # no control characters to the terminal
    if record["targets"] is not None:
        targets = ", ".join(record["targets"]) or "none"
        lines.append(f"targets: {targets} (question type {record['question_type']}); answered from "
                     f"{record['final_layout']} {record['final_boxes'] or ''}".rstrip())
        c = record["counters"]
        lines.append(f"forward passes: search {c['fp']} + targets {c['fp_targets']} + answer {c['fp_answer']} "
                     f"= {c['fp_total']} in {c['batches']} batches; {c['tflops']:.3g} TFLOPs; "
                     f"{c['total_seconds']:.2f} s; peak memory {c['peak_mem_gb']:.2f} GB")
    if record["picture"] is not None:
        lines += [f"picture: {record['picture']}", f"trace: {record['trace']}"]
    if record["error"] is not None and with_id:
        lines.append(f"error: {_one_line(record['error'])}")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# arguments ------------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="FOCUS visual cropping on your own images.")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{answer,explain,compare,lmms-eval,vlmeval}")
    answer = commands.add_parser("answer", help="answer questions, print answers and counters")
    explain = commands.add_parser("explain", help="answer and write a picture and the trace per question")
    commands.add_parser("lmms-eval", add_help=False,  # main() hands its arguments to lmms-eval
                        help="lmms-eval's command line (its own flags) with an exit status that tells whether it worked")
    for sub in (answer, explain):
        _add_common(sub)
    explain.add_argument("--out", required=True, metavar="DIR", help="folder for <id>.png and <id>.json")
    compare.add_arguments(commands.add_parser("compare", help=compare.HELP))
    commands.add_parser("vlmeval", add_help=False,
                        help="run VLMEvalKit with the FOCUS models (focus-eval vlmeval --help)")
    return parser


def _add_common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model", required=True, help="hub id or local checkpoint folder")
    sub.add_argument("--family", choices=known_families(), help="model family (default: from the checkpoint's config)")
    sub.add_argument("--dataset", choices=DATASETS,
                     help="benchmark whose Table 7 rules and in-context examples to use (default: generic)")
    sub.add_argument("--image", help="image file (with --question)")
    sub.add_argument("--question", help="question text; options like '(A) red (B) blue' may follow it")
    sub.add_argument("--questions", metavar="FILE", help="JSON Lines questions file instead of --image/--question")
    sub.add_argument("--id", help="name of the output files of a single question (default: the image's name)")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="FOCUS option (repeatable)")
    sub.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32")
    sub.add_argument("--device", help="e.g. cuda:0 or cpu (default: cuda when available)")
    sub.add_argument("--device-map", help="transformers device_map, e.g. auto (instead of --device)")
    sub.add_argument("--attn-implementation", default="sdpa", help="sdpa, eager or flash_attention_2")
    sub.add_argument("--image-aspect", choices=("pad", "crop"),
                     help="LLaVA-1.5 only: pad the image to a square (default, as the paper) or centre-crop it")
    sub.add_argument("--max-new-tokens", type=_positive_int, default=64, help="length limit of a generated answer")
    sub.add_argument("--json", action="store_true", help="one JSON object per question per line")
    sub.add_argument("--quiet", action="store_true", help="no progress bars or status lines")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


if __name__ == "__main__":
    sys.exit(main())
