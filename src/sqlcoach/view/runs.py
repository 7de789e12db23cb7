"""What ``sqlcoach view`` finds in the folders it is given, and the rows it makes of them.

``load_catalog(roots, data=None)`` walks each folder given (a file given is taken as it is),
without following symlinked folders and leaving out any file whose real path lies outside the
folder, and collects:

* **prediction files**: JSONL files whose records are ``sqlcoach predict``'s (``index``, ``sql``,
  ``raw``: a demo's ``pred/*.jsonl``, a comparison's ``methods/*/pred.jsonl``, a ``predict``
  output) or ``sqlcoach evaluate --per-example`` rows (``ex``, ``pred``, ``gold``). Every line
  that is not a JSON object is kept as a bad line with its file and line number; the rest loads.
* **training runs**: every ``summary.json`` a recipe wrote (``train.run.RunSummary``), the PNG
  plots beside it and its logged history (``log_history`` in the summary or ``log_history.json``);
* **reports**: every ``report.html`` (a demo's, a comparison's), linked as written.

A prediction record names its question by ``example`` (``generate.resume.example_key``); the
question, gold SQL and database come from the data it was predicted on: a Spider-layout world
found beside the file (``world/``, a comparison's ``start/world/``, or the ``world`` its
``report.json`` names when that lies inside a folder given), else ``--data``. Records of a
per-example file are matched to the data by database and gold SQL. Predictions with a known
question are scored once at load by ``metrics.evaluate_examples`` (Spider rules, the same scorer
as ``evaluate``, ``demo`` and ``compare``); the others show as ``unscored``.

Only the paths found here are ever opened later: the web app names files, rows and plots by
their position in these lists, never by a path taken from a request.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sqlcoach.errors import DataError

#: folders never walked into: data and weights, not results
SKIP_DIRS = frozenset({"database", "world", "model-init", "final", ".git", "__pycache__", "node_modules"})
MAX_DEPTH = 6
MAX_JSONL_BYTES = 512 * 2**20
#: what ``view`` looks for (the error when a folder has none of it says so)
LOOKED_FOR = ("prediction JSONL (sqlcoach predict, demo pred/*.jsonl, compare methods/*/pred.jsonl), "
              "evaluate --per-example JSONL, summary.json of a training run, report.html")
VERDICTS = ("right", "wrong", "unscored")
#: per-record list fields that are not per-sample columns of the samples table
_NOT_SAMPLE_COLUMNS = frozenset({"samples", "raw_samples", "history_sql", "turns"})


@dataclass
class Row:
    """One prediction as the browser shows it. ``pos`` is its position in its file's ``rows``
    (the id requests use); ``key`` pairs it with the same question in another file."""

    pos: int
    index: int
    key: str
    id: str
    db_id: str
    question: str | None
    hardness: str | None
    gold: str | None
    pred: str
    verdict: str  # right | wrong | unscored
    error: str | None
    message: str
    line: int
    record: dict[str, Any]
    db_path: str | None = None
    search: str = ""

    def brief(self) -> dict[str, Any]:
        return {"pos": self.pos, "index": self.index, "id": self.id, "db_id": self.db_id, "question": self.question,
                "hardness": self.hardness, "gold": self.gold, "pred": self.pred, "verdict": self.verdict,
                "error": self.error, "samples": len(self.record.get("samples") or ()),
                "turns": len(self.record.get("turns") or ())}


@dataclass
class PredFile:
    id: int
    path: Path
    label: str
    kind: str  # predictions | per-example
    rows: list[Row] = field(default_factory=list)
    bad_lines: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    def card(self) -> dict[str, Any]:
        scored = [r for r in self.rows if r.verdict != "unscored"]
        right = sum(r.verdict == "right" for r in scored)
        return {"id": self.id, "label": self.label, "kind": self.kind, "count": len(self.rows), "scored": len(scored),
                "right": right, "ex": right / len(scored) if scored else None, "note": self.note,
                "bad_lines": self.bad_lines[:200], "bad_count": len(self.bad_lines),
                "samples": any(r.record.get("samples") for r in self.rows)}


@dataclass
class Training:
    id: int
    label: str
    summary: dict[str, Any]
    curves: dict[str, list[list[float]]]
    plots: list[int]
    config: dict[str, Any] = field(default_factory=dict)

    def card(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "summary": self.summary, "curves": self.curves, "plots": self.plots,
                "config": self.config}


@dataclass
class Catalog:
    """Everything ``view`` serves: ``files`` (servable plots and reports) are the only paths the
    app opens besides the databases of rows."""

    roots: list[Path]
    pred_files: list[PredFile] = field(default_factory=list)
    trainings: list[Training] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add_file(self, path: Path) -> int:
        self.files.append(path)
        return len(self.files) - 1


# -- the data a prediction was made on -----------------------------------------------------------
class ExampleIndex:
    """The examples of one Spider-layout folder (``dev.json``, ``train.json``, ``database/``),
    loaded split by split when first needed, looked up by example key, id, or (database, gold)."""

    SPLITS = ("dev", "train")

    def __init__(self, folder: Path):
        self.folder = folder
        self._loaded: list[str] = []
        self.by_key: dict[str, Any] = {}
        self.by_id: dict[str, Any] = {}
        self.by_gold: dict[tuple[str, str], Any] = {}

    def _load_next(self) -> bool:
        from sqlcoach.data import load_examples
        from sqlcoach.generate.resume import example_key

        for split in self.SPLITS:
            if split in self._loaded:
                continue
            self._loaded.append(split)
            if not (self.folder / f"{split}.json").is_file():
                continue
            for ex in load_examples("spider", self.folder, split):
                self.by_key.setdefault(example_key(ex), ex)
                self.by_id.setdefault(ex.id, ex)
                self.by_gold.setdefault((ex.db_id, _norm(ex.gold_sql or "")), ex)
            return True
        return False

    def find(self, rec: dict[str, Any]) -> Any:
        """The example of a prediction record (by ``example``, else ``id``) or of a per-example
        row (by ``db_id`` and ``gold``); ``None`` when the data has none."""
        while True:
            key, rid = rec.get("example"), rec.get("id")
            if isinstance(key, str) and key in self.by_key:
                return self.by_key[key]
            if not isinstance(key, str) and isinstance(rid, str) and rid in self.by_id:
                return self.by_id[rid]
            if "gold" in rec and (str(rec.get("db_id")), _norm(str(rec.get("gold") or ""))) in self.by_gold:
                return self.by_gold[(str(rec.get("db_id")), _norm(str(rec.get("gold") or "")))]
            if not self._load_next():
                return None


def _norm(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";").strip().lower()


def inside(path: Path, folders: list[Path]) -> bool:
    """True when ``path``'s real path (links resolved) is one of ``folders`` or lies under one."""
    real = Path(os.path.realpath(path))
    return any(real == f or f in real.parents for f in folders)


