"""Paper generation: tables and figures from recorded results (``python -m lsbench paper``)."""
