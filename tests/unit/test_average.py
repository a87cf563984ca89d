"""Checkpoint averaging: the mean of the weights, integer buffers from the first."""

from __future__ import annotations

import torch

from lit_transformer.training.average import average_checkpoints, save_atomic


def test_checkpoint_averaging(tmp_path):
    paths = []
    for i, value in enumerate([1.0, 2.0, 6.0]):
        ckpt = {
            "global_step": 10 * (i + 1),
            "state_dict": {"w": torch.full((2, 2), value), "n": torch.tensor(i)},
            "optimizer_states": [{}],
        }
        path = tmp_path / f"c{i}.ckpt"
        save_atomic(ckpt, path)
        paths.append(path)
    avg = average_checkpoints(paths)
    torch.testing.assert_close(avg["state_dict"]["w"], torch.full((2, 2), 3.0))
    assert avg["state_dict"]["n"].item() == 0  # integer buffers are taken from the first
    assert "optimizer_states" not in avg
    assert avg["averaged_from"] == [str(p) for p in paths]
