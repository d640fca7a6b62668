"""bnpack: the release orchestrator of bitnet (not named ``packaging``, which is PyPA's library).

Run it as ``python packaging/release.py TARGET`` from anywhere; see release.py.
"""
