"""The data pipeline: built-in images and their split, crops, noise, user folders, course files, image I/O."""

import hashlib

import numpy as np
import pytest
import skimage.io
import torch
from PIL import Image

from impl.app import data, images
from impl.app.errors import UserError
from impl.app.images import read_image, to_rgb, write_image
from impl.app.noise import Noise, make_pair


def digest(t):
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


# --- built-in images and the split ------------------------------------------------------------------


def test_split_is_fixed_and_disjoint():
    assert data.HELD_OUT == ("astronaut", "coffee")
    assert set(data.TRAINING) | set(data.HELD_OUT) == set(data.BUILTIN)
    assert not set(data.TRAINING) & set(data.HELD_OUT)
    assert len(data.BUILTIN) == 9  # the 7 colour photographs + the stereo motorcycle pair


def test_training_images_never_contain_held_out_content():
    held = [data.builtin_image(n) for n in data.HELD_OUT]
    training = data.training_images()
    assert len(training) == len(data.TRAINING)
    held_digests = {digest(h) for h in held}
    assert not held_digests & {digest(t) for t in training}
    # by content: no training crop equals a window of a held-out image at the same position grid
    crops = data.CropSampler(training, 16).sample(200, torch.Generator().manual_seed(0))
    windows = {digest(h[:, i : i + 16, j : j + 16]) for h in held for i in range(0, 256, 16) for j in range(0, 256, 16)}
    assert not windows & {digest(c) for c in crops}
    # the held-out crops are the held-out images, center-cropped
    eval_images = data.heldout_images(32)
    assert [tuple(e.shape) for e in eval_images] == [(3, 32, 32)] * 2
    assert torch.equal(eval_images[0], data.builtin_image("astronaut")[:, 240:272, 240:272])


def test_builtin_images_are_rgb_unit_range_and_unknown_name_fails():
    image = data.builtin_image("motorcycle_right")
    assert image.dtype == torch.float32 and image.shape == (3, 500, 741)
    assert 0 <= image.min() and image.max() <= 1
    assert not torch.equal(image, data.builtin_image("motorcycle_left"))
    with pytest.raises(UserError, match="unknown built-in image 'lena'"):
        data.builtin_image("lena")


# --- crops -------------------------------------------------------------------------------------------


