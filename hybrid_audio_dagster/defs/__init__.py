"""The Dagster layer, one folder per domain over the pure ``core``.

Our uses of Dagster's beta and preview APIs are deliberate (the single-run backfill policy
of the stem and message assets, multi-to-single-dimension partition mappings, checks per
partition): the warning Dagster prints for each at every code-location load would only
bury an operator's console, so it is silenced here, where every definition is imported.
"""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
