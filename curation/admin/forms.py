"""The forms of QA-pair review: the change form, duplicate, regenerate and focused review."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from curation import selectors
from curation.models import (
    LLMEndpoint,
    Manual,
    QAPair,
)


class ReviewTextField(forms.CharField):
    """A text field whose line endings are ``\\n``: browsers send ``\\r\\n`` from a textarea,
    which would otherwise count as an edit of every multi-line answer."""

    def to_python(self, value):
        return super().to_python(value).replace("\r\n", "\n").replace("\r", "\n")


class QAPairChangeForm(forms.ModelForm):
    """The change page's editable part: the text and the status, saved through the services."""

    question = ReviewTextField(widget=forms.Textarea(attrs={"rows": 2, "cols": 100}))
    answer = ReviewTextField(widget=forms.Textarea(attrs={"rows": 8, "cols": 100}))

    class Meta:
        model = QAPair
        fields = ("question", "answer", "status")

    def clean_question(self):
        question = self.cleaned_data["question"]
        if selectors.qa_pair_question_taken(pair=self.instance, question=question):
            raise ValidationError("Another pair from the same passage already asks this question.")
        return question


class DuplicateOfForm(forms.Form):
    canonical = forms.IntegerField(
        min_value=1,
        label="Canonical pair id",
        help_text="The pair to keep. The selected pairs are linked to it and rejected.",
    )

    def clean_canonical(self) -> QAPair:
        pk = self.cleaned_data["canonical"]
        canonical = QAPair.objects.filter(pk=pk).only("id", "question").first()
        if canonical is None:
            raise ValidationError(f"There is no QA pair #{pk}.")
        return canonical


class RegenerateForm(forms.Form):
    endpoint = forms.ModelChoiceField(
        queryset=LLMEndpoint.objects.filter(is_active=True).order_by("name"),
        help_text="Answers each question again from the pair's source text, with the answer "
        "prompt generation uses.",
    )


class ReviewFilterForm(forms.Form):
    """The focused review page's choices: which manual, and in what order."""

    manual = forms.ModelChoiceField(
        queryset=Manual.objects.order_by("name"), required=False, empty_label="All manuals"
    )
    order = forms.ChoiceField(choices=list(selectors.REVIEW_ORDERS.items()), required=False)
    pair = forms.IntegerField(required=False, widget=forms.HiddenInput)


class ReviewActionForm(forms.Form):
    """One decision on the focused review page."""

    ACTIONS = ("approve", "reject", "edit", "edit_approve")

    pair = forms.IntegerField(widget=forms.HiddenInput)
    action = forms.ChoiceField(choices=[(action, action) for action in ACTIONS])
    question = ReviewTextField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    answer = ReviewTextField(required=False, widget=forms.Textarea(attrs={"rows": 8}))
