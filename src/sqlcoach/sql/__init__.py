"""SQL handling, all on sqlglot (dialect ``sqlite``), no database access.

- ``parse``: ``parse_sql`` (never raises, cached), ``normalize_sql``, set-operation helpers, and
  ``spider_struct``: a query in the official Spider scorer's component structure.
- ``tables``: ``load_tables`` reads Spider's tables.json into ``SpiderDbSchema`` records.
- ``hardness``: Spider's easy / medium / hard / extra from the gold SQL.
- ``exact_match``: Spider exact set match (EM) with per-component verdicts.
- ``rewrite``: the text rewrites the execution scorer needs (DISTINCT removal, value plugging,
  post-processing) plus ``literal_values`` and ``statement_type``.
- ``extract``: SQL out of model text.

Submodules are imported explicitly (``from sqlcoach.sql.exact_match import exact_match``) so that
importing one does not pay for the others.
"""
