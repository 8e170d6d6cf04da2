"""Progress on long work (``compound.core.progress``), as a log sees it (pytest's stderr is not a terminal)."""

import re

from compound.core.progress import Progress


def test_a_log_gets_a_line_at_every_tenth_with_the_figures_on_stderr(capsys):
    bar = Progress(True, "training", 20, unit="steps", formats={"loss": "loss {:.4f}"}, loss=float("nan"))
    for step in range(1, 21):
        bar.update(done=step, loss=1.0 / step)
    bar.stop()
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == ""
    assert [re.match(r"training: (\d+)/20", line).group(1) for line in lines] == [str(n) for n in range(2, 21, 2)]
    assert "loss 0.5000" in lines[0] and "loss 0.0500" in lines[-1] and "steps/s" in lines[0]
    assert all(re.search(r"ETA (\d+ s|\?)$", line) for line in lines)


def test_advancing_by_many_and_a_resumed_start(capsys):
    bar = Progress(True, "rows", 100, 40, unit="rows", formats={"cost": "${:.4f}", "energy": "{:.0f} J"})
    bar.update(advance=5)  # 45: still in the fifth tenth
    bar.update(advance=30, cost=0.01, energy=12.0)  # 75
    bar.update(advance=25)  # 100
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == ["rows: 75/100", "rows: 100/100"]
    assert "$0.0100" in lines[0] and "12 J" in lines[0]


def test_a_figure_not_given_yet_is_left_out_and_disabled_prints_nothing(capsys):
    bar = Progress(True, "labelling", 1, formats={"loss": "loss {:.4f}"})
    bar.update()
    assert capsys.readouterr().err.strip().startswith("labelling: 1/1, ETA")
    off = Progress(False, "labelling", 3)
    off.update()
    off.update(done=3, loss=1.0)
    off.stop()
    assert capsys.readouterr() == ("", "")
