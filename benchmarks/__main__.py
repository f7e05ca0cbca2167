"""`python -m benchmarks`: see benchmarks/README.md."""

from benchmarks._runner import main

main()
