"""Taxonomy, lexicon teacher, curation, assignment and attribute metrics."""

import numpy as np
import pandas as pd
import pytest

from ml.attributes.assign import AssignmentConfig, calibrate_thresholds, merge_assignments, ranking_scores, typed_softmax
from ml.attributes.curation import CurationConfig, RuleJudge, curate_vocabulary, label_image_centroids, lexical_evidence
from ml.attributes.lexicon import LexiconTeacher
from ml.attributes.metrics import entry_truth, recall_at_k, top1_accuracy
from ml.attributes.taxonomy import Taxonomy
from ml.catalog.splits import assign_splits


@pytest.fixture(scope="module")
def lexicon():
    return LexiconTeacher(Taxonomy.load("fashion"))


@pytest.mark.parametrize(("text", "expected"), [
    ("Crimson Slim-Fit T-Shirts", {("color", "red"), ("fit", "slim"), ("category", "t-shirt")}),
    ("ANKLE BOOT in full-grain leather", {("category", "ankle boots"), ("material", "full-grain leather")}),
    ("Tote Bags / organic cotton", {("category", "bag"), ("material", "cotton")}),
    ("a dressy dress, perfect for fall", {("style", "formal"), ("category", "dress"), ("season", "fall")}),
    ("Shown in cherry red. Button-down shirt", {("color", "red"), ("category", "shirt")}),
    ("nothing to see here", set()),
    ("Navy tee. Also available in red and black. Pairs well with our leather ankle boots.", {("color", "navy"), ("category", "tee")}),
])
def test_lexicon_handles_case_plurals_hyphens_and_phrases(lexicon, text, expected):
    assert {(t, v) for t, v, _ in lexicon.extract(text)} == expected


def test_lexicon_labels_a_frame_once_per_item_and_value(lexicon):
    items = pd.DataFrame({"item_id": ["a", "b"], "title": ["Red Tee", None], "description": ["Shown in red.", "Wool coat"]})
    labels = lexicon.label(items)
    assert len(labels[(labels.item_id == "a") & (labels.value == "red")]) == 1
    assert labels.loc[(labels.item_id == "a") & (labels.value == "red"), "field"].item() == "title"  # the more confident mention
    assert set(labels[labels.item_id == "b"]["value"]) == {"wool", "coat"}


def test_taxonomy_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a built-in"):
        Taxonomy.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntypes: {}\n")
    with pytest.raises(ValueError, match="at least one attribute type"):
        Taxonomy.load(bad)


def test_lexical_evidence():
    assert "kind of" in lexical_evidence("merino wool", "wool")
    assert "spelling" in lexical_evidence("grey", "gray")
    assert lexical_evidence("red", "pink") is None and lexical_evidence("autumn", "fall") is None


def test_curation_drops_merges_and_explains():
    rng = np.random.default_rng(0)
    rows = [(f"i{i}", "color", v, 0.9) for i, v in enumerate(["red"] * 60 + ["scarlet"] * 60 + ["blue"] * 60 + ["pink"] * 60 + ["beige"] * 2)]
    teacher = pd.DataFrame(rows, columns=["item_id", "type", "value", "confidence"])
    look = {"red": [1, 0, 0], "scarlet": [1, 0.01, 0], "blue": [0, 0, 1], "pink": [0.7, 0.7, 0]}
    centroids = {("color", k): np.array(v, float) for k, v in look.items()}
    phrase_vectors = {("color", k): rng.standard_normal(4) for k in ["red", "scarlet", "blue", "pink", "beige"]}
    config = CurationConfig(min_items=50)
    vocab, decisions = curate_vocabulary(teacher, phrase_vectors, centroids, {"color": ["red", "scarlet", "blue", "pink", "beige", "white"]},
                                         config, RuleJudge(config))
    groups = {p: set(m) for p, m in zip(vocab["phrase"], vocab["members"])}
    assert groups == {"red": {"red", "scarlet"}, "blue": {"blue"}, "pink": {"pink"}}  # ties: most frequent, then alphabetical
    reasons = dict(zip(decisions["phrase"].fillna(""), decisions["reason"]))
    assert "rare: 2 items" in reasons["beige"] and "never observed" in reasons["white"]
    merged = decisions[decisions["action"] == "merge"]
    assert len(merged) == 1 and "look alike" in merged["reason"].item()


