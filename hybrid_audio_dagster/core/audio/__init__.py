"""Pure audio core: WAV I/O and validation, silence trimming, semantic timing, bit-exact
assembly and verification. Knows nothing of Dagster."""
