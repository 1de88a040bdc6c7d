import pytest
import torch

from lsmseg.data.split import row_sampler, row_weights, rows_from_split, supervision_split
from lsmseg.keys import Mode


def test_split_is_sequential_70_10_20() -> None:
    s = supervision_split(100, 1.0)
    assert sorted(s.paired) == list(range(70))
    assert s.valid == list(range(70, 80)) and s.test == list(range(80, 100))
    assert s.x_only == [] and s.y_only == []


@pytest.mark.parametrize("p", [0.6, 0.2, 0.05, 0.01])
def test_proportion_is_honoured_and_unpaired_halves_are_disjoint(p: float) -> None:
    s = supervision_split(500, p, seed=3)
    assert len(s.paired) == max(1, round(p * 350))
    assert not set(s.x_only) & set(s.y_only)
    assert not (set(s.x_only) | set(s.y_only)) & set(s.paired)
    assert abs(len(s.x_only) - len(s.y_only)) == 0
    assert len(s.paired) + len(s.x_only) + len(s.y_only) >= 349  # an odd remainder drops one sample


@pytest.mark.parametrize("p", [0, -0.1, 1.5])
def test_proportion_outside_0_1_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match=r"proportion must be in \(0, 1\]"):
        supervision_split(100, p)


def test_weighted_sampling_balances_paired_and_unpaired_rows() -> None:
    modes = [Mode.PAIRED] * 5 + [Mode.X_ONLY] * 45 + [Mode.Y_ONLY] * 50
    w = row_weights(modes)
    assert float(w[:5].sum()) == pytest.approx(float(w[5:].sum()))
    rows = [{"mode": int(m)} for m in modes]
    drawn = torch.tensor([rows[i]["mode"] for i in row_sampler(rows, seed=0)])
    assert 0.35 < float((drawn == Mode.PAIRED).float().mean()) < 0.65


def test_rows_from_split_orders_rows_and_hides_views() -> None:
    s = supervision_split(10, 0.5, seed=0)  # train 0..6 (4 paired, 1 + 1 unpaired), valid 7, test 8, 9
    rows = rows_from_split(s, lambda i, mode: {"i": i, "mode": mode})
    train = [(r["i"], r["mode"]) for r in rows["train"]]
    assert train == (
        [(i, Mode.PAIRED) for i in s.paired]
        + [(i, Mode.X_ONLY) for i in s.x_only]
        + [(i, Mode.Y_ONLY) for i in s.y_only]
    )
    assert len(s.paired) == 4 and len(s.x_only) == len(s.y_only) == 1
    assert rows["valid"] == [{"i": 7, "mode": Mode.PAIRED}]
    assert rows["test"] == [{"i": 8, "mode": Mode.PAIRED}, {"i": 9, "mode": Mode.PAIRED}]


def test_shared_protocol_gives_every_unpaired_sample_both_views() -> None:
    """``shared`` (the reference code): at 20 % of 350, 70 paired + 280 x-only + the same 280
    as y-only; ``disjoint`` (the paper's text) halves the 280 into 140 + 140."""
    shared = supervision_split(500, 0.2, seed=0, unpaired="shared")
    disjoint = supervision_split(500, 0.2, seed=0)
    assert shared.paired == disjoint.paired and len(shared.paired) == 70
    assert shared.x_only == shared.y_only and len(shared.x_only) == 280
    assert sorted(shared.x_only) == sorted(disjoint.x_only + disjoint.y_only)
    with pytest.raises(ValueError, match="valid: disjoint, shared"):
        supervision_split(500, 0.2, unpaired="halves")  # type: ignore[arg-type]


def test_epoch_sampling_draws_every_row_once_per_epoch() -> None:
    modes = [Mode.PAIRED] * 5 + [Mode.X_ONLY] * 45 + [Mode.Y_ONLY] * 50
    rows = [{"mode": int(m)} for m in modes]
    sampler = row_sampler(rows, seed=0, sampling="epoch")
    assert sorted(sampler) == list(range(100))
    assert sorted(sampler) == list(range(100))  # the next epoch too, in another order
    balanced = list(row_sampler(rows, seed=0))
    assert len(balanced) == 100 and len(set(balanced)) < 100  # with replacement
    with pytest.raises(ValueError, match="valid: balanced, epoch"):
        row_sampler(rows, sampling="once")  # type: ignore[arg-type]
