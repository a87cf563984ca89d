"""Beyond one machine, simulated on one: 1 node x 2 devices (Lightning's own launcher),
2 nodes x 1 device under torchrun, and 2 srun tasks as SLURM sets them, running the command
line of a script that ``slurm trial`` wrote. All three must train the same weights."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import free_port

from lit_transformer.cli.main import main
from lit_transformer.training.resume import checkpoint_step

STEPS = 8
# The srun / torchrun environment this test's parent may itself have (a CI job under SLURM).
LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK")


def clean_env(session_cache: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in LAUNCHER_VARIABLES and not k.startswith(("SLURM_", "MASTER_", "TORCHELASTIC"))
    }
    return {**env, "LIT_TRANSFORMER_CACHE": str(session_cache), "WANDB_MODE": "disabled", **extra}


def tiny_fit(ablation: Path, data: Path) -> list[str]:
    """fit's arguments for a short run of the tiny base (what every layout trains)."""
    return [
        "--ablation", str(ablation), "--row", "base", "--seed", "3",
        "--data.data_root", str(data), "--trainer.max_steps", str(STEPS),
        "--no-test", "--decode.beam", "1",
    ]  # fmt: skip


def run_ranks(commands: list[list[str]], envs: list[dict[str, str]]) -> list[str]:
    """Start every rank at once (as the nodes of a job start), wait, return their outputs."""
    procs = [
        subprocess.Popen(c, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for c, e in zip(commands, envs, strict=True)
    ]
    outputs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outputs.append(out)
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
    return outputs


def final_lines(output: str) -> int:
    """The final evaluation's lines (``dev ppl … dev BLEU …``), which rank 0 alone prints."""
    return sum(line.startswith("dev ppl ") for line in output.splitlines())


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "model.ckpt", map_location="cpu", weights_only=False)["state_dict"]


@pytest.fixture(scope="module")
def one_node_two_devices(tmp_path_factory, tiny_ablation, small_data_root, session_cache):
    """The reference: Lightning's ``ddp`` re-launching the script for its second rank."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    cmd = [sys.executable, "-m", "lit_transformer", "fit"]
    cmd += tiny_fit(tiny_ablation, small_data_root)
    cmd += ["--trainer.devices", "2", "--trainer.accelerator", "cpu", "--out", str(out)]
    (output,) = run_ranks([cmd], [clean_env(session_cache)])
    return out, output


def assert_same_run(out: Path, reference: Path) -> None:
    """Identical weights on every rank, and the reference's weights and dev loss."""
    result = json.loads((out / "result.json").read_text())
    ref = json.loads((reference / "result.json").read_text())
    checks = result["rank_param_checksums"]
    assert len(checks) == 2 and checks[0] == checks[1]
    assert result["steps"] == ref["steps"] == STEPS
    assert result["dev_loss"] == pytest.approx(ref["dev_loss"], rel=1e-5)
    # gloo sums the 2 ranks' gradients in the order the layout gives: fp32 rounding (~3e-7).
    # A key's bias adds the same score to every key of a query, which softmax cancels: its
    # gradient is rounding noise that Adam scales up to full steps, so it is not compared.
    mine, theirs = weights(out), weights(reference)
    assert mine.keys() == theirs.keys()
    for name, tensor in mine.items():
        if not name.endswith("w_k.bias"):
            torch.testing.assert_close(tensor, theirs[name], rtol=1e-4, atol=1e-5, msg=name)


def test_one_node_two_devices_train_identical_weights(one_node_two_devices):
    out, output = one_node_two_devices
    result = json.loads((out / "result.json").read_text())
    checks = result["rank_param_checksums"]
    assert len(checks) == 2 and checks[0] == checks[1]
    assert result["steps"] == STEPS and result["dev_bleu"] is not None
    assert final_lines(output) == 1  # printed once, by rank 0


def test_two_nodes_under_torchrun_match_one_node(
    tmp_path, tiny_ablation, small_data_root, session_cache, one_node_two_devices
):
    """Two torchrun launches, ``--nnodes 2 --node-rank 0/1``, on 127.0.0.1 over gloo."""
    out, port = tmp_path / "run", free_port()
    commands = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2"]
        cmd += ["--node-rank", str(node), "--nproc-per-node", "1"]
        cmd += ["--master-addr", "127.0.0.1", "--master-port", str(port)]
        cmd += ["-m", "lit_transformer", "fit", *tiny_fit(tiny_ablation, small_data_root)]
        cmd += ["--trainer.num_nodes", "2", "--trainer.accelerator", "cpu", "--out", str(out)]
        commands.append(cmd)
    node0, node1 = run_ranks(commands, [clean_env(session_cache)] * 2)
    assert_same_run(out, one_node_two_devices[0])
    assert final_lines(node0) == 1 and final_lines(node1) == 0  # node 0's rank 0 alone
    assert "result:" not in node1


