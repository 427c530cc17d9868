"""PSNR/SSIM, tiled inference, self-ensembles, atomic checkpoints, evaluation sets and baselines."""

import math
import os

import pytest
import torch

from impl.app import checkpoint, data, ensemble, evaluate, metrics, tiling
from impl.app.errors import UserError
from impl.models import course_network

# --- metrics ------------------------------------------------------------------------------------------


def test_psnr_by_hand():
    target = torch.zeros(3, 2, 2)
    out_a = torch.full((3, 2, 2), 0.1)  # MSE 0.01 -> 20 dB
    out_b = torch.full((3, 2, 2), 0.01)  # MSE 1e-4 -> 40 dB
    assert metrics.psnr_per_image([out_a, out_b], [target, target]) == pytest.approx([20.0, 40.0])
    assert metrics.psnr([out_a, out_b], [target, target]) == pytest.approx(30.0)  # mean of per-image PSNRs
    # not the PSNR of the mean MSE, which would be -10 log10(0.00505) = 22.97 dB
    assert metrics.psnr(torch.stack([out_a, out_b]), torch.stack([target, target])) == pytest.approx(30.0)


def test_psnr_clips_outputs_and_caps_identical_images():
    target = torch.ones(3, 4, 4)
    assert metrics.psnr([torch.full((3, 4, 4), 7.0)], [target]) == pytest.approx(100.0)  # clipped to 1: identical
    half = torch.full((3, 4, 4), 0.5)
    assert metrics.psnr([half - 3], [half]) == pytest.approx(-10 * math.log10(0.25))  # clipped to 0


def test_psnr_errors():
    with pytest.raises(ValueError, match="as many outputs as targets"):
        metrics.psnr([torch.zeros(3, 2, 2)], [])
    with pytest.raises(ValueError, match=r"image 0: output \(3, 2, 2\) and target \(3, 2, 3\)"):
        metrics.psnr([torch.zeros(3, 2, 2)], [torch.zeros(3, 2, 3)])


def test_ssim_identical_is_one_and_noise_lowers_it():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(3, 16, 16, generator=g)
    assert metrics.ssim([clean], [clean]) == pytest.approx(1.0)
    noisy = (clean + 0.2 * torch.randn(3, 16, 16, generator=g)).clamp(0, 1)
    assert metrics.ssim([noisy], [clean]) < 0.9
    assert metrics.ssim([clean[:, :4, :4]], [clean[:, :4, :4]]) == pytest.approx(1.0)  # 3 x 3 window
    with pytest.raises(ValueError, match="at least 3 x 3"):
        metrics.ssim([clean[:, :2, :2]], [clean[:, :2, :2]])


# --- tiling ------------------------------------------------------------------------------------------


def test_pad_to_multiple_repeats_the_last_row_and_column():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    y = tiling.pad_to_multiple(x)
    assert y.shape == (1, 1, 4, 4)
    assert y[0, 0].tolist() == [[0, 1, 2, 2], [3, 4, 5, 5], [3, 4, 5, 5], [3, 4, 5, 5]]
    assert tiling.pad_to_multiple(torch.zeros(3, 8, 4)).shape == (3, 8, 4)


@pytest.mark.parametrize("upsampling", ["nearest", "transpose"])
def test_tiled_equals_whole_image(upsampling):
    torch.manual_seed(0)
    net = course_network(upsampling, channels=4)
    x = torch.rand(2, 3, 70, 45)
    whole = tiling.run_tiled(net, x, tile=128)  # one piece
    tiled = tiling.run_tiled(net, x, tile=16)  # 5 x 3 tiles
    assert whole.shape == tiled.shape == (2, 3, 70, 45)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("tile", [0, 6, -4, 2.0])
def test_tile_must_be_a_positive_multiple_of_4(tile):
    with pytest.raises(UserError, match="^tile must be a positive multiple of 4"):
        tiling.check_tile(tile)


