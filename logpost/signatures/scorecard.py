"""The catalogue's scorecard over labelled logs (``make scorecard``, tests/test_scorecard.py).

Labels (``labels.jsonl``, one object per file): ``labels`` are the root ids, ``accept`` ids that are
also right; ``HEALTHY`` and ``OTHER`` are not signatures.

* recall: a labelled root id counts as found when it is among the file's findings;
* top finding right: the first finding's id is in labels + accept; for a HEALTHY file, no finding
  is at error or above; for an OTHER-only file, likewise (nothing in the taxonomy applies);
* precision per id: findings of that id on files whose labels + accept contain it / all its findings;
* errors on healthy: findings at error or above on HEALTHY files (the goal is zero).

Run: ``python3 -m logpost.signatures.scorecard [labels.jsonl]``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from logpost.model import Severity

NOT_SIGNATURES = frozenset({"HEALTHY", "OTHER"})
GOALS = {"recall": 0.95, "top": 0.90, "healthy_errors": 0}


@dataclass
class FileResult:
    file: str
    labels: tuple[str, ...]
    accept: tuple[str, ...]
    found: tuple[str, ...]
    severities: tuple[Severity, ...]
    top_right: bool
    missed: tuple[str, ...]


@dataclass
class Scorecard:
    files: list[FileResult] = field(default_factory=list)

    @property
    def labelled(self) -> int:
        return sum(len([i for i in f.labels if i not in NOT_SIGNATURES]) for f in self.files)

    @property
    def recalled(self) -> int:
        return sum(len([i for i in f.labels if i not in NOT_SIGNATURES and i in f.found]) for f in self.files)

    @property
    def recall(self) -> float:
        return self.recalled / self.labelled if self.labelled else 1.0

    @property
    def top(self) -> float:
        return sum(f.top_right for f in self.files) / len(self.files) if self.files else 1.0

    @property
    def healthy_errors(self) -> int:
        return sum(sum(s >= Severity.ERROR for s in f.severities) for f in self.files if "HEALTHY" in f.labels)

    def per_signature(self) -> dict[str, tuple[int, int, int, int]]:
        """id -> (labelled, recalled, findings, findings on files that list it)."""
        lab: Counter[str] = Counter()
        rec: Counter[str] = Counter()
        fnd: Counter[str] = Counter()
        ok: Counter[str] = Counter()
        for f in self.files:
            right = set(f.labels) | set(f.accept)
            for i in f.labels:
                if i not in NOT_SIGNATURES:
                    lab[i] += 1
                    rec[i] += i in f.found
            for i in f.found:
                fnd[i] += 1
                ok[i] += i in right
        ids = sorted(set(lab) | set(fnd))
        return {i: (lab[i], rec[i], fnd[i], ok[i]) for i in ids}

    def meets_goals(self) -> bool:
        return self.recall >= GOALS["recall"] and self.top >= GOALS["top"] \
            and self.healthy_errors <= GOALS["healthy_errors"]

    def table(self) -> str:
        rows = [f"{'id':<18} {'labelled':>8} {'found':>6} {'recall':>7} {'findings':>9} {'precision':>9}"]
        for i, (lab, rec, fnd, ok) in self.per_signature().items():
            recall = f"{rec / lab:.0%}" if lab else "-"
            prec = f"{ok / fnd:.0%}" if fnd else "-"
            rows.append(f"{i:<18} {lab:>8} {rec:>6} {recall:>7} {fnd:>9} {prec:>9}")
        rows.append("")
        rows.append(f"files {len(self.files)} · recall {self.recalled}/{self.labelled} = {self.recall:.1%} "
                    f"(goal {GOALS['recall']:.0%}) · top finding right {sum(f.top_right for f in self.files)}/"
                    f"{len(self.files)} = {self.top:.1%} (goal {GOALS['top']:.0%}) · error findings on healthy runs "
                    f"{self.healthy_errors} (goal 0)")
        wrong = [f for f in self.files if f.missed or not f.top_right]
        if wrong:
            rows.append("")
            rows.append("misses (file: labels -> findings):")
            for f in wrong:
                rows.append(f"  {f.file}: {'+'.join(f.labels)} -> {', '.join(f.found) or '(none)'}"
                            + ("" if f.top_right else "  [top wrong]"))
        return "\n".join(rows)


def score(labels_path: str | Path) -> Scorecard:
    """Analyze every labelled file next to ``labels_path`` and score the findings."""
    from logpost.analyze import analyze

    base = Path(labels_path).parent
    card = Scorecard()
    for raw in Path(labels_path).read_text(encoding="utf-8").splitlines():
        if not raw.strip():
            continue
        entry = json.loads(raw)
        labels = tuple(entry["labels"])
        accept = tuple(entry.get("accept") or ())
        pm = analyze(str(base / entry["file"]))
        found = tuple(f.id for f in pm.findings)
        sevs = tuple(f.severity for f in pm.findings)
        right = set(labels) | set(accept)
        if set(labels) <= NOT_SIGNATURES:
            top_right = not any(s >= Severity.ERROR for s in sevs)
        else:
            top_right = bool(found) and found[0] in right
        missed = tuple(i for i in labels if i not in NOT_SIGNATURES and i not in found)
        card.files.append(FileResult(entry["file"], labels, accept, found, sevs, top_right, missed))
    return card


def main(argv: list[str]) -> int:
    path = argv[0] if argv else str(Path(__file__).resolve().parents[2] / "fixtures" / "corpus" / "labels.jsonl")
    card = score(path)
    print(card.table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
