"""Answering-machine detection: who picked up, a person or a machine, from the callee's audio.

``features`` turns 20 ms frames of 16-bit PCM into what the rules look at (speech or not, a
steady tone or not); ``classifier`` holds every decision rule in one place and is pure;
``follow`` reads the recording FreeSWITCH writes while the call goes on; ``detection`` runs
the two beside a call; ``corpus`` makes the labelled recordings the benchmark and the tests use.
docs/amd.md explains the rules and the numbers behind them.
"""
