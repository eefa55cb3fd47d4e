"""The digits demonstration of published-model workflows: pre-train CLIP on the embedded digits,
then LiT (its image tower locked, a text tower from scratch) and CWCL with that tower frozen
(its image-image similarities weight the soft targets), each a 600-step CLI run:

  python experiments/lit_digits.py [root]      # root: workdirs (default /tmp/lit_digits)

A workdir that already holds summary.json is read, not retrained. Writes
experiments/results/lit_digits.{json,md}.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = [  # (name, config argument); the second and third start from the first's workdir
    ("clip (pre-train)", "configs/digits_clip.py"),
    ("lit (image tower locked)", "configs/lit.py:pretrained={clip}"),
    ("cwcl (image tower frozen)", "configs/lit.py:pretrained={clip},loss=cwcl"),
]
# The loss zoo's cwcl row (README): the same loss with no pretrained tower (self-distilled).
BEFORE = {"cwcl (image tower frozen)": 0.112}


def main(root: Path):
    results = []
    workdirs = [root / n for n in ("clip", "lit_clip", "lit_cwcl")]
    for (name, arg), workdir in zip(RUNS, workdirs):
        summary = workdir / "summary.json"
        if not summary.exists():
            subprocess.run([sys.executable, "-m", "contrastive.main",
                            f"--config={arg.format(clip=workdirs[0])}", f"--workdir={workdir}",
                            "--config.progress_bar=False"], cwd=ROOT, check=True)
        s = json.loads(summary.read_text())
        results.append(dict(run=name, zero_shot_top1=s["zero_shot_top1"], loss=s["loss"],
                            knn_top1=s["knn_top1"], wall_time_s=s["wall_time_s"],
                            before=BEFORE.get(name)))
    out = ROOT / "experiments" / "results"
    (out / "lit_digits.json").write_text(json.dumps(results, indent=1) + "\n")
    rows = ["| run | zero-shot top-1 | before (loss zoo) | 1-NN top-1 | final loss | wall (s) |",
            "|---|---:|---:|---:|---:|---:|"]
    rows += [f"| {r['run']} | {r['zero_shot_top1']:.3f} | "
             f"{'' if r['before'] is None else r['before']} | {r['knn_top1']:.3f} | "
             f"{r['loss']:.3f} | {r['wall_time_s']:.0f} |" for r in results]
    (out / "lit_digits.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/lit_digits"))
