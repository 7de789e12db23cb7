"""Load any Hugging Face causal LM (local folder or hub id), optionally quantised or with a LoRA.

``load_model(path, ...)`` returns ``(model, tokenizer)``. Hub ids only work where the user has
network; nothing here forces a download (``HF_HUB_OFFLINE=1`` is honoured by transformers).
4-bit/8-bit quantisation goes through bitsandbytes and needs CUDA: on a machine without it the
error says so before anything is loaded. A folder holding a LoRA adapter (``adapter_config.json``)
is loaded on top of its base model, and can be merged and exported (``export_merged``).
A ``.gguf`` file is accepted too: it is dequantized in memory (``sqlcoach.models.importer``;
``sqlcoach model import`` saves it as a folder once, which then loads much faster).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlcoach.errors import ConfigError
from sqlcoach.runtime.device import device_map_for, resolve_device, resolve_dtype

QUANTIZATIONS = (None, "4bit", "8bit")


def quantization_config(quantization: str | None, compute_dtype: Any = None) -> Any:
    """A ``BitsAndBytesConfig`` for ``4bit`` (NF4, double quantisation: the QLoRA recipe) or
    ``8bit``; ``None`` for no quantisation. Raises ``ConfigError`` with the reason when CUDA or
    bitsandbytes is missing, so that a QLoRA run fails at once instead of deep inside a kernel."""
    if quantization is None:
        return None
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            f"{quantization} quantisation (QLoRA) needs a CUDA GPU: bitsandbytes kernels do not run on "
            "this machine (torch sees no CUDA device). Use full or LoRA training here, or run on a GPU."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"{quantization} quantisation needs bitsandbytes: pip install 'sqlcoach[quant]'"
        ) from exc
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype or torch.bfloat16,
    )


def is_adapter(path: str | Path) -> bool:
    """True when ``path`` is a local folder holding a peft adapter (and no full model)."""
    return (Path(path) / "adapter_config.json").is_file()


def load_start(path: str | Path, auto_class: Any = None, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained(path, **kwargs)`` (default ``AutoModelForCausalLM``) for a
    model a recipe goes on training. An adapter folder (a LoRA run's ``final/``) is merged into its
    base first: ``from_pretrained`` on the folder would inject the adapter, and the recipe's own
    LoRA would then be a second adapter of the same name, saved over the bare base (the start's
    update silently lost). A recipe that adds a LoRA on such a start saves merged
    (``save_final(merge=...)``): an adapter over the merged start would name the wrong base."""
    if auto_class is None:
        from transformers import AutoModelForCausalLM as auto_class
    if not is_adapter(path):
        return auto_class.from_pretrained(str(path), **kwargs)
    from peft import PeftConfig, PeftModel

    base = auto_class.from_pretrained(_adapter_base(path), **kwargs)
    conf = PeftConfig.from_pretrained(str(path))
    # the task type only picks a wrapper class (a causal one needs generate(), which a score head
    # lacks); merging reads the LoRA weights alone
    conf.task_type = None
    return PeftModel.from_pretrained(base, str(path), config=conf).merge_and_unload()


def load_tokenizer(path: str | Path, *, padding_side: str = "left") -> Any:
    """The tokenizer of a model folder/hub id (or of an adapter's base when the adapter has none).

    Guarantees a pad token (eos when the checkpoint defines none) and the requested padding side:
    left for batched generation, so that every row's last token is its last prompt token."""
    from transformers import AutoTokenizer

    if _is_gguf(path):
        from sqlcoach.models.importer import load_gguf_tokenizer

        return _prepare_tokenizer(load_gguf_tokenizer(path), padding_side)
    src = str(path)
    if is_adapter(path) and not (Path(path) / "tokenizer_config.json").is_file():
        src = _adapter_base(path)
    tok = AutoTokenizer.from_pretrained(src)
    return _prepare_tokenizer(tok, padding_side)


def _prepare_tokenizer(tok: Any, padding_side: str) -> Any:
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def _is_gguf(path: str | Path | None) -> bool:
    """A ``.gguf`` file (by suffix, or by its magic bytes): loaded through ``models.importer``."""
    if path is None:
        return False
    from sqlcoach.models.importer import is_gguf

    return is_gguf(path)


def _adapter_base(path: str | Path) -> str:
    cfg = json.loads((Path(path) / "adapter_config.json").read_text())
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{path}/adapter_config.json names no base_model_name_or_path")
    return str(base)


def load_model(
    path: str | Path,
    *,
    dtype: str = "auto",
    device: str = "auto",
    quantization: str | None = None,
    adapter: str | Path | None = None,
    merge: bool = False,
    padding_side: str = "left",
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer; returns ``(model, tokenizer)`` with the model in eval mode.

    ``path`` is a model folder, a hub id, a ``.gguf`` file (dequantized in memory), or an adapter
    folder (its base is read from ``adapter_config.json``). ``adapter`` adds a LoRA on top of
    ``path``; ``merge=True`` folds it into the base weights (not possible on a quantised base: a
    ``ConfigError`` says so).
    """
    from transformers import AutoModelForCausalLM

    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if is_adapter(path) and adapter is None:
        adapter, path = path, _adapter_base(path)
    if merge and quantization is not None:
        raise ConfigError("cannot merge a LoRA into a quantised base: load it unquantised to merge")
    if quantization is not None and _is_gguf(path):
        raise ConfigError(f"{path} is a GGUF file: transformers cannot quantise it with bitsandbytes; import it "
                          "(sqlcoach model import) and load the folder to quantise")
    qconf = quantization_config(quantization, torch_dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if qconf is not None:
        kwargs["quantization_config"] = qconf
        # the whole quantised model on this process's GPU (cuda:k, or LOCAL_RANK under torchrun)
        kwargs["device_map"] = device_map_for(dev)
    adapter_has_tokenizer = adapter is not None and (Path(adapter) / "tokenizer_config.json").is_file()
    if _is_gguf(path):
        from sqlcoach.models.importer import load_gguf

        model, gguf_tok = load_gguf(path, dtype=torch_dtype, tokenizer=not adapter_has_tokenizer)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        gguf_tok = None
    if adapter_has_tokenizer:
        tok = load_tokenizer(adapter, padding_side=padding_side)
    elif gguf_tok is not None:
        tok = _prepare_tokenizer(gguf_tok, padding_side)
    else:
        tok = load_tokenizer(path, padding_side=padding_side)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
        if merge:
            model = model.merge_and_unload()
    if qconf is None:
        model = model.to(dev)
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    model.eval()
    return model, tok


def export_merged(adapter: str | Path, out: str | Path, *, base: str | Path | None = None, dtype: str = "float32") -> Path:
    """Merge a LoRA adapter into its base model and save a plain HF checkpoint (+ tokenizer) in ``out``.

    The result loads with ``AutoModelForCausalLM`` alone (no peft). ``base`` overrides the base
    named in the adapter's config (e.g. when the base was moved)."""
    if not is_adapter(adapter):
        raise ConfigError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    base_path = str(base) if base is not None else _adapter_base(adapter)
    model, tok = load_model(base_path, adapter=adapter, merge=True, dtype=dtype, device="cpu")
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_p)
    tok.save_pretrained(out_p)
    return out_p
