"""Benchmarks of Hybrid Audio (issue #7): ``python -m bench.run [--quick]``.

Scenarios (see :mod:`bench.run`): the audio core against numpy/soundfile, pydub, sox and
ffmpeg; the end-to-end Dagster batch and its no-op re-run at two campaign sizes; stem
synthesis with the offline engine and with the Cartesia resource against a local fake.
"""
