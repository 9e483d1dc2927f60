"""Folium elements of the outreach maps, and the small script and stylesheet they share.

Folium's own ``GeoJson`` embeds one copy of the geometry per layer and one style per
feature; with nine choropleth layers over 20,000 areas that is far beyond 15 MB. Here the
areas are embedded once (``AreaData``) and each choropleth is a light ``ChoroplethView``: a
base layer of the layer control that recolours the shared polygons from pre-computed
classes. Flag outlines reuse the same geometry. Everything a user typed (names, codes)
reaches the page JSON-encoded and is HTML-escaped before display.

Folium re-parses each element's rendered output as a Jinja template, so every piece of
data is passed through :func:`js_value`, which also neutralises ``{{``, ``{%`` and ``{#``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from folium.elements import MacroElement
from folium.map import Layer
from folium.template import Template

from app._map_script import SCRIPT, STYLE

# Panes (z-index between Leaflet's overlay pane, 400, and its marker pane, 600).
PANE_AREAS = "outreach-areas"
PANE_CATCHMENTS = "outreach-catchments"
PANE_FLAGS = "outreach-flags"
PANE_CLUSTERS = "outreach-clusters"
PANE_POINTS = "outreach-points"
PANES = {
    PANE_AREAS: 410,
    PANE_CATCHMENTS: 420,
    PANE_FLAGS: 430,
    PANE_CLUSTERS: 440,
    PANE_POINTS: 450,
}

_JINJA_OPENERS = re.compile(r"\{(?=[{%#])")


def js_value(value: Any) -> str:
    """``value`` as compact JSON, safe inside ``<script>`` and through Folium's Jinja pass.

    ``<``, ``>``, ``&`` and ``'`` are written as ``\\u`` escapes (as folium does), so no
    text can close the script element or open an HTML comment.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # "/" as "\/" too: user text such as "https://..." then never reads as a URL in
    # the page, so the offline check in maps._render cannot be tripped by data.
    escapes = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027"), ("/", "\\/"))
    for char, escape in escapes:
        text = text.replace(char, escape)
    return jinja_safe(text)


def jinja_safe(json_text: str) -> str:
    """Escape ``{`` where it would open a Jinja tag. Valid only for JSON text, where such a
    brace can only be inside a string (object keys are quoted), so ``\\u007b`` is exact."""
    return _JINJA_OPENERS.sub(r"\\u007b", json_text)


class Library(MacroElement):
    """The shared stylesheet and script; add it to the map before the other elements."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}<style>{{ this.style }}</style>{% endmacro %}
        {% macro script(this, kwargs) %}{{ this.script }}{% endmacro %}
        """
    )

    def __init__(self) -> None:
        super().__init__()
        self._name = "OutreachLibrary"
        self.style = STYLE
        self.script = SCRIPT


class AreaData(MacroElement):
    """The areas' geometry and columns, embedded once as a JSON script block.

    ``payload`` is JSON text ``{"geometries": [...], "columns": {...}, "clusters": {...}}``
    already made safe with :func:`jinja_safe` and with ``<`` escaped.
    """

    _template = Template(
        """
        {% macro html(this, kwargs) %}<script type="application/json" id="{{ this.get_name() }}_json">{{ this.payload }}</script>{% endmacro %}
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = Outreach.areas({{ this._parent.get_name() }},
                JSON.parse(document.getElementById("{{ this.get_name() }}_json").textContent),
                {{ this.options|tojavascript }});
        {% endmacro %}
        """
    )

    def __init__(self, payload: str, *, fill_opacity: float, weight: float) -> None:
        super().__init__()
        self._name = "AreaData"
        self.payload = jinja_safe(payload.replace("<", "\\u003c"))
        self.options = {
            "pane": PANE_AREAS,
            "fillOpacity": fill_opacity,
            "weight": weight,
            "stroke": "#ffffff",
            "missing": "#c8c8c8",
        }


class ChoroplethView(Layer):
    """One choropleth of the shared areas, a base layer (radio button) of the control."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = Outreach.view({{ this.areas.get_name() }},
                {{ this.key_js }}, {{ this.colours_js }}, {{ this.legend_js }});
        {% endmacro %}
        """
    )

    def __init__(
        self,
        areas: AreaData,
        *,
        key: str,
        name: str,
        colours: list[str],
        legend_html: str,
        show: bool,
    ) -> None:
        super().__init__(name=name, overlay=False, control=True, show=show)
        self._name = "ChoroplethView"
        self.areas = areas
        self.key_js = js_value(key)
        self.colours_js = js_value(colours)
        self.legend_js = js_value(legend_html)


class FlagOutlines(Layer):
    """Outlines of the flagged areas, coloured by flag type (an overlay)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = Outreach.flags({{ this.areas.get_name() }},
                {{ this.colours_js }}, {{ this.weights_js }}, {{ this.legend_js }});
        {% endmacro %}
        """
    )

    def __init__(
        self,
        areas: AreaData,
        *,
        name: str,
        colours: list[str],
        weights: list[float],
        legend_html: str,
        show: bool,
    ) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "FlagOutlines"
        self.areas = areas
        self.colours_js = js_value(colours)
        self.weights_js = js_value(weights)
        self.legend_js = js_value(legend_html)


class JsLayer(Layer):
    """An overlay built by one ``Outreach.<function>(map, ...args)`` call.

    Used for cluster outlines, catchments and existing sites, whose data are small
    enough to pass inline; ``args`` are JSON-encoded with :func:`js_value`.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = Outreach.{{ this.function }}({{ this._parent.get_name() }}, {{ this.args_js }});
        {% endmacro %}
        """
    )

    def __init__(self, function: str, *args: Any, name: str, show: bool = True) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "OutreachLayer"
        self.function = function
        self.args_js = ", ".join(js_value(a) for a in args)


class TitleBox(MacroElement):
    """The map's title, subtitle and notes (``html`` must already be escaped)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            Outreach.title({{ this._parent.get_name() }}, {{ this.html_js }});
        {% endmacro %}
        """
    )

    def __init__(self, html: str) -> None:
        super().__init__()
        self._name = "TitleBox"
        self.html_js = js_value(html)


class Bindings(MacroElement):
    """A popup (HTML, already escaped) and a permanent label for the parent marker."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            {{ this._parent.get_name() }}.bindPopup({{ this.popup_js }}, {maxWidth: 360});
            {{ this._parent.get_name() }}.bindTooltip({{ this.label_js }},
                {permanent: true, direction: "right", offset: [10, -22], className: "or-order"});
        {% endmacro %}
        """
    )

    def __init__(self, popup_html: str, label: str) -> None:
        super().__init__()
        self._name = "Bindings"
        self.popup_js = js_value(popup_html)
        self.label_js = js_value(label)


class LegendFor(MacroElement):
    """A legend block shown while the parent layer (e.g. a FeatureGroup) is on the map."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            Outreach.attach({{ this._parent._parent.get_name() }}, {{ this._parent.get_name() }},
                {{ this.id_js }}, {{ this.legend_js }});
        {% endmacro %}
        """
    )

    def __init__(self, legend_id: str, legend_html: str) -> None:
        super().__init__()
        self._name = "LegendFor"
        self.id_js = js_value(legend_id)
        self.legend_js = js_value(legend_html)
