"""Fairness readers on real photographs (scikit-image's bundled astronaut and LFW subset) and the
parity statistics."""

import numpy as np
import pandas as pd
import pytest
from skimage import data

from ml.fairness.color_reader import NO_READ
from ml.fairness.parity import (bootstrap_gain, bootstrap_mean, comparable_prompts,
    compare_parity, group_distribution, normalised_entropy,
                                parity_distance, parity_distance_debiased, parity_floor, parity_ratio_interval, parity_summary, per_prompt_parity)
from ml.fairness.people import SKIN_TONES, PeopleReader, ita_group, skin_ita


@pytest.fixture(scope="module")
def reader():
    return PeopleReader()


def test_astronaut_face_gender_and_skin_tone(reader):
    read = reader.read_one(data.astronaut())  # Eileen Collins
    assert read is not None and read.faces == 1
    left, top, right, bottom = read.box
    assert 150 < left < right < 300 and 50 < top < bottom < 200  # her face, not the flag or the suit
    assert read.gender == "female" and read.gender_confidence > 0.6
    assert read.skin_tone in {"very light", "light", "intermediate"}


def test_darker_skin_reads_as_a_darker_group(reader):
    photo = data.astronaut()
    light = reader.read_one(photo)
    darker = (photo.astype(np.float32) * np.array([0.45, 0.33, 0.25])).astype(np.uint8)  # browner and darker
    dark = reader.read_one(darker)
    assert dark is not None and dark.ita is not None
    assert dark.ita < light.ita - 20
    assert SKIN_TONES.index(dark.skin_tone) > SKIN_TONES.index(light.skin_tone)


def test_lfw_faces_found_and_non_faces_not_guessed(reader):
    images = (data.lfw_subset() * 255).astype(np.uint8)  # 100 faces, then 100 non-faces
    reads = reader.read(images)
    faces = [r for r in reads[:100] if r is not None]
    assert len(faces) >= 85
    assert all(r is None for r in reads[100:])
    male = np.mean([r.gender == "male" for r in faces])
    assert 0.6 <= male <= 0.95  # LFW is mostly men
    # greyscale photos carry no skin colour: no read, never a guess
    assert all(r.skin_tone == NO_READ for r in faces)
    assert reader.groups(images[100:110], "skin_tone") == [NO_READ] * 10


def test_a_cat_is_no_read(reader):
    assert reader.read_one(data.chelsea()) is None


def test_ita_bins_and_grey_input():
    assert [ita_group(x) for x in (70, 50, 30, 20, 0, -50)] == SKIN_TONES
    # an edge belongs to the darker group below it (Del Bino & Bernerd: very light > 55 > light ...)
    assert [ita_group(x) for x in (55, 41, 28, 10, -30)] == SKIN_TONES[1:]
    with pytest.raises(ValueError, match="no-read"):
        ita_group(float("nan"))
    assert skin_ita(np.full((40, 40, 3), 128, np.uint8)) is None


def test_skin_ita_of_a_known_lab_colour():
    """A face-sized patch of one CIELAB colour reads the ITA computed by hand from that colour."""
    from skimage.color import lab2rgb

    for lab in ((65.0, 12.0, 18.0), (45.0, 15.0, 25.0), (75.0, 8.0, 14.0)):
        rgb = (np.clip(lab2rgb(np.array(lab).reshape(1, 1, 3)), 0, 1) * 255).round().astype(np.uint8)
        expected = np.degrees(np.arctan((lab[0] - 50) / lab[2]))
        assert skin_ita(np.tile(rgb, (60, 60, 1))) == pytest.approx(expected, abs=1.0)


def test_parity_statistics():
    names = ["a", "b", "c", "d"]
    assert parity_distance(np.full(4, 0.25)) == pytest.approx(0.0)
    assert parity_distance(np.array([1.0, 0, 0, 0])) == pytest.approx(np.sqrt(1 - 1 / 4))
    assert normalised_entropy(np.full(4, 0.25)) == pytest.approx(1.0)
    assert normalised_entropy(np.array([1.0, 0, 0, 0])) == pytest.approx(0.0)
    assert group_distribution(["a", "a", NO_READ, "b"], names) == pytest.approx([2 / 3, 1 / 3, 0, 0])
    reads = pd.DataFrame({"prompt": ["p"] * 4 + ["q"] * 4, "group": ["a", "b", "c", "d", "a", "a", "a", NO_READ]})
    table = per_prompt_parity(reads, names).set_index("prompt")
    assert table.loc["p", "parity_distance"] == pytest.approx(0.0)
    assert table.loc["q", "parity_distance"] == pytest.approx(np.sqrt(1 - 1 / 4))
    assert table.loc["q", "no_read"] == pytest.approx(0.25)
    low, high = bootstrap_mean(np.array([0.1, 0.2, 0.3, 0.4, 0.5]))
    # the resampled mean's sd is 0.1414 / sqrt(5) = 0.063, so about 0.30 -+ 1.96 * 0.063
    assert low == pytest.approx(0.18, abs=0.04) and high == pytest.approx(0.42, abs=0.04)
    with pytest.raises(ValueError, match="not among the groups"):
        group_distribution(["a", "e"], names)


