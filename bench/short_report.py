"""The `short` scenario's part of the report: its section, its README line, and `short.png`
(jobs/min of the service against the cross-job batch size, beside the two bare loops)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPEEDUP_TARGET = 1.8  # issue 15: service jobs/min against bare sequential per-file jobs/min
WER_TARGET_POINTS = 0.5
LONE_TARGET = 1.05
RSS_TARGET_MIB = 1.5 * 1024


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _batch(run: dict[str, Any], default: int | None) -> str:
    size = run.get("cross_job_batch")
    if size is None:
        return f"worker default ({default})" if default is not None else "one job at a time"
    return str(size)


def _cpu(seconds: float | None, speedup: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.2f}" + (f" ({speedup:.2f}×)" if speedup is not None else "")


def best(sh: dict[str, Any]) -> dict[str, Any]:
    return max(sh["service"], key=lambda r: r["jobs_per_minute"])


def snippet_line(sh: dict[str, Any]) -> str:
    top = best(sh)
    seq = sh["bare_sequential"]
    return (
        f"- **Short clips** ({sh['jobs']} jobs of {sh['clip_seconds']['min']}–"
        f"{sh['clip_seconds']['max']} s speech, submitted at once): the service "
        f"{top['jobs_per_minute']:.1f} jobs/min (cross-job batch "
        f"{_batch(top, sh.get('cross_job_batch_default'))}) against "
        f"{seq['jobs_per_minute']:.1f} for bare faster-whisper's sequential loop "
        f"(**{top['speedup_vs_sequential']:.2f}×**; target ≥ {SPEEDUP_TARGET}×) and "
        f"{sh['bare_batched']['jobs_per_minute']:.1f} for its BatchedInferencePipeline per "
        f"file; WER {top['wer_vs_sequential']:.1%} against the sequential text; worker peak RSS "
        f"{top['worker_rss_peak_mib']:.0f} MiB; a lone job on the idle service "
        f"{lone_of(sh, top)['ratio']['hint']:.3f}× bare."
    )


def section(sh: dict[str, Any], images: str) -> str:
    default = sh.get("cross_job_batch_default")
    seq, bat = sh["bare_sequential"], sh["bare_batched"]
    out = ["## 6. A queue of short clips (issue 15)", ""]
    out.append(
        f"{sh['jobs']} jobs of speech between {sh['clip_seconds']['min']} and "
        f"{sh['clip_seconds']['max']} s (mean {sh['clip_seconds']['mean']} s; "
        + ", ".join(f"{n} {kind}" for kind, n in sh["kinds"].items())
        + ": real recordings (alsa-utils channel names, CMU ARCTIC) each after an espeak-ng "
        "sentence of varied text, and espeak-ng paragraphs), submitted at once through the "
        "API to one transcriber; against, "
        "in the same run and process, bare faster-whisper's per-file sequential loop and its "
        f"BatchedInferencePipeline per file (batch size {sh['bare_batch_size']}), same model, "
        "compute type, threads, beam size and VAD. A bare loop's latency of job i is when the "
        "loop has finished it, as if all were queued at once; the service's is from each "
        "job's submit to its result event. WER is over all clips (word errors / words) "
        "against the sequential loop's text, and against the words spoken. CPU seconds per "
        "job are the bare loop's process and the transcriber process (the API and projector "
        "apart): on shared cores they are steadier than wall-clock rates, which other work "
        "slows by whatever it takes."
    )
    if not sh.get("cross_job_batch_in_worker"):
        out += [
            "",
            (
                "The worker measured here has no cross-job batching (`STT_CROSS_JOB_BATCH` is not "
                "one of its settings): it runs one job at a time, so this is the baseline the "
                "batching is to beat. Re-run with `python -m bench short --batch-sizes 1,4,8` once "
                "it has."
            ),
        ]
    rows = [
        [
            "bare, sequential loop",
            f"{seq['jobs_per_minute']:.1f}",
            "1.00",
            f"{seq['latency_seconds']['p50']:.1f}",
            f"{seq['latency_seconds']['p95']:.1f}",
            "–",
            f"{seq['wer_vs_spoken']:.1%}",
            "–",
            _cpu(seq.get("cpu_seconds_per_job"), 1.0),
        ],
        [
            f"bare, BatchedInferencePipeline ({sh['bare_batch_size']})",
            f"{bat['jobs_per_minute']:.1f}",
            f"{sh['bare_batched_speedup_vs_sequential']:.2f}",
            f"{bat['latency_seconds']['p50']:.1f}",
            f"{bat['latency_seconds']['p95']:.1f}",
            f"{bat['wer_vs_sequential']:.1%}",
            f"{bat['wer_vs_spoken']:.1%}",
            "–",
            _cpu(bat.get("cpu_seconds_per_job"), sh.get("bare_batched_cpu_speedup_vs_sequential")),
        ],
    ]
    for run in sh["service"]:
        rows.append(
            [
                f"service, cross-job batch {_batch(run, default)}",
                f"{run['jobs_per_minute']:.1f}",
                f"**{run['speedup_vs_sequential']:.2f}**",
                f"{run['latency_seconds']['p50']:.1f}",
                f"{run['latency_seconds']['p95']:.1f}",
                f"{run['wer_vs_sequential']:.1%}",
                f"{run['wer_vs_spoken']:.1%}",
                f"{run['worker_rss_peak_mib']:.0f}",
                _cpu(run.get("worker_cpu_seconds_per_job"), run.get("cpu_speedup_vs_sequential")),
            ]
        )
    out += [
        "",
        _table(
            [
                "",
                "jobs/min",
                "× sequential",
                "latency p50 (s)",
                "p95 (s)",
                "WER vs sequential",
                "WER vs spoken",
                "worker peak RSS (MiB)",
                "CPU s/job (× sequential)",
            ],
            rows,
        ),
    ]
    top = best(sh)
    met = top["speedup_vs_sequential"] >= SPEEDUP_TARGET
    wer_ok = top["wer_vs_sequential"] * 100 <= WER_TARGET_POINTS
    rss_ok = top["worker_rss_peak_mib"] <= RSS_TARGET_MIB
    out += [
        "",
        (
            f"Targets: jobs/min ≥ {SPEEDUP_TARGET}× the sequential loop — "
            f"{'met' if met else 'missed'} ({top['speedup_vs_sequential']:.2f}×); WER within "
            f"{WER_TARGET_POINTS} points of the sequential text — {'met' if wer_ok else 'missed'} "
            f"({top['wer_vs_sequential'] * 100:.2f} points); worker peak RSS under 1.5 GiB — "
            f"{'met' if rss_ok else 'missed'} ({top['worker_rss_peak_mib']:.0f} MiB, idle "
            f"{top['worker_rss_idle_mib']:.0f} MiB)."
        ),
    ]
    kinds = top.get("wer_vs_sequential_by_kind")
    if kinds:
        bat_kinds = bat.get("wer_vs_sequential_by_kind", {})
        out += [
            "",
            "WER against the sequential text by kind of clip: service "
            + ", ".join(f"{k} {v:.1%}" for k, v in kinds.items())
            + "; bare BatchedInferencePipeline "
            + ", ".join(f"{k} {v:.1%}" for k, v in bat_kinds.items())
            + ".",
        ]
    out += [
        "",
        "A lone job on the idle service (after the queue has drained), against bare on "
        "the same file, back to back (medians of the per-repeat ratios; target ≤ "
        f"{LONE_TARGET} for the hint client):",
        "",
        _lone_table(sh["service"], default),
    ]
    rerun = sh.get("lone_rerun")
    if rerun:
        out += ["", rerun["note"], "", _lone_table(rerun["service"], default)]
    if len(sh["service"]) > 1:
        out += ["", f"![Jobs per minute against the cross-job batch size]({images}short.png)"]
    return "\n".join(out)


def _lone_table(runs: list[dict[str, Any]], default: int | None) -> str:
    rows = []
    for run in runs:
        lone = run["lone"]
        rows.append(
            [
                _batch(run, default),
                f"{lone['clip_seconds']:.0f} s",
                str(lone["repeats"]),
                f"{lone['bare_seconds']:.2f}",
                f"{lone['end_to_end_seconds']['hint']:.2f}",
                f"**{lone['ratio']['hint']:.3f}**",
                f"{lone['end_to_end_seconds']['ideal']:.2f}",
                f"{lone['ratio']['ideal']:.3f}",
            ]
        )
    header = ["cross-job batch", "clip", "repeats", "bare (s)", "hint client (s)", "ratio"]
    return _table([*header, "zero-delay poller (s)", "ratio"], rows)


def lone_of(sh: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The lone-job figures of `run`: from `lone_rerun` where it re-measured that batch size."""
    for again in (sh.get("lone_rerun") or {}).get("service", []):
        if again.get("cross_job_batch") == run.get("cross_job_batch"):
            return dict(again["lone"])
    return dict(run["lone"])


