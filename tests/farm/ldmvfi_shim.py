# SPDX-License-Identifier: MIT
"""`ldmvfi` for the farm tests while `ldmvfi farm` is not wired into ldmvfi_core.cli: routes
`farm ...` to ldmvfi_core.farm.cli.main_farm and everything else to ldmvfi_core.cli.main."""

import sys

from ldmvfi_core.cli import main
from ldmvfi_core.farm.cli import main_farm

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main_farm(args[1:]) if args[:1] == ["farm"] else main(args))
