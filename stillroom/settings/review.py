"""[review] settings. Owned by the review stage; add fields here (each with a description: it becomes the comment in stillroom.toml)."""

from __future__ import annotations

from pydantic import Field

from stillroom.settings.base import Section


class ReviewSettings(Section):
    host: str = Field("127.0.0.1", description="Address `stillroom review` binds to; loopback unless you mean to share it.")
    port: int = Field(8765, ge=1, le=65535, description="Port `stillroom review` listens on.")
    lease_s: int = Field(300, ge=1, description="Seconds a reviewer holds an item; an abandoned item returns to the queue after this.")
    double_review_share: float = Field(
        0.0, ge=0, le=1,
        description="Share of queued items (e.g. 0.1) that two different reviewers must decide; the dashboard shows their agreement.",
    )
    reject_reasons: list[str] = Field(
        ["wrong", "unsupported", "incomplete", "off_topic", "bad_format", "duplicate", "unsafe", "other"],
        description="Reason codes for a rejection; the reviewer presses r then the digit (1 = first).",
    )
    session_idle_minutes: int = Field(120, ge=1, description="A login ends after this many minutes without a request.")
    session_max_hours: int = Field(12, ge=1, description="A login ends this many hours after it began, however busy.")
    login_max_failures: int = Field(5, ge=1, description="Wrong passwords allowed per user name (and per client) in the window before logins are refused.")
    login_window_s: int = Field(300, ge=1, description="Seconds over which wrong passwords are counted (and then refused).")
    idle_close_ms: int = Field(
        60000, ge=0,
        description="The server closes the database this long after its last request; a batch run or CLI command that waits "
                    "for it gets it within 20 ms anyway (reopening costs a reviewer 30-130 ms, so keep it above their pauses).",
    )
    db_wait_s: float = Field(
        30.0, gt=0, description="Longest a request waits for the database while a batch run holds it, then reports busy.",
    )
    upload_max_mb: int = Field(50, ge=1, description="Largest file an admin may upload on the Runs page.")
    upload_types: list[str] = Field(
        ["pdf", "txt", "md", "html", "docx"], description="File types the Runs page accepts (by extension and content)."
    )
