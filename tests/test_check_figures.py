"""A picture of the error: on tensors made with a known bug each (padding, stride, channel
mixing, batch handling), :func:`pattern` names the bug's pattern from the error's support, and
:func:`picture` writes one small PNG per channel, which the Markdown and HTML reports show."""

import pytest
import torch
import torch.nn.functional as F

from harness.check.class_folder import manifest, write_class
from harness.check.class_report import figure_lines
from harness.check.figures import pattern, picture

TOL = 1e-9


def _conv():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 12, 12, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
    return x, w, F.conv2d(x, w, padding=1)


def _padding_bug():
    """Padding by replicating the edge instead of zeros: wrong along the border only."""
    x, w, right = _conv()
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), w), right


def _stride_bug(step, dim):
    """An input gradient of a strided convolution scattered with the wrong scale: every step-th line."""
    _, _, right = _conv()
    wrong = right.clone()
    index = [slice(None)] * 4
    index[dim] = slice(1, None, step)
    wrong[tuple(index)] *= 2
    return wrong, right


def _channel_bug():
    """One output channel computed with another channel's kernel."""
    x, w, right = _conv()
    mixed = w.clone()
    mixed[1] = w[2]
    return F.conv2d(x, mixed, padding=1), right


def _batch_bug():
    """Only the first batch item's statistics right (the rest reuse them)."""
    _, _, right = _conv()
    wrong = right.clone()
    wrong[1] = right[1] * 0.5
    return wrong, right


def _scattered_bug():
    _, _, right = _conv()
    wrong = right.clone()
    wrong.view(-1)[torch.arange(0, right.numel(), 97)] += 1
    return wrong, right


def _both(step):
    """A strided convolution's gradient written at every position instead of every step-th."""
    _, _, right = _conv()
    wrong = right.clone()
    wrong[:, :, ::step, ::step] += 1
    return wrong, right


def _corner():
    _, _, right = _conv()
    wrong = right.clone()
    wrong[:, :, 0, 0] += 1
    return wrong, right


@pytest.mark.parametrize(
    "make,words",
    [
        (_padding_bug, ["only the border"]),
        (lambda: _stride_bug(2, 2), ["every other row"]),
        (lambda: _stride_bug(2, 3), ["every other column"]),
        (lambda: _stride_bug(3, 2), ["every 3rd row"]),
        (_channel_bug, ["one whole channel (channel 1)"]),
        (_batch_bug, ["one batch item (item 1)"]),
        (lambda: (_conv()[2] * 1.01, _conv()[2]), ["everywhere"]),
        (_scattered_bug, ["scattered"]),  # on every 4th row, but a few points each: not a stride's pattern
        (lambda: _both(2), ["every other row", "every other column"]),
        (_corner, ["scattered"]),  # one element on the edge is not "the border"
        (lambda: (_conv()[2], _conv()[2]), []),
    ],
)
def test_the_pattern_of_a_known_bug_is_named(make, words):
    actual, expected = make()
    assert pattern(actual, expected, TOL) == words


def test_a_nan_on_one_side_is_an_error_and_on_both_is_not():
    _, _, right = _conv()
    wrong, expected = right.clone(), right.clone()
    wrong[0, 0, 5, 5] = float("nan")
    assert pattern(wrong, right, TOL) == ["one batch item (item 0)", "one channel (channel 0)", "scattered"]
    expected[0, 0, 5, 5] = float("nan")
    assert pattern(wrong, expected, TOL) == []


def test_a_picture_per_channel_is_written_as_png(tmp_path):
    actual, expected = _padding_bug()
    found = picture(actual, expected, TOL, tmp_path, "Conv2d_output")
    assert found["pattern"] == ["only the border"]
    assert len(found["figures"]) == 4  # the four output channels, of the batch item with the largest error
    for name in found["figures"]:
        data = (tmp_path / name).read_bytes()
        assert name.startswith("figures/Conv2d_output_item") and data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) < 60_000  # small


def test_a_tensor_that_is_not_an_image_gets_words_but_no_picture(tmp_path):
    found = picture(torch.ones(5), torch.zeros(5), TOL, tmp_path, "bias")
    assert found == {"pattern": ["everywhere"], "figures": []}


def test_the_reports_show_a_findings_picture(tmp_path):
    actual, expected = _stride_bug(2, 2)
    sub = tmp_path / "alice"
    finding = {"block": "Conv2d", "quantity": "input gradient", "diagnosis": None, "line": "Conv2d: wrong"}
    finding |= picture(actual, expected, TOL, sub, "Conv2d_input_gradient")
    assert figure_lines(finding, "alice")[0] == "  - where the error is: every other row"
    at = "batch 2, image 5x7, in_channels=2"  # the landmark it was pictured at, when not the finding's own
    pictured = figure_lines(finding | {"pictured_at": at}, "alice")[0]
    assert pictured == f"  - where the error is (at {at}): every other row"
    assert figure_lines(finding, "alice")[1].startswith("  - ![Conv2d input gradient](alice/figures/Conv2d_input")
    record = {"name": "alice", "target": "alice", "status": "FAIL", "reason": "", "dtype": "float64"}
    record |= {"table": {"Conv2d": {"backward": "FAIL"}}, "findings": [finding], "notes": []}
    about = manifest([record], {"blocks": None, "seed": 0, "time_limit": 30.0, "quick": True}, "v", None)
    write_class(tmp_path, [record], about)
    page = (tmp_path / "class.html").read_text()
    assert page.count('src="data:image/png;base64,iVBORw0KGgo') == len(finding["figures"])
    assert "where the error is: every other row" in page
    assert not any(s in page for s in ("http:", "https:", "<link", "<script src", "url("))  # nothing loaded
    assert "![Conv2d input gradient](alice/figures/" in (tmp_path / "class.md").read_text()
