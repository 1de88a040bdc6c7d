"""The child process of one run: its command line. (Training then testing a bundle through it
is checked end to end by tests/cli/test_sweep.py, slow.)"""

from lsmseg.experiments.run import main


def test_child_without_one_spec_path_is_a_usage_error(capsys) -> None:
    assert main([]) == 2 and main(["a.json", "b.json"]) == 2
    assert (
        capsys.readouterr().err.splitlines()[0] == "usage: python -m lsmseg.experiments.run RUN_DIR/spec.json"
    )
