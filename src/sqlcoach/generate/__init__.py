"""Generation: batched HF generation (``hf``), optional vLLM (``vllm_backend``), self-consistency
voting by execution result (``vote``), and the prediction driver that writes Spider-format files
and resumes after a crash (``predict``)."""
