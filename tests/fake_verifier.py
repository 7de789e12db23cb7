"""A stand-in for a trained verifier (``sqlcoach.models.verifier.Verifier``): the same ``score``
method, scores from a table keyed on the SQL (0.0 for any other), and a record of what it was asked
to read. Shared by the selection, serve and reward tests."""

from __future__ import annotations


class FakeVerifier:
    """Scores a candidate by a table keyed on its SQL; records what it read."""

    def __init__(self, by_sql):
        self.by_sql = by_sql
        self.read = []

    def score(self, items):
        self.read.extend(items)
        return [self.by_sql.get(sql, 0.0) for _, _, sql, _ in items]


def untrained_verifier(policy_dir, out):
    """A real verifier folder that has learnt nothing: a random score head on ``policy_dir``'s
    config and tokenizer, and the spec ``load_verifier`` checks. For tests of the wiring (what
    loads, what is read, what is written), never of the choices."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from sqlcoach.models.verifier import VerifierSpec

    cfg = AutoConfig.from_pretrained(policy_dir, num_labels=1)
    tok = AutoTokenizer.from_pretrained(policy_dir)
    cfg.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    VerifierSpec(base_model=str(policy_dir)).save(out)
    return out


def verifier_folder_stub(out):
    """A folder that passes a verifier folder's checks without a model (``read_spec``,
    ``check_head``, ``weights_sha256``): the spec, a one-output sequence-classifier config and a
    weights file of fixed bytes. For tests of configuration and recording, never of loading."""
    import json
    from pathlib import Path

    from sqlcoach.models.verifier import VerifierSpec

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    VerifierSpec(base_model="tiny").save(out)
    (out / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForSequenceClassification"], "num_labels": 1}))
    (out / "model.safetensors").write_bytes(b"not really weights")
    return out
