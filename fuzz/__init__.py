"""bootres's fuzzing harness: one target per parser of untrusted input (docs/fuzzing.md).

``targets.py``  the targets and their contracts (plain functions on bytes; no atheris needed)
``worker.py``   one atheris (libFuzzer) process for one target
``__main__.py`` the runner: ``python -m fuzz TARGET|all --runs N --seconds S``, ``replay``, ``seeds``, ``structured``
``dnsgen.py``   hypothesis strategies for whole DNS messages (the structured differential against dnspython)
``seeds.py``    the seed corpora in ``corpus/TARGET/``
``crashes/TARGET/``  every input that ever failed, replayed by tests/test_fuzz_corpus.py
"""
