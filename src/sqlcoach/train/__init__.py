"""Training recipes. ``config`` (typed configs), ``sft`` (SFTTrainer: full/LoRA/QLoRA),
``common`` (config loading, overrides), ``plots`` (loss curves). Heavy imports stay inside
functions."""
