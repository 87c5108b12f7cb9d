"""`citygrid zones ...`: check a zone file against the rules, approve, retire, export."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from gis.platform.db import database_url, make_engine, transaction
from gis.platform.errors import CityGridError
from gis.platform.settings import Settings
from gis.zones import service
from gis.zones.errors import ZoneRulesError
from gis.zones.export import export_zones
from gis.zones.rules import ZoneSettings, load_rules

zones_app = typer.Typer(help="Stall zones: check, approve, export", no_args_is_help=True)
console = Console()


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {error}")
    if isinstance(error, ZoneRulesError):
        for v in error.violations:
            p = v["properties"]
            console.print(f"  [yellow]{p['rule']}[/yellow] {p['message_zh']} / {p['message_en']}")
    return typer.Exit(code=2)


@zones_app.command("rules")
def show_rules(
    path: Path = typer.Option(None, help="rules file (default CITYGRID_ZONES_RULES_FILE)"),
) -> None:
    """Print the rules in force (the file over the built-in defaults) as JSON."""
    try:
        rules = load_rules(path)
    except CityGridError as exc:
        raise _fail(exc) from exc
    console.print(f"# {path or ZoneSettings().rules_file}")
    print(json.dumps(rules.model_dump(mode="json"), ensure_ascii=False, indent=2))


@zones_app.command("check")
def check(feature_file: Path = typer.Argument(..., help="GeoJSON Feature of one zone"),
          store: bool = typer.Option(False, help="store it as a draft if it passes"),
          user: str = typer.Option("cli", help="recorded as the author")) -> None:
    """Check a zone Feature against the rules; exit 2 with the violations if it fails."""
    settings = Settings()
    try:
        feature = json.loads(feature_file.read_text(encoding="utf-8"))
        rules = load_rules()
        engine = make_engine(database_url(settings))
        with transaction(engine) as session:
            if store:
                zone = service.create_zone(session, feature=feature, changed_by=user,
                                           rules=rules, city=settings.city)
                console.print(f"stored draft zone #{zone['id']}")
                return
            _, _, result = service.check_feature(session, feature=feature, rules=rules,
                                                 city=settings.city)
            session.rollback()
        if not result.passed:
            raise ZoneRulesError([v.to_feature() for v in result.violations])
        console.print(f"[green]passes[/green]: {result.area_m2:.1f} m² in district "
                      f"{result.district_code}, grids {[c for c, _ in result.grids]}")
    except (CityGridError, json.JSONDecodeError, OSError) as exc:
        raise _fail(exc) from exc


@zones_app.command("approve")
def approve(zone_id: int, user: str = typer.Option("cli", help="reviewer name")) -> None:
    """Approve a draft zone after checking it again."""
    settings = Settings()
    try:
        with transaction(make_engine(database_url(settings))) as session:
            zone = service.approve_zone(session, zone_id=zone_id, changed_by=user,
                                        rules=load_rules(), city=settings.city)
    except CityGridError as exc:
        raise _fail(exc) from exc
    console.print(f"zone #{zone_id} approved (version {zone['properties']['version']})")


@zones_app.command("retire")
def retire(zone_id: int, user: str = typer.Option("cli", help="who retires it")) -> None:
    """Retire a zone; its versions stay."""
    try:
        with transaction(make_engine(database_url(Settings()))) as session:
            zone = service.retire_zone(session, zone_id=zone_id, changed_by=user)
    except CityGridError as exc:
        raise _fail(exc) from exc
    console.print(f"zone #{zone_id} retired (version {zone['properties']['version']})")


@zones_app.command("export")
def export(out: Path = typer.Argument(..., help="output file, .geojson or .gpkg")) -> None:
    """Export draft and approved zones (EPSG:4326)."""
    fmt = out.suffix.lstrip(".").lower()
    try:
        with transaction(make_engine(database_url(Settings()))) as session:
            body, _, _ = export_zones(session, fmt=fmt)
    except CityGridError as exc:
        raise _fail(exc) from exc
    out.write_bytes(body)
    console.print(f"wrote {out} ({len(body)} bytes)")
