"""The texts resource under /api: a custom char_lm text stored once, named by its content hash.

What this is: POST /api/texts {"text"} -> {"id", "chars"} and GET /api/texts/{id} -> {"id",
"text", "chars"}. The id is the first ID_CHARS hex digits of the SHA-256 of the text's UTF-8, so
saving the same text again answers the same id and stores nothing new. The dashboard's form puts
`text=@<id>` in its URL instead of the text itself (a 1 MB text made a 1.19 MB link) and fetches
the text when it opens such a link. A text is at most LIMITS.text_chars characters, the limit of
a char_lm run's text.

What this is not: a run's config (a run keeps its own copy of its text in its config).
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from app.services.schemas import LIMITS
from app.web.deps import StorageDep, require_token

ID_CHARS = 32  # hex digits of SHA-256 kept: 128 bits, no collision by chance or by effort

router = APIRouter(prefix="/api", tags=["texts"], dependencies=[Depends(require_token)])


class TextCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=LIMITS.text_chars)]


class TextStored(BaseModel):
    id: str  # the first ID_CHARS hex digits of the text's SHA-256
    chars: int


class TextPublic(TextStored):
    text: str


def content_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:ID_CHARS]


TextId = Annotated[
    str, Path(pattern=f"^[0-9a-f]{{{ID_CHARS}}}$", description="a text's id (POST /api/texts)")
]


@router.post("/texts", status_code=201)
def save_text(body: TextCreate, storage: StorageDep) -> TextStored:
    """Store a text (once: the same text always gets the same id) and answer its id."""
    key = content_id(body.text)
    storage.save_text(key, body.text)
    return TextStored(id=key, chars=len(body.text))


@router.get("/texts/{text_id}", responses={404: {"description": "no text has this id"}})
def get_text(text_id: TextId, storage: StorageDep) -> TextPublic:
    text = storage.text(text_id)
    if text is None:
        raise HTTPException(404, f"there is no text with id {text_id!r}")
    return TextPublic(id=text_id, text=text, chars=len(text))
