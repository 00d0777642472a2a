#!/usr/bin/env python3
"""Reference contexts and choices for cllm's multiple-choice loaders (tests/test_eval_mc.c).

Writes tests/fixtures/mc/{hellaswag,arc,mmlu}.jsonl (records in the data sets' real formats:
HellaSwag as in rowanz/hellaswag and the Hugging Face copy, ARC both as Hugging Face's
allenai/ai2_arc rows and as AllenAI's original JSONL, MMLU as cais/mmlu rows) and
tests/fixtures/mc/expected.json: for every record and task, the context, the choices, the
continuations and the gold index that lm-evaluation-harness builds, computed by the installed
lm_eval package itself: HellaSwag through lm_eval/tasks/hellaswag/utils.py's process_docs, ARC
and MMLU by rendering the task YAMLs' doc_to_text / doc_to_choice / doc_to_target with
lm_eval.utils.apply_template and resolving them as ConfigurableTask does (a feature name is read
from the doc; a rendered digit string or list literal goes through ast.literal_eval). The
zero-shot context is description + doc_to_text; each continuation is the target delimiter " "
plus the choice, after lm-eval's _encode_pair has moved the context's trailing whitespace.

Run:
    python3 -m venv /tmp/venv
    /tmp/venv/bin/pip install jinja2 pyyaml requests numpy && /tmp/venv/bin/pip install --no-deps lm_eval
    /tmp/venv/bin/python tools/gen_mc_fixtures.py [tests/fixtures/mc]
"""
import ast
import importlib.util
import json
import os
import sys
import types

import yaml
import lm_eval
import lm_eval.utils as lm_utils

TASKS_DIR = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")

HELLASWAG = [
    # The first record of HellaSwag's validation set, in rowanz/hellaswag's JSONL form.
    {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.",
     "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "split": "val",
     "split_type": "indomain", "label": 3,
     "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                 "is holding a rubik's cube.", "starts pulling up roofing on a roof."],
     "source_id": "activitynet~v_-JhWjGDPHMY"},
    # WikiHow-style records (the bracketed artifacts preprocess removes), label as a string
    # the way the Hugging Face copy stores it.
    {"ind": "4", "activity_label": "Home and Garden",
     "ctx_a": "[header] How to clean a grill [title] Heat the grill. [step] Turn the burners to high for 15 minutes.",
     "ctx_b": "", "ctx": "", "split": "val", "split_type": "zeroshot", "label": "1",
     "endings": [" [substeps] Scrub the grates with a wire brush.  Then rinse. ",
                 "[title] Scrape the grates while they are hot. [step] Use a long-handled brush.",
                 "Let the grill cool  completely  before you [ignore this] start.",
                 "Spray the   burners [with water]."],
     "source_id": "wikihow~12345"},
    {"ind": 7, "activity_label": "Personal Care and Style",
     "ctx_a": "  [header] How to braid hair [title] Brush your hair.",
     "ctx_b": "MAKE sure THERE are no Tangles.", "split": "val", "split_type": "indomain",
     "label": 0,
     "endings": ["[step] Divide it into three sections.", "Tie it [title] off.",
                 "[unclosed bracket stays", "a ] closing bracket alone stays"],
     "source_id": "wikihow~678"},
    {"ind": 9, "activity_label": "Cooking", "ctx_a": "\u00c9lodie whisks the eggs.",
     "ctx_b": "\u00c9LODIE adds SUGAR and \u00c7a", "split": "val", "split_type": "indomain",
     "label": 2,
     "endings": ["pours the batter.", "[title] bakes it\n[newline inside] brackets.",
                 "serves the cr\u00e8me br\u00fbl\u00e9e.", "   trims   spaces   "],
     "source_id": "activitynet~v_xyz"},
    {"ind": 11, "activity_label": "Sports", "ctx_a": "Two teams line up.",
     "ctx_b": "the referee [blows] the whistle [title] and", "split": "val",
     "split_type": "indomain", "label": 1,
     "endings": ["the game starts.", "players run [fast] .", "x", "[title] timeout."],
     "source_id": "activitynet~v_abc"},
]

ARC = [
    # Hugging Face allenai/ai2_arc row.
    {"id": "Mercury_7175875", "question": "An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most likely effect of this increase in rotation?",
     "choices": {"text": ["Planetary density will decrease.", "Planetary years will become longer.",
                          "Planetary days will become shorter.", "Planetary gravity will become stronger."],
                 "label": ["A", "B", "C", "D"]},
     "answerKey": "C"},
    # Digit labels, as some ARC rows have.
    {"id": "NYSEDREGENTS_2015_4_8", "question": "Which object is the best conductor of electricity?",
     "choices": {"text": ["a wax crayon", "a plastic spoon", "a rubber eraser", "an iron nail"],
                 "label": ["1", "2", "3", "4"]},
     "answerKey": "4"},
    # Five choices, trailing whitespace in the question.
    {"id": "five", "question": "Pick the prime number.  ",
     "choices": {"text": ["4", "6", "7", "8", "9"], "label": ["A", "B", "C", "D", "E"]},
     "answerKey": "C"},
]
# AllenAI's original ARC JSONL form of the first row (question.stem, question.choices).
ARC_ORIGINAL = [
    {"id": "Mercury_7175875", "question": {"stem": ARC[0]["question"], "choices": [
        {"text": t, "label": l} for t, l in zip(ARC[0]["choices"]["text"], ARC[0]["choices"]["label"])]},
     "answerKey": "C"},
]

