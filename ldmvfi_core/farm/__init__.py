# SPDX-License-Identifier: MIT
"""Render-farm jobs: Open Job Description templates, job bundles and output validation.

``template`` finds the shipped job templates (``farm/`` at the top of a checkout, installed as
``ldmvfi_core.farm_templates``), ``bundle`` turns ``ldmvfi retime`` options into a Deadline Cloud job
bundle, ``validate`` checks a finished job's outputs, ``cli`` is ``ldmvfi farm``.
"""
