"""Faithful to the literature: the numbers of the classic papers come out of this engine.

The full protocol (3 seeds per cell) is `python -m scripts.literature`; this is its short form.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from scripts.literature import AddingResult, adding, median_ratio


def test_vanishing_and_exploding_at_initialisation() -> None:
    """T=100, H=128: the median over five seeds of ||dl_T/dh_1|| / ||dl_T/dh_T||."""
    assert median_ratio("tanh RNN, W_hh ~ N(0, 0.5^2/H)") < 1e-20  # vanishes
    assert median_ratio("tanh RNN, W_hh ~ N(0, 1.5^2/H)") > 1e2  # explodes
    assert median_ratio("LSTM, forget bias 3") > 1e-2  # the cell state carries it


def _adding(cell: str, seed: int) -> AddingResult:
    return adding(cell, seed, steps=2000, stop_when_solved=cell != "rnn_tanh")  # type: ignore[arg-type]


@pytest.mark.slow
def test_adding_problem_gated_cells_learn_and_the_tanh_rnn_does_not() -> None:
    """T=50, H=64, Adam 3e-3, batch 64: one seed per cell here, two cores in parallel."""
    jobs = [("rnn_tanh", 0), ("lstm", 0), ("gru", 0)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = {r.cell: r for r in pool.map(_adding, *zip(*jobs, strict=True))}
    assert results["lstm"].solved_at is not None and results["lstm"].test_mse < 0.01
    assert results["gru"].solved_at is not None and results["gru"].test_mse < 0.01
    assert results["rnn_tanh"].steps == 2000 and results["rnn_tanh"].test_mse > 0.15
