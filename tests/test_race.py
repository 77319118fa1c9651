"""The race (`search.race`): entrants, rungs, budget cuts and successive halving on scores
whose right answer is known, then the recipe's race step (`recipe.race`) on a real task."""

from __future__ import annotations

import math

import pytest

from disciplined.recipe.race import race_weight_decays
from disciplined.search import race as race_module
from disciplined.search.race import (
    BACKOFFS,
    FINALISTS,
    HOLD_LOWER,
    LR_FACTORS,
    MIN_RUNG_STEPS,
    PLATEAU_ORDER,
    RESEED,
    SECOND_FINALIST_FIRST,
    WIDE_LR_FACTORS,
    Entrant,
    default_entrant,
    fit_to_budget,
    halve,
    held_up,
    make_entrants,
    pick_winner,
    plateau_pick,
    race_cost,
    reseed_cost,
    rung_counts,
    rung_epochs,
    scaled_readings,
    survivors,
    within_ceiling,
)
from disciplined.studies.decide import Decision


def test_entrants_span_each_batch_reading_and_widen_an_unreliable_one() -> None:
    es = make_entrants({32: (0.1, True), 64: (0.2, False)}, [1e-3, 1e-4, 1e-3], (0.9,))
    at32 = [e for e in es if e.batch_size == 32]
    at64 = [e for e in es if e.batch_size == 64]
    # the LR factors at the sweep's choice; its runner-up and the momentum at the reading
    assert len(at32) == len(LR_FACTORS) + 3 and len(at64) == len(WIDE_LR_FACTORS) + 2
    assert sorted({e.max_lr for e in at32}) == pytest.approx([0.1 / 3, 0.1, 0.3, 1.0])
    assert sorted({e.max_lr for e in at64}) == pytest.approx([0.2 / 30, 0.02, 0.2 / 3, 0.2, 0.6])
    assert {e.weight_decay for e in es} == {1e-3, 1e-4}  # the repeated value once
    runner_up = [e for e in es if e.weight_decay == 1e-4]
    # the smaller runner-up beside a larger LR; the unreliable reading's at the reading alone
    assert [(e.batch_size, e.lr_factor) for e in runner_up] == [(32, 1.0), (32, 3.0), (64, 1.0)]
    larger = make_entrants({32: (0.1, True)}, [1e-4, 1e-3])
    assert [e.lr_factor for e in larger if e.weight_decay == 1e-3] == [1 / 3, 1.0]
    twins = [e for e in es if e.max_momentum is not None]
    assert [(e.batch_size, e.max_lr, e.weight_decay, e.max_momentum) for e in twins] == [
        (32, 0.1, 1e-3, 0.9),
        (64, 0.2, 1e-3, 0.9),
    ]


def test_each_batchs_reading_is_scaled_from_the_first() -> None:
    sgd = scaled_readings(0.2, True, 64, [16, 32, 64], "sgd")
    assert sgd == {16: (0.05, True), 32: (0.1, True), 64: (0.2, True)}
    adamw = scaled_readings(1e-3, False, 64, [16, 64], "adamw")
    assert adamw[16] == (pytest.approx(5e-4), False) and adamw[64] == (1e-3, False)
    with pytest.raises(ValueError, match="positive LR"):
        make_entrants({32: (math.nan, True)}, [0.0])
    with pytest.raises(ValueError, match="at least one"):
        make_entrants({}, [0.0])


def test_rungs_are_whole_cycles_three_times_longer_and_too_short_ones_are_left_out() -> None:
    assert rung_epochs(27.0, 100) == (3.0, 9.0, 27.0)
    # 20 / 9 epochs of 10 steps is 22 steps, under MIN_RUNG_STEPS: left out
    assert 20 / 9 * 10 < MIN_RUNG_STEPS <= 20 / 3 * 10
    assert rung_epochs(20.0, 10) == (round(20 / 3, 4), 20.0)
    assert rung_epochs(20.0, 1) == (20.0,)
    with pytest.raises(ValueError, match="epochs"):
        rung_epochs(0.0, 10)


def test_each_rung_keeps_the_best_third_and_at_most_two_finalists() -> None:
    assert rung_counts(18, 3) == (18, 6, 2)
    assert rung_counts(30, 3) == (30, 10, 2)
    assert rung_counts(6, 3) == (6, 2, 1)
    assert rung_counts(15, 2, finalists=1) == (15, 1)
    assert rung_counts(4, 1) == (4,)
    assert race_cost(18, (3.0, 9.0, 27.0)) == pytest.approx(18 * 3 + 6 * 9 + 2 * 27)
    assert FINALISTS == 2


