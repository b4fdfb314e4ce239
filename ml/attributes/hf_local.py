"""Loading transformers checkpoints from local folders only, with errors that say what to do.
Shared by the VLM teacher and the LLM judge: nothing is downloaded at run time."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def check_model_folder(model_path: str | Path, what: str, expected: str, error: type[Exception] = ValueError) -> Path:
    path = Path(model_path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"{what} model folder {str(path)!r} does not exist; expected {expected}. Nothing is downloaded at run "
            f"time: fetch the checkpoint first (e.g. `hf download <repo> --local-dir {path}`)."
        )
    if not path.is_dir():
        raise error(f"{what} model path {str(path)!r} is a file; expected {expected}.")
    if not (path / "config.json").is_file():
        raise error(f"{what} model folder {str(path)!r} has no config.json; expected {expected}.")
    return path


def load_local(path: Path, processor_cls: Any, model_cls: Any, device: str, error: type[Exception] = ValueError) -> tuple[Any, Any]:
    """(processor or tokenizer, model in eval mode); bf16 on a GPU that supports it, else fp32."""
    import torch

    dtype = torch.float32
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16
    try:
        processor = processor_cls.from_pretrained(str(path), local_files_only=True)
        model = model_cls.from_pretrained(str(path), local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise error(
            f"could not load {model_cls.__name__} from {str(path)!r} ({processor_cls.__name__} + {model_cls.__name__}, "
            f"local files only): {exc}"
        ) from exc
    model.to(device).eval()
    return processor, model
