"""The VLM teacher: its tolerant parser, and its plumbing on a tiny LLaVA built here from config,
saved with save_pretrained and loaded back by path like a real checkpoint (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import build_tiny_vlm, teach_answer

from ml.attributes.vlm import TeacherLabel, VLMLoadError, VLMTeacher, parse_attributes

TYPES = {"color": ["red", "blue", "green"], "material": ["cotton", "wool"], "style": None}
TITLES = ["Red Cotton Dress", "Blue Wool Coat", "Green Trousers"]
DESCRIPTIONS = [None, "A warm   wool coat\nfor winter.", ""]


def random_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (n, 40, 50, 3), dtype=np.uint8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> Path:
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-llava"))


# --------------------------------------------------------------------------------------------
# parse_attributes

PARSE_CASES = [
    ("fenced", '```json\n{"color": "Red", "material": "cotton"}\n```', {"color": "red", "material": "cotton"}, []),
    (
        "chatter before and after, first object wins",
        'Sure! Here are the attributes: {"color": "blue"} Hope this helps. {"color": "red"}',
        {"color": "blue"},
        [],
    ),
    ("single quotes and an apostrophe", "{'color': 'green', 'style': 'men's casual'}", {"color": "green", "style": "men's casual"}, []),
    ("trailing comma", '{"color": "red", "material": "wool",}', {"color": "red", "material": "wool"}, []),
    ("unquoted keys and values", "{color: red, style: summer   Dress.}", {"color": "red", "style": "summer dress"}, []),
    (
        "nested junk under an unknown key",
        'Answer: {"color": "Red", "details": {"x": [1, {"y": "}"}]}, "material": "wool"} end',
        {"color": "red", "material": "wool"},
        ["unknown type 'details'"],
    ),
    ("a wrapper object", '{"attributes": {"Color": " RED "}}', {"color": "red"}, []),
    (
        "a list value",
        '{"color": ["purple", "Blue", "red"]}',
        {"color": "blue"},
        ["value 'purple' not allowed for 'color'", "several values for 'color': kept 'blue', ignored ['red']"],
    ),
    ("an unknown type", '{"size": "XL", "color": "red"}', {"color": "red"}, ["unknown type 'size'"]),
    ("a disallowed value", '{"color": "purple", "style": "boho"}', {"style": "boho"}, ["value 'purple' not allowed for 'color'"]),
    ("null means not stated", '{"color": null, "material": "", "style": "n/a"}', {}, []),
    ("a value that is not text", '{"style": {"a": 1}, "color": true}', {}, ['value for \'style\' is not text: {"a": 1}', "value for 'color' is not text: true"]),
    ("truncated by max_new_tokens", '{"color": "red", "material": "wo', {"color": "red"}, ["truncated JSON object"]),
    ("truncated inside the only value", "Here: {'style': 'men's", {}, ["truncated JSON object"]),
    ("an empty string", "", {}, ["empty output"]),
    ("only blanks", " \n\t ", {}, ["empty output"]),
    ("pure garbage", "okppase\x19TSISort&$ }{ greabe_ cottonol", {}, ["no JSON object found"]),
    ("unbalanced braces", "{{{{", {}, ["no JSON object found"]),
    ("a JSON array, not an object", '["red", "wool"]', {}, ["no JSON object found"]),
]


@pytest.mark.parametrize(("raw", "expected", "problems"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES])
def test_parse_attributes_tolerates_malformed_output(raw, expected, problems):
    assert parse_attributes(raw, TYPES) == (expected, problems)


@pytest.mark.parametrize("raw", [None, 42, '{"a": ' * 3000, "{" * 20000, "x" * 100_000 + '{"color": "red"}'])
def test_parse_attributes_never_raises(raw):
    found, problems = parse_attributes(raw, TYPES)
    assert isinstance(found, dict) and isinstance(problems, list)
    assert found or problems


# --------------------------------------------------------------------------------------------
# the teacher on a tiny random model


def test_prompt_asks_for_json_with_the_types_and_allowed_values(tiny_vlm):
    teacher = VLMTeacher(tiny_vlm, TYPES)
    prompt = teacher.prompt("Red  Cotton Dress", "Soft\ncotton, " + "long " * 500)
    assert "JSON" in prompt and "Title: Red Cotton Dress" in prompt
    assert '"color": one of red, blue, green' in prompt and '"style": a short phrase' in prompt
    assert len(prompt) < 1500  # the description is cut, not the instruction
    assert "Description: (none)" in teacher.prompt("Tee", None)


@pytest.mark.parametrize("chat_template", [True, False], ids=["chat-template", "plain-prompt"])
def test_random_tiny_vlm_labels_every_item_batched_and_deterministic(tmp_path, chat_template):
    path = build_tiny_vlm(tmp_path / "model", chat_template=chat_template)
    teacher = VLMTeacher(str(path), TYPES, batch_size=2, max_new_tokens=12)
    assert type(teacher.model).__name__ == "LlavaForConditionalGeneration"
    assert bool(teacher.processor.chat_template) == chat_template

    batch_sizes: list[int] = []
    generate = teacher.model.generate

    def counting_generate(**kwargs):
        batch_sizes.append(kwargs["input_ids"].shape[0])
        assert kwargs["pixel_values"].shape[0] == kwargs["input_ids"].shape[0]
        return generate(**kwargs)

    teacher.model.generate = counting_generate
    ids = ["a", "b", "c"]
    first = teacher.label(ids, random_images(3), TITLES, DESCRIPTIONS, progress=False)
    assert batch_sizes == [2, 1]
    second = teacher.label(ids, random_images(3), TITLES, DESCRIPTIONS, progress=False)
    assert first == second

    labels, problems = first
    for label in labels:  # whatever survives parsing is well-formed
        assert isinstance(label, TeacherLabel) and label.source == "vlm" and 0.0 < label.confidence <= 1.0
        allowed = TYPES[label.type]
        assert allowed is None or label.value in allowed
    for problem in problems:
        assert set(problem) == {"item_id", "problem", "raw_output"}
        assert isinstance(problem["raw_output"], str) and problem["problem"]
    # nothing is lost: every item has labels or a problem carrying its raw output
    assert {label.item_id for label in labels} | {p["item_id"] for p in problems} == set(ids)
    assert any(p["raw_output"] for p in problems)  # random weights say something, and it is kept


def test_a_tiny_vlm_overfit_to_an_answer_is_labelled_end_to_end(tiny_vlm, tmp_path):
    """Train the tiny model for a few steps to always answer one JSON string, save it, load it
    back: real generation, prompt stripping, decoding, parsing and confidence, all together."""
    import shutil

    from PIL import Image

    teacher = VLMTeacher(tiny_vlm, TYPES, batch_size=4, max_new_tokens=32)
    processor, model = teacher.processor, teacher.model
    answer = '{"color": "Red", "size": "XL"}'
    eos = processor.tokenizer.eos_token
    texts = [teacher.input_text(t, d) + answer + eos for t, d in zip(TITLES, DESCRIPTIONS)]
    batch = processor(images=[Image.fromarray(i) for i in random_images(3, seed=1)], text=texts, padding=True, return_tensors="pt")
    answer_len = len(processor.tokenizer(answer + eos, add_special_tokens=False)["input_ids"])
    assert teach_answer(model, batch, answer_len, steps=80) < 0.05
    trained = tmp_path / "trained"
    shutil.copytree(tiny_vlm, trained)
    model.save_pretrained(trained)

    ids = ["x1", "x2", "x3", "x4", "x5"]
    reloaded = VLMTeacher(trained, TYPES, batch_size=2, max_new_tokens=32)
    labels, problems = reloaded.label(ids, random_images(5, seed=2), TITLES + ["Tee", "Hat"], DESCRIPTIONS + [None, "x"], progress=False)
    assert [(l.item_id, l.type, l.value, l.source) for l in labels] == [(i, "color", "red", "vlm") for i in ids]
    assert all(l.confidence > 0.8 for l in labels)
    assert problems == [{"item_id": i, "problem": "unknown type 'size'", "raw_output": answer} for i in ids]


def test_labels_from_output_reports_an_answer_without_attributes(tiny_vlm):
    teacher = VLMTeacher(tiny_vlm, TYPES)
    labels, problems = teacher.labels_from_output("i1", '{"color": null}', 0.5)
    assert labels == [] and problems == [{"item_id": "i1", "problem": "no attribute in the answer", "raw_output": '{"color": null}'}]
    labels, _ = teacher.labels_from_output("i2", '{"color": "BLUE", "style": "Retro"}', 0.5)
    assert labels == [TeacherLabel("i2", "color", "blue", 0.5, "vlm"), TeacherLabel("i2", "style", "retro", 0.5, "vlm")]


def test_label_rejects_inputs_of_the_wrong_shape(tiny_vlm):
    teacher = VLMTeacher(tiny_vlm, TYPES)
    with pytest.raises(ValueError, match="uint8 N x H x W x 3"):
        teacher.label(["a"], np.zeros((1, 8, 8), np.uint8), ["t"], [None])
    with pytest.raises(ValueError, match="same length"):
        teacher.label(["a", "b"], random_images(1), ["t"], [None])


# --------------------------------------------------------------------------------------------
# bad model paths and settings


def test_a_missing_model_folder_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError) as error:
        VLMTeacher(missing, TYPES)
    assert str(missing) in str(error.value) and "save_pretrained" in str(error.value)


def test_a_folder_that_is_not_a_checkpoint_names_the_path(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"junk")
    with pytest.raises(VLMLoadError, match="config.json") as error:
        VLMTeacher(tmp_path, TYPES)
    assert str(tmp_path) in str(error.value)
    (tmp_path / "config.json").write_text('{"model_type": "not-a-model"}')
    with pytest.raises(VLMLoadError) as error:
        VLMTeacher(tmp_path, TYPES)
    assert str(tmp_path) in str(error.value)


def test_attribute_types_are_validated(tiny_vlm):
    with pytest.raises(ValueError, match="empty"):
        VLMTeacher(tiny_vlm, {})
    with pytest.raises(ValueError, match="'color'"):
        VLMTeacher(tiny_vlm, {"color": []})
