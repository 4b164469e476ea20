"""The run's defaults and choices, in one place the CLI can import without OpenCV, Beam or TensorFlow."""

__all__ = ["DEFAULT_REVIEW_THRESHOLD", "DEFAULT_MAX_BATCH_SIZE", "DEFAULT_SERVING_TIMEOUT_S",
           "DEFAULT_MAX_PAGE_PIXELS", "KEEP_CROPS_CHOICES", "DEFAULT_KEEP_CROPS"]

DEFAULT_REVIEW_THRESHOLD = 0.95      # a field whose weakest digit is below this probability is flagged
DEFAULT_MAX_BATCH_SIZE = 512         # crops per Predict request: the server's max_batch_size (batching.config)
DEFAULT_SERVING_TIMEOUT_S = 120.0    # seconds without a model server before a run stops
DEFAULT_MAX_PAGE_PIXELS = 200_000_000  # pages larger than this are refused (A3 at 600 dpi is 70 M)
KEEP_CROPS_CHOICES = ("none", "flagged", "all")  # whose field pictures go to the `crops` table
DEFAULT_KEEP_CROPS = "flagged"
