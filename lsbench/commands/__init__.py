"""One module per ``python -m lsbench`` subcommand."""
