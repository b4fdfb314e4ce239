"""RL prompts from the pipeline's own outputs: collection pages (their colour + category, the
phrasing the generator was trained on), a fairness suite (each category with no colour, where
the colour should come out uniform) and composition pairs (two objects in one prompt). Titles
and composition pairs are split train/eval by a hash of the prompt; the fairness suite is in
both (split "both"): parity is trained on those prompts and evaluated on them with other seeds."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pandas as pd


def hash_split(prompt: str, eval_share: float) -> str:
    """"eval" for about `eval_share` of prompts, fixed by the prompt's text: a prompt keeps its
    side across snapshots and runs, so no held-out prompt is ever trained on."""
    bucket = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "eval" if bucket < eval_share else "train"


def _attribute(labels, attr_type: str) -> str | None:
    return next((x.split(":", 1)[1] for x in labels if x.startswith(f"{attr_type}:")), None)


def build_prompts(pages: pd.DataFrame, split: Callable[[str, float], str] = hash_split, eval_share: float = 0.25, composition_pairs: int = 20) -> pd.DataFrame:
    """`pages`: published pages with `attributes` ("type:phrase" lists) and `title`."""
    rows = {}
    for labels, title in zip(pages["attributes"], pages["title"]):
        color, category = _attribute(labels, "color"), _attribute(labels, "category")
        if color and category:
            prompt = f"a {color} {category}"
            rows.setdefault(prompt, {"prompt": prompt, "suite": "titles", "names_color": True, "color": color, "category": category,
                                     "objects": [category], "title": title})
    categories = sorted({c for labels in pages["attributes"] if (c := _attribute(labels, "category"))})
    for category in categories:
        prompt = f"a {category}"
        rows[prompt] = {"prompt": prompt, "suite": "fairness", "names_color": False, "color": None, "category": category,
                        "objects": [category], "title": None}
    titled = [r for r in rows.values() if r["suite"] == "titles"]
    pairs = [(a, b) for i, a in enumerate(titled) for b in titled[i + 1:] if a["category"] != b["category"]]
    for a, b in pairs[:: max(1, len(pairs) // composition_pairs)][:composition_pairs]:  # spread over the list, not its head
        prompt = f"{a['prompt']} and {b['prompt']}"
        rows[prompt] = {"prompt": prompt, "suite": "composition", "names_color": True, "color": None, "category": None,
                        "objects": [a["category"], b["category"]], "title": None}
    frame = pd.DataFrame(list(rows.values()))
    # the fairness suite (one prompt per category) is trained on and evaluated on, with unseen fixed seeds
    frame["split"] = ["both" if suite == "fairness" else split(p, eval_share) for p, suite in zip(frame["prompt"], frame["suite"])]
    return frame.sort_values(["suite", "prompt"], ignore_index=True)


def preference_prompts(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The prompts the preference judge scores, and what they are: the held-out titles (never
    trained on); a catalog too small for an eval split falls back to the fairness suite, which
    was trained on but is judged with unseen seeds."""
    held_out = frame[(frame["split"] == "eval") & (frame["suite"] == "titles")]
    if len(held_out):
        return held_out, "held-out titles"
    fairness = frame[frame["suite"] == "fairness"]
    if len(fairness):
        return fairness, "fairness suite (no held-out titles; trained prompts, unseen seeds)"
    raise ValueError("rl_prompts has neither held-out title prompts nor a fairness suite: nothing to judge")


def fairness_prompts(frame: pd.DataFrame) -> list[str]:
    """The suite parity is trained and measured on (rl_prompts rows with no colour), sorted so that
    every reader of it lines up its images the same way."""
    return sorted(frame.loc[frame["suite"] == "fairness", "prompt"])


def prompt_metadata(frame: pd.DataFrame) -> list[dict]:
    """What rewards need to know of each prompt (rl_prompts rows): whether it names a colour, its
    suite, category and colour."""
    def value(x):
        return None if x is None or (isinstance(x, float) and x != x) else x

    columns = {c: frame[c] if c in frame else [None] * len(frame) for c in ("suite", "category", "color")}
    return [{"names_color": bool(n), "suite": value(s) or "?", "category": value(k), "color": value(c)}
            for n, s, k, c in zip(frame["names_color"], columns["suite"], columns["category"], columns["color"])]


def suite_draw_weights(suites: pd.Series, shares: dict[str, float] | None = None) -> list[float]:
    """How often RL draws each prompt: each suite gets its share of draws (default: equal shares;
    suites not named in `shares` split what is left equally; a named suite with no prompts is
    skipped), spread evenly over its prompts, so a 10-prompt fairness suite is not drowned by 60
    titles."""
    counts = suites.value_counts()
    shares = {s: v for s, v in (shares or {}).items() if s in counts.index}
    if any(v < 0 for v in shares.values()) or sum(shares.values()) > 1 + 1e-9:
        raise ValueError(f"suite shares {shares}: each must be >= 0 and they must sum to at most 1")
    rest = [s for s in counts.index if s not in shares]
    if rest:
        shares |= {s: (1.0 - sum(shares.values())) / len(rest) for s in rest}
    elif sum(shares.values()) <= 0:
        raise ValueError(f"suite shares {shares} give every prompt weight 0")
    return [float(shares[s] / counts[s]) for s in suites]