def _entrants() -> list[Entrant]:
    return make_entrants({16: (0.1, True), 32: (0.2, True), 64: (0.4, True)}, [1e-3, 1e-4])


def test_a_short_budget_cuts_a_finalist_momenta_the_reach_small_batches_then_far_lrs() -> None:
    es, rungs = _entrants(), (3.0, 9.0, 27.0)
    # 3 batches x (4 LR factors + the runner-up weight decay at 1x and 3x): 18 entrants
    assert len(es) == 18 and race_cost(18, rungs) == 18 * 3 + 6 * 9 + 2 * 27
    kept, finalists, notes, _ = fit_to_budget(es, rungs, 162)
    assert kept == es and finalists == 2 and notes == []
    # 18 entrants with one finalist: 54 + 54 + 27 = 135
    kept, finalists, notes, _ = fit_to_budget(es, rungs, 140)
    assert len(kept) == 18 and finalists == 1
    assert notes == ["the budget left room for one full-length run"]
    # then the reach beyond 3x, before any batch: 15 entrants cost 45 + 45 + 27 = 117
    kept, finalists, notes, _ = fit_to_budget(es, rungs, 120)
    assert {e.batch_size for e in kept} == {16, 32, 64} and len(kept) == 15
    assert {round(e.lr_factor, 3) for e in kept} == {0.333, 1.0, 3.0}
    assert notes[-1] == "the budget left no room for 10x the reading"
    # then the smallest batch: 10 entrants cost 30 + 36 + 27 = 93
    kept, finalists, notes, _ = fit_to_budget(es, rungs, 100)
    assert {e.batch_size for e in kept} == {32, 64} and len(kept) == 10
    assert notes[-1] == "the budget left no room for batch 16"
    # then the next: 5 entrants cost 15 + 18 + 27 = 60, the LR spread and runner-up kept
    kept, finalists, notes, _ = fit_to_budget(es, rungs, 60)
    assert {e.batch_size for e in kept} == {64} and race_cost(len(kept), rungs, finalists) == 60
    assert {round(e.lr_factor, 3) for e in kept} == {0.333, 1.0, 3.0}
    assert {e.weight_decay for e in kept} == {1e-3, 1e-4}
    # then a factor furthest from the reading: 4 entrants cost 12 + 18 + 27 = 57
    kept, finalists, notes, _ = fit_to_budget(es, rungs, 58)
    assert len(kept) == 4 and notes[-1] == "the budget left no room for 0.333x the reading"
    # momentum entrants go before any batch
    twins = make_entrants({16: (0.1, True), 64: (0.4, True)}, [1e-3], (0.9,))
    kept, _, notes, _ = fit_to_budget(twins, rungs, race_cost(8, rungs, 1))
    assert all(e.max_momentum is None for e in kept) and len(kept) == 8
    assert "the budget left no room for the momentum entrants" in notes


