"""Flags a command does not know (issue 30): Beam's pass through, Beam's spelling of ours is ours, typos stop."""

import pytest

from formdigits.cli import main


def _refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def scan(tmp_path):
    (tmp_path / "scan.png").write_bytes(b"")
    return str(tmp_path / "scan.png")


def test_a_typo_in_a_flag_stops_run_and_names_the_nearest_flag(scan, tmp_path, capsys):
    line = _refused(["run", "--input", scan, "--output", str(tmp_path / "o"), "--tempaltes", "t"], capsys)
    assert "unrecognized argument --tempaltes; did you mean --templates?" in line
    line = _refused(["run", "--input", scan, "--output", str(tmp_path / "o"), "--review-treshold=0.9"], capsys)
    assert "did you mean --review-threshold?" in line


def test_a_flag_nobody_knows_stops_run_even_beside_flags_beam_knows(scan, tmp_path, capsys):
    line = _refused(["run", "--input", scan, "--output", str(tmp_path / "o"), "--direct_num_workers=1",
                     "--frobnicate"], capsys)
    assert "unrecognized argument --frobnicate" in line and "PipelineOptions" in line


def test_beams_underscore_spelling_of_our_own_option_is_our_option(scan, tmp_path, capsys):
    # --temp_location is Beam's name for our --temp-location: read as ours, and checked as ours.
    line = _refused(["run", "--runner", "DataflowRunner", "--input", scan, "--output", "bq:p:d", "--project", "p",
                     "--region", "r", "--temp_location", "/tmp/not-a-bucket"], capsys)
    assert "--temp-location must be a gs:// path" in line


def test_other_commands_name_the_nearest_flag_too(tmp_path, capsys):
    line = _refused(["query", "--db", str(tmp_path), "--formt", "csv", "SELECT 1"], capsys)
    assert "unrecognized argument --formt; did you mean --format?" in line


def test_an_output_that_is_a_file_is_one_line(scan, tmp_path, capsys):
    (tmp_path / "out").write_text("")
    line = _refused(["run", "--input", scan, "--output", str(tmp_path / "out")], capsys)
    assert "is a file; give a folder" in line
