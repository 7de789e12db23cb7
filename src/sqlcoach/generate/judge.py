"""LLM-as-judge: a chat model rates each prediction 1-5 on SQL correctness, reasoning, format and
educational value (``sqlcoach judge``), and the judge's SQL score is checked against EX.

The rubric and reply format follow the source material (GPT-4o-mini rating 50 outputs):
``SQL_SCORE``, ``REASONING_SCORE``, ``FORMAT_SCORE``, ``EDUCATIONAL_SCORE`` (1-5 each),
``OVERALL_SCORE`` (their average), ``EXPLANATION``, ``ERROR_TYPE`` (none/syntax/logic/format/other).
The prompt is a template file (``judge_prompt.txt`` beside this module; ``--template FILE``
replaces it) with the placeholders ``{db_id} {schema} {question} {gold_sql} {prediction}``,
substituted in one pass (a question or SQL that contains a placeholder's text is left alone).

``parse_reply`` never raises: a reply with all four dimension scores is ``ok`` (a missing or
inconsistent ``OVERALL_SCORE`` is then the mean of the four, and says so in ``problems``); a reply
without them is ``malformed`` and counted, never a crash, never guessed. Scores are read from the
usual variations: ``**SQL_SCORE:** 4``, ``SQL_SCORE = [4]``, ``sql score: 4/5``, ``4.5``; a range
such as ``SQL_SCORE: [1-5]`` (a small model echoing the template, seen with SmolLM2) is refused.

Requests go through ``sqlcoach.generate.openai_client`` (the API backend's client: same retries,
deadline, concurrency and ``max_rps`` limit). ``judge_run`` writes one JSONL record per example as
each reply arrives; a resumed run keeps the records whose key (example content + a hash of
endpoint, model, decoding and the template text) matches and that got a reply, and asks again for
the rest (request errors, and replies from another template or judge).

Where this departs from the source: its judge saw "the model output"; here that is the
prediction JSONL's ``raw`` text when the prediction file has one (reasoning included), else the
SQL line. EX comes from ``sqlcoach.metrics.evaluate_pairs`` on the same files, so the confusion
table compares the judge with the same scorer every other figure uses.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlcoach.errors import DataError
from sqlcoach.generate.openai_client import API_ERRORS, ChatClient, ChatResult

DIMENSIONS = ("sql", "reasoning", "format", "educational")
ERROR_TYPES = ("none", "syntax", "logic", "format", "other")
DEFAULT_TEMPLATE = Path(__file__).with_name("judge_prompt.txt")
PLACEHOLDERS = ("db_id", "schema", "question", "gold_sql", "prediction")
#: an output scored at least this on SQL correctness counts as "judged correct" in the confusion table
PASS_SCORE = 4.0

_FIELD = {d: re.compile(rf"{d}[ _-]*score\W*?[:=]\W*?(\d+(?:\.\d+)?)(\s*[-\u2013]\s*\d+)?(\s*/\s*5)?", re.I)
          for d in (*DIMENSIONS, "overall")}
_EXPL = re.compile(r"explanation\W*?[:=]\W*(.*?)(?=\n\s*\W*(?:error[ _-]*type|[a-z]+[ _-]*score)\b|\Z)", re.I | re.S)
_ETYPE = re.compile(r"error[ _-]*type\W*?[:=]\W*([a-z_/ -]+)", re.I)


@dataclass
class JudgeScores:
    """One parsed reply. ``ok``: all four dimensions read (1-5); ``overall`` is then set (the
    reply's, or the mean of the four when the reply's is missing or off by more than 0.5)."""

    ok: bool = False
    sql: float | None = None
    reasoning: float | None = None
    format: float | None = None
    educational: float | None = None
    overall: float | None = None
    explanation: str = ""
    error_type: str | None = None
    problems: list[str] = field(default_factory=list)


def parse_reply(text: Any) -> JudgeScores:
    """Scores out of a judge's reply; never raises (see the module docstring)."""
    s = JudgeScores()
    if not isinstance(text, str) or not text.strip():
        s.problems.append("empty reply")
        return s
    clean = text.replace("*", "").replace("`", "").replace("[", "").replace("]", "")
    for d in (*DIMENSIONS, "overall"):
        m = _FIELD[d].search(clean)
        if not m:
            if d != "overall":
                s.problems.append(f"no {d.upper()}_SCORE")
            continue
        if m.group(2):  # "SQL_SCORE: [1-5]": the template's placeholder echoed back, not a score
            s.problems.append(f"{d.upper()}_SCORE is the placeholder {m.group(1)}{m.group(2).strip()}, not a score")
            continue
        v = float(m.group(1))
        if not (1.0 <= v <= 5.0) or not math.isfinite(v):
            s.problems.append(f"{d.upper()}_SCORE {m.group(1)} outside 1-5")
            continue
        setattr(s, d, v)
    m = _EXPL.search(clean)
    s.explanation = " ".join(m.group(1).split())[:1000] if m else ""
    m = _ETYPE.search(clean)
    if m:
        word = m.group(1).strip().lower().split("/")[0].split()[0] if m.group(1).strip() else ""
        s.error_type = word if word in ERROR_TYPES else "other"
        if word not in ERROR_TYPES:
            s.problems.append(f"ERROR_TYPE {m.group(1).strip()!r} not one of {'/'.join(ERROR_TYPES)}")
    dims = [getattr(s, d) for d in DIMENSIONS]
    s.ok = all(v is not None for v in dims)
    if s.ok:
        mean = sum(dims) / len(dims)  # type: ignore[arg-type]
        if s.overall is None:
            s.problems.append("no OVERALL_SCORE: the mean of the four used")
            s.overall = round(mean, 4)
        elif abs(s.overall - mean) > 0.5:
            s.problems.append(f"OVERALL_SCORE {s.overall:g} is not the mean {mean:.2f} of the four: the mean used")
            s.overall = round(mean, 4)
    else:
        s.overall = None
    return s