def test_the_second_finalist_then_the_second_seeds_are_paid_for_before_any_batch() -> None:
    es, rungs = _entrants(), (3.0, 9.0, 27.0)
    assert RESEED == 3 and reseed_cost(rungs, 3) == 27.0 and reseed_cost((27.0,), 3) == 0.0
    assert SECOND_FINALIST_FIRST
    # 18 entrants, 2 finalists and three second seeds at 9 epochs: 162 + 27
    fitted = fit_to_budget(es, rungs, 189, reseed=3)
    assert fitted.entrants == es and fitted.finalists == 2 and fitted.reseed == 3
    # the second seeds go first, then the reach: 15 entrants and 2 finalists, 144
    fitted = fit_to_budget(es, rungs, 150, reseed=3)
    assert (len(fitted.entrants), fitted.finalists, fitted.reseed) == (15, 2, 0)
    assert fitted.notes == [
        "the budget left no room for a second seed",
        "the budget left no room for 10x the reading",
    ]
    # with the finalists first, the same room bought one finalist and the second seeds
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(race_module, "SECOND_FINALIST_FIRST", False)
        fitted = fit_to_budget(es, rungs, 150, reseed=3)
    assert (len(fitted.entrants), fitted.finalists, fitted.reseed) == (15, 1, 3)
    assert fitted.notes[-1] == "the budget left no room for 10x the reading"
    # below that, the race runs as it would have without them: 15 entrants at 117
    fitted = fit_to_budget(es, rungs, 120, reseed=3)
    assert (len(fitted.entrants), fitted.reseed) == (15, 0)
    assert fitted.notes[0] == "the budget left no room for a second seed"
    assert fitted.notes[1:] == fit_to_budget(es, rungs, 120).notes
    # they never cost an entrant beyond the speculative ones: at 100, batch 16 goes (10
    # entrants, 93) with or without them, as it did without
    fitted = fit_to_budget(es, rungs, 100, reseed=3)
    assert fitted.entrants == fit_to_budget(es, rungs, 100).entrants and fitted.reseed == 0
    # at 87, batches 16 and 32 go (5 entrants: 60), which leaves room for them again
    fitted = fit_to_budget(es, rungs, 87, reseed=3)
    assert (len(fitted.entrants), fitted.reseed) == (5, 3)
    assert "the budget left no room for a second seed" not in fitted.notes
    assert fitted.notes[-1] == "the budget left no room for batch 32"
    # one rung has no rung before it to seed again
    assert fit_to_budget(es, (27.0,), 1000, reseed=3).reseed == 0


def test_a_second_seed_reranks_the_best_runs_before_the_last_rung() -> None:
    # a seed-lucky entrant: first on seed 1, at chance on seed 2; the steady ones score the
    # same on both seeds
    lucky, steady, third = (
        Entrant(32, 0.3, 0.0, 3.0),
        Entrant(32, 0.1, 0.0, 1.0),
        Entrant(32, 0.03, 0.0, 1 / 3),
    )
    fourth = Entrant(64, 0.2, 0.0, 1.0)
    first = {lucky: 0.9, steady: 0.8, third: 0.7, fourth: 0.6}
    second = {lucky: 0.1, steady: 0.8, third: 0.72, fourth: 0.99}
    again: list[tuple[list[Entrant], float]] = []

    def reseed(alive: list[Entrant], epochs: float) -> list[float]:
        again.append((alive, epochs))
        return [second[e] for e in alive]

    def run(alive: list[Entrant], epochs: float) -> list[float]:
        return [first[e] + epochs / 100 for e in alive]

    entrants = [lucky, steady, third, fourth]
    table = halve(entrants, (1.0, 3.0), (4, 1), run, reseed=reseed, reseed_top=3)
    # the best three of the rung before the last ran again (not the fourth), at its length
    assert again == [([lucky, steady, third], 1.0)]
    means = dict(table[0])
    assert means[steady] == pytest.approx((0.81 + 0.8) / 2)
    assert means[lucky] == pytest.approx((0.91 + 0.1) / 2)
    assert means[fourth] == pytest.approx(0.61)  # one seed: its own score
    # the three measured twice first, by their mean; the fourth, scored once, after them
    assert [e for e, _ in table[0]] == [steady, third, lucky, fourth]
    assert [e for e, _ in table[1]] == [steady]  # the steady one goes on, not the lucky
    # a second seed that blew up sinks its entrant
    second[steady] = -math.inf
    again.clear()
    table = halve(entrants, (1.0, 3.0), (4, 1), run, reseed=reseed, reseed_top=3)
    assert dict(table[0])[steady] == -math.inf and [e for e, _ in table[1]] == [third]
    # without the callback, or with one run to compare, nothing runs again
    again.clear()
    halve(entrants, (1.0, 3.0), (4, 1), run)
    halve([lucky], (1.0, 3.0), (1, 1), run, reseed=reseed, reseed_top=3)
    assert again == []