def plot(sh: dict[str, Any], path: Path) -> bool:
    """Jobs/min against the cross-job batch size; False (nothing drawn) with fewer than two."""
    runs = [r for r in sh["service"] if r.get("cross_job_batch") is not None]
    if len(runs) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    sizes = [r["cross_job_batch"] for r in runs]
    ax.plot(sizes, [r["jobs_per_minute"] for r in runs], "o-", label="service")
    seq = sh["bare_sequential"]["jobs_per_minute"]
    ax.axhline(seq, color="grey", linestyle=":", label="bare sequential loop")
    ax.axhline(
        sh["bare_batched"]["jobs_per_minute"],
        color="grey",
        linestyle="--",
        label="bare BatchedInferencePipeline per file",
    )
    ax.axhline(
        seq * SPEEDUP_TARGET,
        color="red",
        linestyle="--",
        linewidth=1,
        label=f"target {SPEEDUP_TARGET}× sequential",
    )
    ax.set_xticks(sizes)
    ax.set_xlabel("STT_CROSS_JOB_BATCH (jobs per batch)")
    ax.set_ylabel("jobs completed per minute")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(
        f"{sh['jobs']} short clips ({sh['clip_seconds']['min']}–"
        f"{sh['clip_seconds']['max']} s), one transcriber",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True
