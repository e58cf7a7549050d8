"""The report of ``benchmarks/gpu/gpu_check.sh``: ``h200.md`` and ``h200.json`` from its work folder.

Reads what the sections left in ``--work`` (``sections.jsonl``: one record per finished
section; ``logs/``: each section's log, the pytest JUnit files, the sanitizer driver's and the
trainer check's JSON; ``bench/``: gpu_bench.py's ``bench.json`` and ``bench.md``) and writes the
two report files to ``--out``. It imports nothing heavy (no torch), so gpu_check.sh runs it
after every section: whatever stops the script, the report on ``$OUT`` is at most one section
old. A section without a record is reported as not run (or still running).

``check_out(folder)`` is the rule for what comes back from the device machine: at most 8
files, at most 2 folders down, names of letters, digits, '.', '_' and '-' only.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import xml.etree.ElementTree as ET

SECTIONS = [  # (name, title), in the order of the report
    ("env", "Environment"),
    ("build", "Build of freqalign._C (CPU + CUDA, sm_90)"),
    ("tests_cuda", "tests/test_cuda.py, cuda backend"),
    ("tests_triton", "tests/test_cuda.py, triton backend"),
    ("tests_torch", "tests/test_cuda.py, torch backend"),
    ("sanitize_memcheck", "compute-sanitizer memcheck, cuda backend"),
    ("sanitize_racecheck", "compute-sanitizer racecheck, cuda backend"),
    ("smoke", "Trainer on CUDA: `freqalign train --preset smoke`"),
    ("train", "Trainer on CUDA: paper configuration, a few steps"),
    ("model", "ResNet-50, SE-ResNet-50 and FcaNet-ResNet-50, batch 128 (model_bench.py)"),
    ("attention", "The fused FcaNet layer vs SE at the four stage shapes, batch 128 (attention_bench.py)"),
    ("bench", "Kernel benchmark (gpu_bench.py)"),
]
MAX_FILES, MAX_DEPTH = 8, 2
NAME_OK = re.compile(r"^[A-Za-z0-9._-]+$")


def check_out(folder: str) -> list:
    """Problems with ``folder`` as the device machine's ``$OUT`` (empty list: it all comes back)."""
    problems, files = [], []
    for root, dirs, names in os.walk(folder):
        rel = os.path.relpath(root, folder)
        depth = 0 if rel == "." else rel.count(os.sep) + 1
        for name in dirs + names:
            if not NAME_OK.match(name):
                problems.append(f"name {os.path.join(rel, name)!r} has characters outside [A-Za-z0-9._-]")
        for name in names:
            path = os.path.join(root, name)
            files.append(path)
            if depth > MAX_DEPTH:
                problems.append(f"{os.path.relpath(path, folder)} is more than {MAX_DEPTH} folders down")
            if os.path.islink(path) or not os.path.isfile(path):
                problems.append(f"{os.path.relpath(path, folder)} is not a plain file")
            elif os.path.getsize(path) > 16 << 20:
                problems.append(f"{os.path.relpath(path, folder)} is over 16 MiB")
    if len(files) > MAX_FILES:
        problems.append(f"{len(files)} files (at most {MAX_FILES} come back)")
    return problems


def _read(path: str, limit: int = 1 << 20) -> str:
    try:
        with open(path, errors="replace") as fh:
            text = fh.read()
    except OSError:
        return ""
    return text[-limit:]


def _json(path: str):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def load_sections(work: str) -> dict:
    records = {}
    for line in _read(os.path.join(work, "sections.jsonl")).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        records[record["name"]] = record
    return records


def status_of(record) -> str:
    if record is None:
        return "not run (or still running)"
    if record.get("skipped"):
        return f"skipped: {record['skipped']}"
    rc = record.get("rc")
    if rc == 0:
        return "ok"
    if rc == 124:
        return "TIMED OUT (SIGINT at its limit)"
    if rc in (137, -9):
        return "KILLED (no exit after SIGINT)"
    if rc == 86 and record.get("name", "").startswith("sanitize_"):
        return "ERRORS FOUND (compute-sanitizer --error-exitcode 86)"
    if rc == 130 or (rc == 2 and record.get("name", "").startswith("tests_")):
        return f"INTERRUPTED (exit status {rc})"  # pytest: 2 = interrupted (1 = tests failed)
    return f"FAILED (exit status {rc})"


# -- tests -------------------------------------------------------------------------------------

SUMMARY = re.compile(r"^=+ (.+?) in ([\d.]+)s(?: \([^)]*\))? =+$")
DURATION = re.compile(r"^\s*([\d.]+)s (call|setup|teardown)\s+(.+?)\s*$")


