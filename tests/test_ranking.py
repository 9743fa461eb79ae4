"""The one pixel ranking behind insertion, deletion, ROAD and ROAR: reductions, ties, element ranking
and the removal of exactly round(p x positions)."""
import pytest
import torch

from robustxai.metrics.ranking import RankingPolicy, rank_pixels, removal_count, top_mask


def test_pixel_ranking_of_signed_maps_and_channel_reductions():
    maps = torch.tensor([[[0.5, -2.0], [1.0, 0.0]]])  # (1, 2, 2)
    assert rank_pixels(maps).tolist() == [[2, 0, 3, 1]]  # signed: the negative pixel comes last
    assert rank_pixels(maps, "abs_sum").tolist() == [[1, 2, 0, 3]]
    assert rank_pixels(maps, "square_sum").tolist() == [[1, 2, 0, 3]]
    # (N, C, H, W): the signed sum cancels opposite channels, the magnitude keeps them
    channels = torch.tensor([[[[3.0, 1.0]], [[-3.0, 1.0]]]])  # (1, 2, 1, 2)
    assert rank_pixels(channels, "sum").tolist() == [[1, 0]]
    assert rank_pixels(channels, "abs_sum").tolist() == [[0, 1]]
    # non-finite values count as 0
    assert rank_pixels(torch.tensor([[[float("nan"), 1.0, -1.0]]])).tolist() == [[1, 0, 2]]


def test_ties_keep_index_order_or_follow_a_seeded_shuffle():
    flat = torch.zeros(2, 4, 4)
    flat[:, 0, 0] = 1.0  # one peak, 15 tied pixels
    assert rank_pixels(flat).tolist() == [list(range(16))] * 2
    seeded = rank_pixels(flat, tie_break_seed=3)
    assert seeded[:, 0].tolist() == [0, 0]  # the peak stays first
    assert seeded[0].tolist() == seeded[1].tolist()  # the same tie order for every image
    assert seeded[0, 1:].tolist() != list(range(1, 16)) and sorted(seeded[0].tolist()) == list(range(16))
    assert rank_pixels(flat, tie_break_seed=3).tolist() == seeded.tolist()
    assert rank_pixels(flat, tie_break_seed=4).tolist() != seeded.tolist()
    # a tie-break never reorders positions whose scores differ
    ramp = torch.arange(16.0).view(1, 4, 4)
    assert rank_pixels(ramp, tie_break_seed=3).tolist() == rank_pixels(ramp).tolist() == [list(range(15, -1, -1))]


def test_element_ranking_squares_every_channel_element():
    maps = torch.tensor([[[[1.0, -3.0]], [[2.0, 0.5]]]])  # (1, C=2, 1, 2): elements 0..3 over (C, H, W)
    assert rank_pixels(maps, ranking="element").tolist() == [[1, 2, 0, 3]]
    # stored (N, H, W) maps are repeated over the images' channels: a pixel's channels tie
    order = rank_pixels(torch.tensor([[[1.0, -3.0]]]), ranking="element", channels=3)
    assert order.tolist() == [[1, 3, 5, 0, 2, 4]]
    with pytest.raises(ValueError, match="channels"):
        rank_pixels(torch.zeros(1, 2, 2), ranking="element")


def test_removal_takes_exactly_round_p_positions():
    order = rank_pixels(torch.rand(3, 10, 10))
    for fraction in (0.0, 0.2, 0.25, 0.333, 0.5, 0.8, 1.0):
        mask = top_mask(order, fraction, (10, 10))
        assert mask.shape == (3, 10, 10)
        assert mask.flatten(1).sum(1).tolist() == [removal_count(fraction, 100)] * 3
    assert removal_count(0.333, 100) == 33 and removal_count(0.125, 4) == 0  # round half to even
    top = top_mask(order, 0.1, (10, 10)).flatten(1)
    assert all(set(top[i].nonzero().flatten().tolist()) == set(order[i, :10].tolist()) for i in range(3))
    with pytest.raises(ValueError, match="fraction"):
        removal_count(1.5, 10)


def test_policy_names_its_options():
    assert RankingPolicy().as_dict() == {"ranking": "pixel", "reduction": "sum", "tie_break_seed": None}
    with pytest.raises(ValueError, match="ranking must be one of"):
        RankingPolicy(ranking="pixels")
    with pytest.raises(ValueError, match="reduction must be one of"):
        RankingPolicy(reduction="mean")
