"""Models: load any HF causal LM (``load``), build tiny offline ones (``tiny``).

Heavy libraries (torch, transformers, peft) are imported inside the functions, so importing this
package is cheap.
"""

from sqlcoach.models.load import export_merged, load_model, load_tokenizer
from sqlcoach.models.tiny import SIZES, init_tiny_model, train_tokenizer, world_corpus

__all__ = ["SIZES", "export_merged", "init_tiny_model", "load_model", "load_tokenizer", "train_tokenizer", "world_corpus"]
