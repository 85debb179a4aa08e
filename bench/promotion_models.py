"""Models folders for the hot-path A/B of promotion (issue 27): the committed iris-knn with a
copy of its version as a second version, served as a canary (50/50) or as a shadow, each
without and with a `promotion` block (a rule active: the promoter tallies the new rows at
every poll).

    python bench/promotion_models.py --out /tmp/ab-promotion
    python bench/ab.py --models iris-knn --rounds 6 \\
        --old-env SYNERGY_MODELS_DIR=/tmp/ab-promotion/canary-plain \\
        --new-env SYNERGY_MODELS_DIR=/tmp/ab-promotion/canary-rule \\
        --old-env SYNERGY_PROMOTION_POLL_S=1 --new-env SYNERGY_PROMOTION_POLL_S=1

(and the same with `shadow-plain` / `shadow-rule`). Goal: new/old within 5% (`--min-ratio
0.95`, ab.py's default).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES = {"min_feedback_rows": 200, "max_accuracy_drop": 0.02}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="iris-knn")
    args = parser.parse_args()
    source = ROOT / "models" / args.model
    version = max(int(p.name) for p in source.iterdir() if p.name.isdigit())
    routes = {
        "canary": {"traffic": {"stable": 1, "canary": 1}},
        "shadow": {"traffic": {"stable": 1}, "shadow": "canary"},
    }
    for kind, route in routes.items():
        for variant in ("plain", "rule"):
            folder = args.out / f"{kind}-{variant}" / args.model
            shutil.rmtree(folder, ignore_errors=True)
            for v in (version, version + 1):
                shutil.copytree(source / str(version), folder / str(v))
                card = json.loads((folder / str(v) / "card.json").read_text())
                card["version"] = v  # a card names its own version
                (folder / str(v) / "card.json").write_text(json.dumps(card))
            config = {"labels": {"stable": version, "canary": version + 1}, **route}
            if variant == "rule":
                config["promotion"] = RULES
            (folder / "config.json").write_text(json.dumps(config, indent=2))
            print(folder.parent)


if __name__ == "__main__":
    main()
