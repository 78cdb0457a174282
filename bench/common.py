"""What every benchmark shares: sizes, results as ratios, and the real services."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Size = Literal["tiny", "full"]


class WrongResult(AssertionError):
    """A benchmark produced wrong results (lost or doubled runs): a failure, not a speed.

    ``figures``: what it measured before it found out, printed all the same (marked by
    the failure), since a wrong result under load is worth seeing next to its speed."""

    def __init__(self, message: str, figures: list[Figure] | None = None) -> None:
        super().__init__(message)
        self.figures = figures or []


@dataclass
class Figure:
    """One measured figure, next to its baseline from the same run on the same machine."""

    benchmark: str
    metric: str
    unit: str
    synmon: float
    baseline: float | None = None
    baseline_name: str = ""
    # How the ratio reads: "higher" when synmon/baseline should be large (rates),
    # "lower" when it should be small (costs, times, memory).
    better: Literal["higher", "lower"] = "higher"
    goal: str = ""
    met: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.synmon / self.baseline

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": None if self.ratio is None else round(self.ratio, 3)}


def table(figures: list[Figure]) -> str:
    header = f"{'benchmark':<12} {'metric':<38} {'synmon':>12} {'baseline':>12} {'ratio':>7}  goal"
    lines = [header, "-" * len(header)]
    for f in figures:
        baseline = "-" if f.baseline is None else f"{f.baseline:,.1f}"
        ratio = "-" if f.ratio is None else f"{f.ratio:.2f}"
        verdict = "" if f.met is None else (" ✓" if f.met else " ✗ not met")
        lines.append(
            f"{f.benchmark:<12} {f.metric + ' (' + f.unit + ')':<38} {f.synmon:>12,.1f} {baseline:>12} "
            f"{ratio:>7}  {f.goal}{verdict}"
        )
        if f.baseline_name:
            lines.append(f"{'':<12}   baseline: {f.baseline_name}")
        lines.extend(f"{'':<12}   {note}" for note in f.notes)
    return "\n".join(lines)
