"""`hardrun run`'s entry point called in-process (as the click command does)."""
import gc

from hardrun.cli.run import EXIT_USAGE, main


def test_in_process_calls_leave_the_garbage_collector_on(capsys):
    """Start-up runs with the collector off; whatever the outcome, callers get it back."""
    assert gc.isenabled()
    assert main(["--help"]) == 0
    assert gc.isenabled()
    assert capsys.readouterr().out.startswith("Usage: hardrun run")
    assert main(["--frobnicate", "true"]) == EXIT_USAGE
    assert gc.isenabled()
    assert "unknown flag: --frobnicate" in capsys.readouterr().err
