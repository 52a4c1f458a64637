# SPDX-License-Identifier: MIT
"""The LDMVFI node for Nuke: a retimer that bakes its result with the ``ldmvfi retime`` runner.

Two layers, imports in one direction:

* plain modules, no ``nuke`` import, testable anywhere: ``settings`` (knob names, defaults, knob
  values -> validated settings, frame ranges), ``commands`` (settings -> runner command line),
  ``cache`` (cache keys, input fingerprints, result markers), ``progress`` (the runner's JSON
  lines), ``process`` (drive the runner subprocess, cancel it), ``ocio`` (config file and
  colourspace names);
* Nuke glue: ``node`` (knob callbacks, reading knobs, the internal Read), ``bake`` (Interpolate,
  the render guard, headless baking), ``farm`` (Submit to farm), ``startup`` (what init.py and
  menu.py call).

Nuke's Python never imports torch or numpy: all pixel work happens in the runner process.
"""