def load_template(path: str | Path | None = None) -> str:
    """The judge prompt template (the shipped one by default); a ``DataError`` when the file
    cannot be read or has no ``{prediction}`` placeholder."""
    p = Path(path) if path else DEFAULT_TEMPLATE
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read the judge template: {exc.strerror or exc}", path=str(p)) from None
    if "{prediction}" not in text:
        raise DataError("a judge template needs a {prediction} placeholder (and usually {question}, {gold_sql}, "
                        "{schema}, {db_id})", path=str(p))
    return text


def render(template: str, **values: str) -> str:
    """``template`` with each ``{name}`` of ``PLACEHOLDERS`` replaced in one pass."""
    return re.sub(r"\{(" + "|".join(PLACEHOLDERS) + r")\}", lambda m: str(values.get(m.group(1), "")), template)


@dataclass
class JudgeItem:
    """One output to judge (what the template is filled with)."""

    index: int
    db_id: str
    question: str
    gold_sql: str
    prediction: str
    schema: str = ""


def item_key(item: JudgeItem, settings_h: str) -> str:
    from sqlcoach.generate.resume import settings_hash

    return settings_hash({"db_id": item.db_id, "question": item.question, "gold": item.gold_sql,
                          "prediction": item.prediction}) + ":" + settings_h


