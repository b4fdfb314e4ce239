"""Page titles. The rule titler writes "Red Cotton Summer Dresses": modifiers in English
adjective order, the category as a plural noun, and for every entry the surface form shoppers
search most (from the query log, among the entry's merged members and taxonomy synonyms).
The LLM titler asks a local causal LM (transformers) and falls back to the rules when the
answer is not a usable title; each title records where it came from."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from ml.attributes.hf_local import check_model_folder, load_local
from ml.attributes.lexicon import normalise
from ml.collections.space import AttributeSpace, Key

TYPE_ORDER = ("style", "fit", "color", "material", "season", "brand")  # opinion/size/colour/material/purpose, then the noun
_IRREGULAR = {"dress": "dresses"}
_TITLE_CHARS = re.compile(r"^[A-Za-z0-9&' ,\-]{3,80}$")


def pluralise(noun: str) -> str:
    words = noun.split()
    last = words[-1]
    if last in _IRREGULAR:
        last = _IRREGULAR[last]
    elif last.endswith("s") and not last.endswith("ss"):
        pass  # trousers, sandals, ankle boots
    elif last.endswith(("ss", "sh", "ch", "x", "z")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return " ".join([*words[:-1], last])


def title_case(text: str) -> str:
    return " ".join("-".join(part[:1].upper() + part[1:] for part in word.split("-")) for word in text.split())


def surface_demand(log: pd.DataFrame, surfaces: set[str]) -> dict[str, int]:
    """Searches whose normalised query contains each surface form as whole words (either number)."""
    if log is None or log.empty or not surfaces:
        return {}
    counts = {}
    for surface in surfaces:
        norm = normalise(surface)
        pattern = re.compile(rf"\b{re.escape(norm)}(?:s|es)?\b")
        hits = log["query"].str.contains(pattern)
        counts[surface] = int(log.loc[hits, "count"].sum())
    return counts


class Titler(Protocol):
    name: str

    def titles(self, keys: Sequence[Key]) -> tuple[list[str], list[str]]:
        """(title, source) per key."""


class RuleTitler:
    name = "rules"

    def __init__(self, space: AttributeSpace, synonyms: dict[tuple[str, str], list[str]], log: pd.DataFrame | None):
        """`synonyms`: (type, member) -> the taxonomy's other surface forms for it."""
        self.space = space
        self.surface: dict[int, str] = {}
        taken = {(space.entry_type[e], m): e for e in range(space.n_entries) for m in space.entry_members[e]}
        options = {e: {space.entry_phrase[e], *space.entry_members[e]} | {
            s for m in space.entry_members[e] for s in synonyms.get((space.entry_type[e], m), [])
            if taken.get((space.entry_type[e], s), e) == e}  # another entry's member would give two pages one title
            for e in range(space.n_entries)}
        demand = surface_demand(log, set().union(*options.values())) if options else {}
        for e, forms in options.items():
            # most searched; on a tie (or an empty log) the entry's own phrase, then alphabetical
            self.surface[e] = max(sorted(forms), key=lambda s: (demand.get(s, 0), s == space.entry_phrase[e]))

    def title(self, key: Key) -> str:
        by_type = {self.space.entry_type[e]: self.surface[e] for e in key}
        noun = by_type.pop("category", None)
        rank = {t: i for i, t in enumerate(TYPE_ORDER)}
        words = [by_type[t] for t in sorted(by_type, key=lambda t: (rank.get(t, len(rank)), t))]
        return title_case(" ".join([*words, pluralise(noun) if noun else "Picks"]))

    def titles(self, keys: Sequence[Key]) -> tuple[list[str], list[str]]:
        return [self.title(k) for k in keys], ["rules"] * len(keys)


def clean_title(raw: Any) -> str | None:
    """The first line of a model's answer, unquoted, if it looks like a title; else None."""
    if not isinstance(raw, str):
        return None
    line = next((x.strip().strip("\"'*#").strip() for x in raw.splitlines() if x.strip()), "")
    line = re.sub(r"^(title|answer)\s*:\s*", "", line, flags=re.I).strip()
    return title_case(line) if _TITLE_CHARS.match(line) and any(c.isalpha() for c in line) else None


class LLMTitler:
    """A local causal LM writes the title; unusable answers fall back to the rule title."""

    name = "llm"

    def __init__(self, model_path: str | Path, fallback: RuleTitler, max_new_tokens: int = 16, device: str = "cpu"):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = check_model_folder(model_path, "LLM titler", "a local folder written by save_pretrained for a causal language model")
        self.tokenizer, self.model = load_local(self.model_path, AutoTokenizer, AutoModelForCausalLM, device)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.fallback, self.max_new_tokens, self.device = fallback, max_new_tokens, device

    def prompt(self, key: Key) -> str:
        space = self.fallback.space
        attributes = "; ".join(f"{space.entry_type[e]}: {self.fallback.surface[e]}" for e in sorted(key))
        return f"Write a short title for a shopping page of products with these attributes: {attributes}.\nTitle:"

    def generate(self, key: Key) -> str:
        import torch

        inputs = self.tokenizer(self.prompt(key), return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                                      pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def titles(self, keys: Sequence[Key]) -> tuple[list[str], list[str]]:
        titles, sources = [], []
        for key in keys:
            title = clean_title(self.generate(key))
            titles.append(title or self.fallback.title(key))
            sources.append("llm" if title else "rules (llm answer unusable)")
        return titles, sources


def make_titler(kind: str, space: AttributeSpace, synonyms: dict, log: pd.DataFrame | None, model_path: str | None = None) -> Titler:
    rules = RuleTitler(space, synonyms, log)
    if kind == "rules":
        return rules
    if kind == "llm":
        if not model_path:
            raise ValueError("titler 'llm' needs titler_model: a local folder with a transformers causal LM")
        return LLMTitler(model_path, rules)
    raise ValueError(f"titler {kind!r}: use 'rules' or 'llm'")