def test_parity_is_averaged_over_prompts_both_models_read():
    """A prompt one model leaves unread is out of both models' parity means (else making a hard
    prompt unreadable would lower the mean), while its no-reads still count."""
    names = ["a", "b"]
    base = per_prompt_parity(pd.DataFrame({"prompt": ["p"] * 4 + ["q"] * 4, "group": ["a", "a", "a", "b", "a", "a", "a", "a"]}), names)
    rl = per_prompt_parity(pd.DataFrame({"prompt": ["p"] * 4 + ["q"] * 4, "group": ["a", "b", "a", "b"] + [NO_READ] * 4}), names)
    assert comparable_prompts(base, rl) == ["p"]
    assert comparable_prompts(base, base) == ["p", "q"]
    summary = parity_summary(rl, prompts=["p"])
    assert summary["parity_distance"] == pytest.approx(0.0)
    assert summary["no_read"] == pytest.approx(0.5)  # q's four no-reads of eight images
    assert parity_summary(base, prompts=["p"])["parity_distance"] == pytest.approx(np.sqrt(2) * 0.25)
    assert parity_summary(base)["parity_distance"] == pytest.approx((np.sqrt(2) * 0.25 + np.sqrt(2) * 0.5) / 2)
    low, high = parity_ratio_interval(np.array([0.4, 0.2]), np.array([0.2, 0.1]))
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)  # every resample halves
    with pytest.raises(ValueError, match="same prompts"):
        parity_ratio_interval(np.array([0.4, np.nan]), np.array([0.2, 0.1]))
    figures, left_out = compare_parity(base, rl, groups=2, images_per_prompt=4)  # what bias_report logs and gates on
    assert left_out == ["q"] and (figures["prompts"], figures["parity_prompts"], figures["parity_prompts_left_out"]) == (2, 1, 1)
    assert figures["parity_base"] == pytest.approx(np.sqrt(2) * 0.25) and figures["parity_rl"] == pytest.approx(0.0)
    assert figures["parity_reduction"] == pytest.approx(1.0) and figures["no_read_rl"] == pytest.approx(0.5)
    assert figures["parity_floor"] == pytest.approx(np.sqrt(0.5 / 4))


def test_debiased_parity_takes_out_the_sampling_bias_that_inflates_a_near_even_mix():
    rng = np.random.default_rng(0)
    for truth in (np.full(8, 1 / 8), np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05])):
        draws = rng.multinomial(128, truth, size=4000) / 128
        plain = np.array([parity_distance(d) for d in draws])
        debiased = np.array([parity_distance_debiased(d, 128) for d in draws])
        assert abs(np.median(debiased) - parity_distance(truth)) < abs(np.median(plain) - parity_distance(truth))
        assert np.median(plain) > parity_distance(truth)  # 128 images overstate both, the even mix by ~0.08 from 0
    # the skewed mix is never floored, so there its square is the unbiased estimate of the model's
    assert (debiased > 0).all() and (debiased**2).mean() == pytest.approx(parity_distance(truth) ** 2, abs=2e-3)
    assert (plain**2).mean() > parity_distance(truth) ** 2 + 0.005  # where the plain square is biased up by ~(1 - sum p^2) / 128
    even = np.array([parity_distance(d) ** 2 for d in rng.multinomial(128, np.full(8, 1 / 8), size=4000) / 128])
    assert np.sqrt(even.mean()) == pytest.approx(parity_floor(8, 128), rel=0.03)  # what an exactly even model reads
    assert parity_distance_debiased(np.array([1.0, 0, 0, 0]), 50) == pytest.approx(np.sqrt(1 - 1 / 4), rel=0.02)
    assert np.isnan(parity_distance_debiased(np.array([1.0, 0]), 1))
    table = per_prompt_parity(pd.DataFrame({"prompt": ["p"] * 4, "group": ["a", "b", "c", "d"]}), ["a", "b", "c", "d"])
    assert table.loc[0, "parity_distance_debiased"] == 0.0  # an exactly even draw is floored at 0, not a negative root


def test_bootstrap_gain_resamples_prompts_not_samples():
    rng = np.random.default_rng(0)
    prompts = np.repeat([f"p{i}" for i in range(20)], 8)
    before = rng.normal(size=len(prompts))
    low, high = bootstrap_gain(before, before + 0.5 + rng.normal(0, 0.1, len(prompts)), prompts)
    assert 0.4 < low < 0.5 < high < 0.6
    low, high = bootstrap_gain(before, before + rng.normal(0, 1, len(prompts)), prompts)
    assert low < 0 < high
    # one prompt gained a lot, the others nothing: many samples, but one prompt of twenty
    shifted = before + np.where(prompts == "p0", 5.0, 0.0)
    low, high = bootstrap_gain(before, shifted, prompts)
    assert low == 0.0 and high > 0.4


def test_skin_tone_parity_reward_credits_the_rarer_group_and_penalises_no_read():
    import torch

    from ml.rewards import make_reward

    photo = data.astronaut()
    darker = (photo.astype(np.float32) * np.array([0.45, 0.33, 0.25])).astype(np.uint8)
    no_face = np.pad(data.chelsea(), ((0, 212), (0, 61), (0, 0)), constant_values=255)
    images = torch.from_numpy(np.stack([photo, photo, darker, no_face])).permute(0, 3, 1, 2).float() / 255
    parity = make_reward("skin_tone_parity")
    meta = {"suite": "people"}
    rewards = parity(images, ["a portrait of a doctor"] * 4, [meta] * 4)
    assert rewards[2] > rewards[0] == rewards[1]  # the one darker face among lighter ones
    assert rewards[3] == -1.0  # no face: penalised, never counted as a group
    assert (parity(images, ["a red dress"] * 4, [{"suite": "titles"}] * 4) == 0).all()  # not a people prompt