def judge_run(client: ChatClient, items: Sequence[JudgeItem], out_jsonl: str | Path, *, template: str,
              max_tokens: int = 400, temperature: float = 0.0, concurrency: int = 4, resume: bool = False,
              progress: bool = True) -> list[dict[str, Any]]:
    """Judge every item; returns one record per item (in item order), also in ``out_jsonl``.
    Resume keeps a record whose request succeeded and whose key (item content + judge settings)
    is this run's key for some item (``api_backend.run_keyed``)."""
    from sqlcoach.generate.api_backend import run_keyed
    from sqlcoach.generate.resume import settings_hash

    h = settings_hash({"base_url": client.base_url, "model": client.model, "max_tokens": max_tokens,
                       "temperature": temperature, "template": template})
    keys = [item_key(it, h) for it in items]

    def call(i: int) -> ChatResult:
        it = items[i]
        prompt = render(template, db_id=it.db_id, schema=it.schema, question=it.question, gold_sql=it.gold_sql,
                        prediction=it.prediction or "(empty)")
        return client.chat([{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=temperature)

    def record(i: int, res: ChatResult) -> dict[str, Any]:
        return {"index": i, "db_id": items[i].db_id, "request_error": res.error, "message": res.message,
                "attempts": res.attempts, "usage": res.usage(), "reply": res.text,
                "scores": asdict(parse_reply(res.text)) if res.ok else None}

    run = run_keyed(Path(out_jsonl), keys, call, record, resume=resume, concurrency=concurrency,
                    desc=f"judge ({client.model})" if progress else None,
                    ok=lambda rec: rec.get("request_error") is None)
    return [run.done[i] for i in range(len(items))]


def _mean(xs: Sequence[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def summarize_judgements(records: Sequence[dict[str, Any]], ex: Sequence[bool | None]) -> dict[str, Any]:
    """Per-dimension means and the share with overall >= 4 over the parsed replies; request errors
    and malformed replies counted; the confusion table of judge SQL score >= ``PASS_SCORE`` vs EX
    (examples whose EX is unknown, i.e. gold_error, left out), with agreement and Cohen's kappa."""
    scored = [(r["scores"], e) for r, e in zip(records, ex) if r.get("scores") and r["scores"]["ok"]]
    req_err = {c: 0 for c in API_ERRORS}
    for r in records:
        if r.get("request_error"):
            req_err[r["request_error"]] = req_err.get(r["request_error"], 0) + 1
    malformed = sum(1 for r in records if r.get("scores") and not r["scores"]["ok"])
    means = {d: _mean([s[d] for s, _ in scored]) for d in (*DIMENSIONS, "overall")}
    high = sum(1 for s, _ in scored if s["overall"] >= 4.0)
    cells = {"judge_pass_ex_true": 0, "judge_pass_ex_false": 0, "judge_fail_ex_true": 0, "judge_fail_ex_false": 0}
    for s, e in scored:
        if e is None:
            continue
        cells[f"judge_{'pass' if s['sql'] >= PASS_SCORE else 'fail'}_ex_{'true' if e else 'false'}"] += 1
    n = sum(cells.values())
    agree = cells["judge_pass_ex_true"] + cells["judge_fail_ex_false"]
    p_judge = (cells["judge_pass_ex_true"] + cells["judge_pass_ex_false"]) / n if n else 0.0
    p_ex = (cells["judge_pass_ex_true"] + cells["judge_fail_ex_true"]) / n if n else 0.0
    pe = p_judge * p_ex + (1 - p_judge) * (1 - p_ex)
    kappa = ((agree / n) - pe) / (1 - pe) if n and pe < 1 else None
    etypes: dict[str, int] = {}
    for s, _ in scored:
        k = s.get("error_type") or "(missing)"
        etypes[k] = etypes.get(k, 0) + 1
    return {
        "examples": len(records), "judged": len(scored), "malformed_replies": malformed,
        "request_errors": req_err, "means": means,
        "overall_ge_4": high, "overall_ge_4_share": high / len(scored) if scored else None,
        "error_types": etypes,
        "confusion": dict(cells, compared=n, agreement=agree / n if n else None,
                          kappa=round(kappa, 4) if kappa is not None else None, pass_score=PASS_SCORE),
        "usage": {"prompt_tokens": sum((r.get("usage") or {}).get("prompt_tokens") or 0 for r in records),
                  "completion_tokens": sum((r.get("usage") or {}).get("completion_tokens") or 0 for r in records)},
    }


def format_judgement(summary: dict[str, Any]) -> str:
    """The judge summary as printed by ``sqlcoach judge``."""
    s = summary
    errs = ", ".join(f"{k} {v}" for k, v in s["request_errors"].items() if v) or "none"
    m = s["means"]
    share = s["overall_ge_4_share"]
    lines = [
        f"judged {s['judged']} of {s['examples']} outputs; malformed replies {s['malformed_replies']}; "
        f"request errors: {errs}",
        "means (1-5): " + "  ".join(f"{d} {m[d]:.2f}" if m[d] is not None else f"{d} -" for d in (*DIMENSIONS, "overall")),
        f"overall >= 4: {s['overall_ge_4']} of {s['judged']}" + (f" ({100 * share:.1f}%)" if share is not None else ""),
        "error types: " + (", ".join(f"{k} {v}" for k, v in sorted(s["error_types"].items())) or "-"),
    ]
    c = s["confusion"]
    lines += [
        "",
        f"judge SQL_SCORE >= {c['pass_score']:g} vs EX ({c['compared']} outputs with both):",
        f"{'':<22}{'EX correct':>12}{'EX wrong':>10}",
        f"{'judge >= ' + format(c['pass_score'], 'g'):<22}{c['judge_pass_ex_true']:>12}{c['judge_pass_ex_false']:>10}",
        f"{'judge < ' + format(c['pass_score'], 'g'):<22}{c['judge_fail_ex_true']:>12}{c['judge_fail_ex_false']:>10}",
        "agreement " + (f"{100 * c['agreement']:.1f}%" if c["agreement"] is not None else "-")
        + "; Cohen's kappa " + (f"{c['kappa']:.3f}" if c["kappa"] is not None else "-"),
    ]
    return "\n".join(lines)


def read_questions(path: str | Path, n: int) -> list[str]:
    """Questions in gold order: a Spider/BIRD JSON list (``question``), JSONL, or one per line."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    qs: list[str]
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DataError(f"not JSON: {exc}", path=str(p)) from None
        if not isinstance(data, list) or not all(isinstance(d, dict) and "question" in d for d in data):
            raise DataError("a questions JSON must be a list of objects with a 'question'", path=str(p))
        qs = [str(d["question"]) for d in data]
    elif p.suffix == ".jsonl":
        qs = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    qs.append(str(json.loads(line)["question"]))
                except (ValueError, KeyError, TypeError):
                    raise DataError(f"line {lineno}: not a JSON object with a 'question'", path=str(p)) from None
    else:
        qs = text.rstrip("\n").split("\n")
    if len(qs) < n:
        raise DataError(f"{len(qs)} questions for {n} gold queries: the files must be in the same order", path=str(p))
    return qs[:n]
