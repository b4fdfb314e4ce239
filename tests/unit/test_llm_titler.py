"""The LLM titler's plumbing on a tiny local Llama (built here, saved with save_pretrained):
a checkpoint taught one answer titles with it; an unusable answer falls back to the rules."""

from __future__ import annotations

import shutil

import pytest

from tests.tiny_models import build_tiny_llm, teach_answer
from tests.unit.test_collections import random_space

from ml.collections.titles import LLMTitler, RuleTitler, make_titler

CORPUS = ["Write a short title for a shopping page of products with these attributes: category color material season",
          "Title: Red Cotton Dresses dress bag red blue cotton autumn fall ; : ."]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_llm_titler_uses_the_model_and_falls_back_on_unusable_answers(tmp_path):
    space = random_space(20)
    rules = RuleTitler(space, {}, None)
    path = build_tiny_llm(tmp_path / "random", CORPUS)
    titler = LLMTitler(path, rules, max_new_tokens=6)
    key = space.key_of(["category:dress", "color:red", "material:cotton"])
    tokenizer, model = titler.tokenizer, titler.model
    answer = " Red Cotton Dresses" + tokenizer.eos_token
    batch = tokenizer([titler.prompt(key) + answer], return_tensors="pt")
    answer_len = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
    assert teach_answer(model, batch, answer_len, steps=60) < 0.05
    taught = tmp_path / "taught"
    shutil.copytree(path, taught)
    model.eval().save_pretrained(taught)

    titles, sources = make_titler("llm", space, {}, None, str(taught)).titles([key])
    assert titles == ["Red Cotton Dresses"] and sources == ["llm"]

    class Babbler(LLMTitler):
        def generate(self, key):
            return "<<<>>>"

    babbler = Babbler(taught, rules)
    titles, sources = babbler.titles([key])
    assert titles == [rules.title(key)] and sources == ["rules (llm answer unusable)"]


def test_llm_titler_needs_a_local_model(tmp_path):
    with pytest.raises(ValueError, match="titler_model"):
        make_titler("llm", random_space(5), {}, None, None)
    with pytest.raises(FileNotFoundError, match="LLM titler"):
        LLMTitler(tmp_path / "missing", RuleTitler(random_space(5), {}, None))
