"""An LLM judge for vocabulary curation: asks a causal language model whether two phrases name
the same attribute value of a product, and turns its yes/no answer into a `Verdict`.

The model is any checkpoint that `AutoTokenizer` + `AutoModelForCausalLM` can load from a local
folder (nothing is downloaded). Generation is greedy, so the same question gets the same answer,
and each (type, a, b) pair is asked once per judge. Model output is never trusted and never
raises: `parse_yes_no` reads the answer tolerantly, and anything that is not clearly "yes" or
clearly "no" is a rejection that carries the raw answer in its reason.

transformers and torch are imported lazily, so importing this module is cheap.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ml.attributes.curation import MergeCandidate, Verdict
from ml.attributes.hf_local import check_model_folder, load_local

_YES_NO = re.compile(r"\b(yes|no)\b")
_MAX_RAW_CHARS = 60


def parse_yes_no(text: str) -> bool | None:
    """True for a clear yes, False for a clear no, None when unclear. Tolerates case,
    punctuation and chatter around the word ("Answer: Yes.", " NO!", "Yes, they are the same");
    an answer with both words, neither word, or no text is unclear. Never raises."""
    if not isinstance(text, str):
        return None
    words = set(_YES_NO.findall(text.lower()))
    if words == {"yes"}:
        return True
    if words == {"no"}:
        return False
    return None


def _short(raw: str) -> str:
    text = " ".join(raw.split())
    if len(text) > _MAX_RAW_CHARS:
        text = text[:_MAX_RAW_CHARS] + "..."
    return repr(text)


def _check_model_folder(model_path: str | Path) -> Path:
    return check_model_folder(model_path, "LLM judge", "a local folder written by save_pretrained for a causal language model: "
                              "config.json, the weights and the tokenizer files")


class LLMJudge:
    """Approves a merge when a causal LM answers "yes" to "do these two phrases name the same
    <type> of a product?". Satisfies `ml.attributes.curation.Judge`."""

    name = "llm"

    def __init__(self, model_path: str | Path, max_new_tokens: int = 8, device: str = "cpu") -> None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens ({max_new_tokens}) must be at least 1")
        self.model_path = _check_model_folder(model_path)
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.tokenizer, self.model = self._load()
        self._cache: dict[tuple[str, str, str], Verdict] = {}

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer, model = load_local(self.model_path, AutoTokenizer, AutoModelForCausalLM, self.device)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer, model

    # -- prompting ----------------------------------------------------------------------------

    def prompt(self, candidate: MergeCandidate) -> str:
        """The question about one candidate pair; asks for a one-word yes/no answer."""
        a, b, attr_type = (" ".join(str(x).split()) for x in (candidate.a, candidate.b, candidate.type))
        return (
            "You curate the attribute vocabulary of an online shop. "
            f'Do the phrases "{a}" and "{b}" name the same {attr_type} of a product, '
            "so that they should be merged into one attribute value? Answer yes or no."
        )

    def input_text(self, candidate: MergeCandidate) -> tuple[str, bool]:
        """What the model reads, and whether it is already a chat-template rendering (which
        carries its own special tokens). Without a template: the plain prompt and an answer cue."""
        question = self.prompt(candidate)
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": question}]
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False), True
        return f"{question}\nAnswer:", False

    # -- deciding -----------------------------------------------------------------------------

    def generate(self, candidate: MergeCandidate) -> str:
        """The model's greedy answer to the candidate's question, decoded without special tokens."""
        import torch

        text, templated = self.input_text(candidate)
        inputs = self.tokenizer(text, add_special_tokens=not templated, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        answer = out[0, inputs["input_ids"].shape[1] :]
        return self.tokenizer.decode(answer, skip_special_tokens=True)

    def decide(self, candidate: MergeCandidate) -> Verdict:
        """Yes approves, no rejects, anything else rejects as unparseable with the raw answer.
        Cached per (type, a, b): a pair is asked once."""
        key = (candidate.type, candidate.a, candidate.b)
        if key not in self._cache:
            raw = self.generate(candidate)
            self._cache[key] = self.verdict_from_answer(raw)
        return self._cache[key]

    @staticmethod
    def verdict_from_answer(raw: Any) -> Verdict:
        """The verdict for one raw answer. Never raises."""
        raw = raw if isinstance(raw, str) else repr(raw)
        answer = parse_yes_no(raw)
        if answer is True:
            return Verdict(True, f"yes (answer {_short(raw)})")
        if answer is False:
            return Verdict(False, f"no (answer {_short(raw)})")
        return Verdict(False, f"unparseable answer {_short(raw)}")
