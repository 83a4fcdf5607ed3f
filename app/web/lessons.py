"""GET /api/lessons/{name}/findings: what a /learn demo's runs showed, against what its lesson says.

What this is: one thin read-only route. It checks that the runs are the lesson's demo (one per
panel, in panel order, each with its panel's config) and that they have all ended as a demo ends
(Lesson.findings_after: completed, or diverged), reads their stored numbers (claims.run_numbers)
and answers the lesson's claim over them (claims.findings): the sentence the page prints under
the demo and whether the lesson's text holds for these numbers.

What this is not: the claims themselves (app/services/claims.py) or the lessons
(app/services/lessons.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel

from app.services import claims
from app.services.lessons import Lesson, LessonRun, lessons
from app.services.records import RunRecord
from app.services.schemas import RunCreate
from app.web.deps import StorageDep, require_token

router = APIRouter(prefix="/api", tags=["lessons"], dependencies=[Depends(require_token)])

LESSONS: dict[str, Lesson] = {lesson.name: lesson for lesson in lessons()}


class LessonFindings(BaseModel):
    lesson: str
    holds: bool  # the lesson's text holds for these runs' numbers
    sentence: str  # what the numbers show, with the numbers
    failed: list[str]  # the parts of the lesson's claim that did not hold, if any


def _panel_run(record: RunRecord | None, run_id: str, lesson: Lesson, panel: LessonRun) -> RunRecord:
    """The record, if it is the panel's run and has ended as a demo does; else a 4xx sentence."""
    if record is None:
        raise HTTPException(404, f"there is no run with id {run_id!r}")
    same = ("name", "tags")
    if record.kind != "built-in" or RunCreate.model_validate(record.config).model_dump(
        exclude=set(same)
    ) != panel.config.model_dump(exclude=set(same)):
        raise HTTPException(
            422, f"run {run_id} is not the panel {panel.title!r} of this lesson: its config differs"
        )
    if record.status not in lesson.findings_after:
        raise HTTPException(
            409,
            f"run {run_id} is {record.status}: the findings come when the demo's runs have run their course",
        )
    return record


@router.get(
    "/lessons/{name}/findings",
    responses={
        404: {"description": "no such lesson or run"},
        409: {"description": "a run has not run its course"},
        422: {"description": "the runs are not the lesson's demo"},
    },
)
def lesson_findings(
    name: Annotated[str, Path(max_length=64, description="the lesson, as the catalog names it")],
    storage: StorageDep,
    runs: Annotated[
        str,
        Query(
            pattern=r"^[0-9A-Za-z_-]{1,64}(,[0-9A-Za-z_-]{1,64}){0,7}$",
            description="the demo's run ids, comma-separated, in the lesson's panel order",
        ),
    ],
) -> LessonFindings:
    """The lesson's claim checked against its demo's runs: a sentence with the measured numbers."""
    lesson = LESSONS.get(name)
    if lesson is None:
        raise HTTPException(404, f"there is no lesson {name!r}; the lessons are {', '.join(LESSONS)}")
    ids = runs.split(",")
    if len(ids) != len(lesson.runs):
        raise HTTPException(
            422, f"lesson {name!r} has {len(lesson.runs)} runs: give their ids in panel order, not {len(ids)}"
        )
    records = [
        _panel_run(storage.get_run(i), i, lesson, panel) for i, panel in zip(ids, lesson.runs, strict=True)
    ]
    try:
        numbers = [
            claims.run_numbers(storage, r, panel.title) for r, panel in zip(records, lesson.runs, strict=True)
        ]
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from exc
    finding = claims.findings(lesson, numbers)
    return LessonFindings(lesson=name, holds=finding.holds, sentence=finding.sentence, failed=finding.failed)
