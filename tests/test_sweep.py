"""Sweeps: Optuna studies of ablation rows × seeds, one process per trial, on SQLite and
PostgreSQL, with resume after a killed worker, divergence handling and pruning."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from lit_transformer.cli.main import main
from lit_transformer.sweep.storage import redact

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "sweeps" / "table3-smoke.yaml"


def sweep(*args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """``lit-transformer sweep ARGS``, one worker unless ARGS say otherwise (the default on a
    small machine is one per core)."""
    if "--workers" not in args and "--status" not in args:
        args = (*args, "--workers", "1")
    return subprocess.run(
        [sys.executable, "-m", "lit_transformer", "sweep", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "WANDB_MODE": "disabled", **(env or {})},
    )


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(
        study_name=name, storage=url.replace("postgresql://", "postgresql+psycopg://")
    )


def grid_counts(study: optuna.Study) -> Counter:
    return Counter(
        (t.params["row"], t.params["seed"]) for t in study.trials if t.state == TrialState.COMPLETE
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory, data_root) -> dict:
    cache = tmp_path_factory.mktemp("sweep-cache")
    return {"LIT_TRANSFORMER_CACHE": str(cache), "LIT_TRANSFORMER_DATA": str(data_root)}


@pytest.fixture(scope="module")
def tiny_spec_dir(tmp_path_factory, tiny_ablation) -> Path:
    """An ablation with a diverging row, and specs over it (small data, tiny model)."""
    d = tmp_path_factory.mktemp("specs")
    text = tiny_ablation.read_text() + (
        "  - id: D-diverge\n    group: D\n    changes: loss forced to NaN at step 3\n"
        "    trainer: {inject_nan_at_step: 3}\n"
    )
    (d / "tiny.yaml").write_text(text)
    return d


def write_spec(d: Path, name: str, body: str) -> Path:
    path = d / f"{name}.yaml"
    path.write_text(f"study: {name}\nablation: {d / 'tiny.yaml'}\n" + body)
    return path


def assert_smoke_complete(url: str, name: str, rows: list[str] | None = None) -> None:
    """Every row (all of the CPU ablation's unless ``rows``) COMPLETE once, with provenance."""
    study = load(url, name)
    counts = grid_counts(study)
    if rows is None:
        ablation = yaml.safe_load((REPO / "ablations/table3-cpu.yaml").read_text())
        rows = [r["id"] for r in ablation["rows"]]
    assert set(counts) == {(r, 1) for r in rows}
    assert all(n == 1 for n in counts.values())  # no duplicates
    assert len(study.trials) == len(rows)
    for t in study.trials:
        assert {"row", "seed", "git_commit", "data_hash", "tokenizer_hash", "dev_bleu"} <= set(
            t.user_attrs
        )
        assert t.value == pytest.approx(t.user_attrs["dev_ppl"])
        # The machine each trial ran on: a study may move between machines.
        assert "torch capability" in t.user_attrs["hardware"]
        # The dev curve travels with the study: validations at steps 2 and 4 (val_check 2).
        assert [p[0] for p in t.user_attrs["dev_curve"]] == [2, 4]


def test_smoke_sweep_two_workers_sqlite(tmp_path, env):
    proc = sweep(str(SMOKE), "--workers", "2", "--run-dir", str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    url = f"sqlite:///{tmp_path / 'table3-smoke.db'}"
    assert_smoke_complete(url, "table3-smoke")
    assert "20 COMPLETE" in proc.stdout
    # Re-running the same command continues the study and repeats nothing.
    again = sweep(str(SMOKE), "--run-dir", str(tmp_path), env=env)
    assert again.returncode == 0
    assert len(load(url, "table3-smoke").trials) == 20
    status = sweep(str(SMOKE), "--run-dir", str(tmp_path), "--status", env=env)
    assert "E-learned-pos" in status.stdout and "COMPLETE" in status.stdout


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory) -> str:
    if not (shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))):
        if os.environ.get("LIT_TRANSFORMER_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required here but not installed")
        pytest.skip("PostgreSQL not installed (apt-get install postgresql)")
    # Directly under /tmp: the postgres user cannot traverse pytest's private temp dirs.
    d = Path(tempfile.mkdtemp(prefix="lit-pg-"))
    if os.geteuid() == 0:
        shutil.chown(d, "postgres", "postgres")
    port = 55432
    assert main(["postgres", "start", "--dir", str(d / "srv"), "--port", str(port)]) == 0
    yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    main(["postgres", "stop", "--dir", str(d / "srv")])
    shutil.rmtree(d, ignore_errors=True)


