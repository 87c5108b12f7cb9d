"""PNG charts (matplotlib, headless) for the reports: trends and rankings, labelled in Chinese."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib import font_manager

# Debian's fonts-noto-cjk; the others are what Windows and macOS desktops carry.
CJK_FONTS = ["Noto Sans CJK SC", "Noto Sans CJK JP", "Microsoft YaHei", "PingFang SC",
             "WenQuanYi Zen Hei", "SimHei"]


def _font() -> list[str]:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return [name for name in CJK_FONTS if name in installed] + ["DejaVu Sans"]


def _text(value: object) -> str:
    """`value` as literal text: `$..$` would start mathtext, and a bad formula fails the chart."""
    return str(value).replace("$", r"\$")


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def trend_chart(trend: pd.DataFrame, *, title: str) -> bytes:
    """Bars of intake and closures per period with the on-time rate as a line, as PNG bytes.

    `trend` has columns label, accepted, closed, on_time_rate (percent or None) and
    open_overdue.

    Examples
    --------
    >>> png = trend_chart(pd.DataFrame({"label": ["5月6日", "5月13日"], "accepted": [10, 12],
    ...     "closed": [8, 11], "on_time_rate": [80.0, None], "open_overdue": [1, 0]}), title="趋势")
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    with plt.rc_context({"font.sans-serif": _font(), "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(8, 3.6))
        x = range(len(trend))
        width = 0.38
        ax.bar([i - width / 2 for i in x], trend["accepted"], width, label="受理数",
               color="#74a9cf")
        ax.bar([i + width / 2 for i in x], trend["closed"], width, label="结案数",
               color="#2b8cbe")
        ax.set_xticks(list(x), [_text(v) for v in trend["label"]], rotation=0, fontsize=8)
        ax.set_ylabel("案件数")
        rate_ax = ax.twinx()
        rates = pd.to_numeric(trend["on_time_rate"], errors="coerce")
        rate_ax.plot(list(x), rates, color="#e6550d", marker="o", label="按期结案率 (%)")
        rate_ax.set_ylim(0, 105)
        rate_ax.set_ylabel("按期结案率 (%)")
        if "open_overdue" in trend:
            rate_ax.plot([], [], " ", label=f"当前超期未结 {int(trend['open_overdue'].iloc[-1])} 件"
                         if len(trend) else "")
        handles = ax.get_legend_handles_labels()
        rate_handles = rate_ax.get_legend_handles_labels()
        ax.legend(handles[0] + rate_handles[0], handles[1] + rate_handles[1],
                  loc="upper center", fontsize=8, ncol=4, frameon=False,
                  bbox_to_anchor=(0.5, -0.1))
        ax.set_title(_text(title), fontsize=11)
        return _png(fig)


def ranking_chart(table: pd.DataFrame, *, title: str, rate: str = "on_time_rate",
                  label: str = "按期结案率 (%)") -> bytes:
    """Horizontal bars of `rate` per group (best on top), as PNG bytes.

    Examples
    --------
    >>> png = ranking_chart(pd.DataFrame({"name": ["历下区", "市中区"],
    ...     "on_time_rate": [91.5, 88.0]}), title="区排名")
    >>> len(png) > 1000
    True
    """
    data = table[["name", rate]].copy()
    data[rate] = pd.to_numeric(data[rate], errors="coerce").fillna(0)
    data = data.iloc[::-1]  # barh draws bottom-up: the first rank on top
    with plt.rc_context({"font.sans-serif": _font(), "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(8, max(1.6, 0.32 * len(data) + 0.8)))
        names = [_text(n) if n is not None else "未定" for n in data["name"]]
        bars = ax.barh(names, data[rate], color="#31a354")
        ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
        ax.set_xlim(0, 110)
        ax.set_xlabel(_text(label))
        ax.set_title(_text(title), fontsize=11)
        return _png(fig)
