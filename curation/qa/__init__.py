"""Question/answer pair generation helpers: prompts, output parsing, quality gates, importers.

ManualQA generates QA pairs with the two-stage method of question_extractor, which the seed
project ran with GPT-3.5 over the Model 3 manual: first ask the LLM for a numbered list of
questions that one piece of the manual alone can answer, then ask it to answer each question
from that same piece. This module holds the parts of that pipeline that need no Django and no
network, so they can be tested exhaustively and reused by the generation service, the admin
and the importers:

* **Prompts**: the default prompt texts, safe formatting (braces inside manual text never break
  ``str.format``) and validation of user-edited templates.
* **Parsing**: turning a chatty LLM reply into a clean list of questions, and cleaning answers.
* **Identity**: ``normalize_question``/``question_hash``, the key of the unique constraint on
  (chunk, question_hash), so a rerun never stores the same question twice for one chunk.
* **Quality gates**: flags computed when a pair is created, which the review queue filters on.
  They never drop a pair; a reviewer decides.
* **Context fitting**: splitting a chunk that does not fit an endpoint's context window.
* **Importers**: the seed project's two data formats (question_extractor's JSON and the
  ``<s>[INST] q [/INST] a </s>`` JSON Lines used for fine-tuning), with per-record problems
  reported instead of aborting the whole import.

One module per part (:mod:`.prompts`, :mod:`.parsing`, :mod:`.identity`, :mod:`.quality`,
:mod:`.fitting`, :mod:`.formats`); this package re-exports their public names. The seed format
itself (markers, rendering) lives in :mod:`manualqa.lib.prompt_formats`.
"""

from curation.qa.fitting import (
    split_to_fit,
)
from curation.qa.formats import (
    ImportProblem,
    ImportRecord,
    heading_slug,
    parse_inst_jsonl,
    parse_question_extractor_json,
)
from curation.qa.identity import (
    normalize_question,
    question_hash,
)
from curation.qa.parsing import (
    MalformedOutput,
    clean_answer,
    parse_question_list,
)
from curation.qa.prompts import (
    ANSWER_TEMPLATE_PLACEHOLDERS,
    DEFAULT_ANSWER_SYSTEM_PROMPT,
    DEFAULT_ANSWER_USER_TEMPLATE,
    DEFAULT_QUESTIONS_SYSTEM_PROMPT,
    DEFAULT_QUESTIONS_USER_TEMPLATE,
    QUESTIONS_TEMPLATE_PLACEHOLDERS,
    answer_messages,
    questions_messages,
    validate_template,
)
from curation.qa.quality import (
    FLAG_DUPLICATE,
    FLAG_EMPTY_ANSWER,
    FLAG_LOW_GROUNDING,
    FLAG_NOT_A_QUESTION,
    FLAG_REFUSAL,
    FLAG_SOURCE_CHANGED,
    FLAG_TOO_LONG,
    FLAG_TOO_SHORT,
    LOW_GROUNDING_THRESHOLD,
    QUALITY_FLAGS,
    STOPWORDS,
    answer_flags,
    grounding_score,
    lexical_grounding,
    question_flags,
)

__all__ = [
    "ANSWER_TEMPLATE_PLACEHOLDERS",
    "DEFAULT_ANSWER_SYSTEM_PROMPT",
    "DEFAULT_ANSWER_USER_TEMPLATE",
    "DEFAULT_QUESTIONS_SYSTEM_PROMPT",
    "DEFAULT_QUESTIONS_USER_TEMPLATE",
    "FLAG_DUPLICATE",
    "FLAG_EMPTY_ANSWER",
    "FLAG_LOW_GROUNDING",
    "FLAG_NOT_A_QUESTION",
    "FLAG_REFUSAL",
    "FLAG_SOURCE_CHANGED",
    "FLAG_TOO_LONG",
    "FLAG_TOO_SHORT",
    "LOW_GROUNDING_THRESHOLD",
    "QUALITY_FLAGS",
    "QUESTIONS_TEMPLATE_PLACEHOLDERS",
    "STOPWORDS",
    "ImportProblem",
    "ImportRecord",
    "MalformedOutput",
    "answer_flags",
    "answer_messages",
    "clean_answer",
    "grounding_score",
    "heading_slug",
    "lexical_grounding",
    "normalize_question",
    "parse_inst_jsonl",
    "parse_question_extractor_json",
    "parse_question_list",
    "question_flags",
    "question_hash",
    "questions_messages",
    "split_to_fit",
    "validate_template",
]
