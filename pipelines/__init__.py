"""tongxing: survey and needs-assessment analytics for child-friendly community projects.

The package is the pipeline's stages (ingest → clean → validate → weight → analyze → report) plus the
analysis API (`pipelines.stats`) that notebooks share with the pipeline.
"""

__version__ = "0.1.0"