def _is_data_folder(d: Path) -> bool:
    return (d / "dev.json").is_file() or (d / "train.json").is_file()


def _world_for(path: Path, root: Path, allowed: list[Path]) -> Path | None:
    """The Spider-layout data beside ``path``: in each folder from ``path``'s up to ``root``,
    ``world/``, ``start/world/``, or the ``world`` its ``report.json`` config names (when inside an
    allowed folder)."""
    d = path.parent
    while True:
        for cand in (d / "world", d / "start" / "world"):
            if _is_data_folder(cand):
                return cand
        cfg_world = ((_read_json(d / "report.json") or {}).get("config") or {}).get("world")
        if isinstance(cfg_world, str) and cfg_world and _is_data_folder(Path(cfg_world)) and inside(Path(cfg_world), allowed):
            return Path(cfg_world)
        if d == root or root not in d.parents:
            return None
        d = d.parent


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# -- reading one JSONL file ----------------------------------------------------------------------
def read_jsonl(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    """``([(line number, record)], bad lines)`` through ``data.jsonl.iter_records`` (the loaders'
    reader): each bad line as ``{"file", "line", "text", "error"}`` (not JSON, or JSON that is not
    an object); blank lines are skipped. A file that cannot be read at all is a ``DataError``."""
    from sqlcoach.data.jsonl import LoadReport, iter_records

    report = LoadReport()
    good, bad = [], []
    for n, rec in iter_records(path, report):
        if isinstance(rec, dict):
            good.append((n, rec))
        else:
            bad.append({"file": str(path), "line": n, "error": f"a JSON {type(rec).__name__}, not an object"})
    bad += [{"file": str(path), "line": p.line, "error": p.message} for p in report.problems]
    if bad:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for b in bad:
            b["text"] = lines[b["line"] - 1][:300] if b["line"] and b["line"] <= len(lines) else ""
        bad.sort(key=lambda b: b["line"] or 0)
    return good, bad


def kind_of(records: list[tuple[int, dict[str, Any]]]) -> str | None:
    """``predictions`` (``sqlcoach predict`` records: ``index``, ``sql`` and the model's ``raw``
    text, from HF, vLLM or API prediction), ``per-example`` (``evaluate --per-example`` rows) or
    ``None`` (some other JSONL: the RL recipes' ``samples.jsonl``, mined pairs), by the first
    readable record."""
    for _, r in records[:1]:
        if "index" in r and "sql" in r and "raw" in r:
            return "predictions"
        if "ex" in r and "pred" in r and "gold" in r:
            return "per-example"
    return None


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ("" if v is None else str(v))


def _int(v: Any, default: int) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def make_rows(kind: str, records: list[tuple[int, dict[str, Any]]], index: ExampleIndex | None,
              allowed: list[Path]) -> tuple[list[Row], list[Any]]:
    """Rows of one file, and for each row its example (``None`` when the data has none)."""
    from sqlcoach.generate.resume import example_key

    rows, exs = [], []
    for pos, (line, rec) in enumerate(records):
        ex = index.find(rec) if index is not None else None
        db_id = _text(rec.get("db_id")) or (ex.db_id if ex else "")
        idx = _int(rec.get("index"), pos)
        key = example_key(ex) if ex is not None else (_text(rec.get("example")) or f"{db_id}#{idx}")
        db_path = str(ex.db_path) if ex is not None and ex.db_path and inside(Path(ex.db_path), allowed) else None
        if kind == "per-example":
            ex_v = rec.get("ex")
            verdict = "right" if ex_v is True else "wrong" if ex_v is False else "unscored"
            row = Row(pos, idx, key, _text(rec.get("id")) or (ex.id if ex else ""), db_id, ex.question if ex else None,
                      _text(rec.get("hardness")) or None, _text(rec.get("gold")), _text(rec.get("pred")), verdict,
                      _text(rec.get("error")) or None, _text(rec.get("message")), line, rec, db_path)
        else:
            row = Row(pos, idx, key, _text(rec.get("id")), db_id, ex.question if ex else None, None,
                      (ex.gold_sql or "") if ex else None, _text(rec.get("sql")), "unscored", None, "", line, rec, db_path)
        rows.append(row)
        exs.append(ex)
    return rows, exs


def score_rows(rows: list[Row], exs: list[Any], tables: Path | None, pool: Any) -> None:
    """Score the predictions whose question is known (``metrics.evaluate_examples``, Spider rules,
    ``etype=all``): fills ``verdict``, ``error``, ``message``, ``hardness`` in place."""
    from sqlcoach.metrics import evaluate_examples

    todo = [(r, ex) for r, ex in zip(rows, exs) if ex is not None and ex.gold_sql is not None and ex.db_path]
    if not todo:
        return
    rep = evaluate_examples([ex for _, ex in todo], [r.pred for r, _ in todo], etype="all", mode="spider",
                            tables_path=str(tables) if tables and tables.is_file() else None, pool=pool, explain=False)
    for (r, _), v in zip(todo, rep.verdicts):
        r.verdict = "right" if v.ex else "wrong"
        r.error, r.message, r.hardness = v.error, v.message or "", v.hardness


def _finish(rows: list[Row]) -> None:
    for r in rows:
        r.search = "\n".join(x for x in (r.question, r.gold, r.pred, r.db_id, r.id) if x).lower()


# -- training runs ------------------------------------------------------------------------------
#: logged values drawn as curves, when present (others stay in the summary)
CURVE_KEYS = ("loss", "eval_loss", "reward", "rewards/mean", "kl", "objective/kl", "train_loss")
MAX_POINTS = 400


def curves_of(history: Any, *, every_key: bool = False) -> dict[str, list[list[float]]]:
    """``{name: [[step, value], ...]}`` from a Trainer log history (the ``CURVE_KEYS`` and
    ``reward*`` values; ``every_key``: every number, as in a recipe's ``reward_curve``), at most
    ``MAX_POINTS`` points each."""
    out: dict[str, list[list[float]]] = {}
    if not isinstance(history, list):
        return out
    for h in history:
        if not isinstance(h, dict) or not isinstance(h.get("step"), (int, float)):
            continue
        for k, v in h.items():
            wanted = every_key or k in CURVE_KEYS or k.startswith("reward")
            if k != "step" and wanted and isinstance(v, (int, float)) and not isinstance(v, bool):
                out.setdefault(k, []).append([float(h["step"]), float(v)])
    for k, pts in out.items():
        if len(pts) > MAX_POINTS:
            step = len(pts) / MAX_POINTS
            out[k] = [pts[int(i * step)] for i in range(MAX_POINTS)] + [pts[-1]]
    return {k: v for k, v in out.items() if len(v) > 1}


def _training(cat: Catalog, path: Path, label: str) -> None:
    """A recipe's ``summary.json`` (``{"recipe", "config", "summary"}``, ``train.run.write_summary``;
    a flat summary is read too), its curves and the PNG plots beside it."""
    data = _read_json(path)
    if not isinstance(data, dict):
        return
    flat = data["summary"] if isinstance(data.get("summary"), dict) else data
    if not ("global_step" in flat or "recipe" in flat):
        return
    history = flat.get("log_history") or _read_json(path.parent / "log_history.json")
    curves = {**curves_of(history), **curves_of(flat.get("reward_curve"), every_key=True)}
    summary = {k: v for k, v in flat.items() if not isinstance(v, (list, dict))}
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    plots = [cat.add_file(p) for p in sorted(path.parent.glob("*.png")) if p.is_file() and not p.is_symlink()]
    cat.trainings.append(Training(len(cat.trainings), label, summary, curves, plots, config))


# -- walking the folders ------------------------------------------------------------------------
def _walk(root: Path) -> list[Path]:
    """Files under ``root`` (sorted; symlinked folders not followed; at most ``MAX_DEPTH`` deep)."""
    if root.is_file():
        return [root]
    found = []
    for d, dirs, files in os.walk(root, followlinks=False):
        depth = len(Path(d).relative_to(root).parts)
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith("checkpoint-")
                         and not x.startswith(".") and depth < MAX_DEPTH)
        found += [Path(d) / f for f in sorted(files)]
    return found


