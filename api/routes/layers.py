"""Generic read routes over the layer registry."""

from fastapi import APIRouter

router = APIRouter(tags=["layers"])
