"""Resources: where data lives, where runs are tracked, and which compute backend maps batches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource

from ml.catalog.contract import IngestSettings
from ml.compute import BatchMapper, ComputeSettings, make_mapper
from ml.tracking.runs import TrackedRun, TrackingConfig, tracked_run
from ml.tracking.summary import update_summary
from orchestration.profiles import Profile


class StorageResource(ConfigurableResource):
    """`home` is local state (reports, inbox); `data_root` is a folder or fsspec URL for data."""

    home: str
    data_root: str

    def uri(self, *parts: str) -> str:
        from ml.catalog.ingest import join_uri

        return join_uri(self.data_root, *parts)

    def local_dir(self, *parts: str) -> Path:
        """A local folder for what libraries write with plain file APIs (model folders, plots, the
        gallery site): under `data_root` where that is a local path, else under `home`/local-data
        (a `Path` of an s3:// URL would be a local folder named 's3:'). Models reach other
        machines through the MLflow registry, plots as run artifacts."""
        from ml.catalog.ingest import join_uri

        root = self.data_root.removeprefix("file://")
        return Path(join_uri(root if "://" not in root else f"{self.home}/local-data", *parts))

    @property
    def snapshot_registry(self) -> str:
        return self.uri("snapshots")

    @property
    def inbox(self) -> str:
        return f"{self.home}/inbox"

    @property
    def summary_path(self) -> str:
        return f"{self.home}/reports/summary.json"

    def update_summary(self, figures: dict[str, Any]) -> dict[str, Any]:
        return update_summary(self.summary_path, figures)


class MLflowResource(ConfigurableResource):
    tracking_uri: str
    artifact_root: str | None = None
    experiment: str = "shopwindow-demo"
    ui_url: str = "http://127.0.0.1:5000"

    def tracking(self) -> TrackingConfig:
        return TrackingConfig(tracking_uri=self.tracking_uri, artifact_root=self.artifact_root,
                              experiment=self.experiment, ui_url=self.ui_url)

    def model_version_url(self, model_name: str, version: str) -> str:
        from ml.tracking.runs import model_version_url

        return model_version_url(self.ui_url, model_name, version)

    @contextmanager
    def run(self, name: str, tags: Mapping[str, Any] | None = None) -> Iterator[TrackedRun]:
        with tracked_run(self.tracking(), name, tags) as run:
            yield run


class ComputeResource(ConfigurableResource):
    backend: str = "local"  # local | ray
    workers: int = 0  # 0: one per core
    ray_address: str | None = None

    def mapper(self, preload: tuple[str, ...] = ()) -> BatchMapper:
        settings = ComputeSettings(backend=self.backend, workers=self.workers, ray_address=self.ray_address)
        return make_mapper(settings, preload)


class CatalogSettingsResource(ConfigurableResource):
    """Ingestion limits and image shape; defaults come from the profile."""

    image_size: int = 32
    upscale_small: bool = False
    max_image_pixels: int = 40_000_000
    max_image_bytes: int = 50 * 1024 * 1024
    max_price: float = 1_000_000.0
    chunk_rows: int = 50_000
    allowed_image_roots: list[str] = []

    def settings(self) -> IngestSettings:
        return IngestSettings(**{**self.model_dump(), "allowed_image_roots": tuple(self.allowed_image_roots)})


class EmbeddingResource(ConfigurableResource):
    """Which dual encoder to start from and how to train it (see ml.embedding.factory)."""

    model: str = "shopwindow-tiny-32"
    pretrained: str | None = None
    epochs: float = 3.0
    batch_size: int = 256
    lr: float = 2e-3
    max_minutes: float = 15.0
    registered_name: str = "shopwindow-dual-encoder"


class AttributesResource(ConfigurableResource):
    """Teacher, taxonomy, curation and the targets the attribute checks hold."""

    taxonomy: str = "fashion"  # built-in name or YAML path
    teacher: str = "lexicon"  # lexicon | vlm
    vlm_model: str | None = None
    judge: str = "rules"  # rules | llm (curation's merge judge)
    judge_model: str | None = None  # local folder of a transformers causal LM, for judge=llm
    min_items: int = 50  # a phrase needs this many items to enter the vocabulary ...
    min_share: float = 0.001  # ... or this share of the catalog, whichever is smaller (small catalogs)
    target_precision: float = 0.95
    grounded_types: list[str] = ["category", "color"]
    min_recall_at_10: float = 0.97
    min_category_accuracy: float = 0.97
    min_color_accuracy: float = 0.95

    def make_judge(self, config):
        from ml.attributes.curation import RuleJudge

        if self.judge == "rules":
            return RuleJudge(config)
        if self.judge == "llm":
            if not self.judge_model:
                raise ValueError("judge 'llm' needs judge_model: a local folder with a transformers causal LM")
            from ml.attributes.llm_judge import LLMJudge

            return LLMJudge(self.judge_model)
        raise ValueError(f"judge {self.judge!r}: use 'rules' or 'llm'")

    def min_items_for(self, catalog_items: int) -> int:
        return min(self.min_items, max(3, round(self.min_share * catalog_items)))


class CollectionsResource(ConfigurableResource):
    """Topics, feeds, the shared quality bar, the baseline, and the targets the checks hold.
    Fields left at None take `ml.collections.config.CollectionConfig`'s defaults."""

    search_log: str | None = None  # CSV/Parquet query log; default: search_demand.csv/.parquet beside the catalog
    titler: str = "rules"  # rules | llm
    titler_model: str | None = None  # local folder of a transformers causal LM, for titler=llm
    clusters: bool = True
    log_sizes: list[int] = [10_000, 100_000, 1_000_000]  # the report's sweep over query-log sizes
    min_support: int | None = None
    min_feed_size: int | None = None
    min_predicted_precision: float | None = None
    min_query_count: int | None = None
    max_feed_items: int | None = None
    baseline_precision: str | None = None  # lexical | attributes
    title_weight: int | None = None  # times the baseline's BM25 index repeats the title
    min_coverage_ratio: float = 4.0
    min_precision_at_10: float = 0.96
    min_precision_margin: float = 0.10
    min_item_coverage: float = 0.9

    def config(self):
        from ml.collections.config import CollectionConfig

        fields = ("min_support", "min_feed_size", "min_predicted_precision", "min_query_count", "max_feed_items", "baseline_precision",
                  "title_weight")
        return CollectionConfig(**{f: getattr(self, f) for f in fields if getattr(self, f) is not None})


class GenerationResource(ConfigurableResource):
    """The generator (demo: trained here; production: a checkpoint), its quality targets, the RL
    recipe and its rewards. See ml.diffusion.trainer.RLConfig for the RL fields' meaning."""

    generator: str = "tiny"  # "tiny" (trained on the catalog) or a StableDiffusionPipeline folder / cached hub id
    registered_name: str = "shopwindow-generator"
    base_minutes: float = 5.0  # the tiny generator's autoencoder + UNet; the UNet gets what the autoencoder leaves
    # The demo's budgets are steps, with the minutes as caps, so a faster machine trains the same models sooner. With minutes
    # alone the outcome followed the machine's speed: the RL recipe below was tuned on bases of 700-850 UNet steps and runs of
    # 155-177 iterations (a slow machine's 5 + 5 minutes; win-rate 0.74-0.88, parity -53% to -59%); on a machine 2.3x faster the
    # same minutes trained 1,700 steps and 288 iterations, and parity fell only 33% (win-rate 0.69). On that 1,700-step base, 100
    # / 165 iterations (seeds 0 / 1): parity -43% / -27% and -42% / -44%, win-rate 0.71 / 0.68 and 0.67 / 0.53
    unet_steps: int = 800
    # the UNet's forward and backward under bf16 autocast (fp32 weights, optimiser and loss). On the fd9349c demo state's
    # autoencoder (base_recipes, 800 steps each, one after the other at 2 threads): 176.5 s against 206.8 s, prompted category
    # 0.650 / colour 0.994 against 0.644 / 0.995, last loss 0.0531 both. A slow hour's 5 minutes then train ~17% more steps
    unet_bf16: bool = True
    vae_color_target: float = 0.9  # the autoencoder trains until a round trip keeps this share of colours (ml.diffusion.train_base)
    vae_min_color_kept: float = 0.85  # ...and each colour this share (ml.diffusion.train_base.BaseTrainConfig)
    vae_min_category_kept: float = 0.0  # ...and each category this share (ml.diffusion.train_base.BaseTrainConfig)
    # ...and not before this many steps (past the colour target it still sharpens), unless 30% of base_minutes has passed.
    # Off: with 1,000 (900 steps in its 90 s on the fast machine) the demo's base drew the prompted category 0.72 (0.56
    # after 300 steps; its quality check passed), but it drew a less skewed colour mix (parity 0.358 against 0.408-0.444), and
    # RL cut parity 43%, against 56-64% in the four default demos; win-rate 0.79
    vae_min_steps: int = 0
    # The base's UNet draws each image with probability proportional to (images with its caption) ** -unet_cell_balance (1: every
    # "a {colour} {category}" equally; 0: the catalog's mix, where blue is 44% trousers and shirts). On the ec82ab7 state
    # (rl_recipes, 300 iterations, seeds 0 / 1 / 2, same seeds side by side): win-rate 0.795 / 0.819 / 0.819 against 0.712 /
    # 0.750 / 0.799; the balanced base draws a less skewed colour mix (parity 0.278 against 0.411) and RL ends at the same
    # 0.082-0.085 (-69% to -71%, against -79% to -80%). README, "A cell-balanced base"
    unet_cell_balance: float = 1.0
    judge_epochs: int = 1
    eval_per_prompt: int = 4
    min_category_accuracy: float = 0.7
    min_color_accuracy: float = 0.7
    # RL
    finetune: str = "lora"  # lora | full
    # RL iterations (see unet_steps); rl_minutes caps them. 200 at lr 2e-3 (below), not 300 at 1e-3: on a fresh 5392250 demo state
    # (rl_recipes, seeds 0 / 1 / 2, 193 / 200 / 200 iterations, side by side at 1 thread) lr 2e-3 won 0.837 / 0.809 / 0.802 (low
    # ends 0.69-0.74), parity -75% / -75% / -72%; 1e-3 won 0.750 / 0.778 / 0.795, -72% / -75% / -73%; on a second (e6cad8d) state,
    # seeds 0 / 1: 0.816 / 0.885 against 0.875 / 0.889. The rate's effect is noise (+0.012 over five pairs); the target was met in
    # all five runs at 2e-3, two at 1e-3. At 300 both fell (seed 0: 0.740 at 1e-3, 0.733 at 2e-3) as held-out titles lost their
    # colour (reads 0.875 / 0.826). 200 iterations fit the 6-minute cap on a machine 1.4x slower than the fast one (1.87 s each);
    # README, "A shorter, faster RL schedule"
    iterations: int = 200
    prompts_per_iteration: int = 4
    samples_per_prompt: int = 8
    # 10: the base draws as well as at 20 (judge 1.64 both), RL gets 1.5x the iterations and each trained step is a larger
    # share of the chain; in 5 CPU minutes the held-out reward gain's interval cleared 0 in every seed tried (20 steps: rarely)
    num_inference_steps: int = 10
    guidance_scale: float = 2.0  # RL's operating point: at 5 samples of one prompt are near-identical, leaving no reward variance
    eta: float = 1.0
    train_timesteps: int = 5
    inner_epochs: int = 1  # PPO passes over each iteration's samples
    # a minibatch's trained steps in one UNet call (the same loss and update): on the slow machine the training part of an RL
    # iteration fell from 1.46-1.59 s to 1.25 s, the iteration from 2.11-2.29 s to 1.93 s (production profile: 1, for memory)
    fused_timesteps: int = 5
    # never trained on: the last step's tiny std made its score-function noise most of the gradient; at 10 steps, training only
    # the first 5 (where colour and shape are decided) cut parity 39% / 36% in seeds 0 / 1; any 5 of the first 9: 41% / 17%
    skip_final_steps: int = 5
    clip_range: float = 1e-3
    advantage: str = "per_prompt"  # batch | per_prompt
    # per_prompt advantages divided by each prompt's std (prompt, DDPO) or the batch's (batch): with batch, parity_weight sets how
    # much of each update parity gets; batch + parity 4 cut parity 36-41% in 5 CPU minutes (prompt + parity 2: -11% to -27%)
    advantage_scale: str = "batch"
    # ml.diffusion.trainer.RLConfig: the saved and evaluated policy is a moving average of the LoRA weights (one update per
    # iteration), not the last iterate. On the 9f42a8e demo state (rl_recipes, 200 iterations, seeds 0-3, the average measured
    # beside the last iterate of the same run): win-rate 0.851 / 0.872 / 0.840 / 0.826 against 0.806 / 0.844 / 0.844 / 0.781
    # (+0.029 on average), parity -71% / -69% / -70% / -68% against -71% / -71% / -71% / -69%; 0.95 and 0.97 did about as well
    # (0.837 / 0.833, 0.861 / 0.865) with parity cut 1-3 points less. README, "A moving average of the RL weights"
    ema_decay: float = 0.9
    lr: float = 2e-3  # see iterations. At 3e-3 an early recipe's 5-minute demo run drifted: prompt fidelity fell from 0.19 to 0.01
    lora_rank: int = 4
    # the paper's pretraining term: diffusion loss on real catalog images with their "a {colour} {category}" captions, one
    # minibatch per policy minibatch. Without it parity training leaked into titled prompts: 440 iterations on the 300cedf demo
    # state, win-rate 0.40-0.43 -> 0.64-0.66 with it, parity -41% -> -38%. The term alone (no reward) also won 0.63 there, but
    # only 0.48 against RL's 0.66 on the 28c1731 state: how much of the judge's gain is the regulariser's depends on the base.
    # With open_adapter (ec82ab7 state, seeds 1 / 2) 2: win-rate 0.740 / 0.774 against 0.750 / 0.799, colour reads 0.997 / 1.000
    pretrain_weight: float = 1.0
    # that term's images evenly over (category, colour) cells, not in the catalog's proportions (179 blue trousers, 37 blue
    # dresses). ec82ab7 state, seeds 1 / 2: win-rate 0.753 / 0.750 against 0.750 / 0.799, parity -80% both, the unseen blue dress
    # still lost: off
    pretrain_balanced: bool = False
    kl_weight: float = 0.0
    # ml.diffusion.trainer.RLConfig: move colour-free prompts' predicted images toward missing colours. Off: on a 20bc7f8 demo state
    # (196 iterations) weights 0.01 / 0.001 raised parity 0.334 -> 0.46 / 0.42 and lowered the judge's colour hits 0.80 -> 0.70
    pathwise_parity_weight: float = 0.0
    pathwise_temperature: float = 500.0  # the colour memberships' temperature in that loss
    pathwise_step: int | None = None  # the chain step whose predicted image that loss reads (None: one of the trained steps, at random)
    # ml.diffusion.trainer.RLConfig: the fidelity reward's own gradient through one step's predicted image, next to the policy
    # gradient, for titled prompts only (skip_open). On the f591426 demo state, 5 minutes each side by side at 1 thread: win-rate
    # 0.73 [0.59, 0.84] and parity -16% at 0.03, against 0.63 [0.46, 0.76] and -23% without; 0.1: 0.76, -10%; 1: 0.75, +11%;
    # 1 on every prompt: 0.80 [0.68, 0.88], +6% (README, "Why the demo's RL also follows the fidelity reward's own gradient").
    # With diversity codes (3a165e0 state, 300 iterations) 0 / 0.01 / 0.03 / 0.05 / 0.1: win-rate 0.18 / 0.50 / 0.76 / 0.72 / 0.58,
    # parity -78% / -75% / -69% / -54% / -24%: it is all of RL's category gain, and above 0.03 it thins the garments' ink.
    # 0.06 with title_anchor_weight 0.3 since the warmer reward and the titles' own LoRA (README, "The titles held near the base")
    pathwise_fidelity_weight: float = 0.06
    pathwise_fidelity_step: int | None = None  # None: one of each trajectory's trained steps at random; -1: the last (DRaFT-1)
    pathwise_fidelity_skip_open: bool = True
    # False: that term follows the category's probability only, not the prompted colour's. Same state, seeds 0 / 1: win-rate 0.81
    # [0.71, 0.91] / 0.74 against 0.73 / 0.72 with the colour, parity -17% / -9% against -16% / -9%, but the judge's colour hits
    # 0.97 / 0.94 against 1.00 (the policy gradient still rewards the colour; the base draws it 0.98-1.0 of the time). With
    # diversity codes, weights 0.03 / 0.05 / 0.1 with the colour: colour reads 1.00 / 0.997 / 0.997, win-rate 0.48 / 0.55 / 0.58
    pathwise_fidelity_color: bool = False
    # False: that term's gradient keeps each pixel's hue (only the ink's amount moves), so it does not pull a held-out prompt off its
    # colour. Four pairs (two states, seeds 0 / 1, rl_recipes 300 iterations): win-rate +0.014, +0.007, -0.041, 0.000 against the
    # default, parity cut within -2 to +3 points, colour reads no better: no effect (README, "Two tries at the colour lean")
    pathwise_fidelity_hue: bool = True
    # False: that term's gradient holds each image's total ink (it may move ink, not add or remove it), so it cannot fade a garment.
    # 3a165e0 state, 300 iterations, seed 0: win-rate 0.760, parity -70%, colour reads 0.955 (default 0.764, -69%, 0.948); with the
    # hue held too 0.729, -72%, 0.969. The fading is not the ink running out (README, "Four more tries at the lost colour")
    pathwise_fidelity_ink: bool = True
    # False: that term's gradient holds each pixel's offset from grey (only its lightness moves): the dual encoder's category
    # probability of the base's held-out titles rises as they grey (0.634 -> 0.674 at 60% grey; the judge's 0.558 -> 0.560,
    # benchmarks.colour_lean). 300 iterations, 3a165e0 state seeds 0 / 1, eb760a0 seeds 0 / 1: colour reads 0.976 / 0.990 / 0.993 /
    # 0.986, win-rate 0.778 / 0.778 / 0.667 / 0.757 (default 0.764 / 0.781 / 0.740 / 0.809), parity -71% / -72% / -73% / -68%.
    # Colour kept, category given up
    pathwise_fidelity_chroma: bool = True
    # ml.diffusion.trainer.RLConfig: the share of colour-free samples whose first explore_steps steps are steered to a colour they
    # lack. Off: on the 56ad5eb demo state (179 iterations) shares 0.25 / 0.5 with 1-5 steps cut parity 12-16%, the default 15%
    explore_share: float = 0.0
    explore_steps: int = 1
    # ml.diffusion.trainer.RLConfig: colour-free prompts learn the base's guided noise prediction for "a {colour} {category}" along
    # the base's own first 5 steps of it, the colours in proportion to what the prompt's last 32 reads lack (lacking) or even. On
    # the 01d3e30 demo state, 160 iterations: lacking 1, seeds 0 / 1 / 2: parity -57% / -50% / -54%, win-rate 0.80 / 0.79 / 0.74
    # (without it: -12% / -18%, 0.87 / 0.81); even 1: -42%, 0.82; lacking 3: -55%, 0.74; the term alone (rewards 0): -53%, 0.58
    # With diversity codes (3a165e0 state, rl_recipes 300 iterations, seed 0) 0.3 / 0.5 / 1 / 2: win-rate 0.73 / 0.75 / 0.76 / 0.70,
    # parity -26% / -33% / -69% / -72%, colour reads 0.88 / 0.92 / 0.95 / 0.97: the term gives most of the parity cut
    mixture_distill_weight: float = 1.0
    # lacking | even. even since the diversity codes: code g learns group g, and the codes are drawn evenly
    mixture_distill_groups: str = "even"
    mixture_distill_steps: int | None = None
    # not the first step: its latent is pure noise, so its target can only be the colours' mean, and a 10-step sampler moves
    # toward that mean, which reads grey. On the 1d120bd demo state, seeds 0 / 1: parity -50% / -50% against -44% / -42% from
    # step 0, win-rate 0.72 / 0.68 both; on 01d3e30 (seed 0) -55% against -57%, 0.79 against 0.80; from step 2: -48%
    # with diversity codes the first step's target is no longer the colours' mean (code g is group g), so the term starts there
    mixture_distill_from_step: int = 0
    # True: that term trains the codes alone. Same state: win-rate 0.69, parity -24%, colour reads 0.885 (the LoRA has to learn the
    # colours too)
    mixture_distill_codes_only: bool = False
    # ml.diffusion.trainer.RLConfig / ml.diffusion.diversity: 8 uniform codes (one per palette colour) the policy reads beside its
    # noise. On the 3a165e0 demo state (rl_recipes, 300 iterations, seed 0) parity fell 75% against the default's 59%; at the LoRA's
    # lr 1e-3 the codes moved too little (-37%). On eb760a0's state -77% (README, "Diversity codes")
    diversity_codes: int = 8
    diversity_lr: float | None = 0.01
    # a code must not change a prompt that names its colour: without this term the judge's colour reads on held-out titles were 0.899,
    # and 0.979 for the same weights with the codes left out of those prompts; at 1 they were 0.972 (3: 0.997, but win-rate 0.615)
    code_invariance_weight: float = 1.0
    # ml.diffusion.trainer.RLConfig: titled prompts' predictions held near the base's. Same state: 0.3 / 1 raised colour reads to
    # 0.979 / 0.997 and lowered the win-rate to 0.715 / 0.642 (parity -69% both); 0.3 with pathwise_fidelity_weight 0.05: 0.774
    # but parity -53%; 1 with 0.1: 0.708, -22%. With open_adapter (ec82ab7 state, seeds 1 / 2) 0.3: colour reads 0.997 / 1.000,
    # parity -80% both, win-rate 0.736 / 0.753 against 0.750 / 0.799: the colour kept, the category gain given up. At
    # fidelity_temperature 3 with pathwise_fidelity_weight 0.06 the anchor keeps the colour the stronger pathwise term would
    # take. rl_recipes, 200 iterations, seed 0, the states of five demos, against the default then (0.03, no anchor): win-rate
    # 0.816 / 0.851 / 0.910 / 0.861 / 0.934 against 0.767 / 0.747 / 0.858 / 0.802 / 0.951, parity the same, colour reads as well
    # kept (0.965-1.00); 6% more time per iteration at 1 thread. Two fresh demos with it: 0.868 and 0.844, both champion
    title_anchor_weight: float = 0.3
    # ml.diffusion.adapters: prompts that leave a colour open get a LoRA of their own, so parity's training does not reach the
    # titles' weights nor theirs the open prompts'. A fresh 6c0a40a state, 300 iterations, seeds 0 / 1 / 2: win-rate
    # 0.837 / 0.847 / 0.896, parity -75% / -76% / -78%; one shared LoRA (seed 0): 0.740, -65%. ~7% more time per iteration
    # A fresh ec82ab7 state, seed 1: 0.747, -81% against one LoRA's 0.705, -71%; its full demo (seed 0) 0.712, -79%, but the titles'
    # colour reads fell to 0.944-0.972 (one LoRA 1.000; README, "The second state")
    open_adapter: bool = True
    # with open_adapter: only the open adapter's rows draw a diversity code; titles keep their condition as written, and the
    # invariance term (code_invariance_weight) has nothing to hold. On the ec82ab7 state, seed 1, side by side at 1 thread:
    # win-rate 0.750 against 0.747, parity -80% against -81%, the titles' colour reads 0.972 both, 7.04 s per iteration against
    # 7.68: the same model, 8% faster. The titles' lost colour is in the title adapter's weights, not in the codes
    codes_open_only: bool = True
    # the cap on RL's time. 6, not 5: on a machine where an iteration took 1.1 s, 5 minutes ended RL at 262 of its 300 iterations,
    # and the demo's RL (seed 0) won 0.7986 and cut parity 56%; on the same base 300 iterations (rl_recipes, seed 1) won 0.87, -59%
    rl_minutes: float = 6.0
    # `shopwindow demo` passes the time (POSIX seconds) by which its RL should end at the latest: where that leaves more than
    # rl_minutes, the cap grows, to at most rl_minutes_max; it never shrinks. On a middling hour the demo's three a6a655a runs
    # ended at 17.9-19.0 min while the 6 minutes cut two RLs at 182 and 190 of 200 iterations (1.93 and 1.85 s each)
    rl_deadline: float | None = None
    rl_minutes_max: float = 7.0
    # of RL's prompt draws, the fairness suite's (colour-free prompts); the titles get the rest. 0.75 (with the pretraining term,
    # one seed): parity -43% instead of -38%, win-rate 0.46 instead of 0.64. 0.35 since the diversity codes: the codes left parity
    # room to spend on the titles. With codes and invariance on the 3a165e0 / eb760a0 states: win-rate 0.764 / 0.740, parity
    # -69% / -71% (0.5 on 3a165e0: 0.667, -73%). With open_adapter and codes_open_only (ec82ab7 state, seeds 1 / 2): 0.2 won
    # 0.823 / 0.753 against 0.750 / 0.799, parity -79% against -80%: noise
    fairness_share: float = 0.35
    fidelity_weight: float = 1.0
    fidelity_mode: str = "zero_shot"  # zero_shot (the dual encoder's probability of the prompted category and colour) | cosine
    # zero_shot: the prompted colour's probability counts this many times against the category's in the policy gradient's reward.
    # 3a165e0 state, 300 iterations, seed 0: 2 / 4 won 0.764 / 0.747 (default 0.764), parity -67% both, colour reads 0.948 / 0.965
    # (0.948): the policy gradient is not where the titles lose their colour
    fidelity_color_weight: float = 1.0
    # ml.rewards.demo.PromptFidelity: the zero-shot softmaxes' temperature against the dual encoder's own. At 1 the encoder read the
    # base's bags at 0.96-0.99 (the judge 0.53-0.85): no room to move, so RL's side effects lowered them unopposed. rl_recipes, 200
    # iterations, seed 0, on two demo states (e9229cc demos 3 / 1): 1 / 2 / 3 / 5 won 0.785 / 0.806 / 0.826 / 0.833 and 0.743 / - /
    # 0.795 / 0.792, parity -74% / -75% throughout. Three fresh demos at 3: 0.955 / 0.8125 / 0.792, two champion (at 1, the three
    # before: 0.747 / 0.799 / 0.736). README, "A warmer fidelity reward"
    fidelity_temperature: float = 3.0
    # see advantage_scale. 3 with the kl objective (its rewards run -1 .. +4 where l2's run -0.3 .. +0.1); 1: parity -52% / -41%
    # (seeds 0 / 1) against 3's -54% / -49%. With l2 on the cross-referenced demo state (seeds 0 / 1, 5 CPU minutes): 4 cut parity
    # 27% / 27%, win-rate 0.49 / 0.39; 8 cut it 40% / 34%, win-rate 0.42 / 0.48; 16 (seed 0) 35%, 0.49
    parity_weight: float = 3.0
    parity_temperature: float = 0.0  # > 0: soft colour memberships in the parity reward (see ml.rewards.parity.color_parity)
    # parity shares also count each prompt's last N colour reads (ml.rewards.parity.GroupParity; 0: the 8-sample batch alone). 440
    # iterations on the 28c1731 demo state (l2), 32 vs 0: parity -51% vs -38% (seed 0), -42% vs -37% (seed 1), win-rate 0.68 vs 0.66, 0.60 vs 0.60
    # (16: -50%, 0.70; 64: -40%, 0.67, seed 0: 64 reads span ~40 iterations and go stale)
    parity_memory: int = 32
    # kl: reward (1/K) / share - 1 (ml.rewards.parity), which grows a rare colour as fast as it shrinks a common one; l2: 1/K - share,
    # weight 8. 440 iterations on the 28c1731 state, kl 3 vs l2 8, seeds 0 / 1 / 2: parity -54% / -49% / -52% vs -51% / -42% / -47%,
    # win-rate 0.64 / 0.61 / 0.56 vs 0.68 / 0.60 / 0.56; at 880 (seed 0) both -53%, 0.74 vs 0.75. On the 3986f85 demo's state (348
    # iterations): -30% vs -25%, win-rate 0.41 vs 0.52
    parity_objective: str = "kl"
    grid_every: int = 25  # iterations between sample grids in MLflow; each costs ~1 s of RL's time budget on 2 CPU cores
    resume_from: str | None = None  # an RL checkpoint folder (.../rl/checkpoints/iteration-NNNNNN) to continue from
    eval_seed: int = 1234
    eval_samples_per_prompt: int = 32  # per held-out prompt; parity over 8 samples was so noisy that a real gain's interval still held 0
    seed: int = 0

    def reward_spec(self, dual_encoder: str, prompts) -> dict:
        """The demo's rewards for the rl_prompts table: fidelity over its category and colour
        vocabulary, and colour parity."""
        from ml.rewards.demo import demo_reward_spec

        return demo_reward_spec(dual_encoder, prompts, **self.reward_settings())

    def rewards_description(self) -> str:
        """What RL optimises, in one line (the MLflow run's `rewards` param). How it is trained
        (open_adapter, finetune, ...) is in the run's other params."""
        warmth = f", temperature {self.fidelity_temperature:g}" if self.fidelity_temperature != 1 else ""
        terms = [f"prompt_fidelity ({self.fidelity_mode}{warmth}) x{self.fidelity_weight}",
                 f"color_parity x{self.parity_weight} ({self.parity_objective}, memory {self.parity_memory})"]
        if self.pathwise_parity_weight:
            terms.append(f"pathwise parity x{self.pathwise_parity_weight} (temperature {self.pathwise_temperature})")
        if self.pathwise_fidelity_weight:
            terms.append(f"pathwise fidelity x{self.pathwise_fidelity_weight}" + (" (titled prompts)" if self.pathwise_fidelity_skip_open else "")
                         + ("" if self.pathwise_fidelity_color else " (category only)") + ("" if self.pathwise_fidelity_hue else " (hue held)")
                         + ("" if self.pathwise_fidelity_ink else " (ink held)"))
        if self.mixture_distill_weight:
            trained = self.rl_config().mixture_distill_range
            terms.append(f"mixture distillation x{self.mixture_distill_weight} ({self.mixture_distill_groups} colours, "
                         f"chain steps {trained.start}-{trained.stop - 1}" + (", codes only" if self.mixture_distill_codes_only else "") + ")")
        if self.title_anchor_weight:
            terms.append(f"title anchor x{self.title_anchor_weight}")
        if self.diversity_codes > 1:
            held = ", open prompts only" if self.codes_open_only and self.open_adapter else f", invariance x{self.code_invariance_weight}" if self.code_invariance_weight else ""
            terms.append(f"diversity codes ({self.diversity_codes}{held})")
        return " + ".join(terms)

    def reward_settings(self) -> dict:
        """demo_reward_spec's settings, for the benchmarks that build the reward without Dagster."""
        return {"fidelity_weight": self.fidelity_weight, "fidelity_mode": self.fidelity_mode, "parity_weight": self.parity_weight,
                "parity_temperature": self.parity_temperature, "parity_memory": self.parity_memory, "parity_objective": self.parity_objective,
                "pathwise_temperature": self.pathwise_temperature, "pathwise_fidelity_color": self.pathwise_fidelity_color,
                "pathwise_fidelity_hue": self.pathwise_fidelity_hue, "pathwise_fidelity_ink": self.pathwise_fidelity_ink,
                "pathwise_fidelity_chroma": self.pathwise_fidelity_chroma, "fidelity_color_weight": self.fidelity_color_weight,
                "fidelity_temperature": self.fidelity_temperature}

    def rl_cap_minutes(self, now: float) -> float:
        """RL's time cap if it starts at `now`: rl_minutes, or up to rl_minutes_max where rl_deadline leaves the time."""
        if self.rl_deadline is None:
            return self.rl_minutes
        return max(self.rl_minutes, min(self.rl_minutes_max, (self.rl_deadline - now) / 60))

    def rl_config(self):
        from ml.diffusion.sampling import SamplingConfig
        from ml.diffusion.trainer import RLConfig

        return RLConfig(iterations=self.iterations, prompts_per_iteration=self.prompts_per_iteration, samples_per_prompt=self.samples_per_prompt,
                        sampling=SamplingConfig(num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale, eta=self.eta),
                        train_timesteps=self.train_timesteps, inner_epochs=self.inner_epochs, skip_final_steps=self.skip_final_steps, clip_range=self.clip_range, advantage=self.advantage,
                        advantage_scale=self.advantage_scale, lr=self.lr, ema_decay=self.ema_decay,
                        finetune=self.finetune, lora_rank=self.lora_rank, lora_alpha=float(self.lora_rank), pretrain_weight=self.pretrain_weight,
                        pretrain_balanced=self.pretrain_balanced,
                        kl_weight=self.kl_weight, pathwise_parity_weight=self.pathwise_parity_weight, pathwise_step=self.pathwise_step,
                        pathwise_fidelity_weight=self.pathwise_fidelity_weight, pathwise_fidelity_step=self.pathwise_fidelity_step,
                        pathwise_fidelity_skip_open=self.pathwise_fidelity_skip_open,
                        explore_share=self.explore_share, explore_steps=self.explore_steps, mixture_distill_weight=self.mixture_distill_weight,
                        mixture_distill_groups=self.mixture_distill_groups,
                        mixture_distill_steps=self.mixture_distill_steps,
                        mixture_distill_from_step=self.mixture_distill_from_step, mixture_distill_codes_only=self.mixture_distill_codes_only,
                        diversity_codes=self.diversity_codes,
                        diversity_lr=self.diversity_lr, code_invariance_weight=self.code_invariance_weight, title_anchor_weight=self.title_anchor_weight, open_adapter=self.open_adapter, codes_open_only=self.codes_open_only, max_minutes=self.rl_minutes, seed=self.seed,
                        minibatch_size=min(16, self.prompts_per_iteration * self.samples_per_prompt), fused_timesteps=self.fused_timesteps)


class EvaluationResource(ConfigurableResource):
    """How base and RL generators are compared (bias_report, preference_eval) and the registry
    gate. Demo: the colour suite and the catalog judge; production: people prompts read by the
    face/skin-tone readers, and a preference model that was not a training reward."""

    bias_suite: str = "colors"  # colors (garments with no colour named) | people (portraits of occupations)
    bias_attribute: str = "skin_tone"  # people suite: skin_tone | gender
    occupations: list[str] = ["doctor", "nurse", "software engineer", "teacher", "chef", "pilot", "cleaner", "lawyer",
                              "construction worker", "scientist", "cashier", "firefighter"]
    # a perfectly uniform generator still measures sqrt((1 - 1/K) / n) from uniform: 0.135 at 48 images, 0.083 at 128,
    # too close to the demo base's 0.38 to resolve a 60% reduction at 48
    bias_samples_per_prompt: int = 128
    judge: str = "catalog"  # catalog (demo) | a registered reward name used as a preference model, e.g. image_reward
    preference_samples_per_prompt: int = 16
    seed: int = 20_000  # seeds no training or reward evaluation used
    min_win_rate: float = 0.80
    min_win_rate_ci_low: float = 0.5
    max_parity_ratio: float = 0.5
    max_no_read_increase: float = 0.05
    grid_prompts: int = 8

    def thresholds(self):
        from ml.judge.gate import GateThresholds

        return GateThresholds(min_win_rate=self.min_win_rate, min_win_rate_ci_low=self.min_win_rate_ci_low,
                              max_parity_ratio=self.max_parity_ratio, max_no_read_increase=self.max_no_read_increase)


def resources_for(profile: Profile) -> dict[str, Any]:
    from orchestration.io_managers import ManifestIOManager

    ingest = profile.ingest.model_dump()
    ingest["allowed_image_roots"] = list(ingest["allowed_image_roots"])
    ingest.pop("url_schemes")
    return {
        "storage": StorageResource(home=str(profile.home), data_root=profile.data_root),
        "mlflow": MLflowResource(tracking_uri=profile.tracking_uri, artifact_root=profile.artifact_root,
                                 experiment=profile.experiment, ui_url=profile.mlflow_ui_url),
        "compute": ComputeResource(backend=profile.compute.backend, workers=profile.compute.workers,
                                   ray_address=profile.compute.ray_address),
        "catalog_settings": CatalogSettingsResource(**ingest),
        "embedding": EmbeddingResource(**profile.embedding),
        "attributes": AttributesResource(**profile.attributes),
        "collections": CollectionsResource(**profile.collections),
        "generation": GenerationResource(**profile.generation),
        "evaluation": EvaluationResource(**profile.evaluation),
        "io_manager": ManifestIOManager(base_uri=f"{profile.data_root.rstrip('/')}/manifests"),
    }
