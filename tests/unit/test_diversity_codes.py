"""Diversity codes (ml.diffusion.diversity): zero codes leave the model as it was, a code moves only
its own padding position, codes travel with a saved pipeline, and the RL trainer trains them, with
the distillation term teaching group g under code g."""

from __future__ import annotations

import pytest
import torch

from ml.diffusion.diversity import WEIGHTS_FILE, DiversityCodes
from ml.diffusion.pipeline import TinyPipelineConfig, build_tiny_pipeline, load_pipeline
from ml.diffusion.sampling import SamplingConfig, encode_prompts, generate, sample_trajectories
from ml.diffusion.trainer import DIVERSITY_KEY, RLConfig, RLTrainer
from ml.rewards import MultiReward, make_reward

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = TinyPipelineConfig(image_size=16, vae_channels=(8, 16), unet_channels=(32, 32), norm_groups=8, text_hidden=32, text_ffn=64, text_heads=2)
SAMPLING = SamplingConfig(num_inference_steps=4, guidance_scale=3.0)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("clip-tokenizer")


def test_zero_codes_change_nothing_and_a_code_moves_only_its_position(tokenizer_dir):
    pipe = build_tiny_pipeline(TINY, tokenizer_dir)
    codes = DiversityCodes(8, TINY.text_hidden)
    embeds = encode_prompts(pipe, ["a coat", "a red dress", "a bag"])
    chosen = torch.tensor([0, 3, 7])
    assert torch.equal(codes(embeds, chosen), embeds)
    prompts = ["a coat", "a red dress"] * 2
    assert torch.equal(generate(pipe, prompts, SAMPLING, seed=5, diversity=codes), generate(pipe, prompts, SAMPLING, seed=5))

    with torch.no_grad():
        codes.embedding.normal_()
    coded = codes(embeds, chosen)
    assert torch.equal(coded[:, :-1], embeds[:, :-1])
    assert torch.allclose(coded[:, -1] - embeds[:, -1], codes.embedding[chosen])
    assert not torch.allclose(generate(pipe, prompts, SAMPLING, seed=5, diversity=codes), generate(pipe, prompts, SAMPLING, seed=5))
    drawn = codes.draw(400, torch.Generator().manual_seed(0))
    assert drawn.min() == 0 and drawn.max() == 7 and len(drawn.unique()) == 8
    with pytest.raises(ValueError, match="one code per condition row"):
        codes(embeds, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="at least 2 codes"):
        DiversityCodes(1, 4)


def test_codes_travel_with_a_saved_pipeline_and_generate_uses_them(tokenizer_dir, tmp_path):
    pipe = build_tiny_pipeline(TINY, tokenizer_dir)
    pipe.save_pretrained(tmp_path / "plain")
    assert load_pipeline(str(tmp_path / "plain")).diversity_codes is None
    codes = DiversityCodes(4, TINY.text_hidden)
    with torch.no_grad():
        codes.embedding.normal_()
    pipe.save_pretrained(tmp_path / "coded")
    codes.save(tmp_path / "coded")
    assert (tmp_path / "coded" / WEIGHTS_FILE).exists()
    loaded = load_pipeline(str(tmp_path / "coded"))
    assert torch.equal(loaded.diversity_codes.embedding, codes.embedding) and loaded.diversity_codes.position == codes.position
    prompts = ["a coat"] * 3
    assert torch.allclose(generate(loaded, prompts, SAMPLING, seed=2), generate(pipe, prompts, SAMPLING, seed=2, diversity=codes), atol=1e-6)
    assert not torch.allclose(generate(loaded, prompts, SAMPLING, seed=2), generate(pipe, prompts, SAMPLING, seed=2), atol=1e-3)