def test_crops_are_deterministic_for_a_seed_and_differ_for_another():
    sampler = data.CropSampler(data.training_images(), 32)
    a = sampler.sample(16, torch.Generator().manual_seed(3))
    b = sampler.sample(16, torch.Generator().manual_seed(3))
    c = sampler.sample(16, torch.Generator().manual_seed(4))
    assert a.shape == (16, 3, 32, 32)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_crops_are_windows_of_the_source_under_one_of_eight_transforms():
    image = torch.arange(3 * 10 * 12, dtype=torch.float32).reshape(3, 10, 12)
    crops = data.CropSampler([image], 4).sample(64, torch.Generator().manual_seed(0))
    windows = {
        digest(data.dihedral(image[:, i : i + 4, j : j + 4], code)): code
        for i in range(7)
        for j in range(9)
        for code in range(8)
    }
    assert {digest(c) for c in crops} <= set(windows)
    assert {windows[digest(c)] for c in crops} == set(range(8))  # all 8 flips/rotations occur
    corners = {(int(c[0, 0, 0]) // 12, int(c[0, 0, 0]) % 12) for c in crops}
    assert len(corners) > 10  # many positions


def test_dihedral_gives_eight_distinct_transforms():
    x = torch.arange(9.0).reshape(1, 3, 3)
    assert len({digest(data.dihedral(x, code)) for code in range(8)}) == 8


def test_undo_dihedral_inverts_every_transform_of_a_non_square_batch():
    x = torch.arange(2 * 3 * 4 * 6.0).reshape(2, 3, 4, 6)
    for code in range(8):
        assert torch.equal(data.undo_dihedral(data.dihedral(x, code), code), x), code


@pytest.mark.parametrize(
    "images, size, match",
    [
        ([], 8, "no images"),
        ([torch.zeros(3, 6, 20)], 8, "smaller than the crop size 8"),
        ([torch.zeros(3, 9, 9)], 3, ">= 4"),
    ],
)
def test_crop_sampler_errors(images, size, match):
    with pytest.raises(UserError, match=match):
        data.CropSampler(images, size)


# --- noise -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, parsed",
    [
        ("gaussian:25", Noise("gaussian", 25, 25)),
        ("gaussian:0-50", Noise("gaussian", 0, 50)),
        ("poisson:30", Noise("poisson", 30, 30)),
        ("poisson:10-50.5", Noise("poisson", 10, 50.5)),
    ],
)
def test_noise_spec_round_trip(spec, parsed):
    assert Noise.parse(spec) == parsed
    assert str(parsed) == spec


@pytest.mark.parametrize(
    "spec, match",
    [
        ("salt:3", "unknown noise"),
        ("gaussian:abc", "cannot read"),
        ("gaussian:", "cannot read"),
        ("gaussian:30-10", "LOW <= HIGH"),
        ("poisson:0", "peak must be > 0"),
    ],
)
def test_noise_spec_errors(spec, match):
    with pytest.raises(UserError, match=match):
        Noise.parse(spec)


def test_gaussian_noise_has_the_requested_sigma_and_is_clipped():
    clean = torch.full((4, 3, 64, 64), 0.5)
    noisy = Noise.parse("gaussian:25").apply(clean, torch.Generator().manual_seed(0))
    assert (noisy - clean).std().item() == pytest.approx(25 / 255, rel=0.03)
    edge = Noise.parse("gaussian:25").apply(torch.ones(1, 3, 8, 8), torch.Generator().manual_seed(0))
    assert edge.max() <= 1 and edge.min() < 1


def test_gaussian_sigma_range_draws_a_sigma_per_image():
    clean = torch.full((64, 1, 32, 32), 0.5)
    stds = (Noise.parse("gaussian:0-50").apply(clean, torch.Generator().manual_seed(0)) - clean).std(dim=(1, 2, 3))
    assert stds.min() < 10 / 255 and stds.max() > 40 / 255 and stds.max() < 55 / 255


def test_poisson_noise_variance_is_mean_over_peak():
    clean = torch.full((2, 3, 64, 64), 0.5)
    noisy = Noise.parse("poisson:30").apply(clean, torch.Generator().manual_seed(0))
    assert noisy.mean().item() == pytest.approx(0.5, abs=0.01)
    assert noisy.var().item() == pytest.approx(0.5 / 30, rel=0.1)
    assert Noise.parse("poisson:30").sigma is None and Noise.parse("gaussian:0-50").sigma == pytest.approx(25 / 255)


def test_noise2noise_pairs_have_independent_noise_and_noise2clean_a_clean_target():
    clean = torch.full((8, 3, 16, 16), 0.5)
    noise = Noise.parse("gaussian:25")
    x, t = make_pair(clean, noise, "n2n", torch.Generator().manual_seed(0))
    assert abs(torch.corrcoef(torch.stack([(x - clean).flatten(), (t - clean).flatten()]))[0, 1]) < 0.05
    x2, t2 = make_pair(clean, noise, "n2c", torch.Generator().manual_seed(0))
    assert torch.equal(x2, x) and torch.equal(t2, clean)
    x3, _ = make_pair(clean, noise, "n2n", torch.Generator().manual_seed(1))
    assert not torch.equal(x3, x)
    with pytest.raises(UserError, match="^pairs"):
        make_pair(clean, noise, "n2x", torch.Generator())


# --- user folders and image files ---------------------------------------------------------------------


def test_folder_images_reads_png_and_jpeg_grey_rgba_sorted(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    skimage.io.imsave(tmp_path / "b.png", rgb, check_contrast=False)
    skimage.io.imsave(tmp_path / "a.png", np.full((10, 12), 255, np.uint8), check_contrast=False)
    rgba = np.dstack([rgb, np.zeros((20, 24), np.uint8)])
    skimage.io.imsave(tmp_path / "c.PNG", rgba, check_contrast=False)
    smooth = np.broadcast_to(np.linspace(0, 255, 24, dtype=np.uint8)[None, :, None], (20, 24, 3))
    skimage.io.imsave(tmp_path / "d.jpg", smooth, check_contrast=False)
    (tmp_path / "notes.txt").write_text("not an image")
    found = data.folder_images(tmp_path)
    assert [tuple(i.shape) for i in found] == [(3, 10, 12), (3, 20, 24), (3, 20, 24), (3, 20, 24)]
    assert torch.equal(found[0], torch.ones(3, 10, 12))  # grey repeated on 3 channels
    assert torch.allclose(found[1], torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    assert torch.equal(found[2], found[1])  # alpha dropped
    assert (found[3] - torch.from_numpy(smooth.copy()).permute(2, 0, 1) / 255).abs().max() < 0.05  # JPEG: lossy


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="is not a directory"):
        data.folder_images(tmp_path / "missing")
    with pytest.raises(UserError, match="no .png/.jpg/.jpeg files"):
        data.folder_images(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read image .*broken.png"):
        data.folder_images(tmp_path)


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found"):
        read_image(tmp_path / "nope.png")
    Image.fromarray(np.full((4, 5, 2), 51, np.uint8), mode="LA").save(tmp_path / "grey_alpha.png")
    assert torch.allclose(read_image(tmp_path / "grey_alpha.png"), torch.full((3, 4, 5), 0.2))
    Image.fromarray(np.full((4, 5), 65535, np.uint16)).save(tmp_path / "deep.png")  # 16-bit grey
    assert torch.allclose(read_image(tmp_path / "deep.png"), torch.ones(3, 4, 5))
    palette = Image.new("P", (5, 4), 0)
    palette.putpalette([255, 0, 0] * 256)
    palette.save(tmp_path / "palette.png")
    assert torch.equal(read_image(tmp_path / "palette.png")[:, 0, 0], torch.tensor([1.0, 0, 0]))
    with pytest.raises(UserError, match=r"got \(4, 4, 5\)"):
        to_rgb(np.zeros((4, 4, 5)))


def test_read_image_reports_a_file_with_a_bad_layout(tmp_path, monkeypatch):
    Image.new("RGB", (3, 3)).save(tmp_path / "odd.png")
    monkeypatch.setattr(images, "to_tensor", lambda array: to_rgb(np.zeros((2, 2, 2, 2))))
    with pytest.raises(UserError, match="odd.png: expected an image"):
        read_image(tmp_path / "odd.png")


def test_write_image_round_trip_and_suffix_check(tmp_path):
    image = torch.rand(3, 9, 7, generator=torch.Generator().manual_seed(0))
    write_image(tmp_path / "out" / "x.png", image)
    back = read_image(tmp_path / "out" / "x.png")
    assert (back - image).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit rounding only
    write_image(tmp_path / "x.jpeg", image)
    assert read_image(tmp_path / "x.jpeg").shape == (3, 9, 7)
    with pytest.raises(UserError, match="must end in one of"):
        write_image(tmp_path / "x.bmp", image)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "x.jpeg", "x.png"]


# --- the course's .pkl files ----------------------------------------------------------------------


def test_course_pairs_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    noisy = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=g)
    clean = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=g)
    torch.save((noisy, clean), tmp_path / "val_data.pkl")
    a, b = data.load_course_pairs(tmp_path / "val_data.pkl")
    assert torch.equal(a, noisy) and torch.equal(b, clean)


