"""routing routes (dispatcher)."""

from fastapi import APIRouter

router = APIRouter(tags=["dispatch"])
