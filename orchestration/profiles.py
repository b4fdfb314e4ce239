"""Deployment profiles: `demo` (offline, CPU, the default) and `production`, chosen by
SHOPWINDOW_PROFILE. Only configuration differs between them; the code path is the same."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from ml.catalog.contract import IngestSettings
from ml.compute import ComputeSettings

ProfileName = Literal["demo", "production"]


class Profile(BaseModel):
    name: ProfileName
    home: Path  # local state: dagster home, mlflow.db, reports, inbox
    data_root: str  # data and artefacts: a folder or any fsspec URL
    tracking_uri: str
    artifact_root: str
    experiment: str
    mlflow_ui_url: str
    ingest: IngestSettings
    compute: ComputeSettings
    embedding: dict = {}
    attributes: dict = {}
    collections: dict = {}
    generation: dict = {}
    evaluation: dict = {}

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def summary_path(self) -> Path:
        return self.home / "reports" / "summary.json"

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"


_EMBEDDING = {
    "demo": {"model": "shopwindow-tiny-32", "epochs": 3.0},
    # fine-tune a pretrained CLIP; needs the weights in the hub cache or a local-dir: folder
    "production": {"model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k", "epochs": 1.0, "lr": 1e-5, "batch_size": 128},
}
_ATTRIBUTES = {
    "demo": {"teacher": "lexicon", "grounded_types": ["category", "color"]},
    "production": {"teacher": "vlm", "judge": "llm", "grounded_types": ["category", "color", "material", "style"]},
}
_COLLECTIONS = {
    "demo": {},
    "production": {"titler": "rules", "min_support": 50, "min_feed_size": 50, "max_feed_items": 1000},
}
_GENERATION = {
    "demo": {},
    # a Stable Diffusion checkpoint already in a local folder or the HF cache; LoRA RL on a GPU
    "production": {"generator": "stable-diffusion-v1-5/stable-diffusion-v1-5", "num_inference_steps": 50, "prompts_per_iteration": 16,
                   "samples_per_prompt": 8, "iterations": 200, "rl_minutes": 600.0,
                   # the LoRA's rate before the demo's went to 2e-3, which was measured on the tiny generator only
                   "lr": 1e-3,
                   # the last iterate, as DDPO: the averaged policy was measured on the tiny generator only
                   "ema_decay": 0.0,
                   # the encoder's own zero-shot temperature: the warmer reward was measured on the demo's encoder and generator only
                   "fidelity_temperature": 1.0,
                   # the pathwise weight tuned at that temperature, and no title anchor: the demo's pair was measured on the tiny generator only
                   "pathwise_fidelity_weight": 0.03, "title_anchor_weight": 0.0,
                   # one trained step per UNet call, as DDPO: five steps of a minibatch of SD activations at once is untested on a GPU
                   "fused_timesteps": 1,
                   # no diversity codes: the paper's model read its choice from its noise; codes on SD are untested (no GPU here)
                   "diversity_codes": 0, "mixture_distill_from_step": 1, "mixture_distill_groups": "lacking",
                   # one LoRA: a saved pipeline's router finds a closed prompt by its groups' names among its words, which
                   # skin-tone groups are not (ml.diffusion.adapters)
                   "open_adapter": False},
}
_EVALUATION = {
    "demo": {},
    # portraits of occupations read for skin tone; a preference model that was not a training reward as the judge
    "production": {"bias_suite": "people", "judge": "image_reward", "bias_samples_per_prompt": 64},
}
_INGEST = {
    "demo": IngestSettings(image_size=32, upscale_small=False, max_image_pixels=40_000_000),
    "production": IngestSettings(image_size=224, upscale_small=True, max_image_pixels=80_000_000),
}


def _generation_budget(env: dict[str, str]) -> dict:
    """SHOPWINDOW_BASE_MINUTES (autoencoder + UNet) and SHOPWINDOW_RL_MINUTES:
    quick tries and tests shorten the generator's training without touching anything else; a cap
    given so is not extended by a deadline. SHOPWINDOW_RL_DEADLINE: see GenerationResource.rl_deadline."""
    out: dict = {}
    if env.get("SHOPWINDOW_BASE_MINUTES"):
        out["base_minutes"] = float(env["SHOPWINDOW_BASE_MINUTES"])
    if env.get("SHOPWINDOW_RL_MINUTES"):
        out["rl_minutes"] = out["rl_minutes_max"] = float(env["SHOPWINDOW_RL_MINUTES"])
    if env.get("SHOPWINDOW_RL_DEADLINE"):
        out["rl_deadline"] = float(env["SHOPWINDOW_RL_DEADLINE"])
    return out


def load_profile(name: str | None = None, env: dict[str, str] | None = None) -> Profile:
    """Resolve the profile from arguments and environment; every path comes back absolute."""
    env = dict(os.environ if env is None else env)
    name = name or env.get("SHOPWINDOW_PROFILE", "demo")
    if name not in _INGEST:
        raise ValueError(f"SHOPWINDOW_PROFILE={name!r}: use 'demo' or 'production'")
    home = Path(env.get("SHOPWINDOW_HOME", ".shopwindow")).expanduser().resolve()
    data_root = env.get("SHOPWINDOW_DATA_ROOT", str(home / "data"))
    backend = env.get("SHOPWINDOW_COMPUTE", "ray" if name == "production" else "local")
    return Profile(
        name=name,
        home=home,
        data_root=data_root,
        tracking_uri=env.get("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}"),
        artifact_root=env.get("SHOPWINDOW_ARTIFACT_ROOT", str(home / "mlartifacts")),
        experiment=f"shopwindow-{name}",
        mlflow_ui_url=env.get("SHOPWINDOW_MLFLOW_UI_URL", "http://127.0.0.1:5000"),
        ingest=_INGEST[name],
        compute=ComputeSettings(backend=backend, workers=int(env.get("SHOPWINDOW_WORKERS", "0")), ray_address=env.get("RAY_ADDRESS") or None),
        embedding={**_EMBEDDING[name], **({"max_minutes": float(env["SHOPWINDOW_TRAIN_MINUTES"])} if env.get("SHOPWINDOW_TRAIN_MINUTES") else {})},
        collections={**_COLLECTIONS[name], **({"search_log": env["SHOPWINDOW_SEARCH_LOG"]} if env.get("SHOPWINDOW_SEARCH_LOG") else {}),
                     **({"titler": "llm", "titler_model": env["SHOPWINDOW_TITLER_MODEL"]} if env.get("SHOPWINDOW_TITLER_MODEL") else {})},
        generation={**_GENERATION[name], **({"generator": env["SHOPWINDOW_GENERATOR"]} if env.get("SHOPWINDOW_GENERATOR") else {}),
                    **_generation_budget(env)},
        evaluation={**_EVALUATION[name], **({"judge": env["SHOPWINDOW_JUDGE"]} if env.get("SHOPWINDOW_JUDGE") else {}),
                    # quick tries and tests: the bias report's images per prompt and model were 72 s of the 600-item test's 231
                    **({"bias_samples_per_prompt": int(env["SHOPWINDOW_BIAS_SAMPLES"])} if env.get("SHOPWINDOW_BIAS_SAMPLES") else {})},
        attributes={**_ATTRIBUTES[name], **{key: env[var] for key, var in (("vlm_model", "SHOPWINDOW_VLM_MODEL"), ("judge_model", "SHOPWINDOW_JUDGE_MODEL")) if env.get(var)}},
    )


DAGSTER_YAML = """\
# written by shopwindow; see DESIGN.md Conventions
telemetry:
  enabled: false
"""


def prepare_home(profile: Profile) -> Path:
    """Create the state folders and dagster.yaml (telemetry off); point DAGSTER_HOME at it."""
    for folder in (profile.dagster_home, profile.inbox, profile.summary_path.parent):
        folder.mkdir(parents=True, exist_ok=True)
    config = profile.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ.setdefault("DAGSTER_HOME", str(profile.dagster_home))
    for key, value in {"MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0",
                       "GX_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1", "DAGSTER_DISABLE_TELEMETRY": "1"}.items():
        os.environ.setdefault(key, value)
    return profile.dagster_home
