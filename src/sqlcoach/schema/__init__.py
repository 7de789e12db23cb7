"""Database schemas: read them (introspect), render them for prompts (serialize), find values."""

from sqlcoach.schema.introspect import introspect, schema_from_tables_json
from sqlcoach.schema.serialize import STYLES, approx_tokens, serialize
from sqlcoach.schema.values import retrieve_values

__all__ = ["STYLES", "approx_tokens", "introspect", "retrieve_values", "schema_from_tables_json", "serialize"]