def test_the_trainer_trains_its_codes_and_distils_group_g_under_code_g(tokenizer_dir, tmp_path):
    prompts, meta = ["a coat", "a red dress"], [{"names_color": False, "category": "coat"}, {"names_color": True, "category": "dress"}]
    parity = make_reward("color_parity", objective="kl", memory=16)
    config = RLConfig(iterations=2, prompts_per_iteration=2, samples_per_prompt=8, minibatch_size=8, train_timesteps=2, lr=3e-3, clip_range=1e-2,
                      sampling=SAMPLING, skip_final_steps=1, mixture_distill_weight=1.0, mixture_distill_from_step=0, mixture_distill_groups="even",
                      diversity_codes=8, pretrain_weight=0.0)
    trainer = RLTrainer(build_tiny_pipeline(TINY, tokenizer_dir), MultiReward({"color_parity": (parity, 1.0)}), prompts, meta, config,
                        output_dir=tmp_path)
    assert not trainer.diversity.embedding.any()
    mixture = trainer._mixture_targets(["a coat"] * 8 + ["a red dress"] * 8, [meta[0]] * 8 + [meta[1]] * 8)
    assert sorted(mixture["codes"].tolist()) == list(range(8))
    assert mixture["named"] == [f"a {parity.groups[c]} coat" for c in mixture["codes"].tolist()]

    trainer.train()
    assert trainer.diversity.embedding.abs().sum() > 0 and all(h["mixture_loss"] > 0 for h in trainer.history)
    state = trainer.trainable_state()
    assert torch.equal(state[DIVERSITY_KEY], trainer.diversity.embedding.detach())
    resumed = RLTrainer(build_tiny_pipeline(TINY, tokenizer_dir), MultiReward({"color_parity": (make_reward("color_parity", objective="kl", memory=16), 1.0)}),
                        prompts, meta, config)
    resumed.load_checkpoint(tmp_path / "checkpoints" / "iteration-000002")
    assert torch.equal(resumed.diversity.embedding, trainer.diversity.embedding)
    plain = RLTrainer(build_tiny_pipeline(TINY, tokenizer_dir), MultiReward({"color_parity": (make_reward("color_parity"), 1.0)}), prompts, meta,
                      config.model_copy(update={"diversity_codes": 0}))
    with pytest.raises(ValueError, match="do not match"):
        plain.load_checkpoint(tmp_path / "checkpoints" / "iteration-000002")

    # the saved pipeline (LoRA fused, codes beside it) draws what the trained policy draws
    trained = generate(trainer.pipe, ["a coat"] * 3, SAMPLING, seed=2, unet=trainer.unet, diversity=trainer.diversity)
    saved = load_pipeline(str(trainer.save_pipeline(tmp_path / "pipeline", lora_folder=tmp_path / "lora")))
    assert torch.equal(saved.diversity_codes.embedding, trainer.diversity.embedding.detach()) and (tmp_path / "lora").exists()
    assert torch.allclose(generate(saved, ["a coat"] * 3, SAMPLING, seed=2), trained, atol=1e-4)


def test_the_invariance_term_teaches_a_prompt_that_names_its_colour_to_ignore_the_code(tokenizer_dir):
    """code_invariance_weight: zero codes change nothing (loss 0); a code that moves a titled
    prompt's prediction is pulled back, and only titled rows are scored."""
    trainer, trajectories, rows, steps = _titled_trainer(tokenizer_dir, iterations=3, code_invariance_weight=1.0)
    assert float(trainer._code_invariance_loss(trajectories, rows, steps).detach()) == 0.0
    with torch.no_grad():
        trainer.diversity.embedding.normal_(std=3.0)
    losses = _descend(trainer, lambda: trainer._code_invariance_loss(trajectories, rows, steps))
    assert losses[0] > 0 and losses[-1] < 0.8 * losses[0]
    trainer.train()
    assert all(h["code_invariance_loss"] >= 0 for h in trainer.history if "code_invariance_loss" in h)
    assert any("code_invariance_loss" in h for h in trainer.history)


