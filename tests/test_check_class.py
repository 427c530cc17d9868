"""``n2n check`` over a class: the suite's submissions (tests/data/submissions and the ones
``_make_bugs`` generates) checked once as one class, narrowed to two blocks and ``--quick`` to
stay fast; each row matches its submission's own JSON report and ``expected.json``; a rerun
takes unchanged submissions from the cache and re-checks a changed one; two shards merged give
the files one run gives; a submission that hangs gets an error row; the HTML page sorts and
opens a submission's findings in a real headless Chromium (skipped without one)."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from filelock import FileLock

from harness.bench_class import class_times
from harness.bench_class import markdown as class_markdown
from harness.check.cache import key
from harness.check.class_folder import REPORTS, write_record
from harness.check.class_report import OTHER, rows
from harness.check.class_runs import Settings, Submission, error_record
from harness.check.classroom import cached, parse_shard, shard, submissions
from harness.check.command import UsageError
from n2n.cli import main
from tests.browser import CHROMIUM, Browser
from tests.data.submissions import _make_bugs

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "tests" / "data" / "submissions"
EXPECTED = json.loads((SUBMISSIONS / "expected.json").read_text())
BLOCKS = ("Sigmoid", "MSE")  # three of the generated bugs live here; the loss checks are the fastest
FLAGS = ["--quick", "--blocks", ",".join(BLOCKS), "--time-limit", "5", "--jobs", "2"]


def _class_folder(dest: Path) -> Path:
    """Every submission of the suite in one folder: the hand-written ones and the generated ones."""
    _make_bugs.write(str(dest))
    for folder in SUBMISSIONS.iterdir():
        if folder.is_dir() and folder.name in EXPECTED:
            shutil.copytree(folder, dest / folder.name)
    return dest


@pytest.fixture(scope="session")
def checked(tmp_path_factory, worker_id):
    """(class folder, output folder, exit status) of one class check, shared by the xdist workers
    of a run (under a lock: the first one checks, the others read its folder)."""
    base = tmp_path_factory.getbasetemp()
    base = base.parent if worker_id != "master" else base
    with FileLock(str(base / "class.lock")):
        done = base / "class-done.json"
        if not done.exists():
            folder = _class_folder(base / "class")
            status = main(["check", "--each", str(folder), *FLAGS, "--out", str(base / "out")])
            done.write_text(json.dumps(status))
    return base / "class", base / "out", json.loads(done.read_text())


def _copy(checked, dest: Path) -> tuple[Path, Path]:
    """A private copy of the checked class and its output folder (a test may change them)."""
    folder, out, _ = checked
    return shutil.copytree(folder, dest / "class"), shutil.copytree(out, dest / "out")


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "class.csv", newline="") as f:
        return {row["submission"]: row for row in csv.DictReader(f)}


def _class_cell(report: dict, block: str) -> str:
    """A block's class cell from its report, written out here independently of the code."""
    values = list(report["table"].get(block, {}).values())
    if "FAIL" in values:
        return "FAIL"
    if any(v in ("error", "crash", "timeout") for v in values):
        return "error"
    if any(f["block"] == block for f in report["findings"]):
        return "FAIL"
    numbers = [v for k, v in report["table"].get(block, {}).items() if k != "rule"]  # the rule compares nothing
    if numbers == ["absent"]:
        return "absent"
    return "pass" if any(v.split()[0] == "pass" for v in numbers) else "not checked"


def test_every_row_matches_its_submissions_report(checked):
    folder, out, status = checked
    rows = _rows(out)
    assert sorted(rows) == sorted(EXPECTED) and status == 1
    for name, row in rows.items():
        if row["status"] == "error":
            assert not (out / name / REPORTS["json"]).exists(), name
            continue
        report = json.loads((out / name / REPORTS["json"]).read_text())
        assert row["status"] == {0: "pass", 1: "FAIL", 3: "not checked"}[report["exit"]], name
        assert int(row["findings"]) == len(report["findings"]), name
        assert {b: row[b] for b in BLOCKS} == {b: _class_cell(report, b) for b in BLOCKS}, name
        assert (out / name / REPORTS["junit"]).is_file() and (out / name / REPORTS["markdown"]).is_file()
    statuses = [row["status"] for row in rows.values()]
    said = {s: statuses.count(s) for s in ("pass", "FAIL", "not checked", "error")}
    assert (
        f"{len(rows)} submissions: {said['pass']} pass, {said['FAIL']} with findings, "
        f"{said['not checked']} with blocks not checked, {said['error']} could not be checked."
    ) in (out / "class.md").read_text()


