from django import template
from django.utils.safestring import mark_safe

from manualqa.rendering import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> str:
    """Sanitised HTML from markdown; safe because nh3 has removed anything executable."""
    return mark_safe(render_markdown(text))  # noqa: S308 - sanitised by nh3 just above