def test_label_image_centroids_are_unit_means_and_skip_labels_without_vectors():
    labels = pd.DataFrame({"item_id": ["a", "b", "c", "gone"], "type": "color", "value": ["red", "red", "blue", "green"]})
    image = np.array([[3.0, 0, 0], [0, 4.0, 0], [0, 0, -2.0]])
    centroids = label_image_centroids(labels, ["a", "b", "c"], image)
    assert set(centroids) == {("color", "red"), ("color", "blue")}  # "green"'s only item has no vector: no evidence, no NaN
    np.testing.assert_allclose(centroids[("color", "red")], np.array([3, 4, 0]) / 5)
    np.testing.assert_allclose(centroids[("color", "blue")], [0, 0, -1])


def test_assignment_calibrates_and_keeps_provenance():
    vocab = pd.DataFrame({"type": ["color", "color", "style"], "phrase": ["red", "blue", "casual"], "members": [["red"], ["blue"], ["casual"]]})
    items = np.array([[1, 0, 0.2], [0, 1, 0.9], [1, 0, 0.1], [0.1, 0.9, 0.5]], np.float32)
    entries = np.eye(3, dtype=np.float32)
    probs = typed_softmax(items, entries, vocab["type"].to_numpy(), scale=10)
    assert np.allclose(probs[:, :2].sum(1), 1) and np.allclose(probs[:, 2], 1)  # a softmax per type
    teacher = np.array([[0.95, 0, 0], [0, 0, 0.95], [0, 0, 0], [0, 0.9, 0]], np.float32)
    thresholds = calibrate_thresholds(probs, teacher, vocab["type"].to_numpy(), AssignmentConfig(min_calibration_items=1))
    assert thresholds.set_index("type").loc["color", "precision"] == 1.0
    assigned = merge_assignments(["a", "b", "c", "d"], probs, teacher, vocab, thresholds, student_types=("color",))
    got = {(r.item_id, r.phrase): r.provenance for r in assigned.itertuples()}
    assert got[("a", "red")] == "both" and got[("b", "casual")] == "teacher" and got[("c", "red")] == "student"
    assert not any(p == "casual" and prov == "student" for (_, p), prov in got.items())  # style is not for the student
    ranked = ranking_scores(probs, teacher)
    assert ranked[1, 2] > ranked[1].max(initial=0, where=np.arange(3) != 2)  # the teacher's phrase ranks first


def test_metrics_map_vocabulary_to_truth():
    vocab = pd.DataFrame({"type": ["color", "color", "category"], "phrase": ["red", "navy", "tee"],
                          "members": [["red", "scarlet"], ["navy"], ["tee", "t-shirt"]]})
    values = entry_truth(vocab, {"scarlet": "red", "navy": "blue", "tee": "t-shirt"})
    assert values == ["red", "blue", "t-shirt"]
    scores = np.array([[0.9, 0.1, 0.8], [0.2, 0.7, 0.9]])
    assert top1_accuracy(scores, vocab, values, "color", pd.Series(["red", "red"])) == 0.5
    observable = [{("color", "red"), ("category", "t-shirt")}, {("color", "blue")}]
    assert recall_at_k(scores, vocab, values, observable, k=2) == 1.0
    assert recall_at_k(scores, vocab, values, observable, k=1) == pytest.approx(0.25)


def test_splits_are_stable_and_sized():
    ids = [f"item-{i}" for i in range(20_000)]
    first, second = assign_splits(ids), assign_splits(list(reversed(ids)))[::-1]
    assert (first == second).all()
    shares = pd.Series(first).value_counts(normalize=True)
    assert abs(shares["test"] - 0.10) < 0.01 and abs(shares["val"] - 0.05) < 0.01