MMLU = [
    {"question": "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.",
     "subject": "abstract_algebra", "choices": ["0", "4", "2", "6"], "answer": 1},
    {"question": "  Which of the following is the body cavity that contains the pituitary gland?\n",
     "subject": "anatomy",
     "choices": ["Abdominal", "Cranial", "Pleural", "Spinal"], "answer": 1},
    {"question": "In animal cells, which of the following represents the most likely pathway?",
     "subject": "high_school_biology",
     "choices": ["Golgi \u2192 ER \u2192 lysosome", "ER \u2192 Golgi \u2192 vesicles",
                 "Nucleus \u2192 ER", "Lysosome \u2192 Golgi"], "answer": 1},
]


def load_yaml(path):
    class Loader(yaml.SafeLoader):
        pass
    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    with open(path) as f:
        cfg = yaml.load(f, Loader=Loader)
    if "include" in cfg:
        base = load_yaml(os.path.join(os.path.dirname(path), cfg["include"]))
        base.update({k: v for k, v in cfg.items() if k != "include"})
        cfg = base
    return cfg


def resolve_text(field, doc, has_choices=True):
    if field in doc:
        return doc[field]
    s = lm_utils.apply_template(field, doc)
    return ast.literal_eval(s) if s.isdigit() and has_choices else s


def resolve_choices(field, doc):
    if isinstance(field, list):
        return field
    if field in doc:
        return doc[field]
    return ast.literal_eval(lm_utils.apply_template(field, doc))


def resolve_target(field, doc):
    if isinstance(field, int):
        return field
    if field in doc:
        return doc[field]
    s = lm_utils.apply_template(field, doc)
    return ast.literal_eval(s) if s.isdigit() else s


def request(cfg, doc, description=""):
    context = description + resolve_text(cfg["doc_to_text"], doc)
    choices = resolve_choices(cfg["doc_to_choice"], doc)
    gold = resolve_target(cfg["doc_to_target"], doc)
    delim = cfg.get("target_delimiter", " ")
    out = {"context": context.rstrip(), "choices": choices, "gold": int(gold),
           "continuations": []}
    n_spaces = len(context) - len(context.rstrip())   # lm-eval's _encode_pair
    for c in choices:
        cont = delim + c
        if n_spaces > 0:
            cont = context[-n_spaces:] + cont
        out["continuations"].append(cont)
    return out


def hellaswag_utils():
    sys.modules.setdefault("datasets", types.SimpleNamespace(Dataset=object))
    spec = importlib.util.spec_from_file_location(
        "hellaswag_utils", os.path.join(TASKS_DIR, "hellaswag", "utils.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class ListDataset:
    """The one Dataset method process_docs uses: map() merges the returned fields."""

    def __init__(self, docs):
        self.docs = docs

    def map(self, fn):
        return [dict(d, **fn(d)) for d in self.docs]


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/mc"
    os.makedirs(out_dir, exist_ok=True)
    expected = {"generator": "tools/gen_mc_fixtures.py", "lm_eval_version": lm_eval.__version__,
                "files": {}}

    hs_cfg = load_yaml(os.path.join(TASKS_DIR, "hellaswag", "hellaswag.yaml"))
    hs_docs = hellaswag_utils().process_docs(ListDataset(HELLASWAG))
    expected["files"]["hellaswag.jsonl"] = {
        "hellaswag": [request(hs_cfg, d) for d in hs_docs]}

    arc_cfg = load_yaml(os.path.join(TASKS_DIR, "arc", "arc_easy.yaml"))
    arc_rows = ARC + [{"id": r["id"], "question": r["question"]["stem"],
                       "choices": {"text": [c["text"] for c in r["question"]["choices"]],
                                   "label": [c["label"] for c in r["question"]["choices"]]},
                       "answerKey": r["answerKey"]} for r in ARC_ORIGINAL]
    expected["files"]["arc.jsonl"] = {"arc": [request(arc_cfg, d) for d in arc_rows]}

    mm = {"mmlu": [], "mmlu_letters": []}
    for d in MMLU:
        for task, sub in (("mmlu", "continuation"), ("mmlu_letters", "default")):
            cfg = load_yaml(os.path.join(TASKS_DIR, "mmlu", sub, f"mmlu_{d['subject']}.yaml"))
            mm[task].append(request(cfg, d, cfg.get("description", "")))
    expected["files"]["mmlu.jsonl"] = mm

    for name, rows in (("hellaswag.jsonl", HELLASWAG), ("arc.jsonl", ARC + ARC_ORIGINAL),
                       ("mmlu.jsonl", MMLU)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print(f"wrote {out_dir}: lm_eval {lm_eval.__version__}")


if __name__ == "__main__":
    main()