def test_successive_halving_follows_the_scores_rung_by_rung() -> None:
    # the score peaks at max LR 0.2 (batch 32's reading) and weight decay 1e-4; longer
    # cycles score higher, so a rung's ranking is its own
    def score(e: Entrant, epochs: float) -> float:
        return epochs - abs(math.log(e.max_lr / 0.2)) - (e.weight_decay == 1e-3) * 0.05

    calls: list[tuple[int, float]] = []

    def run(alive: list[Entrant], epochs: float) -> list[float]:
        calls.append((len(alive), epochs))
        return [score(e, epochs) for e in alive]

    rungs = (3.0, 9.0, 27.0)
    table = halve(_entrants(), rungs, rung_counts(18, 3), run)
    assert calls == [(18, 3.0), (6, 9.0), (2, 27.0)]
    assert [len(r) for r in table] == [18, 6, 2]
    winner, best = pick_winner(table[-1], noise=0.0)
    assert (winner.max_lr, winner.weight_decay) == (pytest.approx(0.2), 1e-4)
    assert best == pytest.approx(27.0)
    # a rung's survivors are its best third, the best of each batch and max LR first: a
    # (batch, LR) raced at two weight decays sends the better one on, and no twin
    first = [s for _, s in table[0]]
    assert first == sorted(first, reverse=True)
    best_per_pair = []
    for e, _ in table[0]:
        if (e.batch_size, e.max_lr) not in {(b.batch_size, b.max_lr) for b in best_per_pair}:
            best_per_pair.append(e)
    assert {e for e, _ in table[1]} == set(best_per_pair[:6])
    pairs = [(e.batch_size, e.max_lr) for e, _ in table[1]]
    assert len(pairs) == len(set(pairs))


def test_survivors_fill_up_with_twins_when_there_are_too_few_distinct_pairs() -> None:
    a1, a2 = Entrant(32, 0.1, 0.0, 1.0), Entrant(32, 0.1, 1e-3, 1.0)
    b1 = Entrant(32, 0.3, 0.0, 3.0)
    assert survivors([(a1, 0.9), (a2, 0.89), (b1, 0.5)], 2) == [a1, b1]
    assert survivors([(a1, 0.9), (a2, 0.89), (b1, 0.5)], 3) == [a1, b1, a2]


def test_equal_scores_go_on_by_the_lower_validation_loss() -> None:
    # a metric on a small validation split ties often; the loss then ranks them
    a, b, c = Entrant(32, 0.3, 0.0, 3.0), Entrant(32, 0.1, 0.0, 1.0), Entrant(64, 0.2, 0.0, 1.0)
    losses = {a: 0.2, b: 0.4, c: math.nan}
    table = halve(
        [b, c, a],
        (1.0, 3.0),
        (3, 1),
        lambda alive, _e: [0.9] * len(alive),
        loss=lambda e, _e: losses[e],
    )
    assert [e for e, _ in table[0]] == [a, b, c]  # a NaN loss ranks last among equals
    assert [e for e, _ in table[1]] == [a]
    # without losses, equal scores go by the tie rank: the reading, then the larger batch
    table = halve([b, c, a], (1.0,), (3,), lambda alive, _e: [0.9] * len(alive))
    assert [e for e, _ in table[0]] == [c, b, a]


def test_entrants_above_where_a_range_test_diverged_are_left_out() -> None:
    es = make_entrants({32: (0.1, True), 64: (0.2, True)}, [1e-3])
    kept = within_ceiling(es, {32: 0.5, 64: 1.0})
    # 10x the reading passes the ceiling at both batches; 3x (0.3, 0.6) does not
    assert sorted((e.batch_size, round(e.lr_factor, 3)) for e in es if e not in kept) == [
        (32, 10.0),
        (64, 10.0),
    ]
    # the reading and what lies below it stay whatever the ceiling, and so does the default
    low = within_ceiling(es, {32: 0.01, 64: 0.01})
    assert {round(e.lr_factor, 3) for e in low} == {0.333, 1.0}
    d = Entrant(64, 5.0, 1e-4, 25.0, 0.95, True)
    assert within_ceiling([d], {64: 0.01}) == [d]
    assert within_ceiling(es, {}) == es


