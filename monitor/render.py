"""The self-contained HTML report: a summary table and inline SVG plots (no external files, no JS).

Plots are matplotlib (Agg) figures saved as SVG and inlined, so the report can be mailed, stored
in S3 and opened anywhere. Each drifted feature gets baseline vs production over the same bins;
volume and mean prediction over time come from the capture timestamps.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3}.drift{background:#fde2e1}.ok{background:#e6f4ea}
figure{display:inline-block;margin:.5rem}figcaption{font-size:.9rem}
"""


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], row_classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{row_classes[i]}"' if row_classes else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def distribution_plot(feature: dict[str, Any]) -> str:
    """Baseline vs production fractions over the test's bins (deciles or categories)."""
    bins = feature["bins"]
    fig, ax = plt.subplots(figsize=(6, 3))
    positions = range(len(bins))
    width = 0.4
    ax.bar([p - width / 2 for p in positions], feature["baseline_fractions"], width, label="baseline (training)")
    ax.bar([p + width / 2 for p in positions], feature["production_fractions"], width, label="production")
    ax.set_xticks(list(positions), bins, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    ax.set_title(f"{feature['name']} ({feature['test']})")
    ax.legend(fontsize=7)
    return _svg(fig)


def timeline_plot(points: list[dict[str, Any]]) -> str:
    times = [p["period"][:13].replace("T", " ") for p in points]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(range(len(points)), [p["count"] for p in points], color="#9bb7d4", label="predictions")
    ax.set_ylabel("predictions per period")
    ax.set_xticks(range(len(points)), times, rotation=45, ha="right", fontsize=6)
    ax2 = ax.twinx()
    ax2.plot(range(len(points)), [p["mean_probability"] for p in points], color="#c0392b", marker=".")
    ax2.set_ylabel("mean predicted probability")
    ax.set_title("Volume and mean prediction over time")
    return _svg(fig)


def figure(svg: str, caption: str, kind: str, name: str = "") -> str:
    attrs = f'class="plot" data-kind="{html.escape(kind)}" data-feature="{html.escape(name)}"'
    return f"<figure {attrs}>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def render_drift_report(report: dict[str, Any]) -> str:
    """``report`` is ``DriftReport.to_dict()`` (so a stored report.json can be re-rendered)."""
    model = report["model"]
    verdict = []
    verdict.append("DATA DRIFT" if report["dataset_drift"] else "no data drift")
    verdict.append("CONCEPT DRIFT" if report["concept_drift"] else "no concept drift")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Drift report {html.escape(model['name'])} v{model['version']}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Drift report: {html.escape(model['name'])} version {model['version']}</h1>",
        f"<p id='verdict'><strong>{' / '.join(verdict)}</strong> - {report['rows']} production rows, "
        f"generated {html.escape(report['generated_at'])}</p>",
    ]
    if report["retrain"]["warranted"]:
        parts.append("<p>Retrain warranted: " + html.escape("; ".join(report["retrain"]["reasons"])) + "</p>")
    features = report["features"]
    parts.append("<h2>Features</h2>")
    parts.append(
        table(
            [
                "feature",
                "kind",
                "test",
                "statistic",
                "p-value",
                "effect",
                "PSI",
                "null rate base",
                "null rate prod",
                "unseen share",
                "drift",
                "why",
            ],
            [
                [
                    f["name"],
                    f["kind"],
                    f["test"],
                    f["statistic"],
                    f["p_value"],
                    f["effect"],
                    f["psi"],
                    f["null_rate_baseline"],
                    f["null_rate_production"],
                    f["unseen_share"],
                    f["drift"],
                    "; ".join(f["reasons"]),
                ]
                for f in features
            ],
            ["drift" if f["drift"] else "ok" for f in features],
        ).replace("<table>", "<table id='summary'>", 1)
    )
    adversarial = report.get("adversarial")
    if adversarial:
        parts.append("<h2>Multivariate (adversarial classifier)</h2>")
        parts.append(
            table(
                ["ROC AUC", "threshold", "drift", "reference rows", "production rows", "separating features"],
                [
                    [
                        adversarial["auc"],
                        adversarial["threshold"],
                        adversarial["drift"],
                        adversarial["rows_reference"],
                        adversarial["rows_production"],
                        ", ".join(f"{t['feature']} ({t['auc_drop']:.3f})" for t in adversarial["top_features"]),
                    ]
                ],
            )
        )
    concept = report["concept"]
    parts.append("<h2>Concept drift (live metrics vs holdout)</h2>")
    if concept["evaluated"]:
        parts.append(
            table(
                ["metric", "holdout", "live"],
                [[k, concept["holdout"].get(k), concept["live"].get(k)] for k in concept["holdout"]],
            )
        )
        parts.append(f"<p>{html.escape('; '.join(concept['reasons']) or 'within thresholds')}</p>")
    else:
        parts.append(f"<p>{html.escape(concept['note'])}</p>")
    if report.get("privacy"):  # capture privacy hook (monitor/privacy.py)
        parts.append("<h2>Capture privacy</h2>")
        parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in report["privacy"]) + "</ul>")
    if report["violations"]:
        parts.append("<h2>Schema violations</h2>")
        parts.append(
            table(
                ["feature", "kind", "count", "example", "expected"],
                [[v["feature"], v["kind"], v["count"], v["example"], v["expected"]] for v in report["violations"]],
            )
        )
    plots = [
        figure(distribution_plot(f), f"{f['name']}: " + "; ".join(f["reasons"]), "distribution", f["name"])
        for f in features
        if f["drift"] and f["bins"]
    ]
    prediction = report.get("prediction")
    if prediction and prediction["bins"]:
        plots.append(figure(distribution_plot(prediction), "predicted probability", "prediction", "probability"))
    if report["timeline"]:
        plots.append(figure(timeline_plot(report["timeline"]), "volume and mean prediction", "timeline"))
    if plots:
        parts.append("<h2>Plots</h2>" + "".join(plots))
    parts.append("<h2>Thresholds</h2>")
    parts.append(table(["setting", "value"], sorted(report["thresholds"].items())))
    parts.append("</body></html>")
    return "\n".join(parts)


def render_sensitivity(rows: list[dict[str, Any]], title: str) -> str:
    headers = list(rows[0]) if rows else []
    return "\n".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            table(headers, [[r[h] for h in headers] for r in rows]).replace("<table>", "<table id='sensitivity'>", 1),
            "</body></html>",
        ]
    )
