"""Helpers shared by the test suite, the benchmarks and the quality measure: one copy of each.

    ports       free 127.0.0.1 ports, a held (busy) port, waiting for a listener
    processes   the real filter server as a process: start, health-wait, stop, CPU time
    envelopes   request factories: an Envelope (the pipeline's input) and a CheckRequest (what Envoy sends)
    waiting     polling a condition instead of sleeping a fixed time; fixed rate-limit windows

Nothing here fakes a part of the product, and nothing imports pytest: spawned worker processes use it too.
"""
