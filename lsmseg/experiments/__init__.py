"""Experiments over the methods: the paper's sweep (method x proportion x seed) and the step bench.

``grid`` says what runs (cells, presets, bundle overrides), ``run`` is one run's child process
(train, then test), ``sweep`` runs the grid and resumes it, ``tables`` reads, writes, summarises
and plots ``results.csv``; ``bench`` times the training step and ``flops`` counts its FLOPs and
measures the machine's peaks. Modules are imported by name (nothing re-exported here), so that
importing one does not load torch for the others.
"""