def parse_pytest(log: str, junit: str) -> dict:
    """Counts, failures, the slowest tests and whether the run was interrupted, from a pytest log
    (``-v -rfE --durations``) and, when it was written, its JUnit XML."""
    out = dict(summary=None, seconds=None, failures=[], slowest=[], interrupted="KeyboardInterrupt" in log)
    lines = log.splitlines()
    for line in reversed(lines):
        match = SUMMARY.match(line.strip())
        if match:
            out["summary"], out["seconds"] = match.group(1), float(match.group(2))
            break
    seen = set()
    for line in lines:
        if line.startswith(("FAILED ", "ERROR ")) and line not in seen:
            seen.add(line)
            out["failures"].append(line[:300])
    in_durations = False
    for line in lines:
        if "slowest" in line and "durations" in line:
            in_durations = True
            continue
        if in_durations:
            match = DURATION.match(line)
            if match:
                out["slowest"].append(dict(seconds=float(match.group(1)), when=match.group(2), test=match.group(3)))
            elif line.startswith("="):
                in_durations = False
    counts = dict(passed=0, failed=0, errors=0, skipped=0)
    for key in counts:
        found = re.search(rf"(\d+) {key if key != 'errors' else 'error'}", out["summary"] or "")
        counts[key] = int(found.group(1)) if found else 0
    if os.path.isfile(junit):
        try:
            root = ET.parse(junit).getroot()
            suites = [root] if root.tag == "testsuite" else list(root)
            total = sum(int(s.get("tests", 0)) for s in suites)
            counts = dict(failed=sum(int(s.get("failures", 0)) for s in suites),
                          errors=sum(int(s.get("errors", 0)) for s in suites),
                          skipped=sum(int(s.get("skipped", 0)) for s in suites))
            counts["passed"] = total - counts["failed"] - counts["errors"] - counts["skipped"]
            out["junit"] = True
        except (ET.ParseError, ValueError, OSError):
            pass
    out.update(counts)
    return out


# -- sanitizer ---------------------------------------------------------------------------------

def parse_sanitizer(log: str, driver) -> dict:
    errors = [int(m) for m in re.findall(r"ERROR SUMMARY: (\d+) error", log)]
    hazards = [int(m) for m in re.findall(r"RACECHECK SUMMARY: (\d+) hazard", log)]
    out = dict(errors=sum(errors) if errors else None, hazards=sum(hazards) if hazards else None,
               tool_ran=bool(errors or hazards), unsupported="not supported" in log.lower())
    if driver:
        out.update(cases=driver.get("cases"), bad_cases=driver.get("bad"), backend=driver.get("backend"),
                   backend_status=driver.get("status"),
                   caching_allocator_off=driver.get("caching_allocator_off"),
                   bad=[r for r in driver.get("results", []) if not r.get("ok")][:10])
    return out


# -- report ------------------------------------------------------------------------------------

def build(work: str, budget: float, elapsed: float, dry_run: bool) -> dict:
    logs = os.path.join(work, "logs")
    records = load_sections(work)
    report = dict(generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), dry_run=dry_run,
                  budget_s=budget, elapsed_s=round(elapsed), sections={})
    for name, title in SECTIONS:
        record = records.get(name)
        report["sections"][name] = dict(title=title, status=status_of(record), **(record or {}))
        tail = [line for line in _read(os.path.join(logs, f"{name}.log"), 4000).splitlines() if line.strip()]
        if tail:  # shown for a failed section: usually the error
            report["sections"][name]["last_line"] = tail[-1].strip()[:160].replace("|", "/")
    report["env"] = _read(os.path.join(logs, "env.log"), 6000)
    report["tests"] = {}
    for backend in ("cuda", "triton", "torch"):
        log = _read(os.path.join(logs, f"tests_{backend}.log"))
        if log:
            report["tests"][backend] = parse_pytest(log, os.path.join(logs, f"tests_{backend}.xml"))
    report["sanitizer"] = {}
    for tool in ("memcheck", "racecheck"):
        log = _read(os.path.join(logs, f"sanitize_{tool}.log"))
        if log:
            report["sanitizer"][tool] = parse_sanitizer(log, _json(os.path.join(logs, f"sanitize_{tool}.json")))
    report["smoke"] = _json(os.path.join(logs, "smoke_results.json"))
    report["train"] = _json(os.path.join(logs, "train.json"))
    report["bench"] = _json(os.path.join(work, "bench", "bench.json"))
    extra = [n for n in records if n not in dict(SECTIONS)]
    for name in extra:
        report["sections"][name] = dict(title=name, status=status_of(records[name]), **records[name])
    return report