def test_two_srun_tasks_run_the_written_script(
    tmp_path, tiny_ablation, small_data_root, session_cache, one_node_two_devices
):
    """The command line of ``slurm trial --nodes 2``'s script, in two processes with the
    variables srun gives the tasks of a 2-node job (Lightning's SLURMEnvironment)."""
    out, script = tmp_path / "run", tmp_path / "trial.sbatch"
    args = ["slurm", "trial", "--out", str(out), "--nodes", "2", "--accelerator", "cpu"]
    assert main([*args, "-o", str(script), "--", *tiny_fit(tiny_ablation, small_data_root)]) == 0
    text = script.read_text()
    assert "#SBATCH --nodes=2" in text and "#SBATCH --ntasks-per-node=1" in text
    assert "#SBATCH --signal=SIGUSR1@90" in text and "#SBATCH --requeue" in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    (srun,) = [line for line in text.splitlines() if line.startswith("srun ")]
    words = shlex.split(srun)[1:]
    assert words[0] == "lit-transformer"
    command = [sys.executable, "-m", "lit_transformer", *words[1:]]
    # Lightning's SLURMEnvironment takes the port from the job id: 15000 + its last 4 digits.
    port = free_port(15000 + os.getpid() % 5000, 25000)
    slurm = {
        "SLURM_JOB_ID": f"77{port - 15000:04d}",
        "SLURM_JOB_NAME": "lit-base",
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NNODES": "2",
        "SLURM_NODELIST": "127.0.0.1",
        "SLURM_LOCALID": "0",
    }
    envs = [
        clean_env(session_cache, **slurm, SLURM_PROCID=str(r), SLURM_NODEID=str(r)) for r in (0, 1)
    ]
    task0, task1 = run_ranks([command, command], envs)
    assert_same_run(out, one_node_two_devices[0])
    assert final_lines(task0) == 1 and final_lines(task1) == 0


def test_written_scripts_hold_no_password_and_bad_numbers_are_one_line(
    tmp_path, tiny_ablation, capsys
):
    spec = tmp_path / "study.yaml"
    spec.write_text(f"study: pw\nablation: {tiny_ablation}\nrows: [base]\nseeds: [1, 2]\n")
    script = tmp_path / "sweep.sbatch"
    url = "postgresql://ann@db.example:5432/optuna"
    args = ["slurm", "sweep", str(spec), "--workers", "8", "--run-dir", str(tmp_path / "runs")]
    assert main([*args, "--storage", url, "-o", str(script)]) == 0
    text = script.read_text()
    assert "#SBATCH --array=0-7" in text and url in text
    assert "srun lit-transformer sweep" in text and "--workers 1" in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    capsys.readouterr()
    trial = ["slurm", "trial", "--out", str(tmp_path / "t")]
    fit = ["fit", "--ablation", str(tiny_ablation), "--row", "base"]
    bad = [
        ([*args, "--storage", "postgresql://ann:s3cret@db/x", "-o", str(tmp_path / "x")], "s3cret"),
        ([*args, "--storage", "sqlite:///study.db"], "postgresql"),
        ([*trial, "--nodes", "0", "--", "--row", "base"], "--nodes"),
        ([*trial, "--nodes", "two", "--", "--row", "base"], "--nodes"),
        ([*fit, "--trainer.num_nodes", "0"], "num_nodes"),
        ([*fit, "--trainer.num_nodes", "1.5"], "num_nodes"),
        ([*fit, "--num-nodes", "2"], "--trainer.num_nodes"),
    ]  # fmt: skip
    for argv, named in bad:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's errors leave through the parser
            code = exc.code
        assert code == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error:"), err
        if named == "s3cret":
            assert named not in err and "~/.pgpass" in err
        else:
            assert named in err, err
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_a_signalled_slurm_job_checkpoints_requeues_and_resumes(
    tmp_path, tiny_ablation, small_data_root, session_cache
):
    """SIGUSR1 (``--signal=SIGUSR1@90``, before the time limit) to a task of a SLURM trial:
    Lightning writes ``hpc_ckpt_1.ckpt`` and calls ``scontrol requeue JOB``; SLURM then ends
    the job; the requeued job, the same command again, resumes from that checkpoint."""
    out, calls = tmp_path / "run", tmp_path / "scontrol.calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # SLURM's scontrol, as far as this test needs it: record the call, then end the job as a
    # requeue does (its caller, Lightning's rank 0, is the job's task here).
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nkill -9 $PPID\n')
    scontrol.chmod(0o755)
    slurm = {
        "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "lit-base", "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1", "SLURM_NODELIST": "127.0.0.1",
        "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
        "MASTER_PORT": str(free_port()), "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }  # fmt: skip
    env = clean_env(session_cache, **slurm)
    cmd = [
        sys.executable,
        "-m",
        "lit_transformer",
        "fit",
        *tiny_fit(tiny_ablation, small_data_root),
    ]
    cmd += [
        "--trainer.accelerator",
        "cpu",
        "--out",
        str(out),
        "--trainer.val_check_interval",
        "5000",
    ]
    first = subprocess.Popen([*cmd, "--trainer.max_steps", "100000"], env=env)
    try:
        deadline = time.time() + 300
        while not (out / "csv" / "metrics.csv").is_file() and time.time() < deadline:
            time.sleep(0.5)  # training has started (it logs every few steps)
        first.send_signal(signal.SIGUSR1)
        first.wait(timeout=300)  # ended by the requeue, after its checkpoint
        assert calls.read_text().split() == ["requeue", "4242"]
        assert (out / "hpc_ckpt_1.ckpt").is_file()
    finally:
        first.kill()
        first.wait()
    steps = checkpoint_step(out / "hpc_ckpt_1.ckpt") + 10
    again = subprocess.run(
        [*cmd, "--trainer.max_steps", str(steps)], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["resumed_from"].endswith("hpc_ckpt_1.ckpt") and result["steps"] == steps
