"""What a soak scenario found: its figures, the actions it took, and the invariant violations."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Report:
    name: str
    seed: int
    lines: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    housekept: list[str] = field(default_factory=list)  # what housekeeping cleaned during the run
    faults: Counter[str] = field(default_factory=Counter)
    figures: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        head = [f"== {self.name} (seed {self.seed})", *self.lines]
        found = list(dict.fromkeys(self.violations))  # a problem seen by both checks is listed once
        head.append(f"invariant violations: {len(found)}")
        head.extend(f"  - {v}" for v in found[:50])
        if len(found) > 50:
            head.append(f"  ... and {len(found) - 50} more")
        return "\n".join(head)

