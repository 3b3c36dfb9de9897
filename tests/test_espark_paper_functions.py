"""The paper's own exploration function (Fig. 21, transcribed): it runs in the sandbox and prunes what its text
says, and the printed axis=1 raises at its first call, as the transcription's note claims."""

import numpy as np
from conftest import ROOT

from scenarios.espark.candidates import mabim_sample_inputs, validate_candidate
from scenarios.inventory.config import ACTION_MULTIPLES, N_ACTIONS

FIG21 = ROOT / "scenarios" / "espark_functions" / "mabim_paper_fig21.py"


def _inputs(**kw):
    return [mabim_sample_inputs(1, 12, ACTION_MULTIPLES, seed=s, **kw) for s in range(3)]


def test_fig21_runs_and_masks_big_orders_and_early_small_ones():
    code = FIG21.read_text()
    late = validate_candidate(code, _inputs(current_step=50), N_ACTIONS)
    assert late.accepted, late.message
    early = validate_candidate(code, _inputs(current_step=0), N_ACTIONS)
    assert early.accepted and early.pruned_fraction > late.pruned_fraction  # orders below 0.5x also go early on
    above_two = np.mean(np.asarray(ACTION_MULTIPLES) > 2)
    assert late.pruned_fraction >= above_two - 1e-9


def test_fig21_as_printed_with_axis_1_fails_at_its_first_call():
    printed = FIG21.read_text().replace('"all_skus"], axis=0)', '"all_skus"], axis=1)')
    assert printed != FIG21.read_text()
    result = validate_candidate(printed, _inputs(current_step=50), N_ACTIONS)
    assert not result.accepted and result.cause == "exception" and "broadcast" in result.message
