"""``sqlcoach serve MODEL --backend vllm``: replace this process with vLLM's own OpenAI server.

A thin exec, on purpose: vLLM's server already speaks the OpenAI API (``/v1/models``,
``/v1/chat/completions``, ``/v1/completions``, streaming, batching). What sqlcoach adds is the
translation of its flags (``vllm_argv``): host, port, API key, served model name, context length,
and a LoRA adapter folder passed as its base model plus ``--enable-lora --lora-modules NAME=DIR``.
Not available with this backend: ``/v1/sql`` and the web page (they are sqlcoach's routes); use
``sqlcoach ask --url`` against a vLLM server instead (the prompt is built and the SQL run locally).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from sqlcoach.errors import ConfigError


def vllm_argv(opts: Any) -> list[str]:
    """The command line that starts vLLM's OpenAI server for ``opts`` (a ``ServeOptions``)."""
    from sqlcoach.models.load import _adapter_base, is_adapter

    name = opts.served_model_name or opts.model
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--host", opts.host, "--port", str(opts.port)]
    if is_adapter(opts.model):
        argv += ["--model", _adapter_base(opts.model), "--enable-lora", "--lora-modules", f"{name}={opts.model}"]
    else:
        argv += ["--model", str(opts.model), "--served-model-name", name]
    if opts.api_key:
        argv += ["--api-key", opts.api_key]
    if opts.max_model_len:
        argv += ["--max-model-len", str(opts.max_model_len)]
    if opts.dtype != "auto":
        argv += ["--dtype", opts.dtype]
    return argv


def exec_vllm(opts: Any) -> None:
    """Check that vLLM is importable (else a ``ConfigError`` saying how to install it), then
    ``os.execv`` its server: this process becomes vLLM's and never returns."""
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError("--backend vllm needs vLLM, which is not installed here: pip install 'sqlcoach[vllm]' "
                          "(a CUDA machine); or serve with the default --backend hf")
    argv = vllm_argv(opts)
    print("exec: " + " ".join(argv), file=sys.stderr, flush=True)
    os.execv(argv[0], argv)
