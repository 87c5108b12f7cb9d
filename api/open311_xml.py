"""GeoReport v2 XML: the spec's element names, built with xml.etree so every value is escaped.

The XML carries exactly what the JSON carries: a document is made from the same response
models dumped in JSON mode (so dates, numbers and masked descriptions are the same strings),
`null` becomes an empty element as in the spec's examples, booleans `true`/`false`. Lists are
wrapped in the spec's plural element with one singular child per item
(`<service_requests><request>`, `<services><service>`, `<attributes><attribute>`,
`<values><value>`, `<endpoints><endpoint>`, `<formats><format>`, `<errors><error>`).

Characters that XML 1.0 cannot carry at all (control characters other than tab and line
breaks, which a reporter's app may still send in a description) are replaced by U+FFFD, so a
client's parser never fails on one request among a thousand.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from starlette.responses import Response

XML_MEDIA_TYPE = "text/xml"
# The child element of each list element the spec defines.
ITEM_OF = {"service_requests": "request", "services": "service", "attributes": "attribute",
           "values": "value", "endpoints": "endpoint", "formats": "format", "errors": "error"}
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class XMLResponse(Response):
    """A GeoReport v2 XML document (text/xml; charset=utf-8)."""

    media_type = XML_MEDIA_TYPE


def xml_text(value: Any) -> str:
    """The text of an element holding `value` (None: empty; booleans: true/false)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML_CHAR.sub("\ufffd", str(value))


def _fill(parent: Element, name: str, value: Any) -> None:
    node = SubElement(parent, name)
    if isinstance(value, dict):
        for key, item in value.items():
            _fill(node, key, item)
    elif isinstance(value, list):
        child = ITEM_OF.get(name)
        if child is None:  # a list the spec does not name: a programming error, not input
            raise ValueError(f"no GeoReport v2 element for the items of {name!r}")
        for item in value:
            _fill(node, child, item)
    else:
        node.text = xml_text(value)


def xml_document(root: str, data: Any) -> bytes:
    """UTF-8 XML document `<root>` of `data` (a dict, or a list of items named by ITEM_OF)."""
    holder = Element("_")
    _fill(holder, root, data)
    return tostring(holder[0], encoding="utf-8", xml_declaration=True)


def errors_document(status: int, description: str) -> bytes:
    """The spec's `<errors><error><code/><description/></error></errors>`."""
    return xml_document("errors", [{"code": status, "description": description}])