def test_ties_within_the_noise_go_to_the_reading_then_the_better_score_then_the_batch() -> None:
    a = Entrant(32, 0.3, 0.0, 3.0)
    b = Entrant(32, 0.1, 0.0, 1.0)
    c = Entrant(64, 0.2, 0.0, 1.0)
    # equal scores at the reading: the larger batch
    assert pick_winner([(a, 0.905), (b, 0.9), (c, 0.9)], noise=0.01) == (c, 0.9)
    # equally near the reading, the better score wins whatever the batch
    assert pick_winner([(a, 0.91), (b, 0.902), (c, 0.9)], noise=0.015) == (b, 0.902)
    # the reading still comes first: a better score further from it loses within the noise
    assert pick_winner([(a, 0.91), (c, 0.9)], noise=0.015) == (c, 0.9)
    # the deep MLP's last rung (seed 0 of the development zoo): batch 64 and 128, each at a
    # third of its reading, within the noise; the better run wins, not the larger batch
    d64, d128 = Entrant(64, 0.0821, 1e-4, 1 / 3), Entrant(128, 0.1641, 1e-4, 1 / 3)
    default = Entrant(128, 0.1, 1e-4, 0.203, 0.95, True)
    last = [(d64, 0.517), (d128, 0.510), (default, 0.316)]
    assert pick_winner(last, noise=0.016) == (d64, 0.517)
    assert pick_winner([(a, 0.95), (b, 0.9)], noise=0.01) == (a, 0.95)  # a lead beyond it
    # every run blew up: the lowest max LR, from which the retries go lower
    assert pick_winner([(a, -math.inf), (b, -math.inf)], noise=0.0)[0] == b
    # NaN scores count as blown up
    table = halve([a, b], (1.0,), (2,), lambda alive, _e: [math.nan, 0.5])
    assert table[0][0] == (b, 0.5) and table[0][1] == (a, -math.inf)


def test_a_winner_that_falls_below_its_own_shorter_run_runs_again_at_a_third_its_lr() -> None:
    a = Entrant(64, 0.376, 1e-4, 1.0)
    b = Entrant(16, 0.094, 1e-4, 1.0)
    c = Entrant(32, 0.09, 1e-4, 1 / 3)
    third = Entrant(64, 0.376 / HOLD_LOWER, 1e-4, 1 / HOLD_LOWER)
    # multilabel-bce's race: 0.827 at a third of the epochs, 0.805 at full length, 0.0134
    # noise (one standard error on 800 samples)
    table = [[(c, 0.80), (a, 0.79), (b, 0.78)], [(a, 0.827), (b, 0.82)], [(a, 0.805)]]
    assert held_up(table, a, 0.0134) == third
    # within the noise it held: nothing more runs
    assert held_up(table, a, 0.03) is None
    # it scored better at full length: nothing more runs
    assert held_up([table[0], table[1], [(a, 0.84)]], a, 0.0134) is None
    # the lower LR ran the full length already
    assert held_up([table[0], table[1], [(a, 0.805), (third, 0.80)]], a, 0.0134) is None
    # judged against the latest shorter rung it ran: c was cut at the first
    assert held_up([table[0], table[1], [(a, 0.81), (c, 0.70)]], c, 0.01) == c.lowered(3)
    assert held_up([table[0], table[1], [(a, 0.81), (c, 0.795)]], c, 0.01) is None
    # a skipped middle rung (no run left its plateau) is no evidence
    assert held_up([[(c, 0.8), (a, 0.7)], [], [(c, 0.5)]], c, 0.01) == c.lowered(3)
    # the default's lower LR is no longer the default
    d = Entrant(64, 0.1, 1e-4, 0.27, 0.95, True)
    lower_default = Entrant(64, 0.1 / 3, 1e-4, 0.27 / 3, 0.95)
    assert held_up([[(d, 0.83)], [(d, 0.80)]], d, 0.01) == lower_default
    # nothing with one rung; a winner that blew up is not judged (the back-off handles it)
    assert held_up([[(a, 0.805)]], a, 0.0) is None
    assert held_up([[(c, 0.80), (a, 0.79)], [(c, -math.inf)]], c, 0.01) is None
    # losses are negated scores: an MSE of 0.30 at full length after 0.25 at a third is a
    # drop, and an unknown noise counts as none
    assert held_up([[(c, -0.25), (a, -0.27)], [(c, -0.30)]], c, math.nan) == c.lowered(3)
    assert held_up([[(c, -0.25), (a, -0.27)], [(c, -0.24)]], c, math.nan) is None


