"""The RL machinery on a tiny randomly initialised Stable-Diffusion-shaped pipeline (real
diffusers/transformers classes, real CLIP tokenizer): DDIM log-probabilities, the clipped
objective, both advantage normalisations, exact resume, the reward registry, and a short run
whose reward rises."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ml.diffusion.ddim import ddim_step_with_logprob
from ml.diffusion.pipeline import TinyPipelineConfig, build_tiny_pipeline
from ml.diffusion.sampling import SamplingConfig, encode_prompts, guided_noise, sample_trajectories
from ml.diffusion.stat_tracking import PerPromptStatTracker, batch_advantages
from ml.diffusion.trainer import RLConfig, RLTrainer, largest_remainder, ppo_clip_loss, train_step_indices
from ml.rewards import MultiReward, RewardUnavailable, make_multi_reward, make_reward, register_reward, registered_rewards

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = TinyPipelineConfig(image_size=16, vae_channels=(8, 16), unet_channels=(32, 32), norm_groups=8, text_hidden=32, text_ffn=64, text_heads=2)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("clip-tokenizer")


def tiny_pipe(tokenizer_dir, seed=0):
    return build_tiny_pipeline(TINY, tokenizer_dir, seed=seed)


class Redness:
    """Mean of red minus the other channels: a reward a tiny random model can learn to raise."""

    name = "redness"

    def __call__(self, images, prompts, metadata):
        return (images[:, 0] - images[:, 1:].mean(1)).mean((1, 2)).numpy()


def test_the_tokenizer_is_the_full_clip_vocabulary(tokenizer_dir):
    pipe = tiny_pipe(tokenizer_dir)
    assert len(pipe.tokenizer) == 49408
    assert pipe.tokenizer("a red dress")["input_ids"] == [49406, 320, 736, 2595, 49407]


def test_ddim_step_matches_diffusers_and_scores_its_own_samples(tokenizer_dir):
    scheduler = tiny_pipe(tokenizer_dir).scheduler
    scheduler.set_timesteps(10)
    x, eps = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    for t in (scheduler.timesteps[0], scheduler.timesteps[-1]):
        reference = scheduler.step(eps, t, x, eta=1.0, generator=torch.Generator().manual_seed(1)).prev_sample
        mine, log_prob = ddim_step_with_logprob(scheduler, eps, t, x, 10, eta=1.0, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(reference, mine, atol=1e-5)
        _, rescored = ddim_step_with_logprob(scheduler, eps, t, x, 10, eta=1.0, prev_sample=mine)
        assert torch.allclose(log_prob, rescored)
        _, elsewhere = ddim_step_with_logprob(scheduler, eps, t, x, 10, eta=1.0, prev_sample=mine + 0.5)
        assert (elsewhere < log_prob).all()  # a step far from the mean is less likely


def test_ratio_is_one_before_any_update(tokenizer_dir):
    pipe = tiny_pipe(tokenizer_dir)
    trainer = RLTrainer(pipe, MultiReward({"redness": (Redness(), 1.0)}), ["a red dress", "a bag"], [{}, {}],
                        RLConfig(prompts_per_iteration=2, samples_per_prompt=2, sampling=SamplingConfig(num_inference_steps=4, guidance_scale=3)))
    embeds = encode_prompts(pipe, ["a red dress", "a bag", "a bag", "a coat"])
    trajectories = sample_trajectories(pipe, embeds, trainer.negative, trainer.config.sampling, torch.Generator().manual_seed(0), unet=trainer.unet)
    trainer.unet.train()
    for step in range(4):
        rows = torch.arange(4)
        log_prob, *_ = trainer._policy_step(trajectories, rows, torch.full((4,), step))
        ratio = torch.exp(log_prob - trajectories.log_probs[rows, step])
        assert torch.allclose(ratio, torch.ones(4), atol=1e-4)


def test_clipped_objective_stops_pushing_past_the_clip_range():
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    ratio = torch.tensor([1.5, 0.95, 0.5, 1.05], requires_grad=True)
    loss = ppo_clip_loss(advantages, ratio, 0.1)
    loss.sum().backward()
    # positive advantage above 1+clip, negative below 1-clip: clipped, no gradient; the others move
    assert ratio.grad.tolist() == [0.0, -1.0, 0.0, 1.0]
    assert loss.tolist() == pytest.approx([-1.1, -0.95, 0.9, 1.05])


def test_trained_steps_are_distinct_random_and_leave_out_the_final_ones():
    rng = np.random.default_rng(0)
    steps = train_step_indices(rng, 64, 20, 5, skip_final=1)
    assert steps.shape == (64, 5) and steps.max() == 18 and steps.min() == 0
    assert all(len(set(row)) == 5 for row in steps.tolist())
    assert train_step_indices(rng, 8, 20, 5, skip_final=0).max() <= 19
    assert set(train_step_indices(rng, 200, 20, 5, skip_final=0).ravel()) == set(range(20))
    assert train_step_indices(rng, 4, 4, 10, skip_final=1).shape == (4, 3)  # k capped by what is trainable
    assert train_step_indices(rng, 4, 1, 5, skip_final=1).tolist() == [[0]] * 4  # never nothing to train


def test_batch_advantages_are_standardised_and_clipped():
    rewards = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    adv = batch_advantages(rewards, clip=1.5)
    assert adv.max() == 1.5 and adv[:4].tolist() == sorted(adv[:4].tolist())
    assert abs(batch_advantages(np.array([1.0, 2.0, 3.0])).mean()) < 1e-9


def test_per_prompt_advantages_use_each_prompts_history_and_count_fallbacks():
    tracker = PerPromptStatTracker(buffer_size=8, min_count=4)
    first = tracker.advantages(["a", "a", "b", "b"], np.array([1.0, 3.0, 10.0, 30.0]))
    assert tracker.fallbacks == 4  # two rewards per prompt < min_count: batch statistics, counted
    assert first[0] < first[1] < first[2] < first[3]
    second = tracker.advantages(["a", "a", "b", "b"], np.array([1.0, 3.0, 10.0, 30.0]))
    assert tracker.fallbacks == 4  # now four each: per-prompt statistics
    assert second[0] == pytest.approx(second[2]) and second[1] == pytest.approx(second[3])  # each prompt on its own scale
    state = tracker.state_dict()
    restored = PerPromptStatTracker(8, 4)
    restored.load_state_dict(state)
    assert restored.advantages(["a"], np.array([2.0])) == pytest.approx(tracker.advantages(["a"], np.array([2.0])))


def test_batch_scaled_per_prompt_advantages_keep_each_prompts_spread():
    """Centred per prompt, scaled by the batch: a prompt whose rewards vary ten times as much keeps
    ten times the advantages (per-prompt scaling would make both unit-variance)."""
    rewards = np.array([1.0, 3.0, 10.0, 30.0])
    tracker = PerPromptStatTracker(buffer_size=8, min_count=2)
    adv = tracker.advantages(["a", "a", "b", "b"], rewards, scale="batch")
    assert adv[0] + adv[1] == pytest.approx(0) and adv[2] + adv[3] == pytest.approx(0)  # centred on each prompt's mean
    assert (adv[3] - adv[2]) == pytest.approx(10 * (adv[1] - adv[0]))
    assert adv.std() == pytest.approx(1.0)
    per_prompt = PerPromptStatTracker(buffer_size=8, min_count=2).advantages(["a", "a", "b", "b"], rewards)
    assert per_prompt[1] == pytest.approx(per_prompt[3])
    with pytest.raises(ValueError, match="scale"):
        tracker.advantages(["a"], np.array([1.0]), scale="global")


def _rl_config(**overrides):
    base = dict(iterations=4, prompts_per_iteration=2, samples_per_prompt=4, sampling=SamplingConfig(num_inference_steps=4, guidance_scale=3.0),
                train_timesteps=2, minibatch_size=4, inner_epochs=2, lr=1e-3, clip_range=1e-2, finetune="lora")
    return RLConfig(**(base | overrides))


def test_pathwise_steps_must_lie_inside_the_chain():
    assert _rl_config(pathwise_step=3, pathwise_fidelity_step=-1).pathwise_step == 3  # 4 steps: 0..3, -1 the last
    with pytest.raises(ValueError, match="pathwise_step=4"):
        _rl_config(pathwise_step=4)
    with pytest.raises(ValueError, match="pathwise_fidelity_step=-5"):
        _rl_config(pathwise_fidelity_step=-5)


def test_the_adapters_start_follows_the_seed_not_the_global_generator(tokenizer_dir):
    """RL seeds must differ in the LoRA's random start as well as in their noise, and one seed must
    start the same whatever drew from torch's global generator before."""
    def adapter_start(seed: int, global_seed: int) -> dict[str, torch.Tensor]:
        pipe = tiny_pipe(tokenizer_dir)
        torch.manual_seed(global_seed)
        trainer = RLTrainer(pipe, MultiReward({"redness": (Redness(), 1.0)}), ["a bag"], [{}], _rl_config(seed=seed))
        return {k: v for k, v in trainer.trainable_state().items() if "lora_A" in k}

    first = adapter_start(seed=0, global_seed=1)
    assert first and all(v.abs().sum() > 0 for v in first.values())
    again = adapter_start(seed=0, global_seed=2)
    other = adapter_start(seed=1, global_seed=1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not any(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize(("finetune", "ema_decay"), [("lora", 0.0), ("full", 0.0), ("lora", 0.5)])
def test_resume_continues_exactly_where_it_stopped(tokenizer_dir, tmp_path, finetune, ema_decay):
    def reward():  # each run its own: the parity memory is state the checkpoint must carry
        return MultiReward({"redness": (Redness(), 1.0), "color_parity": (make_reward("color_parity", memory=8), 0.5)})
    prompts, meta = ["a red dress", "a bag", "a coat"], [{}, {}, {}]
    straight = RLTrainer(tiny_pipe(tokenizer_dir), reward(), prompts, meta, _rl_config(finetune=finetune, ema_decay=ema_decay))
    straight.train()
    first = RLTrainer(tiny_pipe(tokenizer_dir), reward(), prompts, meta, _rl_config(finetune=finetune, iterations=2, ema_decay=ema_decay),
                      output_dir=tmp_path)
    base = first.trainable_state()
    first.train()
    checkpoint = tmp_path / "checkpoints" / "iteration-000002"
    resumed = RLTrainer(tiny_pipe(tokenizer_dir), reward(), prompts, meta, _rl_config(finetune=finetune, ema_decay=ema_decay))
    resumed.load_checkpoint(checkpoint)
    assert resumed.reward.state_dict() == first.reward.state_dict() != {"color_parity": {"recent": {}}}
    loaded = resumed.trainable_state()
    assert resumed.iteration == 2
    assert all(torch.equal(loaded[k], v) for k, v in first.trainable_state().items())
    assert any(not torch.equal(loaded[k], base[k]) for k in base)  # not the base model (trl issue 2505)
    resumed.train()
    assert resumed.iteration == 4 and [h["reward"] for h in resumed.history] == [h["reward"] for h in straight.history]
    assert all(torch.equal(resumed.trainable_state()[k], v) for k, v in straight.trainable_state().items())
    if ema_decay:  # the average is state too: not restarted from the resumed weights
        assert all(torch.equal(resumed.average[k], v) for k, v in straight.average.items())


def test_the_averaged_weights_are_the_policy_evaluated_and_saved_while_training_goes_on_from_the_last_iterate(tokenizer_dir, tmp_path):
    from ml.diffusion.pipeline import load_pipeline
    from ml.diffusion.trainer import evaluate_rewards

    trainer = RLTrainer(tiny_pipe(tokenizer_dir), MultiReward({"redness": (Redness(), 1.0)}), ["a red dress", "a bag"], [{}, {}],
                        _rl_config(finetune="full", iterations=3, ema_decay=0.6))
    expected = trainer.trainable_state()
    iterates = []
    trainer.train(callback=lambda t, record: iterates.append(t.trainable_state()))
    for iterate in iterates:
        expected = {k: 0.6 * v + 0.4 * iterate[k] for k, v in expected.items()}
    last = iterates[-1]
    assert all(torch.allclose(trainer.average[k], v, atol=1e-6) for k, v in expected.items())
    assert any(not torch.allclose(expected[k], last[k], atol=1e-4) for k in last)  # the average is not the last iterate
    with trainer.averaged():
        assert all(torch.equal(v, trainer.average[k]) for k, v in trainer.trainable_state().items())
    assert all(torch.equal(v, last[k]) for k, v in trainer.trainable_state().items())  # back to the last iterate to train on

    prompts, sampling = ["a red dress", "a bag"], trainer.config.sampling
    _, _, shipped = trainer.evaluate(prompts, [{}, {}], seed=5)
    _, _, iterate_images = evaluate_rewards(trainer.pipe, trainer.reward, prompts, [{}, {}], sampling, 5, unet=trainer.unet)
    with trainer.averaged():
        _, _, averaged_images = evaluate_rewards(trainer.pipe, trainer.reward, prompts, [{}, {}], sampling, 5, unet=trainer.unet)
    assert torch.equal(shipped, averaged_images) and not torch.equal(shipped, iterate_images)

    saved = dict(load_pipeline(str(trainer.save_pipeline(tmp_path / "pipeline"))).unet.named_parameters())
    assert all(torch.allclose(saved[k], v) for k, v in trainer.average.items())


def test_resume_refuses_a_checkpoint_of_another_kind(tokenizer_dir, tmp_path):
    reward = MultiReward({"redness": (Redness(), 1.0)})
    RLTrainer(tiny_pipe(tokenizer_dir), reward, ["a bag"], [{}], _rl_config(iterations=1), output_dir=tmp_path).train()
    full = RLTrainer(tiny_pipe(tokenizer_dir), reward, ["a bag"], [{}], _rl_config(finetune="full"))
    with pytest.raises(ValueError, match="lora fine-tuning"):
        full.load_checkpoint(tmp_path / "checkpoints" / "iteration-000001")
    with pytest.raises(FileNotFoundError, match="not an RL checkpoint"):
        full.load_checkpoint(tmp_path / "checkpoints")


def test_reward_registry_round_trip_and_clear_errors():
    @register_reward("test_constant")
    class Constant:
        name = "test_constant"

        def __init__(self, value: float = 1.0):
            self.value = value

        def __call__(self, images, prompts, metadata):
            return np.full(len(prompts), self.value)

    assert "test_constant" in registered_rewards() and {"prompt_fidelity", "color_parity", "pickscore"} <= set(registered_rewards())
    multi = make_multi_reward({"test_constant": {"weight": 2.0, "value": 0.25}})
    total, parts = multi(torch.zeros(3, 3, 8, 8), ["a", "b", "c"], [{}] * 3)
    assert total.tolist() == [0.5] * 3 and parts["test_constant"].tolist() == [0.25] * 3
    with pytest.raises(KeyError, match="unknown reward 'nope'"):
        make_reward("nope")
    with pytest.raises(RewardUnavailable, match="offline|pip install"):
        make_reward("pickscore")


def _garment_pixels(colors: list) -> np.ndarray:
    """16 x 16 catalog-style images, uint8 N x H x W x 3: a square of a palette colour (name) or an
    RGB tuple on white."""
    from ml.catalog.demo_world import PALETTE

    images = np.full((len(colors), 16, 16, 3), 255, np.uint8)
    for image, color in zip(images, colors):
        image[3:13, 3:13] = PALETTE[color] if isinstance(color, str) else color
    return images


def _garment(color) -> torch.Tensor:
    """One such image as the generator's output, 3 x H x W in [0, 1]."""
    return torch.from_numpy(_garment_pixels([color])[0]).permute(2, 0, 1).float() / 255


def test_color_parity_rewards_the_under_represented_colour():
    parity = make_reward("color_parity")
    images = torch.stack([_garment("red"), _garment("red"), _garment("red"), _garment("blue"), _garment("blue"), torch.ones(3, 16, 16)])
    rewards = parity(images, ["a dress"] * 4 + ["a bag"] * 2, [{"names_color": False}] * 4 + [{"names_color": True}] * 2)
    assert rewards[3] > rewards[0]  # the one blue among three reds gets more credit than a red
    assert rewards[:4].mean() == pytest.approx(-(0.75**2 + 0.25**2 - 1 / 8))  # minus the squared L2 distance to uniform over 8 colours
    assert rewards[4] == rewards[5] == 0  # prompts that name a colour are not parity prompts


def test_a_short_rl_run_raises_the_reward(tokenizer_dir):
    torch.manual_seed(0)
    reward = MultiReward({"redness": (Redness(), 1.0)})
    prompts = ["a red dress", "a bag"]
    trainer = RLTrainer(tiny_pipe(tokenizer_dir), reward, prompts, [{}, {}],
                        _rl_config(iterations=20, finetune="full", inner_epochs=1, samples_per_prompt=8, minibatch_size=16, train_timesteps=4,
                                   sampling=SamplingConfig(num_inference_steps=8, guidance_scale=3.0)))
    eval_prompts = prompts * 16
    before, _, _ = trainer.evaluate(eval_prompts, [{}] * 32)
    trainer.train()
    after, _, _ = trainer.evaluate(eval_prompts, [{}] * 32)
    gain = after - before  # same prompts, same seeds: paired
    assert gain.mean() > 3 * gain.std() / np.sqrt(len(gain))


def test_launch_entry_point_trains_resumes_and_saves_a_loadable_pipeline(tokenizer_dir, tmp_path):
    """The accelerate entry point, single process on CPU: train 2 iterations, resume to 3, load the result."""
    import json

    import pandas as pd

    from ml.diffusion.launch import main
    from ml.diffusion.pipeline import load_pipeline

    tiny_pipe(tokenizer_dir).save_pretrained(tmp_path / "base")
    pd.DataFrame({"prompt": ["a dress", "a red bag"], "names_color": [False, True], "suite": ["fairness", "titles"],
                  "split": ["train", "train"]}).to_parquet(tmp_path / "prompts.parquet")
    config = {"prompts_per_iteration": 2, "samples_per_prompt": 2, "minibatch_size": 4, "train_timesteps": 1, "checkpoint_every": 1,
              "sampling": {"num_inference_steps": 3, "guidance_scale": 2.0}}
    common = ["--pipeline", str(tmp_path / "base"), "--prompts", str(tmp_path / "prompts.parquet"), "--output", str(tmp_path / "run")]
    assert main([*common, "--config", json.dumps(config | {"iterations": 2})]) == 0
    assert main([*common, "--config", json.dumps(config | {"iterations": 3}), "--resume", str(tmp_path / "run" / "checkpoints" / "iteration-000002")]) == 0
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["iteration"] for h in history] == [1, 2, 3]
    pipe = load_pipeline(str(tmp_path / "run" / "pipeline"))
    assert not any("lora" in name for name, _ in pipe.unet.named_parameters())  # fused into the weights
    assert (tmp_path / "run" / "lora").exists()


def test_zero_shot_fidelity_is_a_probability_over_the_vocabulary(tmp_path):
    from ml.embedding.factory import create_dual_encoder, save_dual_encoder

    folder = save_dual_encoder(create_dual_encoder("shopwindow-tiny-32"), tmp_path / "encoder")
    categories, colors = ["bag", "dress", "coat"], ["red", "blue"]
    fidelity = make_reward("prompt_fidelity", model=str(folder), categories=categories, colors=colors)
    image = torch.rand(1, 3, 32, 32).expand(3, -1, -1, -1)
    meta = [{"names_color": False, "category": c} for c in categories]
    per_category = fidelity(image, [f"a {c}" for c in categories], meta)
    assert per_category.sum() == pytest.approx(1.0, abs=1e-5) and (per_category > 0).all()  # one image, every category: sums to 1
    named_meta = [{"names_color": True, "category": "bag", "color": c} for c in colors]
    named = fidelity(image[:2], ["a red bag", "a blue bag"], named_meta)
    assert named.sum() == pytest.approx(2 * per_category[0] + 1.0, abs=1e-5)  # + the colour term, which also sums to 1
    # the pathwise term's loss is minus the same reward, or minus its category part alone without pathwise_color
    assert float(fidelity.reward_loss(image[:2], ["a red bag", "a blue bag"], named_meta)) == pytest.approx(-named.mean(), abs=1e-3)
    category_only = make_reward("prompt_fidelity", model=str(folder), categories=categories, colors=colors, pathwise_color=False)
    assert float(category_only.reward_loss(image[:2], ["a red bag", "a blue bag"], named_meta)) == pytest.approx(-per_category[0], abs=1e-3)
    # color_weight 3: each title's colour probability counts three times; prompts naming no colour are unchanged
    heavy = make_reward("prompt_fidelity", model=str(folder), categories=categories, colors=colors, color_weight=3.0)
    named_heavy = heavy(image[:2], ["a red bag", "a blue bag"], named_meta)
    assert named_heavy - per_category[0] == pytest.approx(3 * (named - per_category[0]), abs=1e-5)
    assert heavy(image, [f"a {c}" for c in categories], meta) == pytest.approx(per_category, abs=1e-6)
    # temperature 2: the same logits halved, so the probabilities are softmax(log p / 2), flatter but in the same order
    warm = make_reward("prompt_fidelity", model=str(folder), categories=categories, colors=colors, temperature=2.0)
    flattened = torch.softmax(torch.log(torch.as_tensor(per_category)) / 2, dim=0).numpy()
    assert warm(image, [f"a {c}" for c in categories], meta) == pytest.approx(flattened, abs=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        make_reward("prompt_fidelity", model=str(folder), categories=categories, colors=colors, temperature=0.0)
    with pytest.raises(ValueError, match="color_weight"):
        make_reward("prompt_fidelity", model=str(folder), categories=categories, colors=colors, color_weight=-1.0)
    with pytest.raises(ValueError, match="not in the reward's vocabulary"):
        fidelity(image[:1], ["a hat"], [{"names_color": False, "category": "hat"}])
    with pytest.raises(ValueError, match="category vocabulary"):
        make_reward("prompt_fidelity", model=str(folder))


def _pathwise_gradients(tmp_path, option: str, prompt: str, meta: dict, colors: list[str]) -> dict[bool, tuple[float, torch.Tensor, torch.Tensor]]:
    """{option's value: (the pathwise fidelity loss, the images, their gradient)} for two random
    images, the same ones with the PromptFidelity `option` on and off."""
    from ml.embedding.factory import create_dual_encoder, save_dual_encoder

    folder = save_dual_encoder(create_dual_encoder("shopwindow-tiny-32"), tmp_path / "encoder")
    out = {}
    for value in (True, False):
        fidelity = make_reward("prompt_fidelity", model=str(folder), categories=["bag", "dress"], colors=colors, **{option: value})
        image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        loss = fidelity.reward_loss(image, [prompt] * 2, [meta] * 2)
        loss.backward()
        out[value] = (float(loss.detach()), image.detach(), image.grad)
    assert out[False][0] == pytest.approx(out[True][0], abs=1e-6)  # the same value, only its gradient differs
    return out


def test_fidelity_gradient_without_hue_only_changes_how_much_ink_a_pixel_carries(tmp_path):
    runs = _pathwise_gradients(tmp_path, "pathwise_hue", "a red bag", {"names_color": True, "category": "bag", "color": "red"}, ["red", "blue"])
    cosines = {hue: (grad * (1 - image)).sum(1) / (grad.norm(dim=1) * (1 - image).norm(dim=1)) for hue, (_, image, grad) in runs.items()}
    moved = {hue: c[~c.isnan()].abs() for hue, c in cosines.items()}  # pixels the encoder's resize gives a gradient
    assert moved[False].numel() > 1000 and moved[False].min() > 0.999  # each pixel's gradient lies along its own ink: its hue is held
    assert moved[True].mean() < 0.9  # with the hue free it does not


def test_fidelity_gradient_with_ink_held_cannot_fade_an_image(tmp_path):
    """pathwise_ink=False: the same loss, and a gradient with no part along the image's own ink
    (scaling all of it, the fading that loses a colour); with the ink free that part is not 0."""
    runs = _pathwise_gradients(tmp_path, "pathwise_ink", "a bag", {"names_color": False, "category": "bag"}, ["red"])
    along = {ink_free: torch.nn.functional.cosine_similarity(grad.flatten(1), (1 - image).flatten(1)) for ink_free, (_, image, grad) in runs.items()}
    assert along[False].abs().max() < 1e-4 and along[True].abs().min() > 10 * along[False].abs().max()


def test_fidelity_gradient_with_chroma_held_only_changes_lightness(tmp_path):
    """pathwise_chroma=False: the same loss, and each pixel's gradient is equal in its three
    channels (it moves the pixel along the grey axis, so its offset from grey is held)."""
    runs = _pathwise_gradients(tmp_path, "pathwise_chroma", "a bag", {"names_color": False, "category": "bag"}, ["red"])
    spread = {chroma: float((grad - grad.mean(1, keepdim=True)).abs().max() / grad.abs().max()) for chroma, (_, _, grad) in runs.items()}
    assert spread[False] < 1e-5 and spread[True] > 0.01


def test_soft_color_parity_matches_hard_when_sharp_and_still_signals_when_all_read_alike():
    meta = [{"names_color": False}] * 4
    mixed = torch.stack([_garment("red")] * 3 + [_garment("blue")])
    hard = make_reward("color_parity")(mixed, ["a dress"] * 4, meta)
    sharp = make_reward("color_parity", temperature=1.0)(mixed, ["a dress"] * 4, meta)
    assert sharp == pytest.approx(hard, abs=1e-6)
    black, greenish = (30, 30, 30), (30, 70, 30)
    alike = torch.stack([_garment(black)] * 3 + [_garment(greenish)])
    reads = make_reward("color_parity")(alike, ["a coat"] * 4, meta)
    soft = make_reward("color_parity", temperature=2000.0)(alike, ["a coat"] * 4, meta)
    assert np.ptp(reads) == 0  # all four read black: the hard reward has nothing to say
    assert soft[3] > soft[0] == pytest.approx(soft[1])  # the soft one credits the sample that leans away from black


def test_parity_memory_tells_a_rare_colour_from_a_common_one_that_a_batch_of_eight_cannot():
    """A prompt drew red often and green never: in a batch where each is alone, batch shares
    give both the same reward; with memory the green one gets more. The memory round-trips
    through the checkpoint state, and evaluation batches (memory_off) neither use nor change it."""
    def batch(colors):
        return torch.stack([_garment(c) for c in colors]), ["a dress"] * len(colors), [{"names_color": False}] * len(colors)
    earlier = batch(["red"] * 4 + ["black"] * 4)
    now = batch(["black"] * 6 + ["red", "green"])
    plain = make_reward("color_parity")
    plain(*earlier)
    without = plain(*now)
    assert without[6] == without[7]  # alone in the batch, both: 1/8 - 1/8
    remembering = MultiReward({"color_parity": (make_reward("color_parity", memory=16), 1.0)})
    remembering(*earlier)
    state = remembering.state_dict()
    _, parts = remembering(*now)
    assert parts["color_parity"][7] > parts["color_parity"][6] + 0.1  # green (never seen) over red (5 of 16)
    # shares over the 16 reads: black 10, red 5, green 1
    assert parts["color_parity"][[0, 6, 7]] == pytest.approx([1 / 8 - 10 / 16, 1 / 8 - 5 / 16, 1 / 8 - 1 / 16])

    restored = MultiReward({"color_parity": (make_reward("color_parity", memory=16), 1.0)})
    restored.load_state_dict(json.loads(json.dumps(state)))  # as the trainer's checkpoint stores it
    assert restored(*now)[1]["color_parity"] == pytest.approx(parts["color_parity"])
    memory = {k: v.copy() for k, v in restored.components["color_parity"][0].recent.items()}
    with restored.memory_off():
        evaluated = restored(*now)[1]["color_parity"]
    assert evaluated == pytest.approx(without)
    assert all(np.array_equal(memory[k], v) for k, v in restored.components["color_parity"][0].recent.items())
    with pytest.raises(ValueError, match="memory"):
        make_reward("color_parity", memory=-1)


def test_kl_parity_credits_a_rare_colour_by_how_far_it_falls_short_not_by_its_share_alone():
    """objective "kl": a sample's reward is (1/K) / share(its colour) - 1, the score-function
    reward of -KL(uniform || shares), which averages 0 over the shares and is capped for colours
    never seen."""
    colors = ["black"] * 10 + ["red"] * 5 + ["green"]
    images, prompts, meta = torch.stack([_garment(c) for c in colors]), ["a dress"] * 16, [{"names_color": False}] * 16
    kl = make_reward("color_parity", objective="kl")(images, prompts, meta)
    assert kl[[0, 10, 15]] == pytest.approx([(1 / 8) / (10 / 16) - 1, (1 / 8) / (5 / 16) - 1, (1 / 8) / (1 / 16) - 1])
    assert kl.mean() == pytest.approx(3 / 8 - 1)  # the sum of 1/K over the three colours drawn, minus 1
    l2 = make_reward("color_parity")(images, prompts, meta)
    assert kl[15] / kl[0] < l2[15] / l2[0]  # green's credit against black's is larger under kl (both ratios negative)
    parity = make_reward("color_parity", objective="kl")
    assert parity.need(np.full(8, 1 / 8)) == pytest.approx(np.zeros(8))
    assert parity.need(np.array([1.0] + [0.0] * 7))[1:] == pytest.approx(np.full(7, parity.max_ratio - 1))
    with pytest.raises(ValueError, match="objective"):
        make_reward("color_parity", objective="tv")


def test_rl_recipes_take_every_default_from_the_resource_and_refuse_unknown_fields():
    from benchmarks.rl_recipes import resolve_recipe
    from orchestration.resources import GenerationResource

    config, share, rewards = resolve_recipe({"lr": 2e-3, "parity_memory": 8})
    assert config.lr == 2e-3 and rewards["parity_memory"] == 8
    assert rewards["parity_weight"] == GenerationResource().parity_weight and share == GenerationResource().fairness_share
    with pytest.raises(SystemExit, match="parity_wieght"):
        resolve_recipe({"parity_wieght": 4})


def test_gradient_agreement_estimate_separates_signal_from_noise():
    from benchmarks.rl_gradient_noise import expected_cosine

    rng = np.random.default_rng(0)
    signal = rng.normal(size=500)
    assert expected_cosine(np.tile(signal, (64, 1)), 8, 16) > 0.99  # no noise: every batch agrees
    assert expected_cosine(rng.normal(size=(256, 500)), 8, 32) < 0.02  # no signal
    # minibatch noise variance 500 * 4 per minibatch, |signal|^2 = 500: at B = 8 * 4 the noise is 500
    noisy = signal + rng.normal(0, 2.0, size=(256, 500))
    assert abs(expected_cosine(noisy, 8, 32) - 0.5) < 0.05


def test_base_training_drops_the_colour_from_a_share_of_captions(tokenizer_dir):
    """The demo's base generator sees "a dress" as well as "a red dress" (captions leave colour out),
    so colour-free prompts draw the catalog's colour mix rather than an untrained guess."""
    from ml.diffusion.train_base import BaseTrainConfig, train_unet

    pipe = tiny_pipe(tokenizer_dir)
    seen: list[torch.Tensor] = []
    pipe.text_encoder.register_forward_hook(lambda module, args, output: seen.append(args[0].clone()))
    latents = torch.randn(8, 4, 8, 8)
    captions, short = ["a red dress"] * 8, ["a dress"] * 8
    config = BaseTrainConfig(unet_steps=6, unet_batch_size=4, warmup_steps=1, caption_dropout=0.0, colorless_captions=0.5)
    train_unet(pipe, latents, captions, config, short_captions=short)
    ids = torch.cat(seen)
    long_ids, short_ids = (pipe.tokenizer(t, padding="max_length", max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids[0]
                           for t in ("a red dress", "a dress"))
    is_long, is_short = (ids == long_ids).all(1), (ids == short_ids).all(1)
    assert (is_long | is_short).all() and is_long.any() and is_short.any()
    with pytest.raises(ValueError, match="aligned"):
        train_unet(pipe, latents, captions, config, short_captions=short[:3])


def test_cell_balanced_base_training_draws_a_rare_caption_as_often_as_a_common_one(tokenizer_dir):
    """With unet_cell_balance=1 each caption gets the same share of draws however few images it has
    (the catalog's blue is mostly trousers and shirts); 0 keeps the catalog's mix."""
    from ml.diffusion.train_base import BaseTrainConfig, caption_draw_weights, train_unet

    captions = ["a red dress"] * 9 + ["a blue dress"]
    weights = caption_draw_weights(captions, 1.0)
    assert weights.sum() == pytest.approx(1.0) and weights[-1] == pytest.approx(0.5) and weights[:9].sum() == pytest.approx(0.5)
    assert caption_draw_weights(captions, 0.0) == pytest.approx(np.full(10, 0.1))

    def blue_share(balance: float) -> float:
        pipe = tiny_pipe(tokenizer_dir)
        blue_ids = pipe.tokenizer("a blue dress", padding="max_length", max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids[0]
        seen: list[torch.Tensor] = []
        pipe.text_encoder.register_forward_hook(lambda module, args, output: seen.append(args[0].clone()))
        config = BaseTrainConfig(unet_steps=30, unet_batch_size=2, warmup_steps=1, caption_dropout=0.0, colorless_captions=0.0, unet_cell_balance=balance)
        train_unet(pipe, torch.randn(10, 4, 8, 8), captions, config)
        return float((torch.cat(seen) == blue_ids).all(1).float().mean())

    shares = blue_share(1.0), blue_share(0.0)  # 0.38 and 0.05 here
    assert shares[0] > 0.25 > 0.2 > shares[1]


def test_a_unet_given_an_encoder_encodes_only_the_images_its_steps_draw_and_trains_the_same(tokenizer_dir):
    """The base plans its draws ahead and encodes only the images they reach (70% of the demo's at
    800 steps); planning ahead must not change a single draw."""
    from ml.diffusion.train_base import BaseTrainConfig, train_unet

    latents = torch.randn(40, 4, 8, 8)
    captions, short = ["a red dress", "a blue bag"] * 20, ["a dress", "a bag"] * 20
    config = BaseTrainConfig(unet_steps=5, unet_batch_size=4, warmup_steps=1, unet_cell_balance=1.0)
    asked: list[np.ndarray] = []

    def encode(rows: np.ndarray) -> torch.Tensor:
        asked.append(rows)
        return latents[torch.as_tensor(rows)]

    trained = []
    for given in (latents, encode):
        pipe = tiny_pipe(tokenizer_dir)
        history = train_unet(pipe, given, captions, config, short_captions=short)
        trained.append((pipe.unet.state_dict(), history[-1]["loss"]))
    assert len(asked) == 1 and len(asked[0]) <= 20 and len(np.unique(asked[0])) == len(asked[0])  # once, 5 x 4 draws at most
    assert trained[0][1] == trained[1][1]
    assert all(torch.equal(trained[0][0][k], trained[1][0][k]) for k in trained[0][0])


def test_bf16_base_training_runs_the_same_steps_at_lower_precision_on_fp32_weights(tokenizer_dir):
    from ml.diffusion.train_base import BaseTrainConfig, bf16_supported, train_unet

    if not bf16_supported("cpu"):
        pytest.skip("this CPU has no bf16 kernels: train_unet stays in fp32 (unet_precision says so)")

    losses = []
    for bf16 in (False, True):
        pipe = tiny_pipe(tokenizer_dir)
        config = BaseTrainConfig(unet_steps=10, unet_batch_size=8, warmup_steps=1, unet_bf16=bf16)
        history = train_unet(pipe, torch.randn(16, 4, 8, 8, generator=torch.Generator().manual_seed(0)), ["a red dress"] * 16, config)
        losses.append(history[-1]["loss"])
        assert history[-1]["bf16"] is bf16
        assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in pipe.unet.parameters())
    assert 0 < abs(losses[1] - losses[0]) < 0.05 * losses[0]  # rounded differently, the same computation


def test_the_unet_stops_at_its_step_budget_well_inside_its_minutes(tokenizer_dir):
    """The demo's budget is steps (the minutes only a cap), so a fast machine trains the same
    UNet sooner instead of a longer-trained one; the cosine schedule ends at the step budget."""
    from ml.diffusion.train_base import BaseTrainConfig, train_unet

    config = BaseTrainConfig(base_minutes=5.0, unet_steps=50, unet_batch_size=4, warmup_steps=1)
    history = train_unet(tiny_pipe(tokenizer_dir), torch.randn(8, 4, 8, 8), ["a red dress"] * 8, config)
    assert history[-1]["step"] == 50 and history[-1]["seconds"] < 60
    assert history[-1]["lr"] == pytest.approx(0.0, abs=config.unet_lr * 0.01)


def test_the_colour_term_weighs_a_thin_garment_like_a_wide_one():
    """A strap (1/16 of its image inked) and a pullover-like square (whole interior inked): per
    image the colour term is divided by the inked share, so the strap's few pixels count as much;
    a blank image is held at the floor share instead of dividing by zero."""
    from ml.diffusion.train_base import _inverse_area_weights, to_model_range

    images = np.full((3, 16, 16, 3), 255, np.uint8)
    images[0, :, 7:8] = (30, 30, 30)  # a one-pixel-wide black strap: 16 of 256 pixels
    images[1, 2:14, 2:14] = (30, 30, 30)  # 144 of 256 pixels
    weights = _inverse_area_weights(to_model_range(images))
    assert torch.isclose(weights.mean(), torch.tensor(1.0))
    assert torch.isclose(weights[0] / weights[1], torch.tensor(144 / 16))
    assert torch.isclose(weights[2] / weights[1], torch.tensor((144 / 256) / 0.04))  # blank: the floor share, finite


def test_colour_whitening_weighs_a_rare_chroma_axis_like_luminance():
    """Garments that differ mostly in darkness and a little in green vs magenta: whitened, both
    axes have the luminance axis's variance, so an error along the rare axis is no longer cheap."""
    from ml.diffusion.train_base import colour_whitening, to_model_range

    rng = np.random.default_rng(0)
    darkness = rng.uniform(20, 230, 400)[:, None]
    tint = rng.normal(0, 12, 400)[:, None] * np.array([[1.0, -2.0, 1.0]]) / 6 ** 0.5  # the green-magenta direction
    pixels = np.clip(darkness + tint, 0, 255).astype(np.uint8)[:, None, None, :].repeat(4, 1).repeat(4, 2)
    whiten = colour_whitening(pixels)
    pooled = torch.nn.functional.avg_pool2d(to_model_range(pixels), 4).permute(0, 2, 3, 1).reshape(-1, 3)
    covariance = torch.cov((pooled @ whiten).T)
    top = torch.linalg.eigvalsh(torch.cov(pooled.T)).max()
    spread = torch.linalg.eigvalsh(covariance)
    assert torch.allclose(spread[1:], top.expand(2), rtol=1e-3)  # both populated axes at luminance's variance
    green = torch.tensor([1.0, -2.0, 1.0]) / 6 ** 0.5
    grey = torch.ones(3) / 3 ** 0.5
    assert float((green @ whiten).norm()) > 3  # a green-magenta error weighs several times what it did in RGB
    assert abs(float((grey @ whiten).norm()) - 1.0) < 0.05  # luminance keeps weight 1


def test_the_autoencoder_stops_once_held_out_images_keep_their_colour(tokenizer_dir):
    """A reader that every round trip satisfies stops the autoencoder at its first check; an
    unreachable target runs it to its step cap. Either way the figures say how far colour got."""
    from ml.diffusion.train_base import BaseTrainConfig, train_vae
    from ml.fairness.color_reader import demo_color_reader

    pixels = _garment_pixels(["red", "blue", "green", "yellow"] * 10)
    config = BaseTrainConfig(vae_batch_size=4, vae_check_every=2, vae_check_images=8, vae_steps=6, vae_min_share=0.0)
    met = train_vae(tiny_pipe(tokenizer_dir).vae, pixels, config, read_color=lambda images: ["red"] * len(images))
    assert (met["vae_stopped"], met["vae_steps"], met["vae_color_kept"]) == ("colour target", 2, 1.0)
    sharpening = train_vae(tiny_pipe(tokenizer_dir).vae, pixels, config.model_copy(update={"vae_min_share": 0.5}),
                           read_color=lambda images: ["red"] * len(images))  # the target is met, the minimum time is not
    assert (sharpening["vae_stopped"], sharpening["vae_steps"]) == ("steps", 6)
    # likewise a minimum step count, until its share of the budget has passed
    held = train_vae(tiny_pipe(tokenizer_dir).vae, pixels, config.model_copy(update={"vae_min_steps": 4}), read_color=lambda images: ["red"] * len(images))
    assert (held["vae_stopped"], held["vae_steps"]) == ("colour target", 4)
    waived = train_vae(tiny_pipe(tokenizer_dir).vae, pixels, config.model_copy(update={"vae_min_steps": 4, "vae_min_steps_share": 0.0}),
                       read_color=lambda images: ["red"] * len(images))
    assert (waived["vae_stopped"], waived["vae_steps"]) == ("colour target", 2)

    # the overall share is met at the first check, but a floor per colour is not: the autoencoder keeps training
    floor = train_vae(tiny_pipe(tokenizer_dir).vae, pixels, config.model_copy(update={"vae_color_target": 0.0, "vae_min_color_kept": 1.01}),
                      read_color=demo_color_reader().read)
    assert (floor["vae_stopped"], floor["vae_steps"]) == ("steps", 6) and min(floor["vae_color_kept_by_color"].values()) < 1.01
    no_floor = train_vae(tiny_pipe(tokenizer_dir).vae, pixels, config.model_copy(update={"vae_color_target": 0.0}), read_color=demo_color_reader().read)
    assert (no_floor["vae_stopped"], no_floor["vae_steps"]) == ("colour target", 2)
    # ...and likewise a floor per category, given the images' categories
    categories = np.array(["dress", "sandals"] * 20, dtype=object)
    category_floor = train_vae(tiny_pipe(tokenizer_dir).vae, pixels, config.model_copy(update={"vae_color_target": 0.0, "vae_min_category_kept": 1.01}),
                               read_color=demo_color_reader().read, categories=categories)
    assert (category_floor["vae_stopped"], category_floor["vae_steps"]) == ("steps", 6)
    assert set(category_floor["vae_color_kept_by_category"]) <= {"dress", "sandals"} and category_floor["vae_color_kept_by_category"]
    assert train_vae(tiny_pipe(tokenizer_dir).vae, pixels, config.model_copy(update={"vae_color_target": 0.0, "vae_min_category_kept": 1.01}),
                     read_color=demo_color_reader().read)["vae_stopped"] == "colour target"  # no categories given: no floor

    capped = train_vae(tiny_pipe(tokenizer_dir).vae, pixels, config.model_copy(update={"vae_color_target": 1.01}), read_color=demo_color_reader().read)
    assert (capped["vae_stopped"], capped["vae_steps"]) == ("steps", 6)
    assert 0.0 <= capped["vae_color_kept"] <= 1.0
    assert set(capped["vae_color_kept_by_color"]) <= {"red", "blue", "green", "yellow"}  # per colour read on the originals
    assert all(0.0 <= v <= 1.0 for v in capped["vae_color_kept_by_color"].values())
    assert train_vae(tiny_pipe(tokenizer_dir).vae, pixels, config.model_copy(update={"base_minutes": 0.0}))["vae_stopped"] == "time"


def test_the_peak_ink_term_adds_to_the_autoencoders_first_loss(tokenizer_dir):
    """Same weights, batch and posterior draw: the peak-ink term (a squared error) can only add to
    the first step's loss, and area weighting keeps it finite with a blank image in the batch."""
    from ml.diffusion.train_base import BaseTrainConfig, train_vae

    pixels = np.concatenate([_garment_pixels(["black", "green"] * 4), np.full((2, 16, 16, 3), 255, np.uint8)])
    config = BaseTrainConfig(vae_batch_size=10, vae_steps=1, vae_lr=0.0)

    def first_loss(**update) -> float:
        torch.manual_seed(0)
        vae = tiny_pipe(tokenizer_dir).vae
        torch.manual_seed(1)
        return train_vae(vae, pixels, config.model_copy(update=update))["vae_loss"]

    plain = first_loss()
    assert first_loss() == pytest.approx(plain)  # the comparison below is not noise
    assert first_loss(vae_peak_ink_weight=5.0) > plain + 1e-3
    assert np.isfinite(first_loss(vae_peak_ink_weight=5.0, vae_color_area_weighted=True))


def test_the_unet_gets_what_the_autoencoder_leaves_of_the_base_budget(tokenizer_dir):
    from ml.diffusion.train_base import BaseTrainConfig, train_base
    from ml.fairness.color_reader import demo_color_reader

    pixels = _garment_pixels(["red", "blue"] * 8)
    config = BaseTrainConfig(base_minutes=0.05, vae_max_share=0.5, vae_color_target=1.01, vae_steps=10_000, vae_batch_size=4,
                             vae_check_images=4, unet_batch_size=4, warmup_steps=1)
    figures, history = train_base(tiny_pipe(tokenizer_dir), pixels, ["a red dress", "a blue dress"] * 8, ["a dress"] * 16, config,
                                  demo_color_reader().read)
    assert figures["vae_stopped"] == "time" and 1.3 <= figures["vae_seconds"] <= 3
    assert figures["unet_minutes"] == pytest.approx(0.025, abs=0.001) and 0 < figures["unet_seconds"] <= 60 * 0.025 + 2
    # the steps it ran, even when the budget ends it before the 50th (a slow machine once reported 0 here)
    assert figures["training_images"] == 16 and figures["unet_steps"] == history[-1]["step"] > 0


def test_the_pretraining_term_alone_fits_its_catalog_images(tokenizer_dir):
    """With every reward weighted 0 the policy gradient is zero, so only the pretraining term
    moves the model: its diffusion loss on the real images (fixed noise and timesteps) must fall.
    Three coloured images for a minibatch of four also checks that a small catalog is drawn with
    replacement instead of failing."""
    import pandas as pd

    from ml.diffusion.trainer import PretrainData

    torch.manual_seed(0)
    pipe = tiny_pipe(tokenizer_dir)
    pixels = np.full((4, 16, 16, 3), 255, np.uint8)
    for image, rgb in zip(pixels, [(200, 30, 40), (35, 75, 200), (40, 145, 60), (28, 28, 32)]):
        image[4:12, 4:12] = rgb
    items = pd.DataFrame({"color": ["red", "blue", "green", None], "category": ["dress", "bag", "coat", "shirt"]})
    data = PretrainData.from_catalog(pipe.vae, items, pixels)
    assert data.prompts == ["a red dress", "a blue bag", "a green coat"]  # the uncoloured item is left out

    noise = torch.randn(data.latents.shape, generator=torch.Generator().manual_seed(1))
    timesteps = torch.tensor([100, 400, 800])

    def fixed_loss(trainer) -> float:
        with torch.no_grad():
            noisy = pipe.scheduler.add_noise(data.latents, noise, timesteps)
            predicted = trainer.unet(noisy, timesteps, encoder_hidden_states=encode_prompts(pipe, data.prompts)).sample
            return float(torch.nn.functional.mse_loss(predicted, noise))

    reward = MultiReward({"redness": (Redness(), 0.0)})
    trainer = RLTrainer(pipe, reward, ["a dress"], [{}], _rl_config(iterations=15, pretrain_weight=1.0, finetune="full"), pretrain=data)
    before = fixed_loss(trainer)
    history = trainer.train()
    assert all(np.isfinite(h["pretrain_loss"]) for h in history)
    assert fixed_loss(trainer) < 0.5 * before


def test_balanced_pretraining_images_give_a_rare_pair_as_many_rows_as_a_common_one(tokenizer_dir):
    """Six red dresses, one blue dress and two green coats in a 6-image budget: the catalog's
    proportions keep the first six (five red dresses), the balanced draw two per cell."""
    import pandas as pd

    from ml.diffusion.trainer import PretrainData

    pipe = tiny_pipe(tokenizer_dir)
    items = pd.DataFrame({"color": ["red"] * 5 + ["green", "blue", "red", "green"], "category": ["dress"] * 5 + ["coat", "dress", "dress", "coat"]})
    pixels = np.full((len(items), 16, 16, 3), 255, np.uint8)
    in_order = PretrainData.from_catalog(pipe.vae, items, pixels, limit=6)
    assert in_order.prompts == ["a red dress"] * 5 + ["a green coat"]
    balanced = PretrainData.from_catalog(pipe.vae, items, pixels, limit=6, balanced=True)
    assert balanced.prompts == ["a red dress"] * 2 + ["a green coat", "a blue dress", "a green coat"]
    assert len(balanced.latents) == 5


def test_differentiable_colour_memberships_match_the_reader_and_their_gradient_moves_a_garment_toward_a_missing_colour():
    from ml.fairness.color_reader import demo_color_reader

    reader = demo_color_reader()
    pixels = _garment_pixels(["red", "green", "black", (30, 70, 30)])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    log_soft, readable, shortfall = reader.differentiable_log_probabilities(images, 500.0)
    expected, expected_readable = reader.probabilities(pixels, 500.0)
    assert log_soft.detach().exp().numpy() == pytest.approx(expected, abs=1e-4) and readable.tolist() == expected_readable.tolist()

    parity = make_reward("color_parity", objective="kl", memory=16, pathwise_temperature=500.0)
    coats = torch.stack([_garment("black")] * 4).requires_grad_(True)
    prompts, meta = ["a coat"] * 4, [{"names_color": False}] * 4
    parity(coats.detach(), prompts, meta)  # the memory now holds four black reads: every other colour is needed
    optimizer = torch.optim.Adam([coats], lr=0.02)
    for _ in range(30):
        optimizer.zero_grad()
        parity.pathwise_loss(coats, prompts, meta).backward()
        optimizer.step()
    read = reader.read((coats.detach().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy())
    # four identical coats are sent to different missing colours, not all to their mean (grey)
    assert "black" not in read and len(set(read)) >= 3
    assert parity.pathwise_loss(coats, prompts, [{"names_color": True}] * 4) is None  # titled prompts: nothing to balance


def test_the_pathwise_parity_term_reaches_the_unet_and_its_steps_lower_it(tokenizer_dir):
    """Rewards weighted 0 (no policy gradient) and no pretraining term: the pathwise loss alone
    moves the LoRA weights, its steps lower it on a fixed batch of trajectories, and the trainer
    records it for colour-free prompts only."""
    torch.manual_seed(0)
    prompts, meta = ["a coat", "a bag", "a red dress"], [{"names_color": False}, {"names_color": False}, {"names_color": True}]
    reward = MultiReward({"color_parity": (make_reward("color_parity", objective="kl", memory=16), 0.0)})
    config = _rl_config(iterations=2, pathwise_parity_weight=1.0, samples_per_prompt=8, minibatch_size=24, prompts_per_iteration=3, lr=3e-3)
    trainer = RLTrainer(tiny_pipe(tokenizer_dir), reward, prompts, meta, config)
    base = trainer.trainable_state()
    trainer.train()
    assert all(h["pathwise_loss"] > 0 for h in trainer.history)
    assert any(not torch.equal(v, base[k]) for k, v in trainer.trainable_state().items())

    rows = torch.arange(16)
    with torch.no_grad():
        batch_prompts, batch_meta = ["a coat"] * 8 + ["a bag"] * 8, [meta[0]] * 16
        trajectories = sample_trajectories(trainer.pipe, encode_prompts(trainer.pipe, batch_prompts), trainer.negative, config.sampling,
                                           torch.Generator().manual_seed(3), unet=trainer.unet)
    steps = torch.zeros(16, dtype=torch.long)
    reward(trajectories.images, batch_prompts, batch_meta)  # the reads the quotas come from
    losses = []
    for _ in range(6):
        trainer.optimizer.zero_grad()
        loss = trainer._pathwise_loss(trajectories, rows, steps, batch_prompts, batch_meta)
        loss.backward()
        trainer.optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert trainer._pathwise_loss(trajectories, rows, steps, batch_prompts, [meta[2]] * 16) is None  # titled prompts: nothing to balance
    with pytest.raises(ValueError, match="differentiable reader"):
        RLTrainer(tiny_pipe(tokenizer_dir), MultiReward({"redness": (Redness(), 1.0)}), prompts, meta, config)


def test_steered_exploration_draws_a_lacking_colour_and_rescores_its_steps_under_the_real_prompt(tokenizer_dir):
    """explore_share: a colour-free sample's first steps are conditioned on "a {colour} {category}"
    for a colour the prompt lacks; the stored log-probabilities of those steps are the real
    prompt's (PPO's ratio starts at 1), and the steered reads stay out of the parity memory."""
    torch.manual_seed(0)
    parity = make_reward("color_parity", objective="kl", memory=16)
    parity.recent["a coat"] = np.eye(8)[[0] * 15 + [2]]  # 15 black, 1 red: black is never drawn for exploration
    rng = np.random.default_rng(0)
    named = [parity.exploration_prompt("a coat", {"names_color": False, "category": "coat"}, rng) for _ in range(200)]
    assert all(p.startswith("a ") and p.endswith(" coat") for p in named) and "a black coat" not in named and len(set(named)) >= 5
    assert parity.exploration_prompt("a red coat", {"names_color": True, "category": "coat"}, rng) is None

    prompts, meta = ["a coat", "a red dress"], [{"names_color": False, "category": "coat"}, {"names_color": True, "category": "dress"}]
    config = _rl_config(iterations=1, explore_share=1.0, explore_steps=2, samples_per_prompt=4, prompts_per_iteration=2)
    trainer = RLTrainer(tiny_pipe(tokenizer_dir), MultiReward({"color_parity": (parity, 1.0)}), prompts, meta, config)
    chosen, chosen_meta = ["a coat"] * 4 + ["a red dress"] * 4, [meta[0]] * 4 + [meta[1]] * 4
    embeds = encode_prompts(trainer.pipe, chosen)
    steer, steered = trainer._steering(chosen, chosen_meta, embeds)
    assert steered == [0, 1, 2, 3]  # every colour-free sample, no titled one
    trajectories = sample_trajectories(trainer.pipe, embeds, trainer.negative, config.sampling, torch.Generator().manual_seed(0),
                                       unet=trainer.unet, steer_embeds=steer, steer_steps=2)
    as_sampled = trajectories.log_probs.clone()
    trainer._rescore(trajectories, steered)
    assert not torch.allclose(as_sampled[:4, :2], trajectories.log_probs[:4, :2])  # the steering condition's, replaced
    assert torch.equal(as_sampled[4:], trajectories.log_probs[4:]) and torch.equal(as_sampled[:, 2:], trajectories.log_probs[:, 2:])
    trainer.unet.train()
    rows = torch.arange(8)
    for step in range(2):
        log_prob, *_ = trainer._policy_step(trajectories, rows, torch.full((8,), step))
        assert torch.allclose(torch.exp(log_prob - trajectories.log_probs[rows, step]), torch.ones(8), atol=1e-4)
    memory = parity.recent["a coat"].copy()
    parity(trajectories.images, chosen, [dict(m, steered=True) for m in chosen_meta])
    assert np.array_equal(parity.recent["a coat"], memory)
    trainer.train()
    assert trainer.history[-1]["steered"] > 0


def test_the_pathwise_fidelity_term_follows_the_rewards_gradient_through_the_last_step(tokenizer_dir, tmp_path):
    """DRaFT-1 next to the policy gradient: the fidelity reward's own gradient reaches the LoRA
    weights through the last step's prediction, and its steps raise that reward on a fixed batch."""
    from ml.embedding.factory import create_dual_encoder, save_dual_encoder

    torch.manual_seed(0)
    folder = save_dual_encoder(create_dual_encoder("shopwindow-tiny-32"), tmp_path / "encoder")
    fidelity = make_reward("prompt_fidelity", model=str(folder), categories=["bag", "coat", "dress"], colors=["red", "blue"])
    prompts = ["a bag", "a red coat"]
    meta = [{"category": "bag"}, {"category": "coat", "names_color": True, "color": "red"}]
    config = _rl_config(iterations=2, pathwise_fidelity_weight=1.0, lr=3e-3)
    trainer = RLTrainer(tiny_pipe(tokenizer_dir), MultiReward({"prompt_fidelity": (fidelity, 1.0)}), prompts, meta, config)
    trainer.train()
    assert all(h["pathwise_fidelity_loss"] < 0 for h in trainer.history)  # minus a probability

    with torch.no_grad():
        batch_prompts, batch_meta = [prompts[0]] * 4 + [prompts[1]] * 4, [meta[0]] * 4 + [meta[1]] * 4
        trajectories = sample_trajectories(trainer.pipe, encode_prompts(trainer.pipe, batch_prompts), trainer.negative, config.sampling,
                                           torch.Generator().manual_seed(3), unet=trainer.unet)
    rows, losses = torch.arange(8), []
    # the last step's prediction is the sampled image itself, so there the loss is minus the reward of the images
    last = float(trainer._pathwise_fidelity_loss(trajectories, rows, torch.full((8,), 3), batch_prompts, batch_meta).detach())
    assert -last == pytest.approx(float(fidelity(trajectories.images, batch_prompts, batch_meta).mean()), rel=1e-3)
    # a random encoder barely tells images apart: its gradients (~1e-9 per weight) sit below Adam's epsilon unless scaled up;
    # and the first step, where the image is decided, moves it most (the last one only through 3% of its noise prediction)
    fidelity.scale = 1e4
    for _ in range(6):
        trainer.optimizer.zero_grad()
        loss = trainer._pathwise_fidelity_loss(trajectories, rows, torch.zeros(8, dtype=torch.long), batch_prompts, batch_meta)
        loss.backward()
        trainer.optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="differentiable in the pixels"):
        RLTrainer(tiny_pipe(tokenizer_dir), MultiReward({"redness": (Redness(), 1.0)}), prompts, meta, config)

    # skip_open: a batch of colour-free prompts only (the parity reward's) gets no fidelity gradient at all
    both = MultiReward({"prompt_fidelity": (fidelity, 1.0), "color_parity": (make_reward("color_parity"), 1.0)})
    skipping = RLTrainer(tiny_pipe(tokenizer_dir), both, [prompts[0]], [meta[0]], config.model_copy(update={"pathwise_fidelity_skip_open": True}))
    skipping.train()
    assert all("pathwise_fidelity_loss" not in h for h in skipping.history)


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_the_mixture_distillation_term_teaches_the_open_prompt_the_bases_named_colours(tokenizer_dir, finetune):
    """mixture_distill_weight: each colour-free sample of a prompt gets a different colour (eight
    samples, eight colours), its targets are the base's guided noise predictions along the base's
    own trajectory of "a {colour} coat", and the term's steps bring the policy's prediction under
    "a coat" toward them while the base it is measured against stays as it was."""
    torch.manual_seed(0)
    prompts, meta = ["a coat", "a red dress"], [{"names_color": False, "category": "coat"}, {"names_color": True, "category": "dress"}]
    reward = MultiReward({"color_parity": (make_reward("color_parity", objective="kl", memory=16), 0.0)})
    config = _rl_config(iterations=2, mixture_distill_weight=1.0, samples_per_prompt=8, minibatch_size=8, finetune=finetune,
                        lr=3e-3 if finetune == "lora" else 1e-4,
                        sampling=SamplingConfig(num_inference_steps=4, guidance_scale=3.0), skip_final_steps=1)
    trainer = RLTrainer(tiny_pipe(tokenizer_dir), reward, prompts, meta, config)
    chosen, chosen_meta = ["a coat"] * 8 + ["a red dress"] * 8, [meta[0]] * 8 + [meta[1]] * 8
    mixture = trainer._mixture_targets(chosen, chosen_meta)
    assert mixture["rows"].tolist() == list(range(8))  # the titled prompt names its colour: nothing to distil
    assert mixture["latents"].shape[:2] == (8, 3) and mixture["targets"].shape == mixture["latents"].shape  # all but the last step
    named = [reward.components["color_parity"][0].group_prompt(c, meta[0]) for c in reward.components["color_parity"][0].groups]
    assert trainer._mixture_targets(["a red dress"] * 4, [meta[1]] * 4) is None

    def base_targets():  # the base's prediction for each colour's prompt at the stored latents, recomputed
        found = {}
        for text in named:
            embeds = encode_prompts(trainer.pipe, [text] * 8)
            found[text] = torch.stack([trainer._base_noise(mixture["latents"][:, k], mixture["timesteps"][k], embeds) for k in range(3)], 1)
        return found

    before = base_targets()
    matched = [next(t for t, target in before.items() if torch.allclose(target[i], mixture["targets"][i], atol=1e-5)) for i in range(8)]
    assert sorted(matched) == sorted(named)  # one sample per colour, and each target is the base's for its colour

    embeds = encode_prompts(trainer.pipe, chosen)
    part = torch.arange(8)
    trainer.unet.train()
    losses = []
    for _ in range(8):
        trainer.optimizer.zero_grad()
        loss = sum(torch.nn.functional.mse_loss(guided_noise(trainer.unet, mixture["latents"][part, k], mixture["timesteps"][k], embeds[:8],
                                                             trainer.negative.expand(8, -1, -1), 3.0), mixture["targets"][part, k]) for k in range(3))
        loss.backward()
        trainer.optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]
    after = base_targets()
    assert all(torch.allclose(before[t], after[t], atol=1e-5) for t in named)  # the base is not what moves
    trainer.train()
    assert all(h["mixture_loss"] > 0 for h in trainer.history)


def test_lacking_mixture_groups_follow_what_the_prompts_remembered_reads_lack(tokenizer_dir):
    """mixture_distill_groups "lacking": the named colours come in proportion to the parity
    quota, so a colour the policy already over-draws is not taught at all."""
    assert largest_remainder(np.full(8, 1 / 8), 8).tolist() == [1] * 8
    assert largest_remainder(np.array([0.5, 0.3, 0.2]), 4).tolist() == [2, 1, 1]
    parity = make_reward("color_parity", objective="kl", memory=32)
    parity.recent["a coat"] = np.eye(8)[[0] * 24 + [1] * 8]  # 24 black, 8 grey of 32
    prompts, meta = ["a coat"], [{"names_color": False, "category": "coat"}]
    config = _rl_config(iterations=1, mixture_distill_weight=1.0, mixture_distill_groups="lacking", samples_per_prompt=12, prompts_per_iteration=1)
    trainer = RLTrainer(tiny_pipe(tokenizer_dir), MultiReward({"color_parity": (parity, 0.0)}), prompts, meta, config)
    counts = {}
    for _ in range(5):
        mixture = trainer._mixture_targets(["a coat"] * 12, meta * 12)
        for t in mixture["named"]:
            counts[t] = counts.get(t, 0) + 1
    assert "a black coat" not in counts and "a grey coat" not in counts  # both at or over their share of 32 + 12
    assert set(counts) == {f"a {c} coat" for c in parity.groups[2:]} and sum(counts.values()) == 60


def test_mixture_distill_from_step_leaves_the_first_steps_untrained(tokenizer_dir):
    """mixture_distill_from_step: the term's loss is computed at that step or later, never at the
    pure-noise first step, whose target can only be the colours' mean."""
    prompts, meta = ["a coat"], [{"names_color": False, "category": "coat"}]
    parity = make_reward("color_parity", objective="kl", memory=32)
    config = _rl_config(iterations=1, mixture_distill_weight=1.0, mixture_distill_from_step=2, samples_per_prompt=8, prompts_per_iteration=1,
                        sampling=SamplingConfig(num_inference_steps=4, guidance_scale=3.0), skip_final_steps=1)
    trainer = RLTrainer(tiny_pipe(tokenizer_dir), MultiReward({"color_parity": (parity, 0.0)}), prompts, meta, config)
    mixture = trainer._mixture_targets(["a coat"] * 8, meta * 8)
    assert len(mixture["timesteps"]) == 3
    embeds, part = encode_prompts(trainer.pipe, ["a coat"] * 8), torch.arange(8)
    with torch.no_grad():
        own = guided_noise(trainer.unet, mixture["latents"][:, 2], mixture["timesteps"][2], embeds, trainer.negative.expand(8, -1, -1), 3.0)
        last_step_only = torch.nn.functional.mse_loss(own, mixture["targets"][:, 2])
        first_step = torch.nn.functional.mse_loss(
            guided_noise(trainer.unet, mixture["latents"][:, 0], mixture["timesteps"][0], embeds, trainer.negative.expand(8, -1, -1), 3.0),
            mixture["targets"][:, 0])
        assert not torch.isclose(first_step, last_step_only)
        assert all(torch.isclose(trainer._mixture_loss(mixture, part, embeds), last_step_only) for _ in range(3))


def test_fused_timesteps_give_the_same_update_in_fewer_unet_calls(tokenizer_dir):
    """fused_timesteps: a minibatch's trained steps taken in one UNet call give the update of one
    call per step (the loss is the same mean), and the KL term's too."""
    prompts, meta = ["a red dress", "a bag"], [{}, {}]

    def trained(fused):
        torch.manual_seed(0)
        config = _rl_config(iterations=2, train_timesteps=3, fused_timesteps=fused, kl_weight=0.1,
                            sampling=SamplingConfig(num_inference_steps=4, guidance_scale=3.0), skip_final_steps=0)
        trainer = RLTrainer(tiny_pipe(tokenizer_dir), MultiReward({"redness": (Redness(), 1.0)}), prompts, meta, config)
        initial = {k: v.clone() for k, v in trainer.trainable_state().items()}
        calls = []
        trainer.unet.register_forward_hook(lambda module, args, kwargs, out: calls.append(len(args[0])), with_kwargs=True)
        trainer.train()
        return initial, trainer.trainable_state(), trainer.history, calls

    initial, one, one_history, one_calls = trained(1)
    _, fused, fused_history, fused_calls = trained(3)
    assert any(not torch.allclose(initial[k], one[k]) for k in one)  # training moved the weights
    # 1e-5 is 1% of one Adam step at lr 1e-3: a wrong fused loss moves weights by whole steps, while batching alone moved one
    # LoRA weight by 1.5e-6 on one machine's CPU kernels (2026-12-06)
    assert all(torch.allclose(one[k], fused[k], atol=1e-5) for k in one)
    assert [h["loss"] for h in one_history] == pytest.approx([h["loss"] for h in fused_history], abs=1e-6)
    assert [h["kl_to_base"] for h in one_history] == pytest.approx([h["kl_to_base"] for h in fused_history], abs=1e-6)
    policy_call = 2 * 4 * 3  # guidance's two halves x a minibatch of 4 x three steps
    assert len(fused_calls) < len(one_calls) and policy_call in fused_calls and policy_call not in one_calls


def test_the_open_adapter_routes_each_row_and_keeps_each_sides_gradient_to_its_own_weights(tokenizer_dir):
    """open_adapter: a row whose prompt leaves its colour open goes through the open LoRA, a titled
    row through the title LoRA, in one UNet call (guidance's two halves alike); a titled row's loss
    reaches only the title adapter's weights, an open row's only the open one's; training moves both."""
    from ml.diffusion.adapters import OPEN_ADAPTER, TITLE_ADAPTER, routed_adapters

    prompts, meta = ["a coat", "a red dress"], [{"names_color": False, "category": "coat"}, {"names_color": True, "category": "dress"}]
    reward = MultiReward({"redness": (Redness(), 1.0), "color_parity": (make_reward("color_parity", memory=8), 0.5)})
    trainer = RLTrainer(tiny_pipe(tokenizer_dir), reward, prompts, meta, _rl_config(iterations=2, open_adapter=True))
    assert trainer.adapter_names(meta) == [OPEN_ADAPTER, TITLE_ADAPTER]
    unet = trainer.unet
    with torch.no_grad():  # B starts at zero: give each adapter a different non-zero update
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    latents, embeds = torch.randn(4, 4, 4, 4), encode_prompts(trainer.pipe, ["a coat", "a red dress"] * 2)
    t = trainer.pipe.scheduler.timesteps[0] if len(trainer.pipe.scheduler.timesteps) else torch.tensor(500)
    names = [OPEN_ADAPTER, TITLE_ADAPTER] * 2
    with torch.no_grad(), routed_adapters(unet, names):
        mixed = guided_noise(unet, latents, t, embeds, trainer.negative, 3.0)
    for adapter in (OPEN_ADAPTER, TITLE_ADAPTER):
        unet.set_adapter(adapter)
        with torch.no_grad():
            alone = guided_noise(unet, latents, t, embeds, trainer.negative, 3.0)
        rows = [i for i, n in enumerate(names) if n == adapter]
        assert torch.allclose(mixed[rows], alone[rows], atol=1e-5) and not torch.allclose(mixed, alone, atol=1e-3)
    with pytest.raises(ValueError, match="cannot be routed"), routed_adapters(unet, names[:3]):
        unet(latents, t, encoder_hidden_states=embeds)

    def grads_of(adapter_per_row: list[str]) -> dict[str, float]:
        unet.zero_grad(set_to_none=True)
        with routed_adapters(unet, adapter_per_row):
            guided_noise(unet, latents, t, embeds, trainer.negative, 3.0).square().mean().backward()
        out = {OPEN_ADAPTER: 0.0, TITLE_ADAPTER: 0.0}
        for name, param in unet.named_parameters():
            if "lora_" in name and param.grad is not None:
                out[OPEN_ADAPTER if f".{OPEN_ADAPTER}." in name else TITLE_ADAPTER] += float(param.grad.abs().sum())
        return out

    for name, param in unet.named_parameters():
        param.requires_grad_("lora_" in name)
    titled, opened = grads_of([TITLE_ADAPTER] * 4), grads_of([OPEN_ADAPTER] * 4)
    assert titled[TITLE_ADAPTER] > 0 and titled[OPEN_ADAPTER] == 0
    assert opened[OPEN_ADAPTER] > 0 and opened[TITLE_ADAPTER] == 0

    fresh = RLTrainer(tiny_pipe(tokenizer_dir), reward, prompts, meta, _rl_config(iterations=2, open_adapter=True))
    start = {k: v.clone() for k, v in fresh.trainable_state().items()}
    assert sum(f".{OPEN_ADAPTER}." in k for k in start) == sum(f".{TITLE_ADAPTER}." in k for k in start) > 0
    fresh.train()
    moved = {k for k, v in fresh.trainable_state().items() if not torch.equal(v, start[k])}
    assert any(f".{OPEN_ADAPTER}." in k for k in moved) and any(f".{TITLE_ADAPTER}." in k for k in moved)
    with pytest.raises(ValueError, match="needs finetune 'lora'"):
        _rl_config(open_adapter=True, finetune="full")


def test_a_pipeline_saved_with_open_adapters_routes_prompts_by_their_words(tokenizer_dir, tmp_path):
    """save_pipeline with open_adapter keeps the base UNet and both adapters beside it;
    load_pipeline's router sends a prompt naming a colour to the title adapter and one naming
    none to the open adapter, and draws what the trainer drew with the prompts' metadata."""
    from ml.diffusion.adapters import OPEN_ADAPTER, TITLE_ADAPTER, PromptRouter
    from ml.diffusion.pipeline import load_pipeline
    from ml.diffusion.sampling import generate

    router = PromptRouter(["red", "blue"])
    assert router(["a red dress", "a dress", "a dress, blue", "a reddish dress"]) == [TITLE_ADAPTER, OPEN_ADAPTER, TITLE_ADAPTER, OPEN_ADAPTER]
    prompts, meta = ["a coat", "a red dress"], [{"names_color": False, "category": "coat"}, {"names_color": True, "category": "dress"}]
    reward = MultiReward({"redness": (Redness(), 1.0), "color_parity": (make_reward("color_parity", memory=8), 0.5)})
    trainer = RLTrainer(tiny_pipe(tokenizer_dir), reward, prompts, meta, _rl_config(iterations=1, open_adapter=True))
    with torch.no_grad():
        for name, param in trainer.unet.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    sampling = SamplingConfig(num_inference_steps=3, guidance_scale=3.0)
    drawn = generate(trainer.pipe, prompts, sampling, seed=5, unet=trainer.unet, adapter_names=trainer.adapter_names(meta))
    title_only = generate(trainer.pipe, prompts, sampling, seed=5, unet=trainer.unet)  # unrouted: the title adapter for both
    assert torch.allclose(drawn[1], title_only[1], atol=1e-5) and not torch.allclose(drawn[0], title_only[0], atol=1e-3)
    trainer.save_pipeline(tmp_path / "rl", lora_folder=tmp_path / "lora")
    assert all((tmp_path / "lora" / name / "pytorch_lora_weights.safetensors").exists() for name in (TITLE_ADAPTER, OPEN_ADAPTER))
    loaded = load_pipeline(str(tmp_path / "rl"))
    assert loaded.adapter_router is not None and not any(p.requires_grad for p in loaded.unet.parameters())
    assert torch.allclose(generate(loaded, prompts, sampling, seed=5), drawn, atol=1e-5)
    assert torch.allclose(generate(loaded, prompts, sampling, seed=5, unet=loaded.unet), title_only, atol=1e-5)  # unrouted: titles'
