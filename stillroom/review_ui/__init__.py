"""review_ui stage: the keyboard-first review web app (`stillroom review`); see docs/review.md.

Imports of FastAPI and friends live in `app.py` and below, so `stillroom --help` stays light.
"""