def test_a_rung_where_no_run_left_its_plateau_buys_full_runs_in_plateau_order() -> None:
    # every short run sits at chance (learned False); only full-length runs learn, and the
    # best is the reading / 3 at the largest batch
    es = make_entrants({32: (0.3, False), 64: (0.6, False)}, [1e-4, 1e-3])
    default = Entrant(64, 0.1, 1e-4, 0.1 / 0.6, 0.95, True)
    es = [default, *es]
    rungs = (20 / 9, 20 / 3, 20.0)
    counts = rung_counts(len(es), 3)
    assert counts == (13, 5, 2)
    calls: list[tuple[int, float]] = []

    def run(alive: list[Entrant], epochs: float) -> list[float]:
        calls.append((len(alive), epochs))
        if epochs < 20:
            return [0.1] * len(alive)  # chance, whatever the LR
        return [0.5 - abs(math.log(e.max_lr / 0.2)) / 10 for e in alive]

    table = halve(es, rungs, counts, run, learned=lambda _e, epochs: epochs == 20.0)
    # rung 2 (5 x 20/3 epochs) and 2 finalists cost 5 x 6.67 + 2 x 20 = 73.3: 3 full runs
    assert calls == [(13, rungs[0]), (3, 20.0)]
    assert table[1] == [] and len(table[2]) == 3
    picked = [e for e, _ in table[2]]
    assert picked[0] == default or default in picked
    want = plateau_pick([e for e, _ in table[0]], 3)
    assert set(picked) == set(want)
    assert want[0] == default
    # then the factor below the reading first, the larger batch first, one per (batch, LR)
    assert [(e.batch_size, e.lr_factor) for e in want[1:]] == [
        (64, PLATEAU_ORDER[0]),
        (32, PLATEAU_ORDER[0]),
    ]
    assert all(e.weight_decay == 1e-4 for e in want)
    winner, _ = pick_winner(table[-1], noise=0.0)
    assert winner.max_lr == pytest.approx(0.2)  # 0.6 / 3 at batch 64
    # with second seeds paid for (three at 20/3 epochs: 20 more), 93.3 epochs buy four full
    # runs: two entrants, each on two seeds; the one that learned on one seed only loses
    seeds: list[tuple[int, float]] = []

    def reseed(alive: list[Entrant], epochs: float) -> list[float]:
        seeds.append((len(alive), epochs))
        return [0.1 if e.max_lr == pytest.approx(0.2) else 0.45 for e in alive]

    calls.clear()
    table = halve(es, rungs, counts, run, lambda _e, ep: ep == 20.0, None, reseed, 3)
    assert calls == [(13, rungs[0]), (2, 20.0)] and seeds == [(2, 20.0)]
    assert [e for e, _ in table[2]] == want[:2] and want[0] == default
    means = dict(table[2])
    assert means[want[1]] == pytest.approx((0.5 + 0.1) / 2)  # 0.2, at chance on seed 2
    assert pick_winner(table[-1], noise=0.0)[0] == default


def test_runs_that_learned_go_on_before_runs_on_their_plateau() -> None:
    a, b = Entrant(32, 0.1, 0.0, 1.0), Entrant(32, 0.3, 0.0, 3.0)
    c, d = Entrant(32, 0.1 / 3, 0.0, 1 / 3), Entrant(32, 0.01, 0.0, 0.1)
    ranked = [(b, 0.12), (d, 0.11), (a, 0.5), (c, 0.1)]
    # only a learned: it goes first whatever the noise ranked above it, then plateau order
    assert survivors(ranked, 2, learned=lambda e: e == a) == [a, c]
    assert survivors([(a, 0.5), (b, -math.inf), (c, 0.4)], 3) == [a, c, b]


def test_a_rung_where_every_run_blew_up_runs_again_ten_times_lower() -> None:
    es = [Entrant(32, 3.0, 0.0, 1.0), Entrant(32, 9.0, 0.0, 3.0)]
    calls: list[list[float]] = []

    def run(alive: list[Entrant], _epochs: float) -> list[float]:
        calls.append([e.max_lr for e in alive])
        return [0.9 - e.max_lr if e.max_lr < 0.5 else -math.inf for e in alive]

    table = halve(es, (10.0,), (2,), run)
    assert calls == [pytest.approx([3.0, 9.0]), pytest.approx([0.3, 0.9])]
    assert round(table[0][0][0].max_lr, 6) == 0.3
    assert sorted(round(e.max_lr, 6) for e, _ in table[0]) == [0.3, 0.9, 3.0, 9.0]
    assert table[0][0][1] == pytest.approx(0.6) and table[0][0][0].lr_factor == 0.1
    # never more than BACKOFFS retries
    never: list[int] = []
    halve(es, (10.0,), (2,), lambda alive, _e: never.append(1) or [-math.inf] * len(alive))
    assert len(never) == 1 + BACKOFFS