def test_every_row_says_what_expected_json_says(checked):
    _, out, _ = checked
    rows = _rows(out)
    for name, expected in EXPECTED.items():
        wrong = [f for f in expected["findings"] if f["block"] in BLOCKS]
        if expected["exit"] == 2:
            assert rows[name]["status"] == "error" and "broken on purpose" in rows[name]["reason"], name
        elif wrong:
            assert rows[name]["status"] == "FAIL" and rows[name][wrong[0]["block"]] == "FAIL", name
            record = json.loads((out / name / "result.json").read_text())
            assert any(f["quantity"] == wrong[0]["quantity"] for f in record["findings"]), name
        else:  # correct, or wrong only in blocks this class was not checked on, or not checkable here
            blocked = (
                set() if expected.get("adapter") else {b for b in BLOCKS if b in expected.get("not_checkable", [])}
            )
            assert rows[name]["status"] == ("not checked" if blocked else "pass"), name
            assert {b: rows[name][b] for b in BLOCKS} == {b: "not checked" if b in blocked else "pass" for b in BLOCKS}
    common = (out / "class.md").read_text().split("## Most common findings")[1]
    assert "1 x Sigmoid: input gradient" in common and "bug_sigmoid_at_upstream" in common


def test_a_rerun_takes_unchanged_submissions_from_the_cache(checked, tmp_path, capsys):
    folder, out = _copy(checked, tmp_path)
    fixed = folder / "bug_mse_batch_only" / "Miniproject_2" / "model.py"
    fixed.write_text((folder / "ok_handout" / "Miniproject_2" / "model.py").read_text())
    capsys.readouterr()
    assert main(["check", "--each", str(folder), *FLAGS, "--out", str(out)]) == 1
    said = capsys.readouterr().out
    assert f"{len(EXPECTED)} submission(s): 1 checked, {len(EXPECTED) - 1} taken from the cache" in said
    rows = _rows(out)
    assert rows["bug_mse_batch_only"]["status"] == "pass" and rows["bug_mse_chw_only"]["status"] == "FAIL"


def test_the_cache_key_follows_files_adapter_flags_and_checker(tmp_path):
    folder = shutil.copytree(SUBMISSIONS / "ok_adapter", tmp_path / "s")
    adapter, flags = folder / "adapter.py", Settings(quick=True).flags()
    first = key(folder, adapter, flags, "v1")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"bytecode")
    assert key(folder, adapter, flags, "v1") == first  # bytecode changes no result
    assert key(folder, adapter, Settings(quick=True, seed=1).flags(), "v1") != first
    assert key(folder, adapter, Settings(quick=True, blocks="mse").flags(), "v1") != first
    assert key(folder, adapter, flags, "v2") != first
    assert key(folder, None, flags, "v1") != first
    (folder / "Miniproject_2" / "notes.txt").write_text("a file more")
    assert key(folder, adapter, flags, "v1") != first


def test_two_shards_merged_give_one_runs_files(checked, tmp_path):
    """Each shard's folder starts as a copy of the one run's (so its checks come from the cache):
    what is tested is the split and the merge, the checks themselves being the one run's."""
    folder, out, _ = checked
    shards = [shutil.copytree(out, tmp_path / f"shard{k}") for k in (1, 2)]
    for k, dest in enumerate(shards, 1):
        assert main(["check", "--each", str(folder), *FLAGS, "--shard", f"{k}/2", "--out", str(dest)]) == 1
    names = [json.loads((d / "class.json").read_text())["submissions"] for d in shards]
    assert sorted(names[0] + names[1]) == sorted(EXPECTED) and abs(len(names[0]) - len(names[1])) <= 1
    merged = tmp_path / "merged"
    assert main(["check", "--merge", *map(str, shards), "--out", str(merged)]) == 1
    for name in ("class.json", "class.csv", "class.md", "class.html"):
        assert (merged / name).read_bytes() == (out / name).read_bytes(), name
    assert (merged / "bug_mse_chw_only" / REPORTS["json"]).is_file()
    assert main(["check", "--merge", str(shards[0]), "--out", str(tmp_path / "half")]) == 2  # shard 2/2 missing


def _sleepy(dest: Path) -> Path:
    """ok_handout whose ReLU sleeps for an hour: a hang that costs no CPU while the test waits."""
    shutil.copytree(SUBMISSIONS / "ok_handout", dest)
    model = dest / "Miniproject_2" / "model.py"
    text = model.read_text().replace("        self.x = x\n        return x * (x > 0)", "        time.sleep(3600)", 1)
    model.write_text("import time\n" + text)
    return dest


def test_a_hanging_submission_gets_an_error_row_and_stops_no_other(tmp_path, capsys):
    """Two targets, no --out: a class in a scratch folder, its table on stdout. The limit leaves a
    busy machine time to import the other one (and fail)."""
    _make_bugs.write(str(tmp_path / "made"))
    targets = [str(_sleepy(tmp_path / "sleepy")), str(tmp_path / "made" / "crash_import")]
    flags = ["--blocks", "ReLU", "--quick", "--time-limit", "600", "--wall-limit", "20", "--jobs", "2"]
    assert main(["check", *targets, *flags]) == 1
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert rows["sleepy"].split()[1:3] == ["error", "0"]
    assert "no result within 20 s (the time limit of a whole submission)" in rows["sleepy"]
    assert "cannot import the target: RuntimeError: broken on purpose" in rows["crash_import"]


