"""analysis routes."""

from fastapi import APIRouter

router = APIRouter(tags=["analysis"])
