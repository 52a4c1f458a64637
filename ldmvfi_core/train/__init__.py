# SPDX-License-Identifier: MIT
"""Training: data (``data``), losses, the two training stages and their loop."""
