"""HTML pages (zh-CN) rendered by maps/."""

from fastapi import APIRouter

router = APIRouter(tags=["pages"])