def test_the_default_entrant_is_what_a_user_would_run_first() -> None:
    d = default_entrant(128, "sgd", {32: 0.2, 64: 0.4, 128: 0.8})
    assert (d.batch_size, d.max_lr, d.weight_decay, d.max_momentum) == (128, 0.1, 1e-4, 0.95)
    assert d.default and d.lr_factor == pytest.approx(0.1 / 0.8)
    a = default_entrant(64, "adamw", {32: 1e-3})
    assert (a.max_lr, a.weight_decay) == (3e-3, 1e-2) and a.lr_factor == pytest.approx(3)
    assert "(default)" in d.label() and "momentum 0.95" in d.label()
    with pytest.raises(ValueError, match="no default"):
        default_entrant(64, "lion", {})


def _wd_decision(rule: str, rows: list[tuple[float, float]], value: float) -> Decision:
    table = tuple(
        {"value": v, "lowest_val_loss": loss, "status": "ok", "note": ""} for v, loss in rows
    )
    return Decision(name="weight_decay", value=value, rule=rule, reason="", table=table)


def test_the_weight_decays_that_race_are_the_sweeps_best_two() -> None:
    d = _wd_decision("lowest_val_loss_at_high_lr", [(1e-2, 0.9), (1e-3, 0.5), (1e-4, 0.6)], 1e-3)
    assert race_weight_decays([d], (1e-2, 1e-3, 1e-4)) == [1e-3, 1e-4]
    # no evidence: the kept value and the grid's next one up
    d = _wd_decision("no_evidence_kept", [], 1e-4)
    assert race_weight_decays([d], (1e-2, 1e-3, 1e-4, 0.0)) == [1e-4, 1e-3]
    assert race_weight_decays([], (1e-3,)) == [0.0]


# --------------------------------------------------------------------------- in the recipe


def test_the_race_trains_each_run_once_and_its_winners_full_run_is_the_final_run(tmp_path):
    from disciplined import tune
    from disciplined.trials.spec import run_trial
    from disciplined.trials.store import SQLiteStore

    calls = []

    def counting(spec):
        calls.append(spec.key)
        return run_trial(spec)

    # 6-epoch runs at batch 32 (45 steps an epoch): rungs of 2/3 (30 steps), 2 and 6 epochs
    r = tune("digits-mlp", epochs=6, budget=90, range_steps=100, out=tmp_path, runner=counting)
    race = r.decisions[-1]
    assert race.name == "race" and race.rule == "successive_halving"
    assert len(calls) == len(set(calls))  # no trial trained twice
    # the rungs as planned, each rung's survivors the best of the one before
    rows = race.table
    counts = list(race.payload.counts)
    assert race.payload.rungs == (0.6667, 2.0, 6.0) and counts[0] > counts[1] >= counts[2] >= 1
    assert [sum(row["rung"] == k for row in rows) for k in range(len(counts))] == counts
    assert sum(row["advanced"] for row in rows if row["rung"] == 0) == counts[1]
    # the answer is the winner's full-length run, read back as the final run
    (won,) = [row for row in rows if row["rung"] == len(counts) - 1 and row["advanced"]]
    assert (r.hparams.batch_size, r.hparams.max_lr, r.hparams.weight_decay) == (
        won["batch_size"],
        won["max_lr"],
        won["weight_decay"],
    )
    assert r.final_metric == won["val_metric"] and r.epochs == 6
    text = repr(r)  # one short line, not the decisions and histories
    assert "\n" not in text and len(text) < 300
    assert f"batch_size={r.hparams.batch_size}" in text and "verdict=" in text
    best = max(row["val_metric"] for row in rows if row["rung"] == len(counts) - 1)
    assert best - race.payload.noise <= won["val_metric"] <= best
    # every trial counted once: the compute is what the store holds
    with SQLiteStore(tmp_path / "trials.sqlite") as s:
        unique = sum(t.epochs for t in s.results())
    assert sum(c["epochs"] for c in r.compute.values()) == pytest.approx(unique)
    assert sum(c["epochs"] for c in r.compute.values()) <= 90
    # a rerun reads every trial back
    calls.clear()
    again = tune("digits-mlp", epochs=6, budget=90, range_steps=100, out=tmp_path, runner=counting)
    assert calls == [] and again.hparams == r.hparams
    html = (tmp_path / "report.html").read_text()
    assert "successive_halving" in html and "The race" in html


