"""Pieces every app's admin uses: read-only model admins, pages beside a changelist, list
filters declared as choices, sortable columns and tables in a read-only field."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join


class ReadOnlyAdminMixin:
    """Rows nobody adds or edits in the admin (they are made by jobs, the chat or evaluation);
    for a model admin or an inline."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInlineMixin(ReadOnlyAdminMixin):
    """An inline that lists rows to read: none added, changed or deleted there, and every field
    it shows read only, with a link to the row's own page where it has one."""

    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request, obj=None):
        return self.fields


class ExtraViewsMixin:
    """Pages beside a model's changelist, from ``extra_views``: (route, view method name, URL
    name suffix). Each is wrapped in ``admin_view`` (login and staff check) and named
    ``<app>_<model>_<suffix>`` in the admin namespace, like the admin's own pages."""

    extra_views: tuple[tuple[str, str, str], ...] = ()

    def get_urls(self):
        app_label, model_name = self.model._meta.app_label, self.model._meta.model_name
        return [
            path(
                route,
                self.admin_site.admin_view(getattr(self, view)),
                name=f"{app_label}_{model_name}_{suffix}",
            )
            for route, view, suffix in self.extra_views
        ] + super().get_urls()

    def to_created(self, request, row: Any, said: str) -> HttpResponseRedirect:
        """After a page made ``row``: flash ``said`` and go to the row's own admin page."""
        self.message_user(request, said, messages.SUCCESS)
        meta = row._meta
        change = f"admin:{meta.app_label}_{meta.model_name}_change"
        return HttpResponseRedirect(reverse(change, args=[row.pk]))

    def page_context(self, request, title: str, **extra: Any) -> dict[str, Any]:
        """What every one of these pages renders with: the admin site's context (sidebar,
        user links), ``title``, the model's options (breadcrumbs) and the page's own ``extra``."""
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            **extra,
        }


Narrowing = Q | Callable[[QuerySet], QuerySet]


class ChoicesFilter(admin.SimpleListFilter):
    """A list filter declared as its options: value -> (label, narrowing), where the narrowing
    is a ``Q`` to filter by or a function of the queryset (for an exclude or a subquery).
    (``choices`` would be the natural name, but it is a method of every list filter.)"""

    options: dict[str, tuple[str, Narrowing]] = {}

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [(value, label) for value, (label, _) in self.options.items()]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        choice = self.options.get(self.value() or "")
        if choice is None:
            return queryset
        narrowing = choice[1]
        return queryset.filter(narrowing) if isinstance(narrowing, Q) else narrowing(queryset)


class ForeignKeyFilter(admin.SimpleListFilter):
    """A list filter on one foreign key, ``field`` (its ``_id`` column); subclasses list the
    choices in :meth:`lookups`. A value that is not an id shows everything."""

    field: str = ""

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        value = self.value() or ""
        return queryset.filter(**{f"{self.field}_id": int(value)}) if value.isdigit() else queryset


class JobAdminMixin(ReadOnlyAdminMixin):
    """A job row's admin: read only (jobs are started on their own pages), with a progress
    column that shows a bar and what :meth:`progress_label` counts, and :meth:`act_on_each`
    for the actions that steer the selected jobs."""

    def act_on_each(
        self,
        request,
        queryset: QuerySet,
        service: Callable[..., Any],
        *,
        row_argument: str = "run",
        done: str = "",
    ) -> int:
        """Call ``service(<row_argument>=row, user=...)`` on each selected row; a refusal is a
        warning that says why, and ``done`` (``{count}``: how many went through) is said once
        when any did. Returns that count."""
        count = 0
        for row in queryset:
            try:
                service(**{row_argument: row}, user=request.user)
            except ValidationError as exc:
                self.message_user(request, "; ".join(exc.messages), messages.WARNING)
            except PermissionDenied as exc:  # carries its refusal as its text, not .messages
                self.message_user(request, str(exc), messages.WARNING)
            else:
                count += 1
        if count and done:
            self.message_user(request, done.format(count=count), messages.SUCCESS)
        return count

    @admin.display(description="Progress")
    def progress(self, obj) -> str:
        return progress_bar(obj.progress_percent, self.progress_label(obj))

    def progress_label(self, obj) -> str:
        raise NotImplementedError


def progress_bar(percent: int, label: str) -> str:
    """A job's progress for a changelist column: a bar, then what it counts."""
    return format_html(
        '<progress max="100" value="{}" style="width:8em"></progress> {}', percent, label
    )


def shortened(text: str, length: int) -> str:
    """``text`` for a column or a message: whole when it fits in ``length`` characters, else cut
    to ``length`` with an ellipsis as the last."""
    return text if len(text) <= length else text[: length - 1] + "…"


def sortable_column(attribute: str, description: str) -> Callable[[Any, Any], Any]:
    """A changelist column showing ``attribute`` (a field, or a value the admin's queryset
    annotates onto each row), sortable by it."""

    @admin.display(description=description, ordering=attribute)
    def column(model_admin, obj) -> Any:
        return getattr(obj, attribute)

    return column


def html_table(
    headings: Sequence[str], rows: Iterable[Sequence[Any]], *, css_class: str = ""
) -> str:
    """A read-only field's table: a row of ``headings`` over a ``<tr>`` per row of ``rows``
    (as many cells as headings), every heading and cell escaped."""
    cells = "".join("<td>{}</td>" for _ in headings)
    return format_html(
        "<table{}><thead><tr>{}</tr></thead><tbody>{}</tbody></table>",
        format_html(' class="{}"', css_class) if css_class else "",
        format_html_join("", "<th>{}</th>", ((heading,) for heading in headings)),
        format_html_join("", f"<tr>{cells}</tr>", rows),
    )
