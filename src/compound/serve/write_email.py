"""The short box: a few words in (who, what, tone), a typed email draft out.

``WriteEmail`` is a ``Predict`` from ``EmailBrief`` to ``EmailDraft`` (subject, greeting, body,
sign-off) with four MUST requirements, enforced by ``Repair`` (a failed draft goes back to the model
with the reasons):

- length: the body has 15 to 200 words and the subject at most 12 words;
- no invented facts: every number, date word (month, weekday) and name (a capitalised word that is not
  the first of a sentence) in the draft appears in the box;
- a greeting (Hi, Hello, Dear, ...) and a sign-off.

The writer is the program's ``model`` when it names one; otherwise the best writer installed: a distilled
email writer (``distilled_writer_path()``), else the settings' large model (qwen2.5-coder-1.5b unless
configured otherwise) where it is installed, else the settings' default model. Runaway replies are bounded: every
field has a maximum length (the grammar enforces it while decoding), the reply has ``max_tokens``, and a
streamed draft that starts repeating itself is stopped there (``program.streaming.repeats``) and repaired.

Every candidate and its checks come back in the ``StrategyResult`` (``arun``), so a page can show why
the chosen draft was chosen. The same program is ``examples/write_email.py`` and is served at
``/v1/programs/write_email/run``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from compound.control.requirements import Check
from compound.core.settings import get_settings
from compound.models.base import Backend
from compound.models.embedded import EMBEDDED
from compound.models.registry import get_model
from compound.program.predict import Predict, Signature
from compound.program.streaming import repeats
from compound.strategies.repair import Repair

INSTRUCTIONS = (
    "Draft a short email from the notes in the box: who it is to, what it is about and the tone. "
    "Use only facts from the box: no numbers, names, dates or places that are not in it. "
    "Give a subject, a greeting line, a body of two to five sentences, and a sign-off."
)

#: a draft's token bound: subject, greeting, a 200-word body and a sign-off fit with room to spare
MAX_TOKENS = 400
GREETINGS = ("hi", "hello", "dear", "hey", "good morning", "good afternoon", "good evening", "greetings")
DATE_WORDS = {
    *"january february march april may june july august september october november december".split(),
    *"monday tuesday wednesday thursday friday saturday sunday".split(),
}
#: capitalised words an email may use without them being facts
COMMON = {
    *GREETINGS,
    *"i i'm i'll i've i'd thanks thank best kind warm regards cheers sincerely all team everyone please".split(),
}


class EmailBrief(BaseModel):
    box: str = Field(
        min_length=3, max_length=2000, description="a few words: who the email is to, what it is about, the tone"
    )


class EmailDraft(BaseModel):
    """Each field's length is bounded, so a model that loops inside a string is cut by the grammar."""

    subject: str = Field(max_length=120, description="the subject line")
    greeting: str = Field(max_length=80, description="the greeting line, e.g. 'Hi Ana,'")
    body: str = Field(max_length=1500, description="the body: two to five sentences")
    sign_off: str = Field(max_length=80, description="the closing, e.g. 'Best regards,'")


def distilled_writer_path() -> Path:
    """Where a distilled, merged email writer (a GGUF) is picked up: ``compound distill email-writer``
    installs one here (``compound.serve.email_writer``), with its report beside it (``report_path``)."""
    return get_settings().home / "students" / "email-writer" / "email-writer.gguf"


REPORT_FORMAT = "compound.email_writer"
REPORT_VERSION = 1


def report_path() -> Path:
    """The installed writer's report (format ``compound.email_writer``), beside its GGUF."""
    return distilled_writer_path().with_suffix(".json")


def read_report() -> dict[str, Any] | None:
    """The installed writer's report, or None (none installed, unreadable, or of another format)."""
    try:
        report = json.loads(report_path().read_text())
    except (OSError, json.JSONDecodeError):
        return None
    ok = isinstance(report, dict) and report.get("format") == REPORT_FORMAT
    return report if ok and report.get("version", 0) <= REPORT_VERSION else None


def writer_model() -> str:
    """The best email writer installed: the distilled one, else the large embedded model, else the default."""
    distilled = distilled_writer_path()
    if distilled.exists():
        return str(distilled)
    settings = get_settings()
    large = EMBEDDED.get(settings.large)
    if large is None or large.installed():  # a large model named by path or spec, or the embedded one installed
        return settings.large
    return settings.model


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z'\-]*|\d[\d:.,/\-]*", text)