def _flat_range_tests(spec):
    """A runner whose range tests never fall (the loss held at its start, a little noise),
    as on a deep network without normalization over a short sweep; training runs as is."""
    from dataclasses import replace

    from disciplined.trials.spec import run_trial

    r = run_trial(spec)
    t = r.range_test
    if spec.kind != "range_test" or t is None:
        return r
    start = t.losses[0]
    flat = tuple(start * (1 + 0.001 * math.sin(i)) for i in range(len(t.losses)))
    vals = tuple(start * (1 + 0.001 * math.cos(i)) for i in range(len(t.val_losses)))
    from disciplined.measure.suggest import smith, smooth_zero_lag

    smoothed = tuple(smooth_zero_lag(flat))
    test = replace(
        t,
        losses=flat,
        smoothed=smoothed,
        val_losses=vals,
        seed_smoothed=(),
        suggestion=smith(t.lrs, smoothed),
    )
    return replace(r, range_test=test)


def test_range_tests_that_never_fall_still_end_in_a_trained_answer(tmp_path):
    # no sweep has evidence: weight decay and momentum keep their defaults, the LR reading
    # is where the plateau ended, and the race spans it wide; the answer is a trained run
    from disciplined import tune
    from disciplined.studies.steps import NO_EVIDENCE_MOMENTUM, NO_EVIDENCE_WEIGHT_DECAY

    r = tune(
        "digits-mlp",
        epochs=3,
        budget=60,
        range_steps=100,
        out=tmp_path,
        runner=_flat_range_tests,
        compare_batch_sizes="off",
    )
    by = {d.name: d for d in r.decisions}
    assert by["weight_decay"].rule == "no_evidence_kept"
    assert by["weight_decay"].value == NO_EVIDENCE_WEIGHT_DECAY
    assert "momentum" not in by  # the race runs momentum as entrants
    assert r.hparams.max_momentum in (NO_EVIDENCE_MOMENTUM, 0.9)
    race = by["race"]
    assert race.payload.default or race.payload.lr_factor in WIDE_LR_FACTORS
    first = [row for row in race.table if row["rung"] == 0]
    factors = {row["lr_factor"] for row in first if not row["default"]}
    # the wide spread, less what lies above a third of where the real sweep diverged
    assert {f for f in WIDE_LR_FACTORS if f <= 1} <= factors <= set(WIDE_LR_FACTORS)
    assert sum(row["default"] for row in first) == 1
    assert r.final_metric > 0.8 and (tmp_path / "hparams.json").exists()


def test_the_recipes_race_keeps_the_lower_lr_only_when_it_scores_better() -> None:
    from disciplined.recipe.race import _held_up_net

    a, b = Entrant(64, 0.375, 1e-4, 1.0), Entrant(64, 0.125, 1e-4, 1.0)
    rungs = (2.0, 6.0, 18.0)
    ran: list[tuple[list[Entrant], float]] = []

    def run_at(score: float):
        def run(alive: list[Entrant], epochs: float) -> list[float]:
            ran.append((alive, epochs))
            return [score]

        return run

    table = [[(a, 0.80), (b, 0.79)], [(a, 0.827), (b, 0.82)], [(a, 0.805)]]
    won, note = _held_up_net(table, rungs, a, run_at(0.83), 0.0134)
    lower = Entrant(64, 0.125, 1e-4, 1 / 3)
    assert ran == [([lower], 18.0)] and won == lower
    assert table[-1] == [(lower, 0.83), (a, 0.805)]
    assert "0.827 on a shorter cycle and 0.805 at the full 18 epochs" in note
    assert "max LR 0.125 (0.83)" in note and note.endswith(f"{lower.label()} was kept")
    # the lower LR scores worse: the winner stays
    table = [[(a, 0.80), (b, 0.79)], [(a, 0.827), (b, 0.82)], [(a, 0.805)]]
    won, _ = _held_up_net(table, rungs, a, run_at(0.79), 0.0134)
    assert won == a and table[-1] == [(a, 0.805), (lower, 0.79)]
    # it held: nothing runs
    table = [[(a, 0.80), (b, 0.79)], [(a, 0.827), (b, 0.82)], [(a, 0.83)]]
    assert _held_up_net(table, rungs, a, run_at(0.9), 0.0134) is None and len(ran) == 2
