"""``sqlcoach view DIR [DIR ...]``: a local web app for reading a run's predictions.

``runs`` (what is found in the folders given: prediction files, training runs, reports; rows
scored at load), ``app`` (FastAPI: the JSON API and the page; SQL of an opened question runs in
the sandbox), ``setup`` (options -> catalog -> uvicorn). Only ``app`` and ``setup`` import
FastAPI/uvicorn (the ``serve`` extra). See docs/view.md.
"""
