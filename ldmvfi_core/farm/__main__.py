# SPDX-License-Identifier: MIT
"""``python -m ldmvfi_core.farm bundle|validate|template ...`` (the same as ``ldmvfi farm ...``)."""

import sys

from ldmvfi_core.farm.cli import main_farm

sys.exit(main_farm(sys.argv[1:]))