def test_smoke_sweep_two_workers_postgres(tmp_path, env, postgres_url):
    """The smoke sweep on PostgreSQL, four rows of it: the storage is what differs from the
    SQLite test above, which runs all 20 (the slow load test puts 8 workers on one study)."""
    rows = ["base", "A-h16", "C-N2", "E-learned-pos"]
    spec = yaml.safe_load(SMOKE.read_text())
    spec.update(rows=rows, ablation=str(REPO / spec["ablation"]))
    (tmp_path / "smoke-pg.yaml").write_text(yaml.safe_dump(spec))
    proc = sweep(
        str(tmp_path / "smoke-pg.yaml"),
        "--workers",
        "2",
        "--run-dir",
        str(tmp_path),
        "--storage",
        postgres_url,
        "--study-name",
        "smoke-pg",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_smoke_complete(postgres_url, "smoke-pg", rows)


def test_bad_specs_and_storage_are_one_line(tmp_path, tiny_spec_dir, env):
    bad = write_spec(tmp_path, "bad", "kind: grid\nrows: all\nbogus: 1\n")
    shutil.copy(tiny_spec_dir / "tiny.yaml", tmp_path / "tiny.yaml")
    unknown = write_spec(tmp_path, "unknown", "rows: [base, Z-nope]\nbudget: {max_steps: 2}\n")
    good = write_spec(tmp_path, "good", "rows: [base]\nbudget: {max_steps: 2}\n")
    why = write_spec(tmp_path, "why", "rows: [base]\nbudget: {steps: 2}\nbudget_why: 3\n")
    cases = [
        ((str(bad),), "unknown key(s) ['bogus']"),
        ((str(why),), "budget_why must be a sentence saying how the budget was chosen"),
        ((str(unknown),), "unknown row 'Z-nope'"),
        (
            (str(good), "--storage", "postgresql://ann:s3cret@127.0.0.1:1/optuna"),
            "cannot open storage",
        ),
    ]
    for args, message in cases:
        proc = sweep(*args, "--run-dir", str(tmp_path), env=env, timeout=120)
        assert proc.returncode != 0
        err = proc.stderr.strip()
        assert err.startswith("error: ") and message in err, err
        assert len(err.splitlines()) == 1 and "s3cret" not in err + proc.stdout
    assert redact("postgresql://ann:s3cret@h/db") == "postgresql://ann:***@h/db"


def test_a_missing_data_root_is_one_line_before_any_trial(tmp_path, tiny_spec_dir, env):
    spec = write_spec(tiny_spec_dir, "nodata", "rows: [base, A-h1]\nbudget: {steps: 2}\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (
            tmp_path / "nowhere",
            f"{tmp_path}/nowhere: data root given by LIT_TRANSFORMER_DATA does not exist",
        ),
        (empty, f"{empty}/multi30k/train.en.gz: file not found"),
    ]
    for root, message in cases:
        proc = sweep(
            str(spec), "--run-dir", str(tmp_path), env={**env, "LIT_TRANSFORMER_DATA": str(root)}
        )
        err = proc.stderr.strip()
        assert proc.returncode == 2 and err == f"error: {message}", err
    assert not (tmp_path / "nodata.db").exists()  # no study, no trial FAILed


