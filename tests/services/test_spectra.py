"""W_hh's spectra as the view service lays them out: rows without spectra explained, shapes kept apart."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.frames import Frame
from app.services.spectra import SpectraRow, spectra


def test_a_frames_own_note_says_why_its_spectra_are_left_out() -> None:
    note = "The spectra of W_hh are left out of this frame: its 4096 x 4096 blocks cost 2.1e+11."
    empty = Frame({"notes": [note, "another note"]}, {})
    row = SpectraRow.of(empty)
    assert row.radius is None and row.note == note
    answer = spectra([(5, row)], total_rows=1)
    assert answer.steps == [] and answer.blocks == [] and answer.left_out == 1
    assert answer.notes == [f"1 of 1 probe frames carry no W_hh spectra. {note}"]


@pytest.mark.parametrize("blocks", [1, 3, 4])
def test_rows_of_another_shape_than_the_newest_are_left_out(blocks: int) -> None:
    def row(layers: int) -> SpectraRow:
        radius = np.ones((layers, 1, blocks), np.float32)
        return SpectraRow(radius, np.ones((layers, 1, blocks, 3), np.float32), None)

    answer = spectra([(0, row(2)), (1, row(1)), (2, row(1))], total_rows=3)
    assert answer.steps == [1, 2] and answer.left_out == 0 and len(answer.blocks) == blocks