def load_catalog(roots: list[str | Path], *, data: str | Path | None = None, workers: int = 1,
                 log: Callable[[str], None] = lambda m: None) -> Catalog:
    """The catalog of every folder (or file) in ``roots`` (module docstring). ``data``: a
    Spider-layout folder for prediction files with no world of their own. Raises ``DataError``
    when a root is missing or nothing known is found in any of them (saying what was looked for)."""
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.execution.sandbox import Limits

    paths = [Path(r) for r in roots]
    for p in paths:
        if not p.exists():
            raise DataError(f"{p}: no such file or folder")
    data_dir = Path(data) if data else None
    if data_dir is not None and not _is_data_folder(data_dir):
        raise DataError(f"--data {data_dir}: not a Spider-layout folder (no dev.json or train.json)")
    allowed = [Path(os.path.realpath(p)) for p in paths + ([data_dir] if data_dir else [])]
    cat = Catalog(roots=[Path(os.path.realpath(p)) for p in paths])
    indexes: dict[Path, ExampleIndex] = {}
    with ExecutorPool(workers, Limits(timeout=30.0)) as pool:
        for root in paths:
            base = root if root.is_dir() else root.parent
            for f in _walk(root):
                if not inside(f, [Path(os.path.realpath(root if root.is_dir() else f))]):
                    cat.problems.append(f"{f}: left out (a link to outside {root})")
                    continue
                label = f"{root.name}/{f.relative_to(base)}" if root.is_dir() else f.name
                if f.name == "summary.json":
                    _training(cat, f, label.rsplit("/", 1)[0])
                elif f.name == "report.html":
                    cat.reports.append({"id": cat.add_file(f), "label": label})
                elif f.suffix == ".jsonl":
                    _pred_file(cat, f, label, root, allowed, data_dir, indexes, pool, log)
    if not (cat.pred_files or cat.trainings or cat.reports):
        raise DataError(f"nothing to show in {', '.join(str(p) for p in paths)}: looked for {LOOKED_FOR}")
    return cat


