"""zones routes."""

from fastapi import APIRouter

router = APIRouter(tags=["zones"])