def _fmt(value, spec=".1f", none="-"):
    return none if value is None else format(value, spec)


def markdown(report: dict, bench_md: str) -> str:
    sections = report["sections"]
    lines = ["# freqalign GPU check" + (" -- DRY RUN on the CPU (plumbing only, numbers meaningless)"
                                       if report["dry_run"] else ""), "",
             f"Generated {report['generated']} by `benchmarks/gpu/gpu_check.sh` (report: `benchmarks/gpu/gpu_report.py`); "
             f"time budget {report['budget_s']:.0f} s of wall time, {report['elapsed_s']} s used when this report "
             "was written. Full logs: `logs.tar.gz`; timeline and log tails: `gpu_check.log`.", "",
             "| section | status | seconds (limit) | result |", "|---|---|---|---|"]
    for name, section in sections.items():
        seconds = section.get("seconds")
        limit = section.get("limit")
        timing = "" if seconds is None else f"{seconds}" + (f" ({limit})" if limit else "")
        lines.append(f"| {section['title']} | {section['status']} | {timing} | {_result(name, report)} |")
    problems = report.get("out_problems")
    if problems:
        lines += ["", "**$OUT rule violated:** " + "; ".join(problems)]
    # tests
    if report["tests"]:
        lines += ["", "## Tests (tests/test_cuda.py, per backend)", ""]
        for backend, t in report["tests"].items():
            lines.append(f"**{backend}**: {t['passed']} passed, {t['failed']} failed, {t['errors']} errors, "
                         f"{t['skipped']} skipped" + (f" in {t['seconds']:.0f} s" if t.get("seconds") else "")
                         + (" -- INTERRUPTED at its time limit" if t.get("interrupted") else "")
                         + (f" (pytest: {t['summary']})" if t.get("summary") else " (no pytest summary line)") + ".")
            for failure in t["failures"][:25]:
                lines.append(f"- `{failure}`")
            if len(t["failures"]) > 25:
                lines.append(f"- ... {len(t['failures']) - 25} more (see logs.tar.gz)")
            if t["slowest"]:
                lines.append("  Slowest: " + ", ".join(f"{d['test'].split('::')[-1]} {d['seconds']:.1f}s ({d['when']})"
                                                       for d in t["slowest"][:6]) + ".")
            lines.append("")
    # sanitizer
    if report["sanitizer"]:
        lines += ["## compute-sanitizer (cuda backend, small odd shapes)", ""]
        for tool, s in report["sanitizer"].items():
            found = s["errors"] if tool == "memcheck" else (s["hazards"] if s["hazards"] is not None else s["errors"])
            lines.append(f"- **{tool}**: " + (f"{found} {'errors' if tool == 'memcheck' else 'hazards'} reported"
                                              if s["tool_ran"] else "no sanitizer summary in the log")
                         + (f"; driver: {s.get('cases', 0) - (s.get('bad_cases') or 0)}/{s.get('cases')} cases "
                            "within tolerance" if s.get("cases") else "")
                         + (f"; driver: backend {s.get('backend')} {s.get('backend_status')}"
                            if s.get("backend_status") not in (None, "available") else "")
                         + ("; the tool says the device is not supported" if s["unsupported"] else "") + ".")
            for bad in s.get("bad", []):
                lines.append(f"  - {bad.get('case')}: {bad.get('error') or bad.get('rel_err')}")
        lines.append("")
    # trainer
    smoke = report.get("smoke")
    if smoke:
        t = smoke.get("target", {})
        lines += ["## Trainer on CUDA", "",
                  f"Smoke preset end to end ({smoke.get('method')}, {smoke.get('seconds')} s of training): target "
                  f"SRCC {_fmt(t.get('srcc'), '.3f')}, PLCC {_fmt(t.get('plcc'), '.3f')}; selected window "
                  f"{(smoke.get('selected_window') or {}).get('position')}.", ""]
    train = report.get("train")
    if train:
        if not smoke:
            lines += ["## Trainer on CUDA", ""]
        cfg = train.get("config", {})
        lines += [f"Paper configuration ({cfg.get('backbone')}, {cfg.get('image_size')}x{cfg.get('image_size')} "
                  f"crops, {cfg.get('batch_per_domain')} + {cfg.get('batch_per_domain')} images per step, window of "
                  f"{cfg.get('window_size')} frequencies on the {cfg.get('feature_map')} feature map, random weights, "
                  f"synthetic images, deterministic={cfg.get('deterministic')}) on {train.get('device')}: "
                  f"{train.get('warmup')} warm-up + {train.get('steps')} timed steps per row; freq_pool = its ops' "
                  "GPU time (forward, and the backward the autograd engine runs) over all kernels' time, "
                  "from torch.profiler.", "",
                  "| backend | precision | images/s | step ms | kernel ms/step | freq_pool fwd ms | bwd ms | share "
                  "| fused pool kernels ms (by name) |", "|---|---|---|---|---|---|---|---|---|"]
        for row in train.get("rows", []):
            if "error" in row:
                lines.append(f"| {row.get('backend')} | {row.get('precision', '')} | {row['error'][:120]} |"
                             " | | | | | |")
                continue
            share = row.get("freq_pool_share")
            lines.append(f"| {row['backend']} | {row['precision']} | {row['images_per_s']:.0f} | "
                         f"{row['step_ms']:.1f} | "
                         f"{_fmt(row.get('step_kernel_ms'), '.1f')} | {_fmt(row.get('freq_pool_forward_ms'), '.3f')} | "
                         f"{_fmt(row.get('freq_pool_backward_ms'), '.3f')} | "
                         f"{'-' if share is None else f'{100 * share:.2f}%'} | "
                         f"{_fmt(row.get('freq_pool_kernels_ms'), '.3f')} |")
        lines.append("")
    if bench_md:
        demoted = [("#" + line) if line.startswith("#") else line for line in bench_md.splitlines()]
        lines += demoted
    env = report.get("env")
    if env:
        lines += ["", "## Environment", "", "```", env.strip()[-3000:], "```", ""]
    return "\n".join(lines) + "\n"


