"""Prompt-routed LoRA adapters: each row of a UNet call goes through the adapter of its prompt.

The demo's RL trains two things through one LoRA: the titles' fidelity (prompts that name their
colour) and parity on prompts that leave the colour open. Through shared weights each side's
gradient moves the other's prompts (the README's "Where the demo stands"). With `open_adapter`
the prompts that leave a parity group open get a LoRA of their own: the trainer routes every
row to its prompt's adapter, so neither side's gradient reaches the other's weights.

Routing uses peft's mixed-batch LoRA forward (`adapter_names`, one per input row), injected by
forward pre-hooks as peft's own PeftModel does; "__base__" routes a row around every adapter.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

TITLE_ADAPTER = "default"  # diffusers' add_adapter name: prompts that name their group, and every prompt without routing
OPEN_ADAPTER = "open"  # prompts that leave a parity group open
BASE = "__base__"  # peft's name for no adapter


def lora_layers(unet) -> list:
    from peft.tuners.lora import LoraLayer

    return [m for m in unet.modules() if isinstance(m, LoraLayer)]


@contextmanager
def routed_adapters(unet, adapter_names: Sequence[str]) -> Iterator[None]:
    """Inside, row i of every UNet call goes through adapter `adapter_names[i]`. A call whose batch
    is k times as long (classifier-free guidance: the negative rows, then the conditioned ones)
    repeats the names k times, so a row's guided prediction comes from one adapter."""
    names = list(adapter_names)
    if not names:
        raise ValueError("routed_adapters needs one adapter name per row")
    layers = lora_layers(unet)
    if not layers:
        raise ValueError("routed_adapters: the UNet has no LoRA adapters to route")

    def hook(module, args, kwargs):
        rows = len(args[0])
        if rows % len(names):
            raise ValueError(f"a UNet call of {rows} rows cannot be routed by {len(names)} adapter names")
        kwargs["adapter_names"] = names * (rows // len(names))
        return args, kwargs

    handles = [layer.register_forward_pre_hook(hook, with_kwargs=True) for layer in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def open_rows_adapters(open_rows: Sequence[bool]) -> list[str]:
    """One adapter name per row: the open adapter where the row's prompt leaves a group open."""
    return [OPEN_ADAPTER if is_open else TITLE_ADAPTER for is_open in open_rows]


ROUTING_FILE = "routing.json"
ADAPTERS_DIR = "adapters"  # beside a pipeline's model folders: one LoRA folder per adapter, and the routing


class PromptRouter:
    """Each prompt's adapter from its text, for a saved pipeline (its users have no metadata): the
    open adapter where no word of the prompt names a group (e.g. no colour)."""

    def __init__(self, groups: Sequence[str]):
        self.groups = [g.lower() for g in groups]
        if not self.groups:
            raise ValueError("a prompt router needs the group names that close a prompt")

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        named = set(self.groups)
        return open_rows_adapters([not named & set(p.lower().replace(",", " ").split()) for p in prompts])


def save_routed_adapters(unet, folder, groups: Sequence[str]):
    """Both adapters (safetensors, diffusers' LoRA format) and the router's group names under
    `folder`/adapters, then the adapters unloaded from `unet` (what stays is the base UNet).
    Returns that adapters folder."""
    import json
    from pathlib import Path

    root = Path(folder) / ADAPTERS_DIR
    for name in (TITLE_ADAPTER, OPEN_ADAPTER):
        unet.save_lora_adapter(str(root / name), adapter_name=name)
    (root / ROUTING_FILE).write_text(json.dumps({"adapters": [TITLE_ADAPTER, OPEN_ADAPTER], "groups": list(PromptRouter(groups).groups)}))
    unet.unload_lora()
    return root


def load_routed_adapters(unet, folder) -> PromptRouter | None:
    """The adapters a pipeline folder was saved with, loaded into `unet`, and their router; None
    (and `unet` untouched) for a folder without."""
    import json
    from pathlib import Path

    root = Path(folder) / ADAPTERS_DIR
    if not (root / ROUTING_FILE).exists():
        return None
    routing = json.loads((root / ROUTING_FILE).read_text())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")  # peft's note on a second adapter
        for name in routing["adapters"]:
            unet.load_lora_adapter(str(root / name), adapter_name=name, prefix=None, use_safetensors=True)
    unet.set_adapter(TITLE_ADAPTER)  # what a call without routing (diffusers' own pipe(prompt)) draws with, as in training
    unet.requires_grad_(False)
    return PromptRouter(routing["groups"])