# --- atomic checkpoints -------------------------------------------------------------------------------


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    obj = {"w": torch.arange(3.0), "step": 3, "cfg": {"a": "b", "n": None}, "l": [1.0, 2.0], "t": (0.9, 0.99)}
    path = checkpoint.save_checkpoint(obj, tmp_path / "sub" / "c.pth")
    back = checkpoint.load_checkpoint(path)
    assert torch.equal(back["w"], obj["w"]) and back["cfg"] == obj["cfg"] and back["t"] == (0.9, 0.99)
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = checkpoint.save_checkpoint({"step": 1}, tmp_path / "c.pth")

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(UserError, match="could not write .*c.pth: disk full; the previous file"):
        checkpoint.save_checkpoint({"step": 2}, path)
    assert checkpoint.load_checkpoint(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pth"]


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        checkpoint.load_checkpoint(tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "junk.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(UserError, match="expected a checkpoint dict, got list"):
        checkpoint.load_checkpoint(tmp_path / "list.pth")


def test_weights_only_refuses_arbitrary_objects(tmp_path):
    torch.save({"x": evaluate.Row("a", 1.0, 1.0, [])}, tmp_path / "obj.pth")
    with pytest.raises(UserError, match="not a checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "obj.pth")


# --- evaluation sets and baselines -------------------------------------------------------------------


def test_heldout_set_is_the_same_noisy_pixels_every_time():
    a, b = evaluate.heldout_set(size=32), evaluate.heldout_set(size=32)
    assert all(torch.equal(x, y) for x, y in zip(a.noisy, b.noisy))
    c = evaluate.heldout_set(size=32, seed=evaluate.EVAL_SEED + 1)
    assert not torch.equal(a.noisy[0], c.noisy[0])
    assert a.sigma == pytest.approx(25 / 255)
    assert metrics.psnr(a.noisy, a.clean) == pytest.approx(20.8, abs=0.6)


def test_heldout_set_unclipped_has_the_same_draws():
    clipped, raw = evaluate.heldout_set(size=32), evaluate.heldout_set(size=32, clip=False)
    assert raw.noisy[0].min() < 0 and raw.noisy[0].max() > 1 and "unclipped noise" in raw.name
    assert all(torch.equal(a, b.clamp(0, 1)) for a, b in zip(clipped.noisy, raw.noisy))


def test_estimate_sigma_recovers_gaussian_noise():
    clean = torch.full((3, 64, 64), 0.5)
    noisy = clean + 0.1 * torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert evaluate.estimate_sigma(noisy) == pytest.approx(0.1, rel=0.05)


def test_evaluate_rows_baselines_beat_noise_and_table_lists_all():
    evalset = evaluate.heldout_set(size=48)
    rows = evaluate.evaluate(evalset, {"identity": lambda x: x})
    assert [r.method for r in rows] == ["Noisy input", "NL-means", "TV (Chambolle)", "identity"]
    assert rows[3].psnr == pytest.approx(rows[0].psnr)
    assert rows[1].psnr > rows[0].psnr + 4 and rows[2].psnr > rows[0].psnr + 4
    unknown = evaluate.EvalSet("s", evalset.noisy, evalset.clean, sigma=None)  # sigma estimated
    assert evaluate.evaluate(unknown, {})[1].psnr == pytest.approx(rows[1].psnr, abs=1.0)
    table = evaluate.format_table(rows)
    assert table.splitlines()[0].startswith("| method")
    assert f"{rows[1].psnr:9.2f}" in table and len(table.splitlines()) == 6
    assert [r.method for r in evaluate.evaluate(evalset, {}, baselines=False)] == ["Noisy input"]


def test_self_ensemble_is_the_mean_of_the_eight_turned_back_outputs():
    x = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    weights = torch.rand(8, 12, generator=torch.Generator().manual_seed(1))

    def forward(y):  # not invariant to flips or turns: each transform gives another output
        assert y.shape[-2:] in ((8, 12), (12, 8))
        return y.cumsum(-1) * (weights if y.shape[-1] == 12 else weights.t())

    expected = sum(data.undo_dihedral(forward(data.dihedral(x, code)), code) for code in range(8)) / 8
    out = ensemble.self_ensemble(forward)(x)
    assert out.shape == x.shape and torch.allclose(out, expected)
    assert not torch.allclose(out, forward(x))
    assert torch.allclose(ensemble.self_ensemble(lambda y: y)(x), x)  # an invariant network: unchanged


def test_self_ensemble_consumes_each_output_before_the_next_call():
    buffer = torch.empty(1, 3, 4, 4)

    def forward(y):  # a network that writes every output into the same buffer
        return buffer.copy_(y)

    x = torch.rand(1, 3, 4, 4)
    assert torch.allclose(ensemble.self_ensemble(forward)(x), x)


def test_evaluate_adds_the_self_ensemble_rows_it_is_asked_for():
    evalset = evaluate.heldout_set(size=16)
    nets = {"a": lambda x: x * 0.5 + 0.25, "b": lambda x: x.cumsum(-1) / x.shape[-1]}
    rows = evaluate.evaluate(evalset, nets, baselines=False, ensemble=["b"])
    assert [r.method for r in rows] == ["Noisy input", "a", "b", "b" + evaluate.ENSEMBLE_SUFFIX]
    assert rows[3].psnr != rows[2].psnr
    with pytest.raises(ValueError, match=r"not evaluated: \['c'\]"):
        evaluate.evaluate(evalset, nets, baselines=False, ensemble=["b", "c"])


def test_denoise_images_batches_equal_shapes_and_keeps_order():
    calls = []

    def forward(x):
        calls.append(tuple(x.shape))
        return x * 2

    images = [torch.ones(3, 8, 8), torch.ones(3, 8, 8) * 2, torch.ones(3, 4, 8), torch.ones(3, 8, 8) * 3]
    out = evaluate.denoise_images(forward, images, batch=2)
    assert calls == [(2, 3, 8, 8), (1, 3, 4, 8), (1, 3, 8, 8)]
    assert [o.shape for o in out] == [i.shape for i in images]
    assert all(torch.equal(o, 2 * i) for o, i in zip(out, images))
