"""Alternative trainer layers written by a third party, against the public ports only."""
