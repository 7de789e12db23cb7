"""Serving a tuned model: ``sqlcoach serve`` (an OpenAI-compatible API, ``/v1/sql`` and a web page)
and ``sqlcoach ask``.

``engine`` (bounded queue, one batching generation thread), ``text2sql`` (the databases a server
may open, prompt -> SQL -> sandboxed result, shared with ``ask``), ``app`` (FastAPI routes and their
error rules), ``setup`` (model folder -> running server), ``vllm`` (``--backend vllm``: vLLM's own
OpenAI server). Only ``app`` and ``setup`` import FastAPI/uvicorn (the ``serve`` extra).
"""
