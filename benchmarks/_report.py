"""A figure: one ratio measured against its baseline, with its target."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Figure:
    name: str
    measured: str
    baseline: str
    ratio: float
    target: float
    aim: float
    unit: str = "×"
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.ratio > self.target:
            return "MISSED"
        if self.aim == self.target:
            return "met"
        return "aim met" if self.ratio <= self.aim else "target met"

    def cells(self) -> list[str]:
        fmt = {"ms": lambda v: f"{v:.0f} ms", "KB": lambda v: f"{v:.2f} KB"}.get(self.unit, lambda v: f"{v:.2f}×")
        return [self.name, self.measured, self.baseline, fmt(self.ratio), f"≤ {fmt(self.target)}",
                fmt(self.aim), self.verdict]


HEADER = ["figure", "pipeline_nb", "baseline (side by side)", "ratio", "target", "aim", ""]


def table(figures: list[Figure]) -> str:
    rows = [HEADER] + [f.cells() for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + ([""] + notes if notes else []))