@pytest.mark.parametrize("codes_only", [False, True])
def test_codes_only_distillation_leaves_the_lora_alone(tokenizer_dir, codes_only):
    """mixture_distill_codes_only: the term's gradient reaches the codes and nothing else."""
    prompts, meta = ["a coat"], [{"names_color": False, "category": "coat"}]
    config = RLConfig(iterations=1, prompts_per_iteration=1, samples_per_prompt=8, minibatch_size=8, train_timesteps=2, lr=3e-3,
                      sampling=SAMPLING, skip_final_steps=1, mixture_distill_weight=1.0, diversity_codes=8, pretrain_weight=0.0,
                      mixture_distill_codes_only=codes_only)
    trainer = RLTrainer(build_tiny_pipeline(TINY, tokenizer_dir), MultiReward({"color_parity": (make_reward("color_parity", objective="kl"), 1.0)}),
                        prompts, meta, config)
    mixture = trainer._mixture_targets(prompts * 8, meta * 8)
    embeds = encode_prompts(trainer.pipe, prompts * 8)
    trainer.optimizer.zero_grad(set_to_none=True)
    assert trainer._mixture_backward(mixture, torch.arange(8), embeds) > 0
    shared = [p for p in trainer.trainable if p is not trainer.diversity.embedding]
    assert shared and trainer.diversity.embedding.grad.abs().sum() > 0
    assert all(p.grad is None for p in shared) == codes_only
    if codes_only:
        with pytest.raises(ValueError, match="needs diversity_codes"):
            RLTrainer(build_tiny_pipeline(TINY, tokenizer_dir), MultiReward({"color_parity": (make_reward("color_parity"), 1.0)}), prompts, meta,
                      config.model_copy(update={"diversity_codes": 0}))


def test_the_title_anchor_pulls_a_titled_prompt_back_to_the_base(tokenizer_dir):
    """title_anchor_weight: a policy equal to the base scores 0; once the LoRA has moved, the term
    is positive, is recorded in the history, and its own steps bring the titled prediction back."""
    trainer, trajectories, rows, steps = _titled_trainer(tokenizer_dir, iterations=1, title_anchor_weight=1.0)
    assert float(trainer._title_anchor_loss(trajectories, rows, steps).detach()) == 0.0
    with torch.no_grad():
        for name, parameter in trainer.unet.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.05)
    losses = _descend(trainer, lambda: trainer._title_anchor_loss(trajectories, rows, steps))
    assert losses[0] > 0 and losses[-1] < 0.5 * losses[0]
    assert trainer.step()["title_anchor_loss"] > 0


def _titled_trainer(tokenizer_dir, **config):
    """A trainer with codes on a titled and a colour-free prompt, and four trajectories of the
    titled one, one per code: (trainer, trajectories, rows, steps) for the terms on titled rows."""
    prompts, meta = ["a red dress", "a coat"], [{"names_color": True, "category": "dress"}, {"names_color": False, "category": "coat"}]
    config = RLConfig(prompts_per_iteration=2, samples_per_prompt=4, minibatch_size=8, train_timesteps=2, lr=3e-3, clip_range=1e-2,
                      sampling=SAMPLING, skip_final_steps=1, diversity_codes=4, pretrain_weight=0.0, **config)
    trainer = RLTrainer(build_tiny_pipeline(TINY, tokenizer_dir), MultiReward({"color_parity": (make_reward("color_parity", objective="kl", memory=16), 1.0)}),
                        prompts, meta, config)
    embeds = encode_prompts(trainer.pipe, ["a red dress"] * 4)
    trajectories = sample_trajectories(trainer.pipe, embeds, trainer.negative, SAMPLING, torch.Generator().manual_seed(0), unet=trainer.unet,
                                       diversity=trainer.diversity, codes=torch.arange(4))
    return trainer, trajectories, torch.arange(4), torch.zeros(4, dtype=torch.long)


