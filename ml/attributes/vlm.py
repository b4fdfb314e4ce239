"""A VLM teacher: a vision-language model reads an image with its title and description and
answers with a JSON object of product attributes, which is parsed tolerantly.

The model is any checkpoint that `AutoProcessor` + `AutoModelForImageTextToText` can load
from a local folder (Qwen2-VL, LLaVA, ...). Generation is batched and greedy, so the same
inputs give the same labels. Model output is never trusted: `parse_attributes` finds the
first JSON-ish object in the text, repairs the usual mistakes (code fences, chatter, single
quotes, trailing commas, unquoted keys, truncation) and keeps only known types and allowed
values; everything it drops is reported as a problem with the raw output, never raised.

transformers and torch are imported lazily, so importing this module is cheap.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.attributes.hf_local import check_model_folder, load_local

SOURCE = "vlm"
MAX_VALUE_CHARS = 64
MAX_DESCRIPTION_CHARS = 600
_MAX_CANDIDATES = 20
_EMPTY_VALUES = {"", "none", "null", "n/a", "na", "unknown", "-"}
_STRUCTURAL = set("{}[],:")
_BARE_LITERALS = {"true": "true", "false": "false", "null": "null", "True": "true", "False": "false", "None": "null"}
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")


@dataclass(frozen=True)
class TeacherLabel:
    """One attribute found for one item."""

    item_id: str
    type: str  # attribute type, e.g. "color"
    value: str  # normalised phrase: lowercase, stripped, single spaces
    confidence: float  # the model's probability for its whole answer (geometric mean over tokens)
    source: str = SOURCE


class VLMLoadError(ValueError):
    """A model folder that exists but does not hold a loadable image-text-to-text checkpoint."""


# --------------------------------------------------------------------------------------------
# Parsing


def normalise_value(text: str) -> str:
    """Lowercase, collapse whitespace, strip a trailing full stop and matching outer quotes."""
    text = " ".join(str(text).lower().split()).rstrip(".;: ")
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def _normalise_key(text: str) -> str:
    return "_".join(str(text).lower().replace("-", " ").split()).strip("\"'`")


def _is_apostrophe(text: str, i: int) -> bool:
    """A single quote between two letters ("men's") is an apostrophe, not a string delimiter."""
    return text[i] == "'" and 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()


def _object_candidates(text: str) -> list[tuple[str, bool]]:
    """Substrings that start at a '{' and end at its matching '}' (string-aware, nested braces
    balanced), or run to the end of the text when the object is never closed (truncated=True)."""
    found: list[tuple[str, bool]] = []
    start = text.find("{")
    while start != -1 and len(found) < _MAX_CANDIDATES:
        depth, quote, escaped, end = 0, "", False, -1
        for i in range(start, len(text)):
            ch = text[i]
            if quote:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == quote and not _is_apostrophe(text, i):
                    quote = ""
            elif ch in "\"'" and not _is_apostrophe(text, i):
                quote = ch
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    end = i
                    break
        if end == -1:
            found.append((text[start:], True))
        else:
            found.append((text[start : end + 1], False))
        start = text.find("{", start + 1)
    return found


def _repair(candidate: str) -> tuple[str, bool]:
    """Rewrite JSON-ish text as JSON: single-quoted strings become double-quoted, bare words
    (unquoted keys or values) are quoted, Python literals become JSON ones, trailing commas
    go, and brackets/strings left open by a truncated answer are closed. Also says whether the
    text ended inside a string (its last value is then incomplete)."""
    out: list[str] = []
    stack: list[str] = []
    bare: list[str] = []

    def flush_bare() -> None:
        word = "".join(bare).strip()
        bare.clear()
        if not word:
            return
        if word in _BARE_LITERALS:
            out.append(_BARE_LITERALS[word])
        elif _NUMBER.fullmatch(word):
            out.append(word)
        else:
            out.append(json.dumps(word))

    def drop_trailing_comma() -> None:
        j = len(out) - 1
        while j >= 0 and out[j].isspace():
            j -= 1
        if j >= 0 and out[j] == ",":
            del out[j]

    i, n, open_string = 0, len(candidate), False
    while i < n:
        ch = candidate[i]
        if ch in "\"'":
            flush_bare()
            quote, i, chars = ch, i + 1, []
            while i < n:
                c = candidate[i]
                if c == "\\" and i + 1 < n:
                    chars.append(candidate[i : i + 2])
                    i += 2
                    continue
                if c == quote:
                    if _is_apostrophe(candidate, i):
                        chars.append(c)
                        i += 1
                        continue
                    break
                chars.append('\\"' if c == '"' else c)  # a double quote inside a single-quoted string
                i += 1
            open_string = i >= n
            source = "".join(chars).replace("\\'", "'")
            try:
                value = json.loads(f'"{source}"', strict=False)
            except json.JSONDecodeError:
                value = source.replace("\\", "")
            out.append(json.dumps(value))
            i += 1  # past the closing quote (or the end when it was truncated)
            continue
        if ch in _STRUCTURAL:
            flush_bare()
            if ch in "{[":
                stack.append("}" if ch == "{" else "]")
            elif ch in "}]":
                drop_trailing_comma()
                if stack:
                    stack.pop()
            out.append(ch)
        elif ch == "\n":
            flush_bare()
            out.append(" ")
        else:
            bare.append(ch)
        i += 1
    flush_bare()
    if stack:  # truncated: close what is open
        drop_trailing_comma()
        tail = "".join(out).rstrip()
        if tail.endswith(":"):
            out.append(" null")
        out.extend(reversed(stack))
    return "".join(out), open_string


def _load_object(candidate: str, truncated: bool) -> dict | None:
    repaired, open_string = _repair(candidate)
    if not truncated:
        attempts = [candidate, repaired]
    else:  # an answer that stopped mid-string loses its last, incomplete pair
        cut = candidate.rfind(",")
        attempts = [] if open_string else [repaired]
        if cut > 0:
            attempts.append(_repair(candidate[:cut])[0])
    for text in attempts:
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError, ValueError):
            continue
        if isinstance(value, dict) and (value or not truncated):
            return value
    return None


def _find_object(raw: str) -> tuple[dict | None, bool]:
    """The first candidate that loads as an object, and whether it was truncated (for None:
    whether the first candidate was and had begun a pair)."""
    candidates = _object_candidates(raw)
    for candidate, truncated in candidates:
        value = _load_object(candidate, truncated)
        if value is not None:
            return value, truncated
    return None, bool(candidates) and candidates[0][1] and ":" in candidates[0][0]


def _normalise_types(attribute_types: dict[str, list[str] | None]) -> dict[str, set[str] | None]:
    return {
        _normalise_key(name): (None if allowed is None else {normalise_value(v) for v in allowed})
        for name, allowed in attribute_types.items()
    }


def parse_attributes(raw: str, attribute_types: dict[str, list[str] | None]) -> tuple[dict[str, str], list[str]]:
    """Attributes from a model's raw answer: (type -> normalised value, problems). Never raises.

    Finds the first JSON object in the text (``json`` fences, chatter around it, single quotes,
    trailing commas, unquoted keys, a truncated end), descends into a single wrapper object
    (``{"attributes": {...}}``) when the top level holds no known type, keeps only known types,
    and keeps a value only when it is in the type's allowed list (None: any short phrase).
    A list value is read element by element: the first acceptable element is kept, the others
    are reported. null/empty/"unknown" values mean "not stated" and are dropped silently.
    """
    try:
        return _parse_attributes(raw, _normalise_types(attribute_types))
    except Exception as error:  # noqa: BLE001 - a parser for model output must never raise
        return {}, [f"parser error: {type(error).__name__}: {error}"]


def _parse_attributes(raw: Any, types: dict[str, set[str] | None]) -> tuple[dict[str, str], list[str]]:
    if not isinstance(raw, str) or not raw.strip():
        return {}, ["empty output"]
    obj, truncated = _find_object(raw)
    if obj is None:
        return {}, ["truncated JSON object" if truncated else "no JSON object found"]
    problems = ["truncated JSON object"] if truncated else []
    keyed = {_normalise_key(k): v for k, v in obj.items()}
    if not any(k in types for k in keyed):
        nested = [v for v in obj.values() if isinstance(v, dict)]
        if len(nested) == 1 and any(_normalise_key(k) in types for k in nested[0]):
            keyed = {_normalise_key(k): v for k, v in nested[0].items()}
    found: dict[str, str] = {}
    for key, value in keyed.items():
        if key not in types:
            problems.append(f"unknown type {key!r}")
            continue
        allowed = types[key]
        elements = value if isinstance(value, list) else [value]
        kept: list[str] = []
        for element in elements:
            if element is None:
                continue
            if isinstance(element, (dict, list)) or isinstance(element, bool):
                problems.append(f"value for {key!r} is not text: {json.dumps(element)[:80]}")
                continue
            text = normalise_value(element)
            if text in _EMPTY_VALUES and not (allowed and text in allowed):
                continue
            if len(text) > MAX_VALUE_CHARS:
                problems.append(f"value for {key!r} is longer than {MAX_VALUE_CHARS} characters: {text[:40]!r}...")
            elif allowed is not None and text not in allowed:
                problems.append(f"value {text!r} not allowed for {key!r}")
            elif text not in kept:
                kept.append(text)
        if kept:
            found[key] = kept[0]
            if len(kept) > 1:
                problems.append(f"several values for {key!r}: kept {kept[0]!r}, ignored {kept[1:]}")
    return found, problems


# --------------------------------------------------------------------------------------------
# The teacher


def _check_model_folder(model_path: str | Path) -> Path:
    return check_model_folder(model_path, "VLM", "a local folder written by save_pretrained for an image-text-to-text model: "
                              "config.json, the weights (*.safetensors) and the processor/tokenizer files", VLMLoadError)


class VLMTeacher:
    """Labels items' attributes by asking a vision-language model for a JSON object."""

    name = SOURCE

    def __init__(
        self,
        model_path: str | Path,
        attribute_types: dict[str, list[str] | None],
        batch_size: int = 8,
        max_new_tokens: int = 64,
        device: str = "cpu",
    ) -> None:
        if not attribute_types:
            raise ValueError("attribute_types is empty: give at least one type, e.g. {'color': ['red', 'blue'], 'style': None}")
        for type_name, allowed in attribute_types.items():
            if allowed is not None and not [v for v in allowed if normalise_value(v)]:
                raise ValueError(f"attribute type {type_name!r} has an empty list of allowed values; use None for free text")
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError(f"batch_size ({batch_size}) and max_new_tokens ({max_new_tokens}) must be at least 1")
        self.model_path = _check_model_folder(model_path)
        self.attribute_types = {
            _normalise_key(k): (None if v is None else [normalise_value(x) for x in v if normalise_value(x)])
            for k, v in attribute_types.items()
        }
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.processor, self.model = self._load()

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor, model = load_local(self.model_path, AutoProcessor, AutoModelForImageTextToText, self.device, VLMLoadError)
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None or not hasattr(processor, "image_processor"):
            raise VLMLoadError(
                f"the processor in {str(self.model_path)!r} ({type(processor).__name__}) has no tokenizer or image "
                "processor; expected a multimodal processor (processor_config.json + tokenizer files)"
            )
        tokenizer.padding_side = "left"  # decoder-only batched generation pads on the left
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return processor, model

    # -- prompting ----------------------------------------------------------------------------

    def prompt(self, title: str, description: str | None) -> str:
        """The instruction: asks for one JSON object whose keys are the attribute types."""
        lines = []
        for type_name, allowed in self.attribute_types.items():
            if allowed is None:
                lines.append(f'- "{type_name}": a short phrase')
            else:
                lines.append(f'- "{type_name}": one of {", ".join(allowed)}')
        description = " ".join((description or "").split())
        if len(description) > MAX_DESCRIPTION_CHARS:
            description = description[:MAX_DESCRIPTION_CHARS].rsplit(" ", 1)[0] + " ..."
        example = json.dumps({k: (v[0] if v else "...") for k, v in self.attribute_types.items()})
        return "\n".join(
            [
                "You label products in an online shop. Look at the product image and read its text.",
                f"Title: {' '.join(str(title).split())}",
                f"Description: {description or '(none)'}",
                "Answer with one JSON object and nothing else. Its keys are:",
                *lines,
                "Use null for a key that does not apply or cannot be seen.",
                f"Example: {example}",
            ]
        )

    def input_text(self, title: str, description: str | None) -> str:
        """What the model reads: the prompt in the processor's chat template with one image slot
        (or, for a processor without a template, the image token followed by the prompt)."""
        instruction = self.prompt(title, description)
        processor = self.processor
        template = getattr(processor, "chat_template", None)
        if template:
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
            return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        image_token = getattr(processor, "image_token", None) or "<image>"
        return f"{image_token}\n{instruction}\n"

    # -- generation ---------------------------------------------------------------------------

    def generate(self, texts: Sequence[str], images: Sequence[Any]) -> list[tuple[str, float]]:
        """One batch of greedy generations: (decoded answer, the answer's probability as the
        geometric mean of its tokens' probabilities)."""
        import torch

        inputs = self.processor(images=list(images), text=list(texts), padding=True, return_tensors="pt")
        inputs = inputs.to(self.device, dtype=self.model.dtype)  # float tensors (pixels) only
        tokenizer = self.processor.tokenizer
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=tokenizer.pad_token_id,
                return_dict_in_generate=True,
                output_logits=True,
            )
            prompt_len = inputs["input_ids"].shape[1]
            generated = out.sequences[:, prompt_len:]
            log_probs = self.model.compute_transition_scores(out.sequences, out.logits, normalize_logits=True)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        results = []
        for row, scores in zip(generated.tolist(), log_probs.float().cpu().tolist(), strict=True):
            length = len(row)
            for j, token in enumerate(row):
                if token in eos_ids:
                    length = j + 1
                    break
            kept = [s for s in scores[:length] if math.isfinite(s)]
            confidence = math.exp(sum(kept) / len(kept)) if kept else 0.0
            text = tokenizer.decode(row[:length], skip_special_tokens=True)
            results.append((text, float(confidence)))
        return results

    def label(
        self,
        item_ids: list[str],
        images: np.ndarray,
        titles: list[str],
        descriptions: list[str | None],
        progress: bool = True,
    ) -> tuple[list[TeacherLabel], list[dict]]:
        """Labels for each item, and the problems: {"item_id", "problem", "raw_output"} for every
        answer that could not be parsed, named an unknown type or a disallowed value, or gave no
        attribute at all. Model output never raises; malformed inputs (shapes, lengths) do."""
        from PIL import Image
        from tqdm.auto import tqdm

        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 N x H x W x 3, got {images.dtype} {images.shape}")
        n = len(item_ids)
        if not (len(images) == len(titles) == len(descriptions) == n):
            raise ValueError(
                f"item_ids ({n}), images ({len(images)}), titles ({len(titles)}) and descriptions "
                f"({len(descriptions)}) must have the same length"
            )
        labels: list[TeacherLabel] = []
        problems: list[dict] = []
        starts = range(0, n, self.batch_size)
        for start in tqdm(starts, desc="vlm teacher", unit="batch", disable=not progress):
            stop = min(start + self.batch_size, n)
            texts = [self.input_text(titles[i], descriptions[i]) for i in range(start, stop)]
            pictures = [Image.fromarray(np.ascontiguousarray(images[i])) for i in range(start, stop)]
            answers = self.generate(texts, pictures)
            for item_id, (raw, confidence) in zip(item_ids[start:stop], answers, strict=True):
                item_labels, item_problems = self.labels_from_output(str(item_id), raw, confidence)
                labels.extend(item_labels)
                problems.extend(item_problems)
        return labels, problems

    def labels_from_output(self, item_id: str, raw: str, confidence: float) -> tuple[list[TeacherLabel], list[dict]]:
        """One item's labels and problems from its raw answer."""
        found, messages = parse_attributes(raw, self.attribute_types)
        if not found and not messages:
            messages = ["no attribute in the answer"]
        labels = [TeacherLabel(item_id, type_name, value, confidence, SOURCE) for type_name, value in found.items()]
        problems = [{"item_id": item_id, "problem": message, "raw_output": raw} for message in messages]
        return labels, problems
