"""Production rewards, each behind a lazy import. Hugging Face models load from local files
only; ImageReward and HPSv2 are loaded by their own packages, which fetch weights on first use
where there is a network. Offline (or without the package) they fail with `RewardUnavailable`
naming what to install or download, and the underlying error."""

from __future__ import annotations

import importlib

from ml.rewards.base import RewardUnavailable, register_reward


def _require(module: str, install: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RewardUnavailable(f"needs the Python package {install!r} (pip install {install})") from exc


def _local_model(loader, model_id: str, what: str):
    try:
        return loader(model_id, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise RewardUnavailable(f"{what}: model {model_id!r} is not available offline ({type(exc).__name__}). Download it into the "
                                "Hugging Face cache on a machine with network access, or pass a local folder.") from exc


@register_reward("image_reward")
class ImageRewardScore:
    name = "image_reward"

    def __init__(self, model: str = "ImageReward-v1.0", device: str = "cpu"):
        reward_lib = _require("ImageReward", "image-reward")
        try:
            self.model = reward_lib.load(model, device=device)
        except Exception as exc:  # the package downloads on load
            raise RewardUnavailable(f"ImageReward {model!r} could not be loaded (offline, its weights must already be in the package's "
                                    f"cache): {type(exc).__name__}: {str(exc)[:200]}") from exc

    def __call__(self, images, prompts, metadata):
        from ml.diffusion.sampling import images_to_uint8
        from PIL import Image

        return [float(self.model.score(p, Image.fromarray(x))) for p, x in zip(prompts, images_to_uint8(images))]


@register_reward("pickscore")
class PickScore:
    name = "pickscore"

    def __init__(self, model: str = "yuvalkirstain/PickScore_v1", processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", device: str = "cpu"):
        transformers = _require("transformers", "transformers")
        self.processor = _local_model(transformers.AutoProcessor.from_pretrained, processor, "PickScore processor")
        self.model = _local_model(transformers.AutoModel.from_pretrained, model, "PickScore").eval().to(device)
        self.device = device

    def __call__(self, images, prompts, metadata):
        import torch

        from ml.diffusion.sampling import images_to_uint8

        with torch.no_grad():
            inputs = self.processor(images=list(images_to_uint8(images)), text=prompts, padding=True, truncation=True, return_tensors="pt").to(self.device)
            image = torch.nn.functional.normalize(self.model.get_image_features(pixel_values=inputs["pixel_values"]), dim=-1)
            text = torch.nn.functional.normalize(self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]), dim=-1)
            return (self.model.logit_scale.exp() * (image * text).sum(-1)).cpu().numpy()


@register_reward("hpsv2")
class HPSv2:
    name = "hpsv2"

    def __init__(self, version: str = "v2.1"):
        self.hpsv2 = _require("hpsv2", "hpsv2")
        self.version = version

    def __call__(self, images, prompts, metadata):
        from PIL import Image

        from ml.diffusion.sampling import images_to_uint8

        try:
            return [float(self.hpsv2.score(Image.fromarray(x), p, hps_version=self.version)[0]) for p, x in zip(prompts, images_to_uint8(images))]
        except Exception as exc:
            raise RewardUnavailable(f"HPSv2 {self.version} could not score (offline, its weights must already be in the package's "
                                    f"cache): {type(exc).__name__}: {str(exc)[:200]}") from exc


@register_reward("aesthetic")
class LaionAesthetic:
    """The LAION aesthetic predictor: a linear head over CLIP ViT-L/14 image embeddings."""

    name = "aesthetic"

    def __init__(self, head: str, clip_model: str = "openai/clip-vit-large-patch14", device: str = "cpu"):
        import torch

        transformers = _require("transformers", "transformers")
        self.clip = _local_model(transformers.CLIPModel.from_pretrained, clip_model, "aesthetic predictor's CLIP").eval().to(device)
        self.processor = _local_model(transformers.CLIPProcessor.from_pretrained, clip_model, "aesthetic predictor's CLIP processor")
        try:
            from safetensors.torch import load_file

            state = load_file(head)
        except Exception as exc:
            raise RewardUnavailable(f"aesthetic head {head!r}: a local .safetensors file with the linear head's weight and bias") from exc
        self.head = torch.nn.Linear(state["weight"].shape[1], 1)
        self.head.load_state_dict(state)
        self.head.to(device).eval()
        self.device = device

    def __call__(self, images, prompts, metadata):
        import torch

        from ml.diffusion.sampling import images_to_uint8

        with torch.no_grad():
            inputs = self.processor(images=list(images_to_uint8(images)), return_tensors="pt").to(self.device)
            emb = torch.nn.functional.normalize(self.clip.get_image_features(**inputs), dim=-1)
            return self.head(emb).squeeze(-1).cpu().numpy()


@register_reward("composition")
class Composition:
    """Prompts naming two objects: reward = the weaker of an open-vocabulary detector's best
    confidences for the two (metadata['objects'])."""

    name = "composition"

    def __init__(self, model: str = "google/owlv2-base-patch16-ensemble", device: str = "cpu"):
        transformers = _require("transformers", "transformers")
        self.processor = _local_model(transformers.Owlv2Processor.from_pretrained, model, "composition detector processor")
        self.model = _local_model(transformers.Owlv2ForObjectDetection.from_pretrained, model, "composition detector").eval().to(device)
        self.device = device

    def __call__(self, images, prompts, metadata):
        import numpy as np
        import torch

        from ml.diffusion.sampling import images_to_uint8

        out = np.zeros(len(prompts))
        with torch.no_grad():
            for i, (x, meta) in enumerate(zip(images_to_uint8(images), metadata)):
                objects = meta.get("objects") or []
                if len(objects) < 2:
                    continue
                inputs = self.processor(text=[objects], images=x, return_tensors="pt").to(self.device)
                logits = self.model(**inputs).logits[0].sigmoid()  # boxes x queries
                out[i] = float(logits.max(dim=0).values.min())
        return out
