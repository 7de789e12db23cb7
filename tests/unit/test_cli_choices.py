"""The CLI spells out template and schema-style choices (importing the modules would slow every
verb's start-up); these must stay equal to the registries they name."""

from sqlcoach.commands.data import DBGPT_HUB_TEMPLATE, FORMAT_CHOICES, STYLE_CHOICES, TEMPLATE_CHOICES
from sqlcoach.data.export import DBGPT_HUB, FORMATS
from sqlcoach.prompts.templates import TEMPLATES
from sqlcoach.schema.serialize import STYLES


def test_template_choices_are_the_registered_templates():
    assert set(TEMPLATE_CHOICES) == set(TEMPLATES)


def test_style_choices_are_the_registered_styles():
    assert set(STYLE_CHOICES) == set(STYLES)


def test_format_choices_are_the_export_formats():
    assert FORMAT_CHOICES == FORMATS and DBGPT_HUB_TEMPLATE == DBGPT_HUB
