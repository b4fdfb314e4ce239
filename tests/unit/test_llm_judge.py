"""The LLM judge: its yes/no parser, and its plumbing on a tiny Llama built here from config,
saved with save_pretrained and loaded back by path like a real checkpoint (nothing downloaded)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.tiny_models import build_tiny_llm, teach_answer

from ml.attributes.curation import CurationConfig, MergeCandidate, RuleJudge, Verdict, curate_vocabulary
from ml.attributes.llm_judge import LLMJudge, parse_yes_no

CHAT_TEMPLATE = (
    "{% for m in messages %}USER: {{ m['content'] }}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
TOKENIZER_CORPUS = [
    "You curate the attribute vocabulary of an online shop. Do the phrases and name the same of a product, "
    "so that they should be merged into one attribute value? Answer yes or no.",
    "yes no Yes No USER: ASSISTANT: Answer:",
    "red scarlet crimson blue navy green color material cotton wool style casual formal",
]
TRAIN_CANDIDATES = [
    MergeCandidate("color", "red", "crimson", 0.9, None),
    MergeCandidate("color", "navy", "blue", 0.85, 0.4),
    MergeCandidate("material", "cotton", "wool", 0.8, None),
    MergeCandidate("style", "casual", "formal", 0.7, None),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory) -> Path:
    return build_tiny_llm(tmp_path_factory.mktemp("tiny-llama"), TOKENIZER_CORPUS, CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def yes_llm(tiny_llm, tmp_path_factory) -> Path:
    """The tiny model trained for a few Adam steps to answer every question with "yes", saved
    next to a copy of its tokenizer: a checkpoint that always approves."""
    judge = LLMJudge(tiny_llm)
    tokenizer, model = judge.tokenizer, judge.model
    tokenizer.padding_side = "left"
    answer = "yes" + tokenizer.eos_token
    texts = [judge.input_text(c)[0] + answer for c in TRAIN_CANDIDATES]
    batch = tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt")
    answer_len = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
    assert teach_answer(model, batch, answer_len, steps=40) < 0.05
    trained = tmp_path_factory.mktemp("yes-llama")
    shutil.copytree(tiny_llm, trained, dirs_exist_ok=True)
    model.eval().save_pretrained(trained)
    return trained


# --------------------------------------------------------------------------------------------
# parse_yes_no

PARSE_CASES = [
    ("Yes", True),
    ("yes.", True),
    (" NO!", False),
    ("no", False),
    ("Answer: yes", True),
    ("Sure! The answer is: YES", True),
    ("Yes, they are the same", True),
    ("No, a crimson dress is not a red one.", False),
    ("\n\n  yes\n", True),
    ("yes and no", None),
    ("Yes. No.", None),
    ("", None),
    ("   ", None),
    ("maybe", None),
    ("yesterday nothing notably", None),  # the words must stand alone
    ("none", None),
    (None, None),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES, ids=[repr(c[0]) for c in PARSE_CASES])
def test_parse_yes_no(text, expected):
    assert parse_yes_no(text) is expected


def test_verdicts_from_answers_never_raise():
    assert LLMJudge.verdict_from_answer(" Yes!") == Verdict(True, "yes (answer 'Yes!')")
    assert LLMJudge.verdict_from_answer("no.") == Verdict(False, "no (answer 'no.')")
    unclear = LLMJudge.verdict_from_answer("qz" * 100)
    assert not unclear.approve and unclear.reason.startswith("unparseable answer 'qzqz") and len(unclear.reason) < 100
    assert LLMJudge.verdict_from_answer(None) == Verdict(False, "unparseable answer 'None'")


# --------------------------------------------------------------------------------------------
# the judge on a tiny random model


def test_prompt_names_the_type_and_both_phrases(tiny_llm):
    judge = LLMJudge(tiny_llm)
    prompt = judge.prompt(MergeCandidate("color", "red", "scarlet  red", 0.9, None))
    assert '"red"' in prompt and '"scarlet red"' in prompt and "same color of a product" in prompt
    assert prompt.endswith("Answer yes or no.")
    text, templated = judge.input_text(MergeCandidate("color", "red", "scarlet", 0.9, None))
    assert templated and text.startswith("USER: ") and text.endswith("ASSISTANT:")


@pytest.mark.parametrize("chat_template", [True, False], ids=["chat-template", "plain-prompt"])
def test_random_tiny_llm_decides_deterministically_and_asks_once(tmp_path, chat_template):
    path = build_tiny_llm(tmp_path / "model", TOKENIZER_CORPUS, CHAT_TEMPLATE if chat_template else None)
    judge = LLMJudge(str(path), max_new_tokens=6)
    assert type(judge.model).__name__ == "LlamaForCausalLM" and judge.name == "llm"
    text, templated = judge.input_text(TRAIN_CANDIDATES[0])
    assert templated == chat_template and text.endswith("ASSISTANT:" if chat_template else "\nAnswer:")

    calls: list[int] = []
    generate = judge.model.generate

    def counting_generate(**kwargs):
        calls.append(kwargs["input_ids"].shape[1])
        return generate(**kwargs)

    judge.model.generate = counting_generate
    candidate = MergeCandidate("color", "red", "scarlet", 0.91, None)
    first = judge.decide(candidate)
    assert isinstance(first, Verdict) and isinstance(first.approve, bool)
    assert first.reason.startswith(("yes (answer ", "no (answer ", "unparseable answer "))
    raw = judge.generate(candidate)  # the uncached answer is the one behind the verdict
    assert first == LLMJudge.verdict_from_answer(raw)
    if parse_yes_no(raw) is None:  # random weights: usually babble, kept in the reason
        assert not first.approve and repr(" ".join(raw.split()))[:20] in first.reason
    calls.clear()
    assert judge.decide(candidate) == first and calls == []  # cached: asked once
    judge.decide(MergeCandidate("color", "scarlet", "red", 0.91, None))
    assert len(calls) == 1  # another pair (here: the other order) is asked


# --------------------------------------------------------------------------------------------
# a tiny model trained to say yes, end to end


def test_a_tiny_llm_trained_to_say_yes_approves(yes_llm):
    judge = LLMJudge(yes_llm)
    assert judge.generate(TRAIN_CANDIDATES[0]).strip() == "yes"
    for candidate in [*TRAIN_CANDIDATES, MergeCandidate("color", "green", "navy", 0.1, -0.5)]:  # the last is unseen
        verdict = judge.decide(candidate)
        assert verdict.approve and verdict.reason.startswith("yes"), verdict


def test_curation_merges_with_the_llm_judge(yes_llm):
    """red/scarlet are close in text but have no lexical or image evidence: the rules keep them
    apart, the LLM judge (trained to approve) merges them; blue is never a candidate."""
    rows = [(f"i{i}", "color", v, 0.9) for i, v in enumerate(["red"] * 4 + ["scarlet"] * 3 + ["blue"] * 3)]
    teacher = pd.DataFrame(rows, columns=["item_id", "type", "value", "confidence"])
    vectors = {("color", "red"): np.array([1.0, 0.0, 0.0]), ("color", "scarlet"): np.array([0.95, 0.1, 0.0]),
               ("color", "blue"): np.array([0.0, 0.0, 1.0])}  # fmt: skip
    config = CurationConfig(min_items=2)
    taxonomy = {"color": ["red", "scarlet", "blue"]}

    vocab, decisions = curate_vocabulary(teacher, vectors, {}, taxonomy, config, RuleJudge(config))
    assert sorted(vocab["phrase"]) == ["blue", "red", "scarlet"] and decisions["action"].tolist() == ["keep apart"]

    vocab, decisions = curate_vocabulary(teacher, vectors, {}, taxonomy, config, LLMJudge(yes_llm))
    groups = {p: sorted(m) for p, m in zip(vocab["phrase"], vocab["members"])}
    assert groups == {"red": ["red", "scarlet"], "blue": ["blue"]}
    assert dict(zip(vocab["phrase"], vocab["items"])) == {"red": 7, "blue": 3}
    assert decisions["action"].tolist() == ["merge"]
    assert decisions["reason"].item().startswith("llm: yes")  # curation prefixes the judge's name


# --------------------------------------------------------------------------------------------
# bad model paths and settings


def test_a_missing_model_folder_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError) as error:
        LLMJudge(missing)
    assert str(missing) in str(error.value)


def test_a_folder_that_is_not_a_checkpoint_names_the_path(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"junk")
    with pytest.raises(ValueError, match="config.json") as error:
        LLMJudge(tmp_path)
    assert str(tmp_path) in str(error.value)
    (tmp_path / "config.json").write_text('{"model_type": "not-a-model"}')
    with pytest.raises(ValueError) as error:
        LLMJudge(tmp_path)
    assert str(tmp_path) in str(error.value)
    with pytest.raises(ValueError, match="max_new_tokens"):
        LLMJudge(tmp_path, max_new_tokens=0)
