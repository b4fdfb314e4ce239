"""The real CLIP BPE tokenizer, built offline from the vocabulary open_clip ships
(bpe_simple_vocab_16e6.txt.gz) as vocab.json + merges.txt for transformers' CLIPTokenizer.
Same merges and ids as openai/clip-vit-base-patch32's tokenizer (49,408 tokens)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

CLIP_VOCAB_SIZE = 49408


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_clip_tokenizer_files(folder: str | Path) -> Path:
    """Write vocab.json and merges.txt into `folder`; returns it."""
    import open_clip

    source = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(source).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return folder


def build_clip_tokenizer(folder: str | Path, max_length: int = 77):
    """A CLIPTokenizer over the files above; checked to be the full 49,408-token vocabulary."""
    from transformers import CLIPTokenizer

    folder = write_clip_tokenizer_files(folder)
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length, pad_token="<|endoftext|>")
    if len(tokenizer) != CLIP_VOCAB_SIZE:
        raise RuntimeError(f"CLIP tokenizer built from open_clip's vocabulary has {len(tokenizer)} tokens, expected {CLIP_VOCAB_SIZE}")
    return tokenizer