@pytest.mark.parametrize(
    "content, match",
    [
        ({"a": 1}, "got dict"),
        ((torch.zeros(2, 3, 8, 8, dtype=torch.uint8),), "got tuple"),
        ((torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8)), "got torch.float32"),
        ((torch.zeros(2, 1, 8, 8, dtype=torch.uint8),) * 2, r"of shape \(2, 1, 8, 8\)"),
        ((torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(3, 3, 8, 8, dtype=torch.uint8)), "got shapes"),
        ((torch.zeros(0, 3, 8, 8, dtype=torch.uint8),) * 2, "got shapes"),
    ],
)
def test_course_pairs_errors_name_expected_and_received(tmp_path, content, match):
    torch.save(content, tmp_path / "bad.pkl")
    with pytest.raises(UserError, match=match):
        data.load_course_pairs(tmp_path / "bad.pkl")


def test_course_pairs_missing_or_not_torch(tmp_path):
    with pytest.raises(FileNotFoundError, match="course data file not found"):
        data.load_course_pairs(tmp_path / "train_data.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a torch file"):
        data.load_course_pairs(tmp_path / "junk.pkl")


def test_pair_sampler_applies_the_same_transform_to_both_halves():
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=g)
    sampler = data.PairSampler(inputs, 255 - inputs)
    x, t = sampler.sample(10, torch.Generator().manual_seed(1))
    assert x.shape == t.shape == (10, 3, 8, 8) and x.dtype == torch.float32
    assert torch.allclose(x + t, torch.ones_like(x))
    x2, _ = sampler.sample(10, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2)


def test_make_pair_refuses_an_unknown_target_kind():
    clean = torch.rand(1, 3, 4, 4)
    with pytest.raises(UserError, match=r"^targets must be one of \('clipped', 'raw'\), got 'soft'"):
        make_pair(clean, Noise.parse("gaussian:25"), "n2n", torch.Generator(), targets="soft")
    noisy, target = make_pair(clean, Noise.parse("gaussian:25"), "n2n", torch.Generator().manual_seed(0), "raw")
    assert bool((noisy >= 0).all() and (noisy <= 1).all()) and bool((target < 0).any() or (target > 1).any())
