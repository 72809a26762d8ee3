"""The sticker recommendation HTTP service: `python -m service` (FastAPI + uvicorn)."""

__version__ = "0.1.0"
