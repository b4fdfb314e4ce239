"""RL prompts from collection pages: colour + category prompts split by hash, a fairness suite
with no colour in both splits, composition pairs of two categories."""

import numpy as np
import pandas as pd
import pytest

from ml.diffusion.prompts import build_prompts, fairness_prompts, hash_split, preference_prompts, suite_draw_weights


def test_prompts_from_pages():
    pages = pd.DataFrame({
        "attributes": [["category:dress", "color:red"], ["category:dress", "color:red", "material:silk"], ["category:bag", "color:blue"],
                       ["category:coat"], ["category:coat", "color:black"]],
        "title": ["Red Dresses", "Red Silk Dresses", "Blue Bags", "Coats", "Black Coats"],
    })
    prompts = build_prompts(pages, split=lambda p, share: "eval" if "blue" in p else "train")
    by_prompt = prompts.set_index("prompt")
    assert set(prompts.loc[prompts["suite"] == "titles", "prompt"]) == {"a red dress", "a blue bag", "a black coat"}
    assert by_prompt.at["a red dress", "title"] == "Red Dresses"  # one prompt per colour + category, first title kept
    assert fairness_prompts(prompts) == ["a bag", "a coat", "a dress"]  # sorted: base and RL images line up by it
    assert fairness_prompts(prompts.sample(frac=1, random_state=1)) == fairness_prompts(prompts)
    assert (prompts.loc[prompts["suite"] == "fairness", "split"] == "both").all()
    assert not prompts.loc[prompts["suite"] == "fairness", "names_color"].any()
    assert by_prompt.at["a blue bag", "split"] == "eval" and by_prompt.at["a red dress", "split"] == "train"
    composition = prompts[prompts["suite"] == "composition"]
    assert len(composition) >= 1 and all(len(o) == 2 and o[0] != o[1] for o in composition["objects"])
    judged, described = preference_prompts(prompts)  # the judge scores held-out titles only
    assert list(judged["prompt"]) == ["a blue bag"] and described == "held-out titles"
    judged, described = preference_prompts(prompts[prompts["split"] != "eval"])  # no eval split: the fairness suite, said so
    assert set(judged["suite"]) == {"fairness"} and described.startswith("fairness suite")
    with pytest.raises(ValueError, match="nothing to judge"):
        preference_prompts(prompts[prompts["suite"] == "composition"])


def test_suite_draw_weights_give_each_suite_its_share_however_many_prompts_it_has():
    suites = pd.Series(["titles"] * 60 + ["fairness"] * 10)
    equal = np.asarray(suite_draw_weights(suites))
    assert equal.sum() == pytest.approx(1) and equal[suites == "fairness"].sum() == pytest.approx(0.5)
    more = np.asarray(suite_draw_weights(suites, {"fairness": 0.75}))
    assert more[suites == "fairness"].sum() == pytest.approx(0.75) and np.ptp(more[suites == "titles"]) == 0
    assert suite_draw_weights(pd.Series(["titles"] * 3), {"fairness": 0.5}) == pytest.approx([1 / 3] * 3)  # an absent suite is skipped
    with pytest.raises(ValueError, match="sum to at most 1"):
        suite_draw_weights(suites, {"fairness": 1.5})


def test_hash_split_is_fixed_by_the_prompt_and_holds_out_about_its_share():
    prompts = [f"a colour{i} thing{i % 7}" for i in range(4000)]
    sides = [hash_split(p, 0.25) for p in prompts]
    assert sides == [hash_split(p, 0.25) for p in prompts]  # the same side every time it is asked
    assert abs(sides.count("eval") / len(prompts) - 0.25) < 0.03
    assert {hash_split(p, 0.0) for p in prompts} == {"train"} and {hash_split(p, 1.0) for p in prompts} == {"eval"}
    held_out = {p for p, side in zip(prompts, sides) if side == "eval"}  # a larger share only adds held-out prompts
    assert held_out <= {p for p in prompts if hash_split(p, 0.4) == "eval"}