def title_case(words: list[str]) -> bool:
    """Most words capitalised ("Team Lunch Update"): there a capital letter says nothing of a name."""
    letters = [w for w in words if w[0].isalpha()]
    return len(letters) >= 2 and sum(w[0].isupper() for w in letters) > len(letters) / 2


def invented_facts(draft: EmailDraft, box: str) -> list[str]:
    """Numbers, date words and names in the draft that the box does not contain. A name is a capitalised
    word that does not start its sentence, except in a title-cased subject ("Team Lunch Update"), where
    numbers and date words are still checked but capitals are not taken for names (a name in such a subject
    goes unseen; the greeting and the body are always checked)."""
    known = {w.lower().strip(".,") for w in _words(box)}
    found = []
    for is_subject, text in ((True, draft.subject), (False, draft.greeting), (False, draft.body)):
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
            words = _words(sentence)
            titled = is_subject and title_case(words)  # "Hi John," is not a title
            for i, w in enumerate(words):
                low = w.lower().strip(".,")
                is_number = w[0].isdigit()
                is_date = low in DATE_WORDS and w[0].isupper()  # not the verb 'may' or 'march'
                is_name = w[0].isupper() and i > 0 and low not in COMMON and not titled
                if (is_number or is_date or is_name) and low not in known and low not in found:
                    found.append(low)
    return found


def no_invented_facts(draft: EmailDraft, inputs: dict[str, Any]) -> tuple[bool, str]:
    extra = invented_facts(draft, inputs["box"])
    if extra:
        return False, f"uses facts that are not in the box: {', '.join(extra)}; leave them out"
    return True, "every number, date and name comes from the box"


def good_length(draft: EmailDraft) -> tuple[bool, str]:
    body, subject = len(draft.body.split()), len(draft.subject.split())
    if not 15 <= body <= 200:
        return False, f"the body has {body} words; write 15 to 200"
    if not 1 <= subject <= 12:
        return False, f"the subject has {subject} words; write 1 to 12"
    return True, f"body {body} words, subject {subject} words"


def has_greeting(draft: EmailDraft) -> tuple[bool, str]:
    ok = draft.greeting.strip().lower().startswith(GREETINGS)
    return ok, "greets the reader" if ok else f"the greeting {draft.greeting!r} should start with Hi, Hello or Dear"


def has_sign_off(draft: EmailDraft) -> tuple[bool, str]:
    words = len(draft.sign_off.split())
    ok = 1 <= words <= 6
    return ok, "signs off" if ok else "add a short sign-off such as 'Best regards,'"


class WriteEmail(Predict):
    """The short box program: ``WriteEmail(model=...)(box="Ana, lunch moved to Friday, warm")``."""

    runaway = staticmethod(repeats)  # a streamed draft that loops is stopped there, then repaired

    def __init__(self, model: Any = None, attempts: int = 3) -> None:
        super().__init__(
            Signature(EmailBrief, EmailDraft, INSTRUCTIONS),
            model=model,
            requirements=[
                Check(good_length, "length: 15-200 word body, short subject"),
                Check(no_invented_facts, "no facts from outside the box"),
                Check(has_greeting, "a greeting"),
                Check(has_sign_off, "a sign-off"),
            ],
            strategy=Repair(attempts),
            max_tokens=MAX_TOKENS,
            name="write_email",
        )

    def backend(self) -> Backend:
        """The program's model, or the best email writer installed (``writer_model``)."""
        return get_model(self.model if self.model is not None else writer_model())


def writer_label(program: Predict) -> str:
    """How the page names the model that drafts: for a ``WriteEmail`` that picked the distilled writer,
    the writer with its base, teacher and score (from its report); else the model's id."""
    if not (
        isinstance(program, WriteEmail) and program.model is None and writer_model() == str(distilled_writer_path())
    ):
        return program.backend().model_id
    report = read_report()
    if report is None:
        return f"the distilled email writer ({distilled_writer_path()})"
    evaluation = report["evaluation"]
    return (
        f"the distilled email writer: {report['student']} taught by {report['teacher']} "
        f"(passed the checks on {evaluation['student']['checks_passed']}/{evaluation['boxes']} held-out boxes)"
    )
