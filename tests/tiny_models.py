"""Building blocks for tiny, randomly initialised transformers checkpoints made offline in tests."""

from __future__ import annotations

from pathlib import Path


def byte_level_bpe(corpus: list[str], vocab_size: int, special_tokens: list[str]):
    """A byte-level BPE `tokenizers.Tokenizer` trained on `corpus` (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(corpus, trainer)
    return bpe


# A LLaVA that answers attribute questions (the VLM teacher's production class), in miniature.
CHAT_TEMPLATE = (
    "{% for m in messages %}USER: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{{ '\\n' }}{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
VLM_TOKENIZER_CORPUS = [
    '{"color": "red", "material": "cotton", "style": null}',
    "You label products in an online shop. Look at the product image and read its text. Title Description "
    "Answer with one JSON object and nothing else. Its keys are: one of a short phrase. Use null for a key "
    "that does not apply or cannot be seen. Example",
    "red blue green cotton wool denim casual formal dress coat trousers USER: ASSISTANT:",
]


def build_tiny_vlm(path: Path, chat_template: bool = True) -> Path:
    """A randomly initialised LLaVA (CLIP vision tower 32 px / patch 8, one-layer Llama, byte-level
    BPE vocabulary of 400) with its processor, written by save_pretrained like a real checkpoint."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    bpe = byte_level_bpe(VLM_TOKENIZER_CORPUS, 400, ["<s>", "</s>", "<pad>", "<image>"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", extra_special_tokens={"image_token": "<image>"}
    )
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",  # drops CLIP's CLS token ...
        num_additional_image_tokens=1,  # ... which the processor must count: 16 patches -> 16 <image> tokens
        chat_template=CHAT_TEMPLATE if chat_template else None,
    )
    torch.manual_seed(0)
    vision = CLIPVisionConfig(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default", vision_feature_layer=-1,
    )  # fmt: skip
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def teach_answer(model, batch, answer_len: int, steps: int, lr: float = 1e-2) -> float:
    """Train a tiny model for `steps` Adam steps to end every (left-padded) row of `batch` with its
    last `answer_len` tokens; returns the final loss. A checkpoint that always gives one answer."""
    import torch

    targets = torch.full_like(batch["input_ids"], -100)
    targets[:, -answer_len:] = batch["input_ids"][:, -answer_len:]  # left padding: the answer ends every row
    torch.manual_seed(0)
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = model(**batch, labels=targets).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return loss.item()


def build_tiny_llm(path: Path, corpus: list[str], chat_template: str | None = None) -> Path:
    """A randomly initialised one-layer Llama (hidden 32, byte-level BPE vocabulary of 300) with
    its tokenizer, written by save_pretrained like a real checkpoint."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = byte_level_bpe(corpus, 300, ["<s>", "</s>", "<pad>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    if chat_template:
        tokenizer.chat_template = chat_template
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