def test_the_cache_serves_only_complete_records_of_the_same_key(tmp_path):
    sub = Submission("alice", "alice", "alice")
    write_record(tmp_path, error_record(sub, "no result within 3 s", cacheable=False) | {"key": "k"})
    assert cached(tmp_path, "k") is None  # a wall-clock limit: a slower or faster machine may differ
    write_record(tmp_path, error_record(sub, "cannot import the target", cacheable=True) | {"key": "k"})
    assert cached(tmp_path, "k")["reason"] == "cannot import the target" and cached(tmp_path, "other") is None
    write_record(tmp_path, error_record(sub, "", cacheable=True) | {"key": "k", "status": "pass"})
    assert cached(tmp_path, "k") is None  # its reports are missing
    for name in REPORTS.values():
        (tmp_path / name).write_text("")
    assert cached(tmp_path, "k")["status"] == "pass"


def test_shards_are_deterministic_slices_by_name(tmp_path):
    made = tmp_path / "made"
    _make_bugs.write(str(made))
    subs = submissions([], str(made), None)
    assert [s.name for s in shard(subs, 2, 3)] == [s.name for s in subs][1::3]
    assert sorted(s.name for k in (1, 2, 3) for s in shard(subs, k, 3)) == [s.name for s in subs]
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(UsageError, match="shard must be K/N"):
            parse_shard(bad)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--each", "no/such/folder"], "--each: no/such/folder: not a folder"),
        (["--each", "tests"], "no sub-folder holds"),
        (["--jobs", "0", "a", "b"], "--jobs must be >= 1"),
        (["--shard", "3/2", "--each", "."], "--shard must be K/N"),
        (["--merge", "x"], "--merge needs --out"),
        (["a", "b", "--json", "r.json"], "--json is for one target"),
        ([], "needs a TARGET"),
    ],
)
def test_class_usage_errors_name_the_flag(args, message, capsys):
    assert main(["check", *args]) == 2
    assert message in capsys.readouterr().err


def test_two_submissions_with_one_name_are_refused(tmp_path):
    for parent in ("a", "b"):
        shutil.copytree(SUBMISSIONS / "ok_handout", tmp_path / parent / "same")
    with pytest.raises(UsageError, match="two submissions are named 'same'"):
        submissions([str(tmp_path / "a" / "same"), str(tmp_path / "b" / "same")], None, None)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium (apt-get install chromium)")
def test_the_page_sorts_and_opens_a_submissions_findings_in_chromium(checked, tmp_path):
    _, out = _copy(checked, tmp_path)
    browser = Browser()
    try:
        browser.open((out / "class.html").as_uri())
        browser.wait_for("document.body && document.body.dataset.ready === 'yes'")
        order = "Array.from(document.querySelectorAll('#class tbody')).map(g => g.dataset.name)"
        assert browser.evaluate(order) == sorted(EXPECTED)
        browser.click('th[data-column="MSE"]')
        assert browser.evaluate(order)[:2] == ["bug_mse_batch_only", "bug_mse_chw_only"]  # FAIL sorts first
        assert browser.evaluate("document.querySelector('th[data-column=\"MSE\"]').getAttribute('aria-sort')") == (
            "ascending"
        )
        details = "document.querySelector('#s-bug_mse_chw_only tr.details')"
        assert browser.evaluate(f"{details}.hidden")
        browser.click("#s-bug_mse_chw_only button.open")
        assert not browser.evaluate(f"{details}.hidden")
        text = browser.evaluate(f"{details}.innerText")
        assert "MSE: loss gradient" in text and "normalised by C*H*W only" in text
    finally:
        browser.close()


def test_the_bench_times_a_class_at_each_number_of_jobs():
    result = class_times((1,), Settings(blocks="MSE", quick=True), limit=1)  # the bench: all, at 1 and 2 jobs
    assert result["submissions"] == 1 and result["seconds"][1] > 0 and result["speedup"] == 1.0
    assert 0 < result["one_wall"] < result["seconds"][1] and result["one_cpu"] > 0
    assert result["full"]["jobs"] == 1 and 0 < result["full"]["median_wall"] <= result["full"]["slowest_wall"]
    text = "\n".join(class_markdown(result))
    assert "## Time to check a class" in text and "| 1 |" in text and "--blocks MSE" in text
    assert "Every check (no --quick), 1 jobs: one submission takes" in text


def test_module_code_of_every_file_is_one_column():
    """The course rule names a finding in module-level code by its file: one "other code" column
    for all files, the worst of them, not a column per file name in the class."""

    def record(name: str, table: dict) -> dict:
        return {"name": name, "status": "FAIL", "reason": "", "table": table, "findings": []}

    ruled = {"ReLU": {"forward": "pass"}, "a/x.py": {"rule": "pass"}, "a/y.py": {"rule": "FAIL"}}
    table = rows([record("one", ruled), record("two", {"ReLU": {"forward": "pass"}})])
    assert [list(r)[3:-1] for r in table] == [["ReLU", OTHER]] * 2
    assert [(r["ReLU"], r[OTHER]) for r in table] == [("pass", "FAIL"), ("pass", "-")]