def _result(name: str, report: dict) -> str:
    """One cell: the gist of a section's outcome (and for a failed or cut one, its last log line)."""
    section = report["sections"].get(name, {})
    gist = ""
    if name.startswith("tests_"):
        t = report["tests"].get(name[len("tests_"):])
        if t:
            return (f"{t['passed']} passed, {t['failed']} failed, {t['errors']} errors, {t['skipped']} skipped"
                    + (", interrupted" if t.get("interrupted") else ""))
    elif name.startswith("sanitize_"):
        s = report["sanitizer"].get(name[len("sanitize_"):])
        if s:
            parts = []
            if s["errors"] is not None:
                parts.append(f"{s['errors']} errors")
            if s["hazards"] is not None:
                parts.append(f"{s['hazards']} hazards")
            if s.get("cases"):
                parts.append(f"{s['cases'] - (s.get('bad_cases') or 0)}/{s['cases']} cases ok")
            if s.get("backend_status") not in (None, "available"):
                parts.append(f"backend {s.get('backend')}: {s['backend_status']}")
            gist = ", ".join(parts)
    elif name == "smoke" and report.get("smoke"):
        t = report["smoke"].get("target", {})
        gist = f"target SRCC {_fmt(t.get('srcc'), '.3f')}"
    elif name == "train" and report.get("train"):
        rows = [r for r in report["train"].get("rows", []) if "images_per_s" in r]
        gist = "; ".join(f"{r['backend']} {r['precision']}: {r['images_per_s']:.0f} img/s, freq_pool "
                         f"{_fmt(100 * r['freq_pool_share'] if r.get('freq_pool_share') is not None else None, '.2f')}%"
                         for r in rows)
    elif name == "bench" and report.get("bench"):
        b = report["bench"]
        measured = sum(1 for r in b.get("rows", []) if "ms" in r)
        gist = (f"{measured} measurements, copy {b.get('copy_gbps', 0):.0f} GB/s"
                + (", interrupted" if b.get("interrupted") else "")
                + (f", {b['skipped_for_budget']} skipped for time" if b.get("skipped_for_budget") else ""))
    if section.get("rc") and section.get("last_line"):
        gist = (gist + "; " if gist else "") + "last line: " + section["last_line"]
    return gist


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, help="gpu_check.sh's work folder")
    parser.add_argument("--out", required=True, help="where h200.md and h200.json go")
    parser.add_argument("--budget", type=float, default=0.0, help="the script's time budget (s)")
    parser.add_argument("--elapsed", type=float, default=0.0, help="seconds the script has run")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    report = build(args.work, args.budget, args.elapsed, args.dry_run)
    report["out_problems"] = check_out(args.out)
    bench_md = "\n\n".join(text for text in (_read(os.path.join(args.work, "bench", name))
                                               for name in ("bench.md", "model_bench.md", "attention_bench.md")) if text)
    os.makedirs(args.out, exist_ok=True)
    texts = (("h200.json", json.dumps(report, indent=1, default=str)), ("h200.md", markdown(report, bench_md)))
    for name, text in texts:
        tmp = os.path.join(args.out, f".{name}.tmp")  # renamed at once: never a half-written report
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, os.path.join(args.out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