def _pred_file(cat: Catalog, f: Path, label: str, root: Path, allowed: list[Path], data_dir: Path | None,
               indexes: dict[Path, ExampleIndex], pool: Any, log: Callable[[str], None]) -> None:
    if f.stat().st_size > MAX_JSONL_BYTES:
        cat.problems.append(f"{f}: left out (over {MAX_JSONL_BYTES >> 20} MiB)")
        return
    try:
        records, bad = read_jsonl(f)
    except DataError as exc:
        cat.problems.append(f"{f}: left out ({exc})")
        return
    kind = kind_of(records)
    if kind is None:
        if bad and not records:
            cat.problems.append(f"{f}: no line could be read ({len(bad)} bad lines; first: line {bad[0]['line']})")
        return
    world = _world_for(f, root if root.is_dir() else f.parent, allowed) or data_dir
    index = indexes.setdefault(world, ExampleIndex(world)) if world is not None else None
    rows, exs = make_rows(kind, records, index, allowed)
    if kind == "predictions":
        log(f"scoring {sum(e is not None for e in exs)} predictions of {label}")
        score_rows(rows, exs, world / "tables.json" if world else None, pool)
    _finish(rows)
    missing = sum(e is None for e in exs)
    note = ""
    if world is None:
        note = "questions and gold unknown: no world found beside this file; pass --data DIR (Spider layout)"
    elif missing:
        note = f"{missing} of {len(rows)} records match no question of {world}"
    cat.pred_files.append(PredFile(len(cat.pred_files), f, label, kind, rows, bad, note))