def _descend(trainer, loss_of, steps: int = 6) -> list[float]:
    """The losses of `steps` optimiser steps on one term alone."""
    losses = []
    for _ in range(steps):
        trainer.optimizer.zero_grad()
        loss = loss_of()
        loss.backward()
        trainer.optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_codes_that_follow_an_adapter_leave_other_rows_as_written_and_travel_with_the_pipeline(tokenizer_dir, tmp_path):
    """DiversityCodes(adapter=...): rows routed elsewhere draw NO_CODE, the other rows draw what an
    unrestricted draw gives them, and a NO_CODE row's condition is unchanged; the adapter is saved."""
    from ml.diffusion.diversity import NO_CODE

    codes = DiversityCodes(4, TINY.text_hidden, adapter="open")
    with torch.no_grad():
        codes.embedding.normal_()
    names = ["open", "default", "open", "default", "default"]
    everyone = codes.draw(5, torch.Generator().manual_seed(3))
    followed = codes.draw(5, torch.Generator().manual_seed(3), names)
    assert followed.tolist() == [c if n == "open" else NO_CODE for c, n in zip(everyone.tolist(), names)]
    assert torch.equal(codes.draw(5, torch.Generator().manual_seed(3)), everyone)  # no names: every row draws
    embeds = encode_prompts(build_tiny_pipeline(TINY, tokenizer_dir), ["a coat", "a red dress", "a bag", "a blue bag", "a hat"])
    coded = codes(embeds, followed)
    assert torch.equal(coded[[1, 3, 4]], embeds[[1, 3, 4]]) and not torch.allclose(coded[[0, 2]], embeds[[0, 2]])
    with pytest.raises(ValueError, match="3 adapter names for 5 codes"):
        codes.draw(5, None, names[:3])
    codes.save(tmp_path)
    assert DiversityCodes.load(tmp_path).adapter == "open"
    DiversityCodes(4, TINY.text_hidden).save(tmp_path / "everyone")
    assert DiversityCodes.load(tmp_path / "everyone").adapter is None


def test_with_codes_open_only_titled_rows_train_and_draw_without_a_code(tokenizer_dir, tmp_path):
    """codes_open_only: the trainer's titled rows draw NO_CODE (the open ones a code), the
    invariance term is never computed, and the saved pipeline draws a title as if it had no codes;
    without open_adapter the option does nothing."""
    from ml.diffusion.adapters import OPEN_ADAPTER
    from ml.diffusion.diversity import NO_CODE

    prompts, meta = ["a coat", "a red dress"], [{"names_color": False, "category": "coat"}, {"names_color": True, "category": "dress"}]
    config = RLConfig(iterations=2, prompts_per_iteration=2, samples_per_prompt=4, minibatch_size=8, train_timesteps=2, lr=3e-3, clip_range=1e-2,
                      sampling=SAMPLING, skip_final_steps=1, mixture_distill_weight=1.0, diversity_codes=4, diversity_lr=0.05, pretrain_weight=0.0,
                      code_invariance_weight=1.0, open_adapter=True, codes_open_only=True)
    trainer = RLTrainer(build_tiny_pipeline(TINY, tokenizer_dir), MultiReward({"color_parity": (make_reward("color_parity", objective="kl", memory=16), 1.0)}),
                        prompts, meta, config)
    assert trainer.diversity.adapter == OPEN_ADAPTER
    draws, real_draw = [], trainer.diversity.draw

    def recorded_draw(*args):
        draws.append((real_draw(*args), list(trainer._row_adapters)))
        return draws[-1][0]

    trainer.diversity.draw = recorded_draw  # the real draw, recorded with the rows' adapters
    trainer.train()
    trainer.diversity.draw = real_draw
    assert len(draws) == 2
    for drawn, names in draws:
        assert all((c == NO_CODE) == (n != OPEN_ADAPTER) for c, n in zip(drawn.tolist(), names)) and OPEN_ADAPTER in names
    assert trainer.diversity.embedding.abs().sum() > 0 and not any("code_invariance_loss" in h for h in trainer.history)

    routed = trainer.adapter_names(meta * 2)
    with_codes = generate(trainer.pipe, prompts * 2, SAMPLING, seed=2, unet=trainer.unet, diversity=trainer.diversity, adapter_names=routed)
    without = generate(trainer.pipe, prompts * 2, SAMPLING, seed=2, unet=trainer.unet, adapter_names=routed)
    assert torch.equal(with_codes[1::2], without[1::2]) and not torch.allclose(with_codes[::2], without[::2], atol=1e-4)
    saved = load_pipeline(str(trainer.save_pipeline(tmp_path / "pipeline")))
    assert saved.diversity_codes.adapter == OPEN_ADAPTER
    assert torch.allclose(generate(saved, prompts * 2, SAMPLING, seed=2), with_codes, atol=1e-4)
    one_lora = RLTrainer(build_tiny_pipeline(TINY, tokenizer_dir), MultiReward({"color_parity": (make_reward("color_parity"), 1.0)}), prompts, meta,
                         config.model_copy(update={"open_adapter": False}))
    assert one_lora.diversity.adapter is None  # without routing every row draws a code