def test_bad_input_in_a_trial_stops_the_worker_and_the_fixed_rerun_runs_it(
    tmp_path, tiny_spec_dir, env, small_data_root
):
    """A trial that ends on bad input (exit status 2) stops its worker: every trial would fail
    alike. Its pair is not done: the same command after the fix runs it again."""
    body = "rows: [base, A-h1]\nseeds: [1]\nbudget: {steps: 2}\nbeam: 1\n"
    bad = write_spec(tiny_spec_dir, "badinput", body + "overrides: {data: {max_len: 1}}\n")
    env = {**env, "LIT_TRANSFORMER_DATA": str(small_data_root)}
    proc = sweep(str(bad), "--run-dir", str(tmp_path), env=env, timeout=300)
    err = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and err.startswith("error: trial 0 stopped on bad input: "), err
    assert "max_len=1 drops every training pair" in err
    url = f"sqlite:///{tmp_path / 'badinput.db'}"
    states = [
        (t.system_attrs["fixed_params"]["row"], t.state) for t in load(url, "badinput").trials
    ]
    assert states == [("base", TrialState.FAIL), ("A-h1", TrialState.WAITING)]  # never started
    fixed = write_spec(tiny_spec_dir, "badinput", body)
    again = sweep(str(fixed), "--run-dir", str(tmp_path), env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert grid_counts(load(url, "badinput")) == Counter({("base", 1): 1, ("A-h1", 1): 1})


def test_seeds_flag_runs_one_seed_first_and_a_rerun_adds_the_rest(
    tmp_path, tiny_spec_dir, env, small_data_root
):
    spec = write_spec(
        tiny_spec_dir,
        "seeds",
        "rows: [base, A-h1]\nseeds: [1, 2]\nbudget: {steps: 2, row_scale: {A-h1: 2}}\nbeam: 1\n"
        "overrides: {trainer: {precision: auto}}\n",
    )
    args = (str(spec), "--run-dir", str(tmp_path))
    env = {**env, "LIT_TRANSFORMER_DATA": str(small_data_root)}
    # The first worker's CPU is slow at bf16, so `auto` pins 32 for the study; the second run
    # claims a fast-bf16 CPU and still runs 32 (one study never mixes precisions).
    first = sweep(
        *args, "--seeds", "1", env={**env, "LIT_TRANSFORMER_CPU_BF16": "slow"}, timeout=300
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert "precision 32 (auto: LIT_TRANSFORMER_CPU_BF16=slow)" in first.stdout
    url = f"sqlite:///{tmp_path / 'seeds.db'}"
    trials = load(url, "seeds").trials
    assert [(t.params["row"], t.params["seed"]) for t in trials] == [("base", 1), ("A-h1", 1)]
    fast = {**env, "LIT_TRANSFORMER_CPU_BF16": "fast"}
    again = sweep(*args, env=fast, timeout=300)  # the spec's seeds: only seed 2 is new
    assert again.returncode == 0, again.stderr[-3000:]
    study = load(url, "seeds")
    assert study.user_attrs["precision"] == "32"
    assert study.user_attrs["protocol"] == "equal steps"
    # Exactly the budget's optimizer steps per row, whatever the row's speed (A-h1: 2x).
    assert {(t.params["row"], t.user_attrs["steps"]) for t in study.trials} == {
        ("base", 2),
        ("A-h1", 4),
    }
    assert [t.user_attrs["precision"] for t in study.trials] == ["32"] * 4
    frozen = __import__("yaml").safe_load((tmp_path / "seeds/base/seed2/params.yaml").read_text())
    assert frozen["trainer"]["precision"] == "32"
    log = (tmp_path / "seeds/base/seed2/trial.log").read_text()
    assert "precision: 32 (explicit)" in log
    number = next(
        t.number for t in study.trials if (t.params["row"], t.params["seed"]) == ("base", 2)
    )
    assert log.startswith(f"=== trial {number} started ")  # the worker marks each attempt
    assert grid_counts(study) == Counter({(r, s): 1 for r in ("base", "A-h1") for s in (1, 2)})
    assert study.user_attrs["budget_counts_validation"] is True  # the spec keeps the default
    assert study.user_attrs["commands"] == [
        f"lit-transformer sweep {spec} --seeds 1 --workers 1 --run-dir {tmp_path}",
        f"lit-transformer sweep {spec} --workers 1 --run-dir {tmp_path}",
    ]


def test_forked_trials_match_command_line_trials(tmp_path, tiny_spec_dir, env, small_data_root):
    """Trials forked from the worker's fork server give the results, logs and W&B runs of
    trials started as ``python -m lit_transformer fit``; a bad launch mode is one line."""
    spec = write_spec(
        tiny_spec_dir,
        "launch",
        "rows: [base, A-h1]\nseeds: [1]\nbudget: {max_steps: 4}\nbeam: 1\n",
    )
    env = {**env, "LIT_TRANSFORMER_DATA": str(small_data_root), "WANDB_MODE": "offline"}
    results = {}
    for mode in ("fork", "subprocess"):
        run_dir = tmp_path / mode
        proc = sweep(
            str(spec),
            "--run-dir",
            str(run_dir),
            "--wandb",
            "offline",
            env={**env, "LIT_TRANSFORMER_TRIAL_LAUNCH": mode},
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        study = load(f"sqlite:///{run_dir / 'launch.db'}", "launch")
        results[mode] = {t.params["row"]: t.value for t in study.trials}
        for row in ("base", "A-h1"):
            trial_dir = run_dir / "launch" / row / "seed1"
            assert "result: " in (trial_dir / "trial.log").read_text()  # output went to the log
            runs = list((trial_dir / "wandb").glob("offline-run-*/run-*.wandb"))
            assert len(runs) == 1 and runs[0].stat().st_size > 0
    assert results["fork"] == results["subprocess"]  # same seeds, same numbers
    bad_env = {**env, "LIT_TRANSFORMER_TRIAL_LAUNCH": "x"}
    bad = sweep(str(spec), "--run-dir", str(tmp_path / "bad"), env=bad_env)
    assert bad.returncode != 0 and "LIT_TRANSFORMER_TRIAL_LAUNCH must be" in bad.stderr
    assert bad.stderr.strip().startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1


def test_divergence_fails_with_reason_and_the_sweep_goes_on(
    tmp_path, tiny_spec_dir, env, small_data_root
):
    spec = write_spec(
        tiny_spec_dir,
        "diverge",
        "rows: [base, D-diverge]\nseeds: [1]\nbudget: {max_steps: 10}\nbeam: 1\n",
    )
    proc = sweep(
        str(spec),
        "--run-dir",
        str(tmp_path),
        env={**env, "LIT_TRANSFORMER_DATA": str(small_data_root)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load(f"sqlite:///{tmp_path / 'diverge.db'}", "diverge")
    states = {t.params["row"]: t for t in study.trials}
    assert states["base"].state == TrialState.COMPLETE
    assert states["D-diverge"].state == TrialState.FAIL
    assert "diverged" in states["D-diverge"].user_attrs["fail_reason"]
    assert "nan" in states["D-diverge"].user_attrs["fail_reason"].lower()


def descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (from /proc), excluding zombies."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def stop_sweep(
    spec_dir: Path, name: str, run_dir: Path, env: dict, data_root: Path
) -> tuple[list[str], dict]:
    """A sweep of two 160-step trials that checkpoint every 5 steps, to stop mid-way: its
    command (no ``--workers`` yet) and environment."""
    spec = write_spec(
        spec_dir,
        name,
        "rows: [base, A-h1]\nseeds: [1]\nbudget: {max_steps: 160}\nbeam: 1\n"
        "overrides:\n  trainer: {checkpoint_every_n_steps: 5, val_check_interval: 80}\n",
    )
    run_env = {
        **os.environ,
        **env,
        "LIT_TRANSFORMER_DATA": str(data_root),
        "WANDB_MODE": "disabled",
    }
    cmd = [sys.executable, "-m", "lit_transformer", "sweep", str(spec)]
    return [*cmd, "--run-dir", str(run_dir)], run_env


STOPS = {
    "worker-killed": "SIGKILL to the worker: it cannot tell the study; its trial goes stale",
    "worker-interrupted": "SIGINT to the worker (Ctrl-C)",
    "group-terminated": "SIGTERM to the worker's process group (`kill -- -PGID`, a session end)",
    "trial-terminated": "SIGTERM to the trial alone: it stops after its batch, exit code 143",
    "fork-server-terminated": "SIGTERM to the trial and its fork server; the worker goes on",
}


# The default suite runs the stop seen in a real sweep (its fork server killed under a running
# trial) and the two it had before; the rest, about two minutes each on 2 cores, are `slow`.
DEFAULT_STOPS = ("worker-killed", "worker-interrupted", "fork-server-terminated")


@pytest.mark.parametrize(
    "stop",
    [s if s in DEFAULT_STOPS else pytest.param(s, marks=pytest.mark.slow) for s in STOPS],
)
def test_a_stopped_trial_is_retried_from_its_checkpoint_not_counted(
    stop, tmp_path, tiny_spec_dir, env, small_data_root
):
    """However a running trial is stopped from outside, it is not a result: its pair is run
    again and resumes from the trial's last checkpoint. A worker that can say so (every stop
    but SIGKILL) marks the trial ``interrupted`` (no ``fail_reason``, which would count as a
    result) and enqueues its retry at once."""
    cmd, run_env = stop_sweep(tiny_spec_dir, "kill", tmp_path, env, small_data_root)
    cmd += ["--workers", "1"]
    worker = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=run_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # A test run started in the background (nohup, `cmd &`) inherits SIGINT ignored, and
        # Python then never turns Ctrl-C into KeyboardInterrupt: give the worker the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        start_new_session=True,  # its own process group, as a sweep started with setsid
    )
    try:
        killed = wait_for_a_checkpointed_trial(tmp_path / "kill")
        trial_procs = descendants(worker.pid)  # the fork server and the trial it forked
        assert trial_procs
        if stop == "worker-killed":
            worker.send_signal(signal.SIGKILL)
        elif stop == "worker-interrupted":
            worker.send_signal(signal.SIGINT)
        elif stop == "group-terminated":
            os.killpg(worker.pid, signal.SIGTERM)
        else:
            fork_server = [
                p for p in trial_procs if parent_of(p) == worker.pid and is_fork_server(p)
            ]
            trials = [p for p in trial_procs if parent_of(p) in fork_server]
            assert len(fork_server) == 1 and len(trials) == 1, (fork_server, trials)
            for pid in trials + (fork_server if stop == "fork-server-terminated" else []):
                os.kill(pid, signal.SIGTERM)
        went_on = stop in ("trial-terminated", "fork-server-terminated")
        code = worker.wait(timeout=900 if went_on else 180)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    # The worker went on and finished the grid, or it stopped (generous: slow to unwind).
    assert code == 0 if went_on else code != 0
    assert_gone(trial_procs, "the trial outlived its stop")
    # Re-run the same command: the stopped trial's retry (or, after SIGKILL, the stale trial's
    # retry) resumes from its checkpoint.
    proc = subprocess.run(cmd, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load(f"sqlite:///{tmp_path / 'kill.db'}", "kill")
    counts = grid_counts(study)
    assert counts == Counter({("base", 1): 1, ("A-h1", 1): 1})
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].params["row"] == killed  # the stopped one
    assert "fail_reason" not in failed[0].user_attrs
    if stop == "worker-killed":
        assert "interrupted" not in failed[0].user_attrs
    else:
        assert "not a result" in failed[0].user_attrs["interrupted"]
    if stop == "trial-terminated":  # Lightning's SIGTERMException, as the trial reports it
        assert "stopped by SIGTERM (exit code 143)" in failed[0].user_attrs["interrupted"]
    retried = next(
        t for t in study.trials if t.state == TrialState.COMPLETE and t.params["row"] == killed
    )
    assert retried.system_attrs["failed_trial"] == failed[0].number
    assert "interrupted" not in retried.user_attrs
    assert retried.user_attrs["resumed_from"].endswith("last.ckpt")
    result = json.loads((tmp_path / "kill" / killed / "seed1" / "result.json").read_text())
    assert result["steps"] == 160 and result["resumed_from"]


def wait_for_a_checkpointed_trial(study_dir: Path, timeout: float = 300) -> str:
    """The row of a running trial (no result yet) that has written a checkpoint."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for ckpt in study_dir.glob("*/seed1/checkpoints/last.ckpt"):
            if not (ckpt.parents[1] / "result.json").exists():
                return ckpt.parents[2].name
        time.sleep(0.2)
    raise AssertionError("no trial wrote a checkpoint")


def assert_gone(pids: list[int], message: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while (alive := [p for p in pids if is_alive(p)]) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive, message


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def is_fork_server(pid: int) -> bool:
    try:
        return b"multiprocessing.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def is_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_sigterm_to_a_multi_worker_sweep_stops_its_workers_and_their_trials(
    tmp_path, tiny_spec_dir, env, small_data_root
):
    """``kill PID`` of ``sweep --workers 2`` (not of its process group) reaches the workers:
    none is left running, each running trial is marked ``interrupted`` and enqueued again,
    and the same command then completes the grid."""
    cmd, run_env = stop_sweep(tiny_spec_dir, "kill2", tmp_path, env, small_data_root)
    parent = subprocess.Popen(
        [*cmd, "--workers", "2", "--threads", "1"],
        cwd=REPO,
        env=run_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_a_checkpointed_trial(tmp_path / "kill2")
        below = descendants(parent.pid)  # two workers, their fork servers and trials
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=180) != 0
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    assert_gone(below, "a worker or trial outlived the sweep's SIGTERM")
    study = load(f"sqlite:///{tmp_path / 'kill2.db'}", "kill2")
    stopped = [t for t in study.trials if t.state == TrialState.FAIL]
    assert stopped and all("fail_reason" not in t.user_attrs for t in stopped)
    assert all("not a result" in t.user_attrs["interrupted"] for t in stopped)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    proc = subprocess.run(
        [*cmd, "--workers", "1"],
        cwd=REPO,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert grid_counts(load(f"sqlite:///{tmp_path / 'kill2.db'}", "kill2")) == Counter(
        {("base", 1): 1, ("A-h1", 1): 1}
    )


def test_hpo_prunes(tmp_path, tiny_spec_dir, env, small_data_root):
    spec = write_spec(
        tiny_spec_dir,
        "hpo",
        "kind: hpo\nrow: base\nseeds: [1]\nn_trials: 5\nbudget: {max_steps: 30}\nbeam: 1\n"
        "overrides:\n  trainer: {val_check_interval: 5}\n"
        "sampler: {name: random, seed: 3}\n"
        "pruner: {name: median, n_startup_trials: 2, n_warmup_steps: 0}\n"
        "search_space:\n"
        "  optim.lr_scale: {type: categorical, choices: [0.001, 3.0]}\n"
        "  model.dropout: {type: float, low: 0.0, high: 0.2}\n",
    )
    proc = sweep(
        str(spec),
        "--run-dir",
        str(tmp_path),
        env={**env, "LIT_TRANSFORMER_DATA": str(small_data_root)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load(f"sqlite:///{tmp_path / 'hpo.db'}", "hpo")
    states = Counter(t.state for t in study.trials)
    assert len(study.trials) == 5
    assert states[TrialState.PRUNED] >= 1 and states[TrialState.COMPLETE] >= 2
    for t in study.trials:
        assert t.intermediate_values  # reported by the trial's rank 0 through the storage


def test_trial_with_two_ddp_devices(tmp_path, tiny_spec_dir, env, small_data_root):
    spec = write_spec(
        tiny_spec_dir,
        "ddp",
        "rows: [base]\nseeds: [1]\nbudget: {max_steps: 6}\ndevices: 2\nbeam: 1\n"
        "overrides:\n  trainer: {accelerator: cpu}\n",
    )
    proc = sweep(
        str(spec),
        "--run-dir",
        str(tmp_path),
        env={**env, "LIT_TRANSFORMER_DATA": str(small_data_root)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load(f"sqlite:///{tmp_path / 'ddp.db'}", "ddp")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
    result = json.loads((tmp_path / "ddp" / "base" / "seed1" / "result.json").read_text())
    checks = result["rank_param_checksums"]
    assert len(checks) == 2 and checks[0] == checks[1]


@pytest.mark.parametrize(
    ("code", "why"),
    [
        (-signal.SIGTERM, "killed by SIGTERM"),
        (-signal.SIGKILL, "killed by SIGKILL"),
        (255, "fork server was killed"),
        (143, "stopped by SIGTERM"),
        (130, "stopped by SIGINT"),
        (137, "stopped by SIGKILL"),
        (0, None),
        (1, None),
        (2, None),  # bad input
        (3, None),  # diverged
        (139, None),  # SIGSEGV: a crash of its own, a result
        (-signal.SIGSEGV, None),
        (-signal.SIGABRT, None),
    ],
)
def test_which_exit_codes_are_stops_from_outside(code, why):
    from lit_transformer.sweep.orchestrator import interruption

    got = interruption(code)
    assert got is None if why is None else why in got


def test_a_stop_inside_a_held_block_is_raised_when_it_ends(request):
    """What keeps a worker's writes to the study whole: SIGTERM or Ctrl-C in ``held()``
    waits for its end, and a second stop is ignored; the old handlers come back after."""
    from lit_transformer.errors import Terminated
    from lit_transformer.sweep.stop import held, stops_raise

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")  # stops_raise does nothing here
    before = signal.getsignal(signal.SIGTERM)
    # A background run (`cmd &`) starts with SIGINT ignored, which stops_raise keeps.
    sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, sigint))
    done = []
    with pytest.raises(Terminated), stops_raise():
        with held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the handler runs here, and must not raise yet
            os.kill(os.getpid(), signal.SIGINT)  # a second stop: ignored
            time.sleep(0.1)
            done.append("write")
    assert done == ["write"]
    assert signal.getsignal(signal.SIGTERM) is before
    with pytest.raises(KeyboardInterrupt), stops_raise():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)


def test_a_stopped_trial_is_requeued_at_once_and_its_pair_is_not_covered(tmp_path):
    """retry_now enqueues the same row and seed (the retry callback's copy, without the
    reason); and should it not (its retries used up), the pair is not covered for the grid."""
    from lit_transformer.sweep.orchestrator import INTERRUPTED, enqueue_grid, is_result, retry_now
    from lit_transformer.sweep.storage import load_or_create_study, open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", 1)
    study = load_or_create_study(storage, "s")
    study.enqueue_trial({"row": "base", "seed": 1})
    trial = study.ask()
    trial.suggest_categorical("row", ["base"])
    trial.suggest_int("seed", 0, 9)
    trial.set_user_attr(INTERRUPTED, "killed by SIGTERM: not a result, retried")
    study.tell(trial, state=TrialState.FAIL)
    frozen = study.trials[0]
    assert not is_result(frozen)
    retry_now(study, storage, frozen._trial_id)
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].system_attrs["failed_trial"] == trial.number
    assert waiting[0].params == {"row": "base", "seed": 1}
    assert INTERRUPTED not in waiting[0].user_attrs

    class Grid:
        grid = [("base", 1)]

    assert enqueue_grid(study, Grid()) == 0  # the retry covers the pair
    retry = study.ask()
    study.tell(retry, state=TrialState.FAIL)  # no reason: stopped again, as stale
    retry_now(study, storage, retry._trial_id)  # max_retry 1: used up, nothing enqueued
    assert not [t for t in study.trials if t.state == TrialState.WAITING]
    assert enqueue_grid(study, Grid()) == 1  # so the next run runs the pair again


def test_budget_kinds_set_the_trainer_and_name_the_protocol(tmp_path, tiny_spec_dir):
    from lit_transformer.config import ConfigError
    from lit_transformer.sweep.spec import load_spec

    steps = load_spec(
        write_spec(tiny_spec_dir, "st", "budget: {steps: 30, row_scale: {A-h1: 3}}\n")
    )
    assert steps.protocol == "equal steps"
    assert steps.trial_overrides({"row": "base"})["trainer"]["max_steps"] == 30
    assert steps.trial_overrides({"row": "A-h1"})["trainer"]["max_steps"] == 90
    minutes = load_spec(write_spec(tiny_spec_dir, "mi", "budget: {minutes: 5}\n"))
    assert minutes.protocol == "equal training time"
    trainer = minutes.trial_overrides({"row": "base"})["trainer"]
    assert trainer["max_minutes"] == 5 and trainer["budget_counts_validation"] is False
    assert trainer["max_steps"] == -1
    for bad in (
        "{steps: 3, minutes: 2}",
        "{steps: 0}",
        "{minutes: x}",
        "{steps: 3, row_scale: {nope: 2}}",
    ):
        with pytest.raises(ConfigError):
            load_spec(write_spec(tiny_spec_dir, "bad", f"budget: {bad}\n"))


def test_default_workers_one_per_core_on_a_small_cpu_machine(monkeypatch):
    import torch

    from lit_transformer.sweep import orchestrator
    from lit_transformer.sweep.spec import EQUAL_TIME

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for cores, expected in ((1, 1), (2, 2), (4, 4), (16, 1)):
        monkeypatch.setattr(orchestrator, "usable_cores", lambda c=cores: c)
        assert orchestrator.default_workers() == expected
    monkeypatch.setattr(orchestrator, "usable_cores", lambda: 2)
    assert orchestrator.default_workers(devices=2) == 1
    assert orchestrator.default_workers(protocol=EQUAL_TIME) == 1  # time budgets: one at a time
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert orchestrator.default_workers() == 1


@pytest.mark.slow
def test_eight_workers_on_postgres_claim_each_trial_once_under_load(
    tmp_path, tiny_spec_dir, env, small_data_root, postgres_url
):
    """8 workers started together on one PostgreSQL study of 40 short trials; two are killed
    (SIGKILL) while they hold a trial and two late workers join: every row x seed ends
    COMPLETE exactly once. Prints the claims' lock wait and hold times (BENCHMARKS.md)."""
    name = "load"
    spec = write_spec(
        tiny_spec_dir,
        name,
        "rows: [base, A-h1]\nseeds: [" + ", ".join(map(str, range(1, 21))) + "]\n"
        "budget: {steps: 30}\nbeam: 1\ntest: false\n"
        "overrides:\n  trainer: {checkpoint_every_n_steps: 10, val_check_interval: 1000}\n",
    )
    run_env = {
        **os.environ, **env, "LIT_TRANSFORMER_DATA": str(small_data_root), "WANDB_MODE": "disabled",
    }  # fmt: skip
    cmd = [sys.executable, "-m", "lit_transformer", "sweep", str(spec), "--run-dir", str(tmp_path)]
    cmd += ["--storage", postgres_url, "--workers", "1", "--threads", "1"]

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            cmd, cwd=REPO, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    t0 = time.time()
    workers = [start() for _ in range(8)]
    by_pid = {w.pid: w for w in workers}
    killed: list[subprocess.Popen] = []
    deadline = time.time() + 600
    while len(killed) < 2 and time.time() < deadline:
        time.sleep(0.5)
        try:
            study = load(postgres_url, name)
        except KeyError:  # the study is not created yet
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            pid = int(t.user_attrs.get("worker", ":0").rsplit(":", 1)[1])
            if pid in by_pid and by_pid[pid] not in killed and len(killed) < 2:
                by_pid[pid].kill()  # SIGKILL: no chance to tell the study anything
                killed.append(by_pid[pid])
    assert len(killed) == 2, "no two workers held a trial at once"
    workers += [start() for _ in range(2)]  # late joiners, as a restarted host would be
    for w in workers:
        _, err = w.communicate(timeout=1800)
        assert w in killed or w.returncode == 0, err[-3000:]
    wall = time.time() - t0
    study = load(postgres_url, name)
    counts = grid_counts(study)
    assert counts == Counter({(r, s): 1 for r in ("base", "A-h1") for s in range(1, 21)})
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 2 and all("fail_reason" not in t.user_attrs for t in failed)
    claims = [t.user_attrs for t in study.trials if t.state == TrialState.COMPLETE]
    waits = sorted(a["lock_wait_s"] for a in claims)
    holds = sorted(a["claim_s"] for a in claims)
    print(
        f"\n{len(claims)} claims by 10 workers in {wall:.0f} s; lock wait mean "
        f"{sum(waits) / len(waits) * 1e3:.1f} ms, max {waits[-1] * 1e3:.1f} ms; lock held mean "
        f"{sum(holds) / len(holds) * 1e3:.1f} ms, max {holds[-1] * 1e3:.1f} ms "
        f"(at most {len(holds) / sum(holds):.0f} claims/s for one study)"
    )


def test_each_worker_runs_its_trials_on_its_own_gpu(tmp_path, tiny_spec_dir, env, small_data_root):
    """Two workers on a host that shows GPUs 3 and 5: worker i's trials see GPU i alone
    (``CUDA_VISIBLE_DEVICES``), not both stacked on the first. Here the GPUs are only named
    (this machine has none, so the trials train on the CPU), which is what the placement reads."""
    spec = write_spec(
        tiny_spec_dir, "gpus", "rows: [base, A-h1]\nseeds: [1, 2]\nbudget: {steps: 4}\nbeam: 1\n"
    )
    proc = sweep(
        str(spec), "--workers", "2", "--threads", "1", "--run-dir", str(tmp_path),
        env={**env, "LIT_TRANSFORMER_DATA": str(small_data_root), "CUDA_VISIBLE_DEVICES": "3,5"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load(f"sqlite:///{tmp_path / 'gpus.db'}", "gpus")
    assert len(grid_counts(study)) == 4
    gpus_of: dict[str, set] = {}
    for t in study.trials:
        gpus_of.setdefault(t.user_attrs["worker"], set()).add(t.user_attrs["cuda_visible_devices"])
    assert sorted(gpus_of.values(), key=sorted) == [{"3"}, {"5"}]  # one GPU per worker
    three = sweep(
        str(spec), "--workers", "3", "--run-dir", str(tmp_path / "three"),
        env={**env, "CUDA_VISIBLE_DEVICES": "3,5"},
    )  # fmt: skip
    assert three.returncode == 2
    assert three.stderr.strip().splitlines() == [
        "error: 3 workers x 1 device(s) per trial need 3 GPUs, this host has 2 (3,5): "
        "use --workers 2"
    ]


def test_a_trials_wandb_run_lines_up_by_row_seed_and_study(
    tmp_path, tiny_spec_dir, env, small_data_root
):
    """A sweep trial's offline W&B run, read back from its .wandb file: group = study, job type
    trial, the row's group as a tag, flat keys a runs table groups by, and the summary's final
    figures equal to the trial's result.json."""
    from lit_transformer.training.wandb_file import read_run

    spec = write_spec(
        tiny_spec_dir, "wb", "rows: [A-h1]\nseeds: [2]\nbudget: {steps: 6}\nbeam: 1\n"
    )
    proc = sweep(
        str(spec), "--run-dir", str(tmp_path), "--wandb", "offline",
        env={**env, "LIT_TRANSFORMER_DATA": str(small_data_root), "WANDB_MODE": "offline"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    trial = tmp_path / "wb" / "A-h1" / "seed2"
    result = json.loads((trial / "result.json").read_text())
    (path,) = (trial / "wandb").glob("offline-run-*/run-*.wandb")
    run = read_run(path)
    assert (run.group, run.job_type, run.tags) == ("wb", "trial", ["A"])
    flat = {"row": "A-h1", "seed": 2, "study": "wb", "group": "A", "protocol": "equal steps"}
    assert {k: run.config[k] for k in flat} == flat
    assert (
        run.config["precision"] == result["precision"] and run.config["params"] == result["params"]
    )
    assert run.config["model"]["heads"] == result["config"]["model"]["heads"] == 1
    for key in ("dev_ppl", "dev_bleu", "steps"):
        assert run.summary[f"final/{key}"] == pytest.approx(result[key]), key
